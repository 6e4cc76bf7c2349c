"""The batched engine: a rollout whose requests cannot meet, drawn a stretch at a time with numpy.

Why it is exact, not an approximation: when no request ever waits for another (no call finds its
environment's slots full, no CPU step finds the node's cores busy, no request spends its CPU
budget, every answer comes before the drain ends), each request's path is a function of its own
draws and of the split at its arrival alone. Poisson arrivals then make the service an M/G/inf
system: given their number, arrival times in a stretch are independent uniforms, and every
request draws its template, its environment, its CPU, latency and error independently of the
others. So the engine draws a stretch of arrivals at once (``BLOCK_S`` of a group's traffic), routes
them with the split in force (weights only change at the rollout's own instants), works out each
answer's time and status with array arithmetic, and feeds the rollout the same window figures
(``edge.engine.rollout.analysis``) and the same state machine as the per-request engine does.
What does interact is kept exact: the instants at which the rollout, the stop check and the end
of the run fire (a small heap ordered as the virtual clock orders its timers), and the retry
budget, whose decisions are taken one by one in the order of the failures.

Whether requests met is known only after drawing them: the engine checks its draws (``Coupled``
is raised when any of those conditions is broken) and the caller then runs that replication per
request instead. That rerun draws afresh rather than continuing from the draws that met, so it
can move an estimate by at most the probability of such draws: ``coupling_bound`` bounds it from
queueing theory before anything runs, ``edge tune`` batches only below ``COUPLING_LIMIT``, and
its ``engine`` reports the bound and how many replications fell back.

Which scenarios qualify (``plan_for`` says why not otherwise): the tuned service alone, with
exactly its stable and canary environments, both synthetic models without cold starts; open
traffic groups with constant-rate Poisson arrivals and no client timeout or in-flight cap; no
timeline, no request limit, no affinity or override on the split. Everything a rollout can be
(steps, pauses, gates, the latency comparison, the sequential test, retries with a budget) is
handled.

Random streams: each group's stretch *k* draws from its own generators (arrivals and routing;
the canary's draws; the stable environment's), keyed by the seed, the group and *k*, so a request
meets the same draws under every schedule and hypothesis that routes it the same way (common
random numbers, as the per-request engine's per-component streams give).
"""

from __future__ import annotations

import bisect
import dataclasses
import heapq
import itertools
import math

import numpy as np

from actors.router import RetryBudget, moved_weights, split_table
from edge.engine import rollout_machine as machine
from edge.engine.rollout import analysis, plan_of
from edge.engine.topology import model_worker
from edge.metrics.histogram import Bins
from edge.platform.clock import stream_seed
from edge.platform.distributions import Distribution
from edge.platform.fetch import Request
from edge.platform.routes import RouteTable
from edge.platform.workers import ModelWorker
from edge.scenario.resolved import LoadedScenario
from edge.scenario.schema import Rollout, Service
from edge.scenario.arrivals import RateProfile
from edge.scenario.values import DEFAULT_ARRIVALS

BLOCK_S = 10.0
"""Seconds of one group's traffic drawn at once: large enough that numpy's per-call cost is small
against the work, small enough that a rollout ended early does not draw much it never sends."""


class Coupled(Exception):
    """The draws show requests that would have met: this replication must run per request."""


@dataclasses.dataclass(frozen=True)
class Model:
    """An environment's synthetic model, as the batch draws it."""

    cpu: Distribution
    latency: Distribution
    errors: float
    error_status: int

    @classmethod
    def of(cls, worker: ModelWorker) -> Model:
        return cls(worker.cpu, worker.latency, worker.errors, worker.error_status)

    def fails(self, uniforms: np.ndarray) -> np.ndarray:
        """Which draws answer with a 5xx: ``ModelWorker.respond``'s ``rng.random() < errors``."""
        if not self.errors or self.error_status < 500:
            return np.zeros(len(uniforms), dtype=bool)
        return uniforms < self.errors


@dataclasses.dataclass(frozen=True)
class Group:
    """An open traffic group, as far as the tuned service sees it."""

    index: int
    start: float
    until: float
    """No arrival at or after this (the group's end, or the run's)."""
    rate: float
    cumulative: tuple[float, ...]
    """The templates' cumulative weights, as ``RequestMix`` draws them."""
    split: tuple[bool, ...]
    """Per template: does it reach the tuned service's split (else it matches no route: a 404)?"""
    retryable: tuple[bool, ...]


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a batched replication needs of the scenario and the candidate rollout."""

    stable: str
    canary: str
    targets: tuple[str, ...]
    """The service's environments in the router's order."""
    models: dict[str, ModelWorker]
    concurrency: dict[str, int]
    weights: dict[str, float]
    """The split before the rollout moves it, in the scenario's order."""
    retry_to: str | None
    budget: tuple[float, float, float] | None
    """The retry budget's (ratio, floor = min_per_second x window, bucket width)."""
    cores: int
    cpu_limit: float
    duration: float
    drain: float
    groups: tuple[Group, ...]
    rollout: machine.Plan
    start: float
    check_every: float
    """How often ``edge tune`` asks whether the rollout is over (``simulate``'s ``stop_every``)."""
    needs_latency: bool
    """A gate or the comparison reads latency: the windows' bins are worth computing."""


def plan_for(loaded: LoadedScenario, service: Service, rollout: Rollout, check_every: float) -> Plan | str:
    """The batched plan of ``service``'s ``rollout`` in ``loaded``, or why it cannot run batched."""
    spec = loaded.spec
    meta = spec.scenario
    if spec.timeline:
        return "the scenario has a timeline"
    if len(spec.services) != 1:
        return "the tuned service is not alone in the scenario"
    if meta.request_limit is not None:
        return "a request limit is set"
    resolved = loaded.resolved.services[service.name]
    envs = resolved.environments
    if set(envs) != {rollout.stable, rollout.canary}:
        return f"{service.name} has environments other than {rollout.stable} and {rollout.canary}"
    split = service.split
    if split is None or split.affinity is not None or split.override is not None:
        return "the split has affinity or an override header"
    models, concurrency = {}, {}
    for name, env in envs.items():
        if env.model is None:
            return f"{env.key} runs code, not a synthetic model"
        if env.cold_start is not None:
            return f"{env.key} has cold starts"
        models[name] = model_worker(env.model)
        concurrency[name] = env.concurrency
    routes: RouteTable[bool] = RouteTable()
    for pattern in service.routes:
        routes.add(pattern, True)
    for env in envs.values():
        for pattern in env.routes:
            routes.add(pattern, False)
    retry = split.retry
    groups = []
    for index, group in enumerate(spec.traffic):
        if group.replay is not None or group.users is not None:
            return f"traffic[{index}] is not an open group with a request mix"
        if (group.arrivals or DEFAULT_ARRIVALS).kind != "poisson" or group.stages or group.diurnal is not None or group.bursts:
            return f"traffic[{index}] is not Poisson at a constant rate"
        if group.timeout is not None or group.max_inflight is not None:
            return f"traffic[{index}] has a client timeout or an in-flight cap"
        reached = []
        for template in group.requests:
            request = Request(template.url)
            where = routes.match(request.host, request.path)
            if where is False:
                return f"traffic[{index}] pins an environment by its own route"
            reached.append(where is True)
        rate = RateProfile((group.arrivals or DEFAULT_ARRIVALS).rate).peak
        groups.append(Group(
            index=index, start=group.start.seconds,
            until=min(meta.duration.seconds, group.start.seconds + (math.inf if group.duration is None else group.duration.seconds)),
            rate=rate, cumulative=tuple(itertools.accumulate(float(t.weight) for t in group.requests)), split=tuple(reached),
            retryable=tuple(retry is not None and t.method in retry.methods for t in group.requests),
        ))
    budget = None
    if retry is not None and retry.budget is not None:
        b = retry.budget
        budget = (float(b.ratio), float(b.min_per_second) * b.window.seconds, b.window.seconds / RetryBudget.BUCKETS)
    machine_plan = plan_of(rollout)
    return Plan(
        stable=rollout.stable, canary=rollout.canary, targets=tuple(envs), models=models, concurrency=concurrency,
        weights={k: float(v) for k, v in split.weights.items()}, retry_to=None if retry is None else retry.to, budget=budget,
        cores=meta.cores, cpu_limit=meta.cpu_limit.seconds, duration=meta.duration.seconds, drain=meta.drain.seconds,
        groups=tuple(groups), rollout=machine_plan, start=rollout.start.seconds, check_every=check_every,
        needs_latency=machine_plan.compare is not None or any(g.metric == "latency" for g in machine_plan.gates),
    )


@dataclasses.dataclass
class Peaks:
    """How near a replication came to requests meeting: what the checks compared with the limits."""

    calls: dict[str, int] = dataclasses.field(default_factory=dict)
    """The most calls in service at once, per environment (its slots: ``concurrency``): exact
    above the limit, else a bound no larger than it (``_most_at_once``)."""
    cores: int = 0
    """The most CPU steps at once (the node's ``cores``), likewise."""
    cpu_s: float = 0.0
    """The most CPU one request was charged (``cpu_limit``)."""
    drain_s: float = 0.0
    """From the stop to the last answer (``drain``)."""


@dataclasses.dataclass
class Outcome:
    """A batched replication's result: what ``edge tune`` reads of a rollout run."""

    phase: str
    ended_at_s: float | None
    requests: int
    """Top-level requests the service's split received."""
    canary_requests: int
    """Canary answers from the rollout's start to the end of the run."""
    canary_errors: int
    canary_errors_seen: int
    """Requests first routed to the canary that callers got a 5xx for, after fallbacks."""
    retries: int
    windows: list[tuple[float, int, int]]
    """Each analysis: (time, canary answers, canary 5xx)."""
    simulated_s: float
    peaks: Peaks


COUPLING_LIMIT = 1e-3
"""The largest bound on P(requests meet) in one replication at which ``edge tune`` runs batched:
a replication whose draws show requests that met is run again per request, which can move an
estimate by at most that probability."""


def coupling_bound(plan: Plan, canary: ModelWorker, stable: ModelWorker) -> tuple[float, str]:
    """An upper bound on the probability that one replication's requests meet, and its largest
    part, from queueing theory (no simulation): the expected number of requests that would find
    their environment's slots or the node's cores full, go over the CPU budget, or be answered
    after the drain, over the longest run the scenario allows.

    Requests reach an environment as a Poisson stream (thinned, and delayed by the canary for a
    retry) at no more than ``rate`` = the traffic's rate x (1 + the largest failure ratio of an
    environment retried elsewhere). Calls in service then form an M/G/inf system, whose number is
    Poisson with mean at most rate x the longest mean service time; an arrival sees that number
    (PASTA), so the expected arrivals finding c or more busy are at most rate x T x P(Poisson >= c).
    """
    from scipy.special import pdtrc  # P(Poisson(m) > k): scipy.stats would take a second to import

    models = [Model.of(m) for m in (canary, stable)]
    base = sum(g.rate * _share(g) for g in plan.groups)
    retried = max((m.errors for m in models if m.error_status >= 500), default=0.0) if plan.retry_to is not None else 0.0
    rate = base * (1 + retried)
    length = plan.duration + plan.drain
    service = max(m.cpu.mean + m.latency.mean for m in models)
    cpu = max(m.cpu.mean for m in models)
    parts = {
        f"calls finding {name}'s {limit} slots full": rate * length * float(pdtrc(limit - 1, rate * service))
        for name, limit in plan.concurrency.items()
    }
    parts["CPU steps finding every core busy"] = rate * length * float(pdtrc(plan.cores - 1, rate * cpu))
    # A retried request makes two CPU steps and two waits: each part past a quarter (a half for
    # CPU) of the limit is what going over it needs.
    parts["a request over its CPU limit"] = base * length * 2 * max(m.cpu.survival(plan.cpu_limit / 2) for m in models)
    parts["an answer after the drain"] = base * length * 4 * max(
        max(m.cpu.survival(plan.drain / 4), m.latency.survival(plan.drain / 4)) for m in models)
    worst = max(parts, key=parts.__getitem__)
    return min(1.0, sum(parts.values())), worst


def _share(group: Group) -> float:
    """The share of a group's requests that reach the split."""
    weights = np.diff(np.asarray((0.0, *group.cumulative)))
    return float(weights[np.asarray(group.split)].sum() / group.cumulative[-1])


def run(plan: Plan, canary: ModelWorker, stable: ModelWorker, seed: int) -> Outcome:
    """One replication of the rollout, the canary and stable environments running ``canary`` and
    ``stable``. Raises ``Coupled`` when its draws show requests that would have met."""
    return _Run(plan, Model.of(canary), Model.of(stable), seed).go()


def _generator(seed: int, *names: object) -> np.random.Generator:
    return np.random.default_rng(stream_seed(seed, "batched", *names))


class _Arrivals:
    """One group's requests, drawn a block at a time and handed out by time."""

    def __init__(self, group: Group, canary: Model, stable: Model, seed: int) -> None:
        self.group = group
        self.canary, self.stable = canary, stable
        self.seed = seed
        self.blocks: list[dict[str, np.ndarray]] = []
        self.cursor = (0, 0)  # (block, index in it) of the next request to hand out

    def _draw(self, k: int) -> dict[str, np.ndarray]:
        g = self.group
        begin = g.start + k * BLOCK_S
        end = min(g.start + (k + 1) * BLOCK_S, g.until)
        common = _generator(self.seed, "traffic", g.index, k)
        n = int(common.poisson(g.rate * (end - begin))) if end > begin else 0
        times = np.sort(begin + (end - begin) * common.random(n))
        times = times[times < end]  # begin + (end - begin) * u may round up to end
        n = len(times)
        total = g.cumulative[-1]
        template = np.minimum(np.searchsorted(np.asarray(g.cumulative), common.random(n) * total, side="right"), len(g.cumulative) - 1)
        point = common.random(n) * 100.0
        block = {"t": times, "template": template, "point": point}
        for name, model in (("canary", self.canary), ("stable", self.stable)):
            gen = _generator(self.seed, name, g.index, k)
            block[f"{name}_cpu"] = model.cpu.draw(gen, n)
            block[f"{name}_latency"] = model.latency.draw(gen, n)
            block[f"{name}_error"] = gen.random(n)
        return block

    def take(self, until: float) -> dict[str, np.ndarray]:
        """Every request not handed out yet that arrives before ``until``."""
        g = self.group
        until = min(until, g.until)
        parts = []
        k, i = self.cursor
        while g.start + k * BLOCK_S < until:
            while len(self.blocks) <= k:
                self.blocks.append(self._draw(len(self.blocks)))
            block = self.blocks[k]
            j = int(np.searchsorted(block["t"], until, side="left"))
            if j > i:
                parts.append({name: column[i:j] for name, column in block.items()})
            if j < len(block["t"]):
                i = j
                break
            self.blocks[k] = {}  # handed out whole: free it
            k, i = k + 1, 0
        self.cursor = (k, i)
        if not parts:
            return {}
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


class _Answers:
    """An environment's answers so far: when, how long they took, whether a 5xx; and its calls'
    slots (from begin to answer), for the check that none found the environment full. The
    answers a later window may still count are also kept apart (``recent``), so that measuring a
    window reads those alone, not the whole run's."""

    def __init__(self) -> None:
        self.chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # (begin, at, latency, failed)
        self.recent: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (at, latency, failed)

    def add(self, begin: np.ndarray, at: np.ndarray, latency: np.ndarray, failed: np.ndarray) -> None:
        if len(at):
            self.chunks.append((begin, at, latency, failed))
            self.recent.append((at, latency, failed))

    def window(self, start: float, end: float) -> tuple[np.ndarray, np.ndarray]:
        """The latencies and 5xx flags of the answers in (start, end]; answers at or before
        ``end`` are no longer kept for later windows (each window starts where one ended)."""
        if not self.recent:
            return np.zeros(0), np.zeros(0, dtype=bool)
        at, latency, failed = (np.concatenate(column) for column in zip(*self.recent))
        later = at > end
        self.recent = [(at[later], latency[later], failed[later])] if later.any() else []
        inside = (at > start) & ~later
        return latency[inside], failed[inside]

    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every answer: (begin, at, latency, failed)."""
        if not self.chunks:
            empty = np.zeros(0)
            return empty, empty, empty, np.zeros(0, dtype=bool)
        if len(self.chunks) > 1:  # one chunk from now on: a later read concatenates nothing
            self.chunks = [tuple(np.concatenate(column) for column in zip(*self.chunks))]  # type: ignore[list-item]
        return self.chunks[0]

    def last(self) -> float:
        return max((float(at.max()) for _, at, _, _ in self.chunks), default=-math.inf)


class _Run:
    def __init__(self, plan: Plan, canary: Model, stable: Model, seed: int) -> None:
        self.plan = plan
        self.canary_model, self.stable_model = canary, stable
        self.arrivals = [_Arrivals(g, canary, stable, seed) for g in plan.groups]
        self.retry_gen = _generator(seed, "retries")
        self.state = machine.RolloutState(plan.rollout)
        self.weights: dict[str, float] = {}
        self.table: list[tuple[float, str]] = []
        self._set_weights(plan.weights)
        self.promoted_at = math.inf
        self.ended_at: float | None = None
        self.cursor = 0.0
        self.stopped: float | None = None
        self.heap: list[tuple[float, int, str, int]] = []
        self.seq = itertools.count()
        self.answers = {name: _Answers() for name in plan.targets}
        self.cpu: list[tuple[np.ndarray, np.ndarray]] = []  # (start, end) of CPU steps
        self.routed: list[np.ndarray] = []  # arrival times the split received, in order
        self.pending: list[tuple[np.ndarray, ...]] = []  # retry candidates: (failed at, arrived, CPU used, counts as seen)
        self.buckets = np.zeros(0, dtype=np.int64)  # the retry budget's bucket of each of them
        self.spent: list[int] = []  # the retry budget's bucket of each retry taken
        self.requests = 0
        self.errors_seen = 0
        self.retries = 0
        self.first_at: float | None = None
        self.window_start = 0.0
        self.windows: list[tuple[float, int, int]] = []
        self.peaks = Peaks()

    # -- the instants: as ``simulate`` and the rollout controller schedule them ---------------------
    def _push(self, when: float, kind: str, arg: int = 0) -> None:
        heapq.heappush(self.heap, (when, next(self.seq), kind, arg))

    def go(self) -> Outcome:
        plan = self.plan
        self._push(plan.check_every, "check")
        self._push(plan.start, "start")
        self._push(plan.duration, "end")
        while self.heap:
            when, _, kind, arg = heapq.heappop(self.heap)
            if self.stopped is not None:
                # The drain: the clock runs on while anything is in flight, for at most ``drain``
                # (``FrontDoor.drained``); a promotion now gives the retries after it the canary's model.
                if when > self.stopped + plan.drain:
                    break
                self._decide_retries(when)
                if not self._in_flight_after(when):
                    break  # every answer came before: the run ended then, the clock closed
                if kind in ("check", "end"):
                    continue  # the traffic has stopped already
            if kind == "check":
                if self.state.ended:
                    self._advance(when)
                    self.stopped = when
                elif when + plan.check_every <= plan.duration:
                    self._push(when + plan.check_every, "check")
                continue
            # Everything else may move the split: the requests before it are routed by the old one.
            self._advance(when)
            if kind == "end":
                self.stopped = when
            elif kind == "start":
                self.first_at = when
                self._feed(when, machine.Start())
            elif kind == "analysis":
                self._feed(when, self._measure(when))
            else:
                self._feed(when, machine.PauseOver(arg))
        assert self.stopped is not None  # the end of the traffic is always on the heap
        self._decide_retries(math.inf)
        last = max(max(a.last() for a in self.answers.values()), self.stopped)
        self.peaks.drain_s = last - self.stopped
        if last > self.stopped + plan.drain:
            raise Coupled("a request was still unanswered when the drain ended")
        self._check_independent()
        return self._outcome(last)

    def _in_flight_after(self, when: float) -> bool:
        return bool(self.pending) or any(a.last() > when for a in self.answers.values())

    def _feed(self, now: float, event: machine.Event) -> None:
        self.state, actions = machine.step(self.state, event)
        plan = self.plan
        for action in actions:
            match action:
                case machine.SetWeight(weight):
                    self._set_weights(moved_weights(self.weights, plan.canary, weight))
                case machine.StartWindow():
                    self.window_start = now
                case machine.ScheduleAnalysis(after_s):
                    self._push(now + after_s, "analysis")
                case machine.SchedulePauseEnd(index, after_s):
                    self._push(now + after_s, "pause", index)
                case machine.Promote():
                    self._set_weights({name: (100.0 if name == plan.stable else 0.0) for name in plan.targets})
                    self.promoted_at = self.ended_at = now
                case machine.Rollback():
                    self._set_weights(moved_weights(self.weights, plan.canary, 0.0))
                    self.ended_at = now

    def _set_weights(self, weights: dict[str, float]) -> None:
        self.table = split_table(weights)
        self.weights = {name: float(weights.get(name, 0.0)) for name in self.plan.targets}

    def _measure(self, now: float) -> machine.Analysis:
        """The canary's window since the last step or analysis, as the controller measures it."""
        plan = self.plan
        latency, failed = self.answers[plan.canary].window(self.window_start, now)
        stable_latency, _ = self.answers[plan.stable].window(self.window_start, now)
        answered, errors = len(failed), int(failed.sum())
        canary_bins = stable_bins = Bins()
        if plan.needs_latency:
            canary_bins, stable_bins = Bins.of(latency), Bins.of(stable_latency)
        self.window_start = now
        self.windows.append((now, answered, errors))
        # Queue wait is 0 for every call here (none waited), which reads as empty bins do: 0.0.
        return analysis(plan.rollout, answered=answered, errors=errors, shed=0, latency=canary_bins, queue_wait=Bins(),
                        stable_latency=stable_bins, stable_weight=self.weights[plan.stable])

    # -- the traffic ---------------------------------------------------------------------------
    def _advance(self, until: float) -> None:
        """Route every request arriving before ``until`` (or the stop) and work out its answer."""
        if self.stopped is not None:
            until = min(until, self.stopped)
        if until <= self.cursor:
            return
        parts = [(a.group, taken) for a in self.arrivals if (taken := a.take(until))]
        self.cursor = until
        times = []
        for group, block in parts:
            reaches = np.asarray(group.split)[block["template"]]
            if not reaches.all():
                block = {name: column[reaches] for name, column in block.items()}
            if len(block["t"]):
                self._route(group, block)
                times.append(block["t"])
        if times:
            merged = np.sort(np.concatenate(times)) if len(times) > 1 else times[0]
            self.routed.append(merged)
            self.requests += len(merged)
        self._decide_retries(until)

    def _route(self, group: Group, block: dict[str, np.ndarray]) -> None:
        plan = self.plan
        cumulative = np.asarray([c for c, _ in self.table])
        names = [name for _, name in self.table]
        chosen = np.minimum(np.searchsorted(cumulative, block["point"], side="right"), len(names) - 1)
        t = block["t"]
        for index, name in enumerate(names):
            mine = chosen == index
            if not mine.any():
                continue
            arrived = t[mine]
            is_canary = name == plan.canary
            # The stable environment runs the canary's model once it is promoted; the request's
            # own canary draws are then its draws (it was not routed to the canary: they are unused).
            own = "canary" if is_canary or self.promoted_at <= arrived[0] else "stable"
            model = self.canary_model if own == "canary" else self.stable_model
            cpu, latency = block[f"{own}_cpu"][mine], block[f"{own}_latency"][mine]
            self._within_budget(cpu, 0.0)
            answered = (arrived + cpu) + latency
            failed = model.fails(block[f"{own}_error"][mine])
            self.answers[name].add(arrived, answered, answered - arrived, failed)
            self.cpu.append((arrived, arrived + cpu))
            if name == plan.retry_to or plan.retry_to is None:
                if is_canary:
                    self.errors_seen += int(failed.sum())
                continue
            retried = failed & np.asarray(group.retryable)[block["template"][mine]]
            if is_canary:
                self.errors_seen += int((failed & ~retried).sum())
            if retried.any():
                self.pending.append((answered[retried], arrived[retried], cpu[retried], np.full(int(retried.sum()), is_canary)))

    def _within_budget(self, cpu: np.ndarray, used: float | np.ndarray) -> None:
        """``CpuAccount.charge``: a step is over the request's budget when it wants more than is left."""
        if not len(cpu):
            return
        self.peaks.cpu_s = max(self.peaks.cpu_s, float(np.max(cpu + used)))
        if np.any(cpu > self.plan.cpu_limit - used):
            raise Coupled("a request went over its CPU limit")

    def _decide_retries(self, until: float) -> None:
        """Take the retry decisions of failures up to ``until``, in their order: the budget's
        state at each depends on the requests before it and on the retries already taken."""
        if not self.pending:
            return
        failed_at, arrived, used, seen = (np.concatenate(column) for column in zip(*self.pending))
        now = failed_at <= until
        self.pending = [(failed_at[~now], arrived[~now], used[~now], seen[~now])] if not now.all() else []
        if not now.any():
            return
        order = np.argsort(failed_at[now], kind="stable")
        failed_at, arrived, used, seen = failed_at[now][order], arrived[now][order], used[now][order], seen[now][order]
        taken = self._budget_allows(failed_at)
        if not taken.all():
            self.errors_seen += int(seen[~taken].sum())
        if not taken.any():
            return
        starts, arrived, used, seen = failed_at[taken], arrived[taken], used[taken], seen[taken]
        self.retries += len(starts)
        # The environment retried on runs the canary's model if it is the canary, or once promoted.
        promoted = starts >= (-math.inf if self.plan.retry_to == self.plan.canary else self.promoted_at)
        cpu, latency, failed = np.empty(len(starts)), np.empty(len(starts)), np.empty(len(starts), dtype=bool)
        for mask, model in ((~promoted, self.stable_model), (promoted, self.canary_model)):
            k = int(mask.sum())
            if k:
                cpu[mask] = model.cpu.draw(self.retry_gen, k)
                latency[mask] = model.latency.draw(self.retry_gen, k)
                failed[mask] = model.fails(self.retry_gen.random(k))
        self._within_budget(cpu, used)
        answered = (starts + cpu) + latency
        self.answers[self.plan.retry_to].add(starts, answered, answered - arrived, failed)  # type: ignore[index]
        self.cpu.append((starts, starts + cpu))
        self.errors_seen += int((failed & seen).sum())

    def _budget_allows(self, failed_at: np.ndarray) -> np.ndarray:
        if self.plan.budget is None:
            return np.ones(len(failed_at), dtype=bool)
        ratio, floor, width = self.plan.budget
        if len(self.routed) > 1:
            self.routed = [np.concatenate(self.routed)]
        routed = self.routed[0] if self.routed else np.zeros(0)
        if len(self.buckets) != len(routed):
            self.buckets = (routed / width).astype(np.int64)  # int(now / width), as the budget buckets them
        return budget_allows(routed, self.buckets, failed_at, ratio, floor, width, self.spent)

    # -- the checks and the answer ----------------------------------------------------------------
    def _check_independent(self) -> None:
        """No call found its environment's slots full, and no CPU step found every core busy."""
        peaks = self.peaks
        for name, answers in self.answers.items():
            begin, at, _, _ = answers.columns()
            peaks.calls[name] = _most_at_once(begin, at, self.plan.concurrency[name])
            if peaks.calls[name] > self.plan.concurrency[name]:
                raise Coupled(f"calls to {name} filled its slots")
        if self.cpu:
            starts = np.concatenate([s for s, _ in self.cpu])
            ends = np.concatenate([e for _, e in self.cpu])
            busy = ends > starts  # a call without CPU takes no core
            peaks.cores = _most_at_once(starts[busy], ends[busy], self.plan.cores)
            if peaks.cores > self.plan.cores:
                raise Coupled("CPU steps filled the node's cores")

    def _outcome(self, end: float) -> Outcome:
        phase = self.state.phase
        _, at, _, failed = self.answers[self.plan.canary].columns()
        since = at > self.first_at if self.first_at is not None else np.zeros(len(at), dtype=bool)
        return Outcome(
            phase=phase.value if phase in (machine.Phase.PROMOTED, machine.Phase.ROLLED_BACK) else "unfinished",
            ended_at_s=None if self.ended_at is None else round(self.ended_at, 9),
            requests=self.requests, canary_requests=int(since.sum()), canary_errors=int(failed[since].sum()),
            canary_errors_seen=self.errors_seen, retries=self.retries, windows=self.windows, simulated_s=end, peaks=self.peaks,
        )


def budget_allows(routed: np.ndarray, buckets: np.ndarray, failed_at: np.ndarray, ratio: float, floor: float, width: float,
                  spent: list[int]) -> np.ndarray:
    """Which failures (at ``failed_at``, in time order) the retry budget lets through:
    ``RetryBudget.spend``'s rule over its ten buckets, the requests counted from their arrival
    times (``routed``, sorted, and their ``buckets``); ``spent`` holds the bucket of each retry
    taken so far, and gets those taken here."""
    allowed = np.zeros(len(failed_at), dtype=bool)
    for k, at in enumerate(failed_at.tolist()):
        bucket = int(at / width)
        oldest = bucket - RetryBudget.BUCKETS + 1
        requests = int(np.searchsorted(routed, at, side="left")) - int(np.searchsorted(buckets, oldest, side="left"))
        retries = len(spent) - bisect.bisect_left(spent, oldest)
        if retries + 1 <= floor + ratio * requests:
            allowed[k] = True
            spent.append(bucket)
    return allowed


def _most_at_once(begin: np.ndarray, end: np.ndarray, limit: int) -> int:
    """The most intervals [begin, end) open at one instant (each counted as it begins), exactly
    when it may be above ``limit``; otherwise a bound on it at most ``limit``.

    The cheap bound first: every interval open when one begins began at most the longest
    duration before, so counting the beginnings in that span bounds the count. Only when the
    bound passes ``limit`` are the ends sorted for the exact count."""
    if not len(begin):
        return 0
    begin = np.sort(begin, kind="stable")  # nearly sorted already (by arrival): timsort's best case
    longest = float(np.max(end - begin)) if len(end) else 0.0
    index = np.arange(1, len(begin) + 1)
    bound = int((index - np.searchsorted(begin, begin - longest, side="left")).max())
    if bound <= limit:
        return bound
    end = np.sort(end, kind="stable")
    return int((index - np.searchsorted(end, begin, side="right")).max())
