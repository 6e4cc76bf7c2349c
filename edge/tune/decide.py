"""When ``edge tune`` knows its answer: limits judged on interval bounds, schedules dropped, the stop.

Pure functions of the estimates, run after every round. A schedule is dropped as soon as it
surely fails a limit (its interval wholly on the wrong side), or as soon as another schedule
surely passes every limit and is surely faster (its rollout-time interval wholly below). One
surely slower than the leader (the fastest meeting the limits on its estimates) is paused: it
gets no replications while the leader's limits are being settled, and is needed again only if
the leader fails one. The
answer is decided when one schedule is left and it surely passes every limit, or none is left.
What is still open is listed with a rough count of the replications that would settle it, if the
estimates held: for a probability, the trials after which its interval would clear the limit;
for a mean or a comparison, the width shrinking like 1/sqrt(n).

Looking after every round does not make the decisions less sure than the confidence says: the
probabilities and the times are confidence sequences (``intervals``), valid at every look at
once. The mean of errors seen is the exception: a bootstrap interval, decided on only from
``COUNT_MIN_N`` replications, at its confidence per look.
"""

from __future__ import annotations

from edge.tune.intervals import COUNT_MIN_N, MIN_N, Estimate, more_for_gap, more_for_proportion
from edge.tune.results import CandidateResult, Check


def _pct(x: float) -> str:
    return f"{x * 100:g}%"


def checks(c: CandidateResult, limits: dict[str, float], confidence: float) -> list[Check]:
    """Each limit of ``limits`` (as ``summarise`` names them) judged on ``c``'s intervals."""
    found = [
        _proportion(f"caught >= {_pct(limits['caught'])}", c.caught, limits["caught"], confidence, at_least=True),
        _proportion(f"false rollback <= {_pct(limits['false_rollback'])}", c.false_rollback, limits["false_rollback"],
                    confidence, at_least=False),
    ]
    if "errors_seen" in limits:
        found.append(_mean_at_most(f"errors seen <= {limits['errors_seen']:g}", c.errors_seen, limits["errors_seen"]))
    # A schedule that never promotes a good canary has no rollout time to be recommended on.
    promoted = c.completed.bounded and c.completed.low is not None and c.completed.low > 0
    found.append(Check("promotes a good canary", "passes" if promoted else "undecided", None if promoted else _too_few(c.completed)))
    return found


def _too_few(e: Estimate, needs: int = MIN_N) -> int | None:
    return needs - e.n if e.n < needs else None


def _proportion(limit: str, e: Estimate, line: float, confidence: float, *, at_least: bool) -> Check:
    if not e.bounded or e.value is None:
        return Check(limit, "undecided", _too_few(e))
    assert e.low is not None and e.high is not None
    if (at_least and e.low >= line) or (not at_least and e.high <= line):
        return Check(limit, "passes")
    if (at_least and e.high < line) or (not at_least and e.low > line):
        return Check(limit, "fails")
    return Check(limit, "undecided", more_for_proportion(round(e.value * e.n), e.n, confidence, line, above=e.value > line))


def _mean_at_most(limit: str, e: Estimate, line: float) -> Check:
    """A mean of counts (errors seen): its interval comes from ``COUNT_MIN_N`` replications."""
    if not e.bounded or e.value is None:
        return Check(limit, "undecided", _too_few(e, COUNT_MIN_N))
    assert e.low is not None and e.high is not None
    if e.high <= line:
        return Check(limit, "passes")
    if e.low > line:
        return Check(limit, "fails")
    half = e.high - e.value if e.value < line else e.value - e.low
    return Check(limit, "undecided", more_for_gap(e.n, half, abs(e.value - line)))


def drops(candidates: list[CandidateResult], running: list[int]) -> dict[int, str]:
    """Which of the ``running`` schedules to drop now, and why."""
    dropped = {}
    for i in running:
        failed = [check.limit for check in candidates[i].checks if check.status == "fails"]
        if failed:
            dropped[i] = f"fails {', '.join(failed)}"
    passing = [i for i in running if i not in dropped and _passes(candidates[i])]
    for i in running:
        if i in dropped:
            continue
        for r in passing:
            if r != i and _surely_faster(candidates[r].rollout_time_s, candidates[i].rollout_time_s):
                dropped[i] = f"slower than #{r}"
                break
    return dropped


def paused(candidates: list[CandidateResult], running: list[int]) -> dict[int, str]:
    """Running schedules that need no replications for now: surely slower than the leader. If
    the leader passes every limit they will be dropped; if it fails one, they are needed again."""
    lead = leader(candidates, running)
    if lead is None:
        return {}
    best = candidates[lead].rollout_time_s
    return {i: f"slower than #{lead}" for i in running if i != lead and _surely_faster(best, candidates[i].rollout_time_s)}


def _passes(c: CandidateResult) -> bool:
    return all(check.status == "passes" for check in c.checks)


def _surely_faster(a: Estimate, b: Estimate) -> bool:
    return a.high is not None and b.low is not None and a.high < b.low


def is_decided(candidates: list[CandidateResult], running: list[int]) -> bool:
    return not running or (len(running) == 1 and _passes(candidates[running[0]]))


def leader(candidates: list[CandidateResult], running: list[int]) -> int | None:
    """The fastest running schedule meeting the limits on its point estimates."""
    eligible = [i for i in running if candidates[i].meets_limits]
    return min(eligible, key=lambda i: _time(candidates[i]), default=None)


def _time(c: CandidateResult) -> float:
    return c.rollout_time_s.value if c.rollout_time_s.value is not None else float("inf")


def open_questions(candidates: list[CandidateResult], running: list[int], lead: int | None) -> list[tuple[str, int | None]]:
    """What keeps the answer undecided, each with its rough replication count. The leader's own
    undecided limits and its comparison with every slower schedule still running (added to its
    checks); a faster one must instead be shown to fail the limit it misses on its estimates."""
    if lead is None:
        return [(f"#{i} {check.limit}", check.more) for i in running for check in candidates[i].checks if check.status == "undecided"]
    best = candidates[lead]
    found = [(f"#{lead} {check.limit}", check.more) for check in best.checks if check.status == "undecided"]
    for i in running:
        if i == lead:
            continue
        other = candidates[i]
        if _surely_faster(best.rollout_time_s, other.rollout_time_s):
            best.checks.append(Check(f"rollout time < #{i}'s", "passes"))
        elif _time(best) <= _time(other):  # a tie is a comparison no number of replications decides
            check = Check(f"rollout time < #{i}'s", "undecided", _more_to_separate(best.rollout_time_s, other.rollout_time_s))
            best.checks.append(check)
            found.append((f"#{lead} {check.limit}", check.more))
        else:
            misses = [check.more for check in other.checks if check.status == "undecided"]
            known = [m for m in misses if m is not None]
            found.append((f"#{i} (faster) misses a limit", min(known) if known else None))
    return found


def _more_to_separate(a: Estimate, b: Estimate) -> int | None:
    if not (a.bounded and b.bounded) or a.value is None or b.value is None:
        return _too_few(a) or _too_few(b)
    assert a.high is not None and b.low is not None
    return more_for_gap(a.n, (a.high - a.value) + (b.value - b.low), b.value - a.value)
