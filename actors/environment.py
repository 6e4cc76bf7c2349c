"""One actor per service environment (``app@canary``): a bounded mailbox and ``concurrency`` slots.

A call that finds every slot busy waits in the mailbox (FIFO), and one that finds the mailbox full is
shed with a 503. A call that finds no warm isolate pays a cold start (``actors.isolates``: a TTL/LRU
cache of idle isolates, ``keep_warm`` its TTL, ``max_isolates`` its capacity). The actor
serves calls with one of two strategies. Code workers: each slot takes calls from the mailbox and
runs the worker for them (``_serve``, in a fiber in virtual time, a trio task live); whatever the
worker does wrong (raises, returns a non-Response) becomes a 500 for that call only (Workers' error
1101) and the slot carries on with the next call. Synthetic workers (``actors.synthetic``): no code
to run, so a call's CPU, wait and answer are timer steps.

Worker code reaches the platform through two objects per slot, reused from call to call so that a
hop allocates nothing it does not need: ``Context`` (``ctx``: CPU, sleeping, randomness; in
``actors.context``, which also paces live calls to their model's time) and ``Env`` (``env``: vars,
secrets and ``Binding`` stubs whose calls go to the target's mailbox).

Every change of what the environment runs (a deploy, a ``set``, a promotion, new vars) is a new
version in its ``history`` (``edge.platform.versions``), holding a ``Running`` snapshot, so that a
rollback can put an earlier one back; slots rebuild their ``env`` when the vars or bindings change.
"""

from __future__ import annotations

import collections
import copy
import functools
import logging
import math
import random
from typing import Any, Awaitable, Callable, cast

import outcome
import trio
from trio.lowlevel import Abort, Task, current_task, reschedule, wait_task_rescheduled

from actors.context import Context, LiveContext, MeteredContext, Pacing
from actors.isolates import WarmIsolates
from actors.mailbox import Call, Mailbox, RpcFailure, ask
from actors.synthetic import SyntheticCalls
from edge.platform import fibers, redact, watchdog
from edge.platform.clock import ModelClock
from edge.platform.cpu import CorePool, CpuLimitExceeded, InvocationLimitExceeded, metered
from edge.platform.distributions import Distribution
from edge.platform.errors import CLIENT_CLOSED, CPU_LIMIT, ERROR_HEADER, SHED, STALLED, UNAVAILABLE, WORKER_EXCEPTION, platform_error
from edge.platform.fetch import MAX_REDIRECTS, REDIRECT_MODES, REDIRECT_STATUSES, Headers, Request, Response, checked_response, follow_redirect, freeze
from edge.metrics.histogram import LogHistogram
from edge.metrics.recorders import RunMetrics, status_class
from edge.platform.versions import Version, VersionHistory
from edge.platform.workers import ModelWorker, WorkerCode
from edge.scenario.values import EnvironmentKey

log = logging.getLogger("edge.worker")

SLOT_RETIRE_AFTER = 10.0
"""Seconds a live slot task may go unneeded before it ends (see ``_retire_unused_slots``)."""
IDLE_SLOTS_KEPT = 2
"""Idle live slot tasks kept whatever the load: a lone call never waits for a task to start."""
_RETIRE = object()  # the message that ends an idle live slot

Post = Callable[[Call], "Response | None"]
"""An actor's entry point: accepts a call (returns None) or answers it at once (a Response)."""


class RpcError(Exception):
    """An RPC method of a bound worker raised, or the platform answered for it (shed, down); the
    message is the callee's error, secrets redacted. ``status`` and ``code`` are the callee's when
    it failed on purpose (``RpcFailure``), else 500 (or the platform's status) and None; ``detail``
    is its message alone."""

    def __init__(self, message: str, status: int = 500, code: str | None = None, detail: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.detail = message if detail is None else detail


STOP_AFTER_STALLS = 2
"""Virtual time: stalls after which an environment's worker is stopped for the rest of the run
(one may be an unlucky input; a second, a worker that keeps holding the loop)."""


class RpcMethodMissing(RpcError, TypeError):
    """The bound worker has no such RPC method: a ``TypeError`` too, as on workerd."""


class Env:
    """``env`` for worker code: vars, secrets and bindings by name, as attributes."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:  # only reached for names that are not set
        known = ", ".join(sorted(k for k in self.__dict__)) or "nothing"
        raise AttributeError(f"env has no binding, variable or secret {name!r} (it has: {known})")

    def __repr__(self) -> str:  # names only: values may be secrets
        return f"Env({sorted(self.__dict__)})"


class Binding:
    """``env.NAME``: a service binding. Calls travel to the target actor's mailbox, never a socket."""

    __slots__ = ("_ctx", "_name", "_target", "_post", "_inline", "_caller", "_clock", "_metrics", "_latency")

    def __init__(self, ctx: Context, name: str, target: str, post: Post, caller: str, clock: ModelClock, metrics: RunMetrics) -> None:
        self._ctx = ctx
        self._name = name
        self._target = target
        self._post = post
        # Live, a call to a code worker's environment runs in the caller's own task when it can
        # (``EnvironmentActor.serve_inline``); through a router it goes to the mailbox.
        self._inline = inline_target(post)
        self._caller = caller
        self._clock = clock
        self._metrics = metrics
        self._latency: dict[tuple[Any, str, int], LogHistogram] = {}

    def fetch(self, request: Request | str, init: dict[str, Any] | None = None) -> Awaitable[Response]:
        """Send ``request`` to the bound service, as Workers' ``env.BINDING.fetch(request)``.

        A request with a body hands it over: the caller's copy is used afterwards, which is why a
        request sent twice must be cloned first (seed 001). Bodiless requests travel as they are.
        A plain function returning the call's coroutine, so a hop costs one coroutine, not two;
        a request that cannot be sent raises here, at the call, rather than at the ``await``.
        """
        redirect = "follow"
        if init and "redirect" in init:
            init = dict(init)
            redirect = init.pop("redirect")
            if redirect not in REDIRECT_MODES:
                raise TypeError(f"redirect must be one of {', '.join(REDIRECT_MODES)}, not {redirect!r}")
        if isinstance(request, str):
            request = Request(request, **(init or {}))
        elif init:
            request = Request(request, **init)
        elif request.body_size:
            request = Request(request)  # consumes the caller's body, or raises if already used
        else:
            return self._call(None, request, (), None, redirect)
        if request.body_size:
            # A body travels with its length, as over HTTP: the callee reads it from the headers.
            request.headers.set("content-length", str(request.body_size))
        return self._call(None, request, (), None, redirect)

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)
        return functools.partial(self._rpc, method)

    async def _rpc(self, method: str, *args: Any, **kwargs: Any) -> Any:
        result = await self._call(method, None, args, kwargs)
        if isinstance(result, RpcFailure):
            raise (RpcMethodMissing if result.missing else RpcError)(result.message, result.status, result.code, result.detail)
        if isinstance(result, Response) and result.headers.get(ERROR_HEADER) is not None:
            # The platform answered instead of the method (shed, CPU limit): surface it as an error.
            # (A Response the method returned is a result like any other: the API gateway's hooks return them.)
            text = await result.clone().text()
            raise RpcError(f"{self._target}.{method} failed: {result.status} {text}", result.status, None, text)
        return result

    async def _call(self, method: str | None, request: Request | None, args: tuple[Any, ...], kwargs: dict[str, Any] | None,
                    redirect: str = "manual") -> Any:
        account = self._ctx.account
        assert account is not None, "a binding called outside a call"
        if account.invocations >= account.max_invocations:
            raise InvocationLimitExceeded(account.max_invocations)
        account.invocations += 1
        clock = self._clock
        call = Call(request, account, None, clock.now(), method, args, kwargs)  # type: ignore[arg-type]
        inline = self._inline
        if inline is not None and inline.has_room_inline():
            call.on_reply = _hold_reply
            await inline.serve_inline(call)
            result = call.context
        else:
            result = await ask(self._post, call)
        status = result._status if isinstance(result, Response) else (result.status if isinstance(result, RpcFailure) else 200)
        key = (call.served_by, call.version, status // 100)
        hist = self._latency.get(key)
        if hist is None:
            served = call.served_by
            labels = (self._caller, self._name, served.service, served.environment, call.version, f"{key[2]}xx")
            hist = self._latency[key] = self._metrics.histogram(self._metrics.bindings, labels)
        took = clock.now() - call.posted_at
        hist.observe(took)
        if self._ctx.paced:  # the hop back is the platform's overhead, not the callee's time
            self._ctx.waited((call.answered_at or clock.now()) - call.posted_at)  # type: ignore[attr-defined]
        if call.routed_to is not None:  # through a router: what this caller got, by its first choice
            self._metrics.count_routed(self._target, call.routed_to, status)
        if account.exceeded_at is not None:
            raise CpuLimitExceeded(account.used, account.limit)
        if call.thrown is not None:
            raise _as_callers(call.thrown)
        if type(result) is Response:
            if type(result._headers) is Headers:  # what a binding answered is the caller's to read, not to change
                freeze(result._headers)
            if result._status in REDIRECT_STATUSES and redirect != "manual":
                return await self._redirected(request, result, redirect)  # type: ignore[arg-type]
        return result

    async def _redirected(self, request: Request, response: Response, redirect: str) -> Response:
        """A fetch answered with a redirect, as workerd's binding fetch does by default: follow it,
        through the same binding (each hop an invocation), up to ``MAX_REDIRECTS``; with
        ``redirect="error"``, fail."""
        for _ in range(MAX_REDIRECTS):
            following = follow_redirect(request, response)
            if following is None:
                return response
            if redirect == "error":
                raise TypeError(f"{self._name}.fetch: a redirect ({response.status}) with redirect set to \"error\"")
            request = following
            response = await self._call(None, request, (), None)
            if type(response) is not Response:
                return response
            response._redirected = True
        if follow_redirect(request, response) is None:
            return response
        raise TypeError(f"{self._name}.fetch: more than {MAX_REDIRECTS} redirects")


def _discard(work: Awaitable[Any]) -> None:
    """Close work that will never run (a coroutine that is not awaited warns when collected)."""
    close = getattr(work, "close", None)
    if close is not None:
        close()


def _as_callers(exc: Exception) -> Exception:
    """What a worker raised, as the ``fetch`` of the worker that called it raises it.

    workerd hands a binding's caller the callee's error (``Error: boom``, a ``TypeError`` for an
    answer that is not a Response), not a 500 answer: error handling written against one must
    work on the other. A new exception, so that nothing of the callee's frames or state reaches
    the caller; of the same built-in type with the same arguments, as a JavaScript ``TypeError``
    stays one; a worker's own exception class, which the caller may not know, as ``Exception``
    (JavaScript's ``Error``) with the same arguments.
    """
    kind = type(exc)
    if kind.__module__ == "builtins":
        try:
            return kind(*exc.args)
        except Exception:  # a built-in whose constructor wants other arguments
            pass
    return Exception(*exc.args)


class Faults:
    """Behaviour injected into a code worker by a timeline ``set``: before its code runs, a call
    waits ``latency``, spends ``cpu``, or (with probability ``errors``) is answered 500 at once."""

    __slots__ = ("latency", "cpu", "errors")

    def __init__(self, latency: Distribution | None = None, cpu: Distribution | None = None, errors: float = 0.0) -> None:
        self.latency = latency
        self.cpu = cpu
        self.errors = errors


class Running:
    """What one version runs: a version's snapshot, kept for a rollback to it."""

    __slots__ = ("worker", "faults", "values", "bindings")

    def __init__(self, worker: WorkerCode | ModelWorker, faults: Faults | None, values: dict[str, Any], bindings: dict[str, tuple[str, Post]]) -> None:
        # Copies: a later ``set`` changes the running model and faults in place, never a version's.
        self.worker = copy.copy(worker)
        self.faults = copy.copy(faults)
        self.values = values
        self.bindings = bindings


class EnvironmentActor:
    """The actor of one service environment."""

    def __init__(
        self,
        *,
        service: str,
        environment: str,
        version: int,
        worker: WorkerCode | ModelWorker,
        values: dict[str, Any],
        bindings: dict[str, tuple[str, Post]],
        secrets: list[str],
        concurrency: int,
        mailbox: int,
        clock: ModelClock,
        cores: CorePool,
        rng: random.Random,
        metrics: RunMetrics,
        cold_start: Distribution | None = None,
        keep_warm: float = 300.0,
        max_isolates: int | None = None,
        live: bool = False,
        tags: dict[str, str] | None = None,
        measure_cpu: bool = False,
    ) -> None:
        self.service = service
        self.environment = environment
        self.key = EnvironmentKey(service, environment)
        self.version = str(version)
        self.worker = worker
        self.concurrency = concurrency
        self.mailbox = Mailbox(mailbox)
        self.clock = clock
        self.cores = cores
        self.rng = rng
        self.metrics = metrics
        self.stats = metrics.environment(service, environment)
        self.stats.mailbox_depth = self.mailbox.__len__
        self._waiting = self.mailbox.waiting
        self._counts = self.stats.counts(self.version)  # this version's answers by status class
        self.cold_start = cold_start
        # Only a cold start makes an isolate's warmth matter: without one, no cache to keep.
        self.isolates: WarmIsolates | None = None
        if cold_start is not None:
            self.isolates = WarmIsolates(max_isolates or concurrency, keep_warm, clock.now)
            self.stats.isolate_evictions = self.isolates.evictions
        self.live = live  # real time: worker CPU is measured, and clients can hang up
        self.metering = live or measure_cpu  # a code worker's real CPU is charged (MeteredContext)
        self.pacing = Pacing()  # live: what a call takes after its last wait (LiveContext, SyntheticCalls)
        self.faults: Faults | None = None  # injected by the timeline (code workers)
        self.tags: dict[str, str] = dict(tags or {})
        self.down = False  # crashed (timeline): new calls are refused until it restarts
        self._values = values
        self._bindings = bindings
        self._config = 0  # bumped when vars or bindings change: slots then rebuild their env
        self._started = clock.now()  # versions are dated from the run's (or the server's) start
        self.history: VersionHistory[Running] = VersionHistory(
            str(self.key), Version(version, 0.0, "initial", dict(self.tags)), Running(worker, None, values, bindings),
        )
        redact.register(secrets)
        self._logged: set[str] = set()
        # Code workers' slots: a slot is a ctx, an env and a consumer of the mailbox (a fiber in
        # virtual time, a trio task live). Slots come into being when a call finds none idle, so
        # that a large topology costs little while idle (``_slots`` counts them); live ones also
        # end when no call needed them for a while (``_retire_unused_slots``).
        self._slots = 0
        self._fibers: dict[fibers.Fiber, None] = {}  # ordered: closed in the order they started
        self._owner: Task | None = None  # the actor's task while it runs, owner of its fibers
        self._failure: BaseException | None = None  # what a fiber raised before the task could
        # Bound once here rather than tested on every call: this is the entry of every hop.
        if isinstance(worker, ModelWorker):
            self.post = SyntheticCalls(self).post  # type: ignore[method-assign]
        elif not live:
            self.post = self._post_to_fiber  # type: ignore[method-assign]
        else:
            self.post = self._post_to_task  # type: ignore[method-assign]
        self._nursery: trio.Nursery | None = None  # live: where slot tasks start, while run() runs
        # Live code workers: bindings run calls in their caller's task (``serve_inline``), with
        # these slots (ctx, env, config) that are not tasks; ``_inline_busy`` of them are in use.
        self.inline = live and not isinstance(worker, ModelWorker)
        self._inline_slots: list[tuple[Context, Env, int]] = []
        self._inline_busy = 0
        self.later_running = 0  # calls whose ctx.wait_until work runs now: a run's drain waits for it

    def post(self, call: Call) -> Response | None:
        """Accept a call (None) or shed it (the 503 to answer with)."""
        return self.queue_or_shed(call)

    def set_version(self, version: int | str) -> None:
        """Answers from now on count under ``version``."""
        self.version = str(version)
        self._counts = self.stats.counts(self.version)

    def new_version(self, message: str, *, number: int | None = None, tags: dict[str, str] | None = None, source: str | None = None,
                    vars: dict[str, str] | None = None, secrets: dict[str, str] | None = None) -> Version:
        """What the environment runs now (after a deploy or ``set`` changed it), with ``vars`` and
        ``secrets`` changed, becomes a new version numbered above every earlier one (``number`` if
        it is, else ``VersionError`` before anything changes)."""
        number = self.history.next_number(number)
        if vars or secrets:
            redact.register(list((secrets or {}).values()))
            self._values = {**self._values, **(vars or {}), **(secrets or {})}
            self._config += 1
        if tags is not None:
            self.tags = tags
        version = self.history.create(
            Running(self.worker, self.faults, self._values, self._bindings),
            at_s=self._since_start(), message=message, tags=self.tags, number=number, source=source,
        )
        self.set_version(version.number)
        return version

    def adopt(self, source: EnvironmentActor) -> Version:
        """A promotion: from now on run ``source``'s code or model, as a new version of this
        environment recording where it came from (its vars, secrets and bindings stay its own)."""
        if isinstance(source.worker, ModelWorker) != isinstance(self.worker, ModelWorker):
            raise ValueError(f"cannot promote {source.key} into {self.key}: one is code, the other a synthetic model")
        self.worker = copy.copy(source.worker)
        self.faults = copy.copy(source.faults)
        origin = f"from {source.key} v{source.version}"
        return self.new_version(f"promoted {origin}", tags=dict(source.tags), source=origin)

    def rollback(self, to: int | None = None, message: str = "") -> int:
        """Serve an earlier version again (None: the one deployed before the current), as Workers'
        rollback does: a new deployment of it, not a new version. ``VersionError`` if there is none."""
        number, running = self.history.rollback(to, at_s=self._since_start(), message=message)
        self.worker = copy.copy(running.worker)
        self.faults = copy.copy(running.faults)
        if running.values is not self._values or running.bindings is not self._bindings:
            self._values, self._bindings = running.values, running.bindings
            self._config += 1
        self.tags = dict(next(v for v in self.history.versions if v.number == number).tags)
        self.set_version(number)
        return number

    def _since_start(self) -> float:
        return round(self.clock.now() - self._started, 9)

    def go_cold(self) -> None:
        """Every idle isolate is gone: the next calls each pay a cold start."""
        if self.isolates is not None:
            self.isolates.clear()

    def queue_or_shed(self, call: Call) -> Response | None:
        """Queue a call no slot can take now, or refuse it: down (503), mailbox full (shed, 503)."""
        if self.down:
            return self._refuse(call, UNAVAILABLE)
        if self.mailbox.post(call):
            return None
        self.stats.shed += 1
        return self._refuse(call, SHED)

    def _refuse(self, call: Call, kind: tuple[int, int | None, str]) -> Response:
        self._counts[status_class(kind[0])] += 1
        call.served_by = self
        call.version = self.version
        return platform_error(kind)

    async def run(self) -> None:
        """Serve until cancelled.

        Live, a code worker's slots are tasks in this task's nursery, started by ``post`` as calls
        need them (one to begin with, more if calls were queued before the run). In virtual time every slot
        is a fiber driven by the clock (and a synthetic worker's calls are timer steps), and this
        task owns them: it parks until the run cancels it, then closes them; a fault that escapes
        a fiber (a platform bug, a real Ctrl-C) is raised here, where the supervisor
        sees it, as it would see a crashed slot task.
        """
        if self.live and not isinstance(self.worker, ModelWorker):
            try:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    for _ in range(min(self.concurrency, max(1, len(self.mailbox)))):  # what was posted before
                        self._start_live_slot(None)
                    nursery.start_soon(self._retire_unused_slots)
            finally:
                self._nursery = None
                self._slots = 0
            return
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        self._owner = current_task()
        try:
            await wait_task_rescheduled(lambda _: Abort.SUCCEEDED)  # returns only to raise a fault
        finally:
            self._owner = None
            owned, self._fibers = self._fibers, {}
            self._slots -= len(owned)
            for fiber in owned:
                fiber.close()

    def begin(self, call: Call) -> float:
        """A call leaves the mailbox for a slot; returns the cold start it must pay first."""
        now = self.clock.now()
        stats = self.stats
        stats.queue_wait.observe(now - call.posted_at)
        stats.inflight += 1
        call.version = self.version  # the version that serves it, even if another is deployed meanwhile
        isolates, cold_start = self.isolates, self.cold_start  # isolates are kept only with a cold start
        if isolates is None or cold_start is None or isolates.take():
            return 0.0
        stats.cold_starts[self.version] = stats.cold_starts.get(self.version, 0) + 1
        return cold_start.sample(self.rng)

    def finish(self, call: Call, result: Any) -> None:
        status = result._status if isinstance(result, Response) else (result.status if isinstance(result, RpcFailure) else 200)
        now = self.clock.now()
        if self.isolates is not None:
            self.isolates.put_back()
        version = call.version
        counts = self._counts if version is self.version else self.stats.counts(version)
        counts[status // 100 - 1] += 1  # status_class(), inlined on the hot path
        stats = self.stats
        stats.latency.observe(now - call.posted_at)
        stats.inflight -= 1
        call.served_by = self
        call.answered_at = now
        call.on_reply(call, result)

    # -- code workers: slots ---------------------------------------------------------------
    def _new_slot(self) -> tuple[Context, Env]:
        if self.live:
            ctx: Context = LiveContext(self, self.pacing)
        else:
            ctx = MeteredContext(self) if self.metering else Context(self)
        return ctx, self._new_env(ctx)

    def _new_env(self, ctx: Context) -> Env:
        return Env(
            {
                **self._values,
                **{
                    name: Binding(ctx, name, target, post, self.service, self.clock, self.metrics)
                    for name, (target, post) in self._bindings.items()
                },
            }
        )

    async def _serve(self, call: Call, ctx: Context, env: Env) -> list[Awaitable[Any]] | None:
        """Serve one call in a slot: the path of every call to a code worker, virtual or live.

        Whatever the worker does wrong (raises anything, ``SystemExit`` and ``KeyboardInterrupt``
        included; returns garbage; swallows its CPU limit; holds the thread until the watchdog
        interrupts it) becomes this call's answer, never the slot's end. What is not the worker's
        passes through (``_not_the_workers``). Live (or with ``measure_cpu``), the worker's own steps
        are metered (their thread CPU is charged to the chain, see ``MeteredContext``), and a call whose caller went away while it waited is
        not run. One coroutine level, not two: in virtual time every level is paid again on each
        resume of the worker. Returns the call's ``ctx.wait_until`` work, for the slot to run once
        the answer has gone (``_run_later``).
        """
        cold = self.begin(call)
        if cold:
            await ctx.sleep(cold)
        ctx.account = call.account
        metering = self.metering
        if metering:
            ctx.declared = ctx.measured = 0.0  # type: ignore[attr-defined]
        result = None
        if self.live and call.cancelled:
            result = platform_error(CLIENT_CLOSED)
        elif self.stats.stopped_at is not None:  # a stall stopped the worker (virtual time): see _interrupted
            self.stats.unrun += 1
            result = platform_error(STALLED)
        elif self.faults is not None:
            result = await self._inject(ctx)
        if result is None:
            try:
                if call.method is None:
                    if type(call.request.headers) is Headers:  # a delivered request's headers are immutable, as on Cloudflare
                        freeze(call.request.headers)
                    work = cast(WorkerCode, self.worker).fetch(call.request, env, ctx)  # (a promotion may swap the worker)
                else:
                    work = self._rpc(call, env, ctx)
                if metering:
                    work = metered(work, ctx)  # type: ignore[arg-type]
                result = await work
                if call.method is None and type(result) is not Response:
                    result = checked_response(result)  # a plain Response, or TypeError
            except CpuLimitExceeded:
                result = platform_error(CPU_LIMIT)
            except Exception as exc:
                result = self._failed(call, exc)
                if call.method is None:
                    call.thrown = exc
            except BaseException as exc:
                result = self._interrupted(call, exc)
            else:
                if call.account.exceeded:  # the worker caught the limit error and answered anyway
                    result = platform_error(CPU_LIMIT)
        ctx.account = None
        if ctx.paced:
            ctx.finished()  # type: ignore[attr-defined]
        self.finish(call, result)
        later, ctx.later = ctx.later, None
        return later

    async def _run_later(self, call: Call, ctx: Context, later: list[Awaitable[Any]]) -> None:
        """A call's ``ctx.wait_until`` work, once its answer has gone: in its slot, which stays
        busy until the work ends (as an isolate's event loop is), on the call's CPU budget. What
        the work raises answers nobody: it is logged and counted as the environment's exception.
        A CPU budget spent ends the rest."""
        ctx.account = call.account
        self.later_running += 1
        pending = collections.deque(later)
        try:
            while pending:
                work = pending.popleft()
                try:
                    await (metered(work, ctx) if self.metering else work)  # type: ignore[arg-type]
                except CpuLimitExceeded:
                    self.stats.cpu_limit_exceeded += 1
                    return
                except BaseException as exc:
                    theirs = _not_the_workers(exc)
                    if theirs is not None:
                        raise theirs
                    self.stats.exceptions += 1
                    self._warn_once(redact.redact(f"{type(exc).__name__}: {exc}"), "raised in ctx.wait_until work, after its answer")
                if ctx.later is not None:  # the work handed over more work: it runs too, in order
                    pending.extend(ctx.later)
                    ctx.later = None
        finally:
            for unstarted in (*pending, *(ctx.later or ())):
                _discard(unstarted)
            ctx.account = ctx.later = None
            self.later_running -= 1

    def _post_to_fiber(self, call: Call) -> Response | None:
        """Virtual time: hand the call to an idle slot, or start a slot for it if fewer than
        ``concurrency`` exist, else queue or shed it."""
        if self.down:
            return self._refuse(call, UNAVAILABLE)
        if self._slots < self.concurrency and not self.mailbox.has_idle:
            self._slots += 1
            fiber = self.clock.start_fiber(self._fiber_slot(call), self._fiber_exit)  # type: ignore[attr-defined]
            self._fibers[fiber] = None
            return None
        return self.queue_or_shed(call)

    async def _fiber_slot(self, call: Call) -> None:
        ctx, env = self._new_slot()
        config = self._config
        receive = self.mailbox.receive
        while True:
            if config != self._config:  # new vars or bindings since this slot's env was built
                env, config = self._new_env(ctx), self._config
            later = await self._serve(call, ctx, env)
            if later is not None:
                await self._run_later(call, ctx, later)
            call = await receive()

    def _fiber_exit(self, fiber: fibers.Fiber, error: BaseException | None) -> None:
        """A slot fiber ended, which only a fault does: its owner raises it (see ``run``)."""
        del self._fibers[fiber]
        self._slots -= 1
        if error is None:
            return
        if self._owner is not None:
            reschedule(self._owner, outcome.Error(error))
        else:
            self._failure = error

    def _post_to_task(self, call: Call) -> Response | None:
        """Live: hand the call to an idle slot, or start a slot task for it if fewer than
        ``concurrency`` calls have a slot (a task or, served inline, its caller's), else queue or
        shed it."""
        if self.down:
            return self._refuse(call, UNAVAILABLE)
        if not self.mailbox.has_idle and self._has_room_for_a_task():
            self._start_live_slot(call)
            return None
        return self.queue_or_shed(call)

    def has_room_inline(self) -> bool:
        """A call could run now, in its sender's task: up, nothing queued, and room for one more
        slot beside the slot tasks (idle ones included: ``post`` may hand them a call at any time)
        and the calls running inline."""
        return not self.mailbox.waiting and not self.down and self._has_room_for_a_task()

    async def serve_inline(self, call: Call) -> None:
        """Live: serve a call in its sender's own task (a binding's caller, the ingress's
        connection); the answer goes to ``call.on_reply`` as usual.

        Why: handing a call to a slot task and its answer back are two trio task switches, each
        run in the scheduler's next batch: 35-60 µs at light load, hundreds at the tail, which
        the model does not have (a modelled 150 µs auth took 0.19 ms live). Run here, a hop costs
        what it does in virtual time, a function call. It is the same ``_serve`` (metrics, faults,
        limits, versions); its CPU is metered as a step within the caller's steps (``cpu.metered``
        charges each step only its own CPU). The caller's cancellation (its client hung up) runs
        through it as through the caller's own code, and the call is then answered as the slot
        tasks answer one (499) for the metrics.
        """
        self._inline_busy += 1
        ctx, env, config = self._inline_slots.pop() if self._inline_slots else (*self._new_slot(), self._config)
        if config != self._config:  # new vars or bindings since this slot's env was built
            env, config = self._new_env(ctx), self._config
        assert isinstance(ctx, LiveContext)
        ctx.start(call.posted_at)
        later = None
        try:
            later = await self._serve(call, ctx, env)
        except BaseException:
            if call.served_by is None:  # cancelled before it was answered
                ctx.account = None
                self.finish(call, platform_error(CLIENT_CLOSED))
            raise
        finally:
            if later is None:
                self._inline_done(ctx, env, config)
        if later is not None:  # the sender has its answer: the work after it runs in a task of the actor's
            if self._nursery is None:
                for work in later:
                    _discard(work)
                self._inline_done(ctx, env, config)
            else:
                self._nursery.start_soon(self._inline_later, call, (ctx, env, config), later)

    async def _inline_later(self, call: Call, slot: tuple[Context, Env, Any], later: list[Awaitable[Any]]) -> None:
        """An inline call's ``ctx.wait_until`` work, in a task of its own: its slot is only free
        again once the work has ended."""
        try:
            await self._run_later(call, slot[0], later)
        finally:
            self._inline_done(*slot)

    def _inline_done(self, ctx: Context, env: Env, config: Any) -> None:
        self._inline_busy -= 1
        self._inline_slots.append((ctx, env, config))
        if self.mailbox.waiting and not self.mailbox.has_idle and self._has_room_for_a_task():
            self._start_live_slot(None)  # what queued behind this call needs a slot task

    def _has_room_for_a_task(self) -> bool:
        return self._nursery is not None and self._slots + self._inline_busy < self.concurrency

    def _start_live_slot(self, call: Call | None) -> None:
        assert self._nursery is not None
        self._slots += 1
        self._nursery.start_soon(self._live_slot, call)

    async def _retire_unused_slots(self) -> None:
        """Live slot tasks that no call needed for a whole ``SLOT_RETIRE_AFTER`` end (a few stay).

        Slots come into being as calls need them, as in virtual time. Without this, the hundreds
        a burst started would park for good, each keeping what it allocated during the burst,
        and so CPython's memory arenas from then: the server's memory would stay at the burst's.
        """
        while True:
            await trio.sleep(SLOT_RETIRE_AFTER)
            self._slots -= self.mailbox.retire_unused(_RETIRE, IDLE_SLOTS_KEPT)

    async def _live_slot(self, call: Call | None) -> None:
        """A live slot: ``_serve`` for each call (``call`` first, if any), plus cancellation when
        a client hangs up; it ends when ``_retire_unused_slots`` retires it.

        The slot's cancel scope is lent to the call it runs (``Call.cancel`` cancels it), and only
        a scope that was used up is replaced: entering a scope for every call would cost about as
        much as the rest of a hop.
        """
        ctx, env = self._new_slot()
        assert isinstance(ctx, LiveContext)
        config = self._config
        mailbox, now = self.mailbox, self.clock.now
        while True:
            running: Call | None = None
            with trio.CancelScope() as scope:
                while True:
                    if call is None:
                        queued = bool(mailbox.waiting)  # else an idle slot: the call comes straight here
                        call = await mailbox.receive()
                        if call is _RETIRE:
                            return
                        ctx.start(now() if queued else call.posted_at)
                    else:
                        ctx.start(call.posted_at)
                    if config != self._config:  # new vars or bindings since this slot's env was built
                        env, config = self._new_env(ctx), self._config
                    call.scope, running = scope, call
                    later = await self._serve(call, ctx, env)
                    call.scope = running = None  # answered: a client that hangs up now stops nothing
                    if later is not None:
                        await self._run_later(call, ctx, later)
                    # An idle slot must not keep its last call (request, answer, account) alive:
                    # after a burst, the slots that go idle would pin the memory it came in.
                    call = None
            # Only the running call's cancel() ends up here (anything else cancelling the slot
            # passes through the scope). A worker that caught the Cancelled and answered has been
            # answered already; the cancellation then ends the slot's next checkpoint.
            if running is not None:
                running.scope = None
                ctx.account = None
                self.finish(running, platform_error(CLIENT_CLOSED))
            call = None

    async def _inject(self, ctx: Context) -> Response | None:
        faults = self.faults
        assert faults is not None
        if faults.errors and self.rng.random() < faults.errors:
            return Response("injected fault", status=500, headers={ERROR_HEADER: "injected"})
        try:
            if faults.cpu is not None:
                await ctx.cpu(faults.cpu.sample(self.rng))
            if faults.latency is not None:
                await ctx.sleep(faults.latency.sample(self.rng))
        except CpuLimitExceeded:
            return platform_error(CPU_LIMIT)
        return None

    async def _rpc(self, call: Call, env: Env, ctx: Context) -> Any:
        rpc = cast(WorkerCode, self.worker).rpc
        method = rpc.get(call.method) if call.method is not None else None
        if method is None:
            known = ", ".join(sorted(rpc)) or "none"
            return RpcFailure(f"{self.service} has no RPC method {call.method!r} (methods: {known})", missing=True)
        return await method(env, ctx, *call.args, **(call.kwargs or {}))

    def _failed(self, call: Call, exc: BaseException) -> Any:
        """The answer to a call whose worker raised: a 500 (error 1101), logged once per message.
        An RPC method that raised with a 4xx ``status`` (``RpcFailure``) answered on purpose: that
        is its caller's error, neither counted nor logged as the worker's."""
        detail = redact.redact(str(exc))
        status, code = getattr(exc, "status", None), getattr(exc, "code", None)
        deliberate = call.method is not None and isinstance(status, int) and 400 <= status <= 599
        if not (deliberate and isinstance(status, int) and status < 500):
            self.stats.exceptions += 1
            self._warn_once(redact.redact(f"{type(exc).__name__}: {exc}"), "threw (answered 500, error 1101)")
        if call.method is not None:
            return RpcFailure(detail, status if deliberate and isinstance(status, int) else 500,
                              code if deliberate and isinstance(code, str) else None, detail)
        return platform_error(WORKER_EXCEPTION)

    def _interrupted(self, call: Call, exc: BaseException) -> Any:
        """A ``BaseException`` out of the worker: the watchdog's interruption, a worker's own
        ``SystemExit``/``KeyboardInterrupt``/..., or what is not the worker's, raised again."""
        theirs = _not_the_workers(exc)
        if theirs is not None:
            raise theirs
        if not isinstance(exc, watchdog.WorkerInterrupted):
            return self._failed(call, exc)
        if exc.reason == watchdog.CPU:
            if not call.account.exceeded:  # the step's last instant was not charged yet
                call.account.charge(math.inf, self.key)
            return platform_error(CPU_LIMIT)
        self.stats.stalls += 1
        self._warn_once(str(exc), "was stopped (answered 503, error 1102)")
        if not self.live and self.stats.stopped_at is None and self.stats.stalls >= STOP_AFTER_STALLS:
            # In virtual time a stall costs the step limit in wall time (10 s by default), and a
            # worker that keeps stalling stalls for nearly every call: a run of a few hundred calls
            # would take an hour. Its later calls are answered at once, and the report says so.
            self.stats.stopped_at = self.clock.now()
            log.warning("%s: its later calls are answered 503 (error 1102) without running its worker, for the rest of the run", self.key)
        return platform_error(STALLED)

    def _warn_once(self, message: str, outcome: str) -> None:
        if message not in self._logged and len(self._logged) < 20:
            self._logged.add(message)
            log.warning("%s %s: %s", self.key, outcome, message)


def inline_target(post: Post) -> EnvironmentActor | None:
    """The environment behind ``post`` if its calls may run in their sender's task (a live code
    worker's, posted to directly rather than through a router), else None."""
    actor = getattr(post, "__self__", None)
    return actor if isinstance(actor, EnvironmentActor) and actor.inline else None


def _hold_reply(call: Call, result: Any) -> None:
    """The reply target of a call served inline: the caller reads the answer from ``context``."""
    call.context = result


def _not_the_workers(exc: BaseException) -> BaseException | None:
    """Exceptions that pass through a worker but belong to the runtime or the user at the keyboard.

    trio's cancellation (alone or in a group: a worker's nursery); a ``GeneratorExit`` thrown into
    ``_serve`` itself, which is the slot being closed at the end of a run (a worker's own raise
    has the worker's frames below ``_serve`` in its traceback); a real Ctrl-C (raised by a signal
    handler, see ``watchdog.from_signal``). Returns what to raise again (of a group, its
    cancellations: the worker's own errors in it are its call's to answer), or None.
    """
    if isinstance(exc, trio.Cancelled):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(trio.Cancelled)[0]
    if isinstance(exc, GeneratorExit):
        return exc if exc.__traceback__ is None or exc.__traceback__.tb_next is None else None
    if isinstance(exc, KeyboardInterrupt) and watchdog.from_signal(exc):
        return exc
    return None


watchdog.boundary(EnvironmentActor._serve, EnvironmentActor._rpc)
