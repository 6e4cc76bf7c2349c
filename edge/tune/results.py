"""What ``edge tune`` answers: the Structs of its ``--json`` output (and of the table and plot,
which are drawn from them alone).

Every interval is at ``TuneResult.confidence``, and those of probabilities and times hold at
every round at once (confidence sequences, ``edge.tune.intervals``); an ``Estimate`` without
``low``/``high`` had too few replications for one (3, or 80 for a mean of counts). A ``Check`` is one limit judged on interval bounds: "passes" and
"fails" are sure (the whole interval on one side of the limit), anything else is "undecided",
with ``more`` the replications that would roughly decide it if the estimate held.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from edge.tune.intervals import Estimate

Status = Literal["passes", "fails", "undecided"]


class Check(msgspec.Struct):
    limit: str
    """The limit as shown: "caught >= 95%", "false rollback <= 5%", "errors seen <= 100",
    "rollout time < #2's" (the recommendation's comparison with another schedule)."""
    status: Status
    more: int | None = None
    """Undecided: about how many more replications (per schedule) would decide it, if the
    estimates held; None when no number would (the estimate sits on the limit)."""


class CandidateResult(msgspec.Struct):
    schedule: str
    steps: list[float]
    interval_s: float
    replications: int
    """Seeds this schedule was replicated with (under both hypotheses)."""
    dropped: str | None
    """Why it got no more replications: it surely fails a limit, or a schedule that surely
    passes every limit is surely faster. None while it was still in the running."""
    dropped_after: int | None
    """The round it was dropped after."""
    paused: str | None
    """Why it is waiting (after the last round): surely slower than the leading schedule, which
    has not yet been shown to pass every limit. It catches up on the seeds it missed if the
    leader is dropped."""
    caught: Estimate
    """P(a bad canary is rolled back)."""
    time_to_rollback_s: Estimate
    canary_requests_to_rollback: Estimate
    errors_seen: Estimate
    """Bad canary: requests answered with its errors, after the fallback."""
    errors_without_fallback: Estimate
    extra_load: Estimate
    """Bad canary: retries per request to the service."""
    false_rollback: Estimate
    """P(a good canary is rolled back)."""
    rollout_time_s: Estimate
    """Good canary: time to promotion (the objective: shorter is better)."""
    completed: Estimate
    """P(a good canary is promoted before the scenario's duration runs out)."""
    closed_form_requests: float | None
    """Canary requests the analysis needs in theory: with a sequential test, Wald's expected
    number to reject p0 when the truth is p1; otherwise the sample a fixed-size one-sided test
    needs to detect p1 against p0 (5% level, 80% power). None when p0 or p1 is not a known number."""
    checks: list[Check]
    """Each limit judged on this schedule's intervals."""
    meets_limits: bool
    """On the point estimates (what a recommendation that is not decided rests on)."""


class EngineUse(msgspec.Struct):
    """Which engine ran the simulations (``edge.engine.batched`` or the per-request one), and why."""

    batched: int
    """Simulations drawn in batches: exact wherever requests cannot meet."""
    per_request: int
    fell_back: int
    """Of the per-request ones: batched simulations whose draws showed requests that met, run
    again per request (at most ``coupling_bound`` of the batched ones, in probability)."""
    coupling_bound: float | None
    """The largest bound, over the batched schedules and hypotheses, on the probability that one
    replication's requests meet: how far the fallback can move an estimate. None: none batched."""
    simulated_s: float
    """Simulated seconds over every simulation."""
    batched_s: float
    """Of which, on the batched engine."""
    why_per_request: list[str]
    """Why simulations ran per request ("--per-request", a scenario that does not qualify, ...)."""


class TuneResult(msgspec.Struct):
    scenario: str
    service: str
    seed: int
    confidence: float
    budget: str
    """What bounded the run: "200 replications", "wall time 5m", or "fixed 20 replications"."""
    replications: int
    """Seeds used (seed .. seed + replications - 1): the most any schedule got."""
    rounds: int
    stopped: Literal["decided", "budget", "fixed"]
    decided: bool
    """The recommendation (or that none meets the limits) rests on interval bounds alone."""
    candidates: list[CandidateResult]
    recommended: int | None
    """Decided: the schedule that surely passes every limit and is surely the fastest of those
    left. Otherwise the fastest meeting the limits on the point estimates, if any does."""
    undecided: list[str]
    """What is still open, each with the replications that would roughly settle it."""
    more_replications: int | None
    """Not decided: about how many more replications would decide it (the most any open
    question of the leading schedule needs); None when decided or when no number would."""
    limits: dict[str, float]
    engine: EngineUse
