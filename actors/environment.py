"""One actor per service environment (``app@canary``): a bounded mailbox and ``concurrency`` slots.

A call that finds every slot busy waits in the mailbox (FIFO), and one that finds the mailbox full is
shed with a 503. A slot that has been idle longer than ``keep_warm`` pays a cold start. For a code
worker each slot is a trio task that takes calls from the mailbox and runs the worker for them;
whatever the worker does wrong (raises, returns a non-Response) becomes a 500 for that call only
(Workers' error 1101) and the slot carries on with the next call. A synthetic worker has no code to
run, so its calls need no task of their own: their CPU, wait and answer are timer steps, and the
actor's task only starts the calls that had to wait for a slot.

Worker code reaches the platform through two objects per slot, reused from call to call so that a
hop allocates nothing it does not need: ``Context`` (``ctx``: CPU, sleeping, randomness) and ``Env``
(``env``: vars, secrets and ``Binding`` stubs whose calls go to the target's mailbox).
"""

from __future__ import annotations

import copy
import functools
import logging
import math
import random
from typing import Any, Awaitable, Callable

import trio
from trio.lowlevel import Abort, Task, current_task, reschedule, wait_task_rescheduled

from actors.mailbox import Call, Mailbox, ask, discard_reply
from edge.platform.clock import ModelClock
from edge.platform.cpu import CorePool, CpuAccount, CpuLimitExceeded, InvocationLimitExceeded, metered
from edge.platform.distributions import Distribution
from edge.platform.errors import CLIENT_CLOSED, CPU_LIMIT, ERROR_HEADER, SHED, UNAVAILABLE, WORKER_EXCEPTION, platform_error
from edge.platform.fetch import Request, Response
from edge.metrics.histogram import LogHistogram
from edge.metrics.recorders import RunMetrics, status_class
from edge.platform.units import parse_duration
from edge.platform.workers import ModelWorker, WorkerCode

log = logging.getLogger("edge.worker")

Post = Callable[[Call], Any]
"""An actor's entry point: accepts a call (returns None) or answers it at once (a Response)."""


class RpcError(Exception):
    """An RPC method of a bound worker raised; the message is the callee's error, secrets redacted."""


class _RpcFailure:
    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


@functools.lru_cache(maxsize=1024)
def _parse_seconds(text: str) -> float:
    return parse_duration(text)


def seconds(amount: float | int | str) -> float:
    """Worker code may say ``ctx.cpu("2ms")`` or ``ctx.cpu(0.002)``."""
    return _parse_seconds(amount) if isinstance(amount, str) else float(amount)


class Context:
    """``ctx`` for worker code: what the current call costs, and its random stream."""

    __slots__ = ("_actor", "account", "random")

    def __init__(self, actor: EnvironmentActor) -> None:
        self._actor = actor
        self.account: CpuAccount | None = None
        self.random: random.Random = actor.rng

    async def cpu(self, amount: float | int | str) -> None:
        """Spend CPU on one of the node's cores, charged to the top-level request's budget."""
        wanted = seconds(amount)
        actor = self._actor
        account = self.account
        assert account is not None, "ctx.cpu() outside a call"
        granted = account.charge(wanted, actor.key)
        actor.stats.cpu_seconds += granted
        if granted > 0:
            cores = actor.cores
            if cores.take():
                # CorePool.run's no-wait path, inlined: every worker takes it, and each coroutine
                # level costs again on every resume of the worker's stack.
                try:
                    await actor.clock.sleep(granted)
                finally:
                    cores.release(granted)
            else:
                await cores.run(granted)
        if granted < wanted:
            raise CpuLimitExceeded(account.used, account.limit)

    def sleep(self, amount: float | int | str) -> Awaitable[None]:
        """Wait without using CPU (storage, an origin, a timer).

        Hands back the clock's own coroutine rather than wrapping it in another: one frame less on
        a path every worker takes.
        """
        return self._actor.clock.sleep(seconds(amount))

    def now(self) -> float:
        return self._actor.clock.now()


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
        # A binding straight to a code environment (no router between) runs the callee's worker
        # in this task when it can (``EnvironmentActor.call_inline``); anything else is posted.
        target_actor = getattr(post, "__self__", None)
        self._inline = target_actor.call_inline if isinstance(target_actor, EnvironmentActor) and target_actor.inlines_calls else None
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
        if isinstance(request, str):
            request = Request(request, **(init or {}))
        elif init:
            request = Request(request, **init)
        elif request.body_size:
            request = Request(request)  # consumes the caller's body, or raises if already used
        return self._call(None, request, (), None)

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)
        return functools.partial(self._rpc, method)

    async def _rpc(self, method: str, *args: Any, **kwargs: Any) -> Any:
        result = await self._call(method, None, args, kwargs)
        if isinstance(result, _RpcFailure):
            raise RpcError(result.message)
        if isinstance(result, Response):
            # The platform answered instead of the method (shed, CPU limit): surface it as an error.
            raise RpcError(f"{self._target}.{method} failed: {result.status} {(await result.clone().text())}")
        return result

    async def _call(self, method: str | None, request: Request | None, args: tuple[Any, ...], kwargs: dict[str, Any] | None) -> Any:
        account = self._ctx.account
        assert account is not None, "a binding called outside a call"
        if account.invocations >= account.max_invocations:
            raise InvocationLimitExceeded(account.max_invocations)
        account.invocations += 1
        clock = self._clock
        call = Call(request, account, None, clock.now(), method, args, kwargs)  # type: ignore[arg-type]
        if self._inline is not None:
            result = await self._inline(call)
        else:
            result = await ask(self._post, call)
        status = result._status if isinstance(result, Response) else (500 if isinstance(result, _RpcFailure) else 200)
        key = (call.served_by, call.version, status // 100)
        hist = self._latency.get(key)
        if hist is None:
            served = call.served_by
            labels = (self._caller, self._name, served.service, served.environment, call.version, f"{key[2]}xx")
            hist = self._latency[key] = self._metrics.histogram(self._metrics.bindings, labels)
        hist.observe(clock.now() - call.posted_at)
        if call.routed_to is not None:  # through a router: what this caller got, by its first choice
            self._metrics.count_routed(self._target, call.routed_to, status)
        if account.exceeded_at is not None:
            raise CpuLimitExceeded(account.used, account.limit)
        return result


class Faults:
    """Behaviour injected into a code worker by a timeline ``set``: before its code runs, a call
    waits ``latency``, spends ``cpu``, or (with probability ``errors``) is answered 500 at once."""

    __slots__ = ("latency", "cpu", "errors")

    def __init__(self, latency: Distribution | None = None, cpu: Distribution | None = None, errors: float = 0.0) -> None:
        self.latency = latency
        self.cpu = cpu
        self.errors = errors


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
        cold_start: Any = None,
        keep_warm: float = 300.0,
        live: bool = False,
    ) -> None:
        self.service = service
        self.environment = environment
        self.key = f"{service}@{environment}"
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
        self.keep_warm = keep_warm
        self.live = live  # real time: worker CPU is measured, and clients can hang up
        self.faults: Faults | None = None  # injected by the timeline (code workers)
        self.tags: dict[str, str] = {}
        self.down = False  # crashed (timeline): new calls are refused until it restarts
        self._values = values
        self._bindings = bindings
        self._secrets = [s for s in secrets if s]
        self._logged: set[str] = set()
        self._warm: list[float] = []  # when each idle slot goes cold, most recently used last
        self._busy = 0  # model calls in service
        self._slot_waiter: Task | None = None
        self._slot_objects: dict[Task, tuple[Context, Env]] = {}  # each slot task's ctx and env
        # Virtual-time code environments serve binding calls in the caller's task (call_inline).
        self.inlines_calls = not live and not isinstance(worker, ModelWorker)
        if isinstance(worker, ModelWorker):
            # Bound once here rather than tested on every call: this is the entry of every hop.
            self.post = self._post_model  # type: ignore[method-assign]

    def post(self, call: Call) -> Response | None:
        """Accept a call (None) or shed it (the 503 to answer with)."""
        return self._queue_or_shed(call)

    def set_version(self, version: int | str) -> None:
        """A deploy: answers from now on count under the new version."""
        self.version = str(version)
        self._counts = self.stats.counts(self.version)

    def adopt(self, source: EnvironmentActor) -> None:
        """A promotion: from now on run ``source``'s code or model, as its version."""
        if isinstance(source.worker, ModelWorker) != isinstance(self.worker, ModelWorker):
            raise ValueError(f"cannot promote {source.key} into {self.key}: one is code, the other a synthetic model")
        self.worker = copy.copy(source.worker)
        self.faults = source.faults
        self.tags = dict(source.tags)
        self.set_version(source.version)

    def go_cold(self) -> None:
        """Every idle slot forgets it was warm: the next calls each pay a cold start."""
        self._warm.clear()

    def _queue_or_shed(self, call: Call) -> Response | None:
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
        """Serve until cancelled."""
        if isinstance(self.worker, ModelWorker):
            await self._serve_model_backlog()
            return
        async with trio.open_nursery() as nursery:
            for _ in range(self.concurrency):
                nursery.start_soon(self._slot)

    def _begin(self, call: Call) -> float:
        """A call leaves the mailbox for a slot; returns the cold start it must pay first."""
        now = self.clock.now()
        stats = self.stats
        stats.queue_wait.observe(now - call.posted_at)
        stats.inflight += 1
        if self.cold_start is None:
            return 0.0
        warm_until = self._warm.pop() if self._warm else -math.inf
        if now > warm_until:
            stats.cold_starts[self.version] = stats.cold_starts.get(self.version, 0) + 1
            return self.cold_start.sample(self.rng)
        return 0.0

    def _finish(self, call: Call, result: Any) -> None:
        status = result._status if isinstance(result, Response) else (500 if isinstance(result, _RpcFailure) else 200)
        now = self.clock.now()
        if self.cold_start is not None:
            self._warm.append(now + self.keep_warm)
        self._counts[status // 100 - 1] += 1  # status_class(), inlined on the hot path
        stats = self.stats
        stats.latency.observe(now - call.posted_at)
        stats.inflight -= 1
        call.served_by = self
        call.version = self.version
        call.on_reply(call, result)

    # -- code workers: one task per slot -------------------------------------------------
    async def _slot(self) -> None:
        ctx = Context(self)
        env = Env(
            {
                **self._values,
                **{
                    name: Binding(ctx, name, target, post, self.service, self.clock, self.metrics)
                    for name, (target, post) in self._bindings.items()
                },
            }
        )
        self._slot_objects[current_task()] = (ctx, env)
        receive = self.mailbox.receive
        if self.live:
            await self._serve_live_calls(ctx, env, receive)
        else:
            await self._serve_calls(ctx, env, receive)

    async def _run_worker(self, call: Call, env: Env, ctx: Context) -> Any:
        """The worker's answer to one call; whatever goes wrong is this call's answer, not the slot's end."""
        if self.faults is not None:
            injected = await self._inject(ctx)
            if injected is not None:
                return injected
        try:
            if call.method is None:
                result = await self.worker.fetch(call.request, env, ctx)  # (a promotion may swap the worker)
                if not isinstance(result, Response):
                    raise TypeError(f"fetch() must return a Response, returned {type(result).__name__}")
            else:
                result = await self._rpc(call, env, ctx)
        except CpuLimitExceeded:
            return platform_error(CPU_LIMIT)
        except Exception as exc:
            return self._failed(call, exc)
        if call.account.exceeded:  # the worker caught the limit error and answered anyway
            return platform_error(CPU_LIMIT)
        return result

    async def _serve_calls(self, ctx: Context, env: Env, receive: Callable[[], Any]) -> None:
        while True:
            call = await receive()
            cold = self._begin(call)
            if cold:
                await self.clock.sleep(cold)
            ctx.account = call.account
            result = await self._run_worker(call, env, ctx)
            ctx.account = None
            self._finish(call, result)

    async def call_inline(self, call: Call) -> Any:
        """Serve a binding call in the calling task, on behalf of an idle slot (virtual time).

        A bound call to a code worker would otherwise cost two trio scheduler passes on top of
        the worker's own: one to wake the slot that takes the call, one to wake the caller with
        the answer. In virtual time nothing can happen between the caller's post and the slot
        starting, nor between the answer and the caller resuming (same instant, no timer fires
        while a task is runnable), so the caller's task runs the worker itself, with the idle
        slot's ``ctx``/``env``, and the slot counts as busy meanwhile (``Mailbox.lend``). Queueing,
        shedding and a down environment are unchanged: with no idle slot the call is posted.
        """
        slot = None if self.down else self.mailbox.lend()
        if slot is None:
            return await ask(self.post, call)
        ctx, env = self._slot_objects[slot]
        try:
            cold = self._begin(call)
            if cold:
                await self.clock.sleep(cold)
            ctx.account = call.account
            result = await self._run_worker(call, env, ctx)
            call.on_reply = discard_reply  # the answer is returned to this task, not sent
            self._finish(call, result)
            return result
        finally:
            ctx.account = None
            self.mailbox.give_back(slot)

    async def _serve_live_calls(self, ctx: Context, env: Env, receive: Callable[[], Any]) -> None:
        """As ``_serve_calls``, plus what real time brings: the worker's CPU is measured, and a
        call whose client hung up is cancelled.

        The slot's cancel scope is lent to the call it runs (``Call.cancel`` cancels it), and only
        a scope that was used up is replaced: entering a scope for every call would cost about as
        much as the rest of a hop.
        """
        while True:
            with trio.CancelScope() as scope:
                while True:
                    call = await receive()
                    call.scope = scope
                    cold = self._begin(call)
                    if cold:
                        await self.clock.sleep(cold)
                    ctx.account = call.account
                    if call.cancelled:  # its caller went away while it waited
                        result = platform_error(CLIENT_CLOSED)
                    else:
                        charge = functools.partial(self._charge_measured, call.account)
                        result = await metered(self._run_worker(call, env, ctx), charge)
                    call.scope = None
                    ctx.account = None
                    self._finish(call, result)
            # Only the running call's cancel() ends up here (anything else cancelling the slot
            # passes through the scope).
            call.scope = None
            ctx.account = None
            self._finish(call, platform_error(CLIENT_CLOSED))

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

    def _charge_measured(self, account: CpuAccount, seconds: float) -> None:
        """Charge the CPU the worker really used to its chain (live mode)."""
        if account.exceeded_at is None:
            self.stats.cpu_seconds += account.charge(seconds, self.key)

    # -- synthetic workers: no code to run, so no task per slot ---------------------------
    def _post_model(self, call: Call) -> Response | None:
        """Start the call at once if a slot is free and none is queued, else queue or shed it.

        A synthetic call has no code to run: its CPU, its wait and its answer are timer steps.
        Starting it in the sender's turn saves waking the actor's task for every call; it is the
        same as the task taking it at once, since nothing can run in between. Calls that find
        every slot busy wait in the mailbox, FIFO, and the actor's task starts them as slots free.
        """
        if self._busy < self.concurrency and not self._waiting and not self.down:
            self._model_begin(call)
            return None
        return self._queue_or_shed(call)

    async def _serve_model_backlog(self) -> None:
        task = current_task()

        def abort(_: Any) -> Abort:
            self._slot_waiter = None
            return Abort.SUCCEEDED

        while True:
            while self._busy < self.concurrency and self._waiting:
                self._model_begin(self.mailbox.take())
            self._slot_waiter = task
            await wait_task_rescheduled(abort)

    def _model_begin(self, call: Call) -> None:
        """Never answers before returning: the caller is still running (it parks afterwards)."""
        self._busy += 1
        cold = self._begin(call)
        if call.method is not None:
            failure = _RpcFailure(f"{self.service} is a synthetic model: it has no RPC methods")
            self.clock.call_later(cold, self._model_done, call, failure)
        elif cold:
            self.clock.call_later(cold, self._model_cpu, call)
        else:
            self._model_cpu(call)

    def _model_cpu(self, call: Call) -> None:
        wanted = self.worker.cpu.sample(self.rng)
        if wanted <= 0:
            self._model_wait(call)
            return
        try:
            granted = call.account.charge(wanted, self.key)
        except CpuLimitExceeded:
            self.clock.call_later(0.0, self._model_done, call, platform_error(CPU_LIMIT))
            return
        self.stats.cpu_seconds += granted
        if self.cores.take():
            self.clock.call_later(granted, self._model_off_core, call, granted, granted < wanted)
        else:
            self.cores.wait(functools.partial(self.clock.call_later, granted, self._model_off_core, call, granted, granted < wanted))

    def _model_off_core(self, call: Call, granted: float, short: bool) -> None:
        self.cores.release(granted)
        if short:
            self._model_done(call, platform_error(CPU_LIMIT))
        else:
            self._model_wait(call)

    def _model_wait(self, call: Call) -> None:
        self.clock.call_later(self.worker.latency.sample(self.rng), self._model_answer, call)

    def _model_answer(self, call: Call) -> None:
        self._model_done(call, self.worker.respond(self.rng))

    def _model_done(self, call: Call, result: Any) -> None:
        self._busy -= 1
        self._finish(call, result)
        waiter = self._slot_waiter
        if waiter is not None and self._waiting:
            self._slot_waiter = None
            reschedule(waiter)

    async def _rpc(self, call: Call, env: Env, ctx: Context) -> Any:
        method = self.worker.rpc.get(call.method)
        if method is None:
            known = ", ".join(sorted(self.worker.rpc)) or "none"
            return _RpcFailure(f"{self.service} has no RPC method {call.method!r} (methods: {known})")
        return await method(env, ctx, *call.args, **(call.kwargs or {}))

    def _failed(self, call: Call, exc: Exception) -> Any:
        """The answer to a call whose worker raised: a 500 (error 1101), logged once per message."""
        self.stats.exceptions += 1
        message = self._redact(f"{type(exc).__name__}: {exc}")
        if message not in self._logged and len(self._logged) < 20:
            self._logged.add(message)
            log.warning("%s threw (answered 500, error 1101): %s", self.key, message)
        if call.method is not None:
            return _RpcFailure(f"{self.service}.{call.method} raised {message}")
        return platform_error(WORKER_EXCEPTION)

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text
