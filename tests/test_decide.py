"""``edge tune``'s decisions on their own (``edge.tune.decide``): each limit judged on its
interval's bounds, never on the point estimate, at the bound itself, just inside and just
outside; which schedules are dropped, paused, leading; and what is still open.

Estimates are built by hand, so each case sits exactly where it is meant to (the intervals
themselves are ``tests/test_intervals.py``'s)."""

from __future__ import annotations

import math

import pytest

from edge.tune import decide
from edge.tune.intervals import COUNT_MIN_N, MIN_N, Estimate, proportion
from edge.tune.results import CandidateResult, Check

NONE = Estimate(None, None, None, 0)
PASSED = [Check("caught >= 95%", "passes"), Check("false rollback <= 5%", "passes")]


def est(value: float | None, low: float | None = None, high: float | None = None, n: int = 40) -> Estimate:
    return Estimate(value, low, high, n)


def candidate(checks=None, time: Estimate = NONE, meets: bool = True, *, caught=NONE, false_rollback=NONE,
              errors_seen=NONE, completed=NONE) -> CandidateResult:
    return CandidateResult(
        schedule="10,100 every 1m", steps=[10.0, 100.0], interval_s=60.0, replications=40, dropped=None, dropped_after=None,
        paused=None, caught=caught, time_to_rollback_s=NONE, canary_requests_to_rollback=NONE, errors_seen=errors_seen,
        errors_without_fallback=NONE, extra_load=NONE, false_rollback=false_rollback, rollout_time_s=time, completed=completed,
        closed_form_requests=None, checks=list(PASSED if checks is None else checks), meets_limits=meets,
    )


def judged(e: Estimate, line: float, at_least: bool) -> Check:
    return decide._proportion("limit", e, line, 0.95, at_least=at_least)


# -- a probability's limit, on its interval --------------------------------------------------------
LINE = 0.95
BELOW, ABOVE = math.nextafter(LINE, 0), math.nextafter(LINE, 1)


@pytest.mark.parametrize("low, high, status", [
    (LINE, 0.99, "passes"),  # the interval's low bound exactly at the limit: at least 95% surely
    (ABOVE, 0.99, "passes"),
    (BELOW, 0.99, "undecided"),  # just under: the point estimate (0.97) passing is not enough
    (0.90, BELOW, "fails"),  # wholly below
    (0.90, LINE, "undecided"),  # the high bound exactly at the limit: 95% is still possible
], ids=["low exactly at", "low just over", "low just under", "high just under", "high exactly at"])
def test_an_at_least_limit_is_judged_on_the_interval(low, high, status):
    check = judged(est(0.97 if status != "fails" else 0.93, low, high), LINE, at_least=True)
    assert check.status == status and check.limit == "limit"
    if status != "undecided":  # sure: nothing more to count
        assert check == Check("limit", status)


LINE5 = 0.05


@pytest.mark.parametrize("low, high, status", [
    (0.0, LINE5, "passes"),  # the high bound exactly at the limit: at most 5% surely
    (0.0, math.nextafter(LINE5, 0), "passes"),
    (0.0, math.nextafter(LINE5, 1), "undecided"),  # the point estimate (0.01) passing is not enough
    (math.nextafter(LINE5, 1), 0.2, "fails"),
    (LINE5, 0.2, "undecided"),  # the low bound exactly at the limit: 5% is still possible
], ids=["high exactly at", "high just under", "high just over", "low just over", "low exactly at"])
def test_an_at_most_limit_is_judged_on_the_interval(low, high, status):
    check = judged(est(0.01 if status != "fails" else 0.1, low, high), LINE5, at_least=False)
    assert check.status == status and check.limit == "limit"
    if status != "undecided":
        assert check == Check("limit", status)


@pytest.mark.parametrize("n, more", [(0, MIN_N), (MIN_N - 1, 1)], ids=["no replications", "one short of an interval"])
def test_a_probability_without_an_interval_is_undecided_with_the_replications_it_lacks(n, more):
    e = NONE if n == 0 else est(1.0, n=n)  # a point estimate that would pass: not enough without its interval
    for at_least in (True, False):
        assert judged(e, LINE, at_least) == Check("limit", "undecided", more)


@pytest.mark.parametrize("successes, n, at_least", [(39, 40, True), (0, 40, False)], ids=["caught", "false rollback"])
def test_an_undecided_probability_says_how_many_more_replications_would_settle_it(successes, n, at_least):
    """The count is one after which the interval, at the same proportion, is wholly on the passing side."""
    line = LINE if at_least else LINE5
    e = proportion(successes, n, 0.95)
    check = judged(e, line, at_least)
    assert check.status == "undecided" and check.more is not None and check.more > 0
    m = n + check.more
    later = proportion(round(successes / n * m), m, 0.95)
    assert later.low > line if at_least else later.high < line


def test_an_undecided_probability_on_its_limit_has_no_count():
    """An estimate exactly at the limit is never settled by more of the same."""
    assert judged(est(LINE, 0.9, 0.99, n=40), LINE, at_least=True) == Check("limit", "undecided", None)


# -- a mean of counts (errors seen) ----------------------------------------------------------------
@pytest.mark.parametrize("low, high, status", [
    (1.0, 4.0, "passes"),  # the high bound exactly at the limit
    (1.0, math.nextafter(4.0, 9), "undecided"),
    (math.nextafter(4.0, 9), 9.0, "fails"),
    (4.0, 9.0, "undecided"),  # the low bound exactly at the limit
], ids=["high exactly at", "high just over", "low just over", "low exactly at"])
def test_errors_seen_is_judged_on_its_interval(low, high, status):
    value = 3.0 if status != "fails" else 6.0
    check = decide._mean_at_most("errors seen <= 4", est(value, low, high, n=COUNT_MIN_N), 4.0)
    assert check.status == status and check.limit == "errors seen <= 4"
    if status != "undecided":
        assert check == Check("errors seen <= 4", status)


@pytest.mark.parametrize("n, more", [(0, COUNT_MIN_N), (COUNT_MIN_N - 1, 1)], ids=["no replications", "one short"])
def test_errors_seen_needs_its_own_minimum_of_replications(n, more):
    e = NONE if n == 0 else est(0.0, n=n)
    assert decide._mean_at_most("errors seen <= 4", e, 4.0) == Check("errors seen <= 4", "undecided", more)


@pytest.mark.parametrize("value, low, high, more", [
    (2.0, 1.0, 6.0, 240),  # under the limit: the upper half (4) below the gap (2) takes 80 * (4/2)^2 = 320 in all
    (6.0, 3.0, 7.0, 100),  # over it: the lower half (3) below the gap (2) takes 80 * (3/2)^2 = 180 in all
], ids=["under the limit", "over the limit"])
def test_an_undecided_mean_counts_the_replications_that_shrink_the_half_facing_the_limit(value, low, high, more):
    check = decide._mean_at_most("errors seen <= 4", est(value, low, high, n=COUNT_MIN_N), 4.0)
    assert check == Check("errors seen <= 4", "undecided", more)


def test_an_undecided_mean_on_its_limit_has_no_count():
    assert decide._mean_at_most("errors seen <= 4", est(4.0, 1.0, 9.0, n=COUNT_MIN_N), 4.0).more is None


# -- every limit of a schedule ----------------------------------------------------------------------
def test_a_schedule_is_judged_on_each_limit_named_as_the_scenario_wrote_it():
    # caught: at least, undecided at 39 of 40 (with its count); false rollback: at most, no rollback in 100
    c = candidate(caught=proportion(39, 40, 0.95), false_rollback=proportion(0, 100, 0.95), errors_seen=est(1.0, 0.5, 2.0, n=COUNT_MIN_N),
                  completed=est(1.0, 0.9, 1.0))
    found = decide.checks(c, {"caught": 0.95, "false_rollback": 0.05, "errors_seen": 2.5}, 0.95)
    assert found == [
        Check("caught >= 95%", "undecided", judged(c.caught, 0.95, at_least=True).more),
        Check("false rollback <= 5%", "passes"), Check("errors seen <= 2.5", "passes"), Check("promotes a good canary", "passes"),
    ]
    assert found[0].more is not None
    # caught surely at least 80%; no rollback in 100 is not yet surely at most 0.5%
    assert [(check.limit, check.status) for check in decide.checks(c, {"caught": 0.8, "false_rollback": 0.005}, 0.95)] == [
        ("caught >= 80%", "passes"), ("false rollback <= 0.5%", "undecided"), ("promotes a good canary", "passes")]


@pytest.mark.parametrize("completed, check", [
    (est(0.5, math.nextafter(0.0, 1), 1.0), Check("promotes a good canary", "passes")),  # surely promotes sometimes
    (est(0.0, 0.0, 0.3), Check("promotes a good canary", "undecided")),  # the interval reaches 0: maybe never
    (est(0.0, 0.0, 0.9, n=MIN_N), Check("promotes a good canary", "undecided")),  # exactly enough for an interval: none lacking
    (est(1.0, n=MIN_N - 1), Check("promotes a good canary", "undecided", 1)),  # no interval yet: one replication short
    (NONE, Check("promotes a good canary", "undecided", MIN_N)),
], ids=["low just over 0", "low exactly 0", "exactly MIN_N", "one short of an interval", "no replications"])
def test_a_schedule_must_surely_promote_a_good_canary(completed, check):
    assert decide.checks(candidate(completed=completed), {"caught": 0.8, "false_rollback": 0.05}, 0.95)[-1] == check


# -- dropped, paused, leading ------------------------------------------------------------------------
FAST = est(100.0, 90.0, 110.0)
SLOW = est(200.0, 150.0, 250.0)
FAILING = [Check("caught >= 95%", "fails"), Check("false rollback <= 5%", "fails")]
OPEN = [Check("caught >= 95%", "undecided", 10), Check("false rollback <= 5%", "passes")]


def test_a_schedule_that_surely_fails_a_limit_is_dropped_naming_each():
    candidates = [candidate(FAILING, FAST), candidate(OPEN, SLOW)]
    assert decide.drops(candidates, [0, 1]) == {0: "fails caught >= 95%, false rollback <= 5%"}


def test_a_schedule_dropped_for_a_limit_does_not_stop_the_others_being_judged():
    candidates = [candidate(FAILING, FAST), candidate(PASSED, FAST), candidate(OPEN, SLOW)]
    assert decide.drops(candidates, [0, 1, 2]) == {0: "fails caught >= 95%, false rollback <= 5%", 2: "slower than #1"}


def test_only_running_schedules_are_dropped():
    candidates = [candidate(FAILING, FAST), candidate(PASSED, FAST), candidate(OPEN, SLOW)]
    assert decide.drops(candidates, [1]) == {}
    assert decide.drops(candidates, [1, 2]) == {2: "slower than #1"}


@pytest.mark.parametrize("fast_high, dropped", [
    (math.nextafter(150.0, 0), True),  # the passing schedule's time interval wholly below the other's
    (150.0, False),  # touching: not surely faster
    (math.nextafter(150.0, 200), False),
], ids=["just under", "exactly at", "just over"])
def test_a_schedule_surely_slower_than_one_that_surely_passes_is_dropped(fast_high, dropped):
    candidates = [candidate(OPEN, SLOW), candidate(PASSED, est(100.0, 90.0, fast_high))]
    assert decide.drops(candidates, [0, 1]) == ({0: "slower than #1"} if dropped else {})


def test_a_surely_faster_schedule_that_is_not_sure_to_pass_drops_nothing():
    """Only a schedule that surely passes every limit can push another out: one on its estimates cannot."""
    assert decide.drops([candidate(OPEN, SLOW), candidate(OPEN, FAST)], [0, 1]) == {}
    assert decide.drops([candidate(OPEN, SLOW), candidate(FAILING, FAST)], [0, 1]) == {1: "fails caught >= 95%, false rollback <= 5%"}


def test_a_schedule_without_a_time_interval_is_never_surely_slower():
    assert decide.drops([candidate(OPEN, est(300.0, n=2)), candidate(PASSED, FAST)], [0, 1]) == {}
    assert decide.drops([candidate(OPEN, SLOW), candidate(PASSED, est(100.0, n=2))], [0, 1]) == {}


def test_the_leader_is_the_fastest_on_its_estimates_among_those_meeting_the_limits_there():
    candidates = [candidate(OPEN, SLOW), candidate(OPEN, FAST, meets=False), candidate(OPEN, est(150.0, 100.0, 200.0))]
    assert decide.leader(candidates, [0, 1, 2]) == 2
    assert decide.leader(candidates, [0, 1]) == 0
    assert decide.leader(candidates, [1]) is None
    # no time estimate (never promoted) comes last, and a tie goes to the first
    assert decide.leader([candidate(OPEN, NONE), candidate(OPEN, SLOW)], [0, 1]) == 1
    assert decide.leader([candidate(OPEN, SLOW), candidate(OPEN, SLOW)], [1, 0]) == 1


@pytest.mark.parametrize("slow_low, paused", [
    (math.nextafter(110.0, 200), True), (110.0, False), (math.nextafter(110.0, 0), False),
], ids=["just over the leader's high", "exactly at", "just under"])
def test_a_schedule_surely_slower_than_the_leader_is_paused(slow_low, paused):
    candidates = [candidate(OPEN, FAST), candidate(OPEN, est(200.0, slow_low, 250.0)), candidate(OPEN, SLOW, meets=False)]
    assert decide.paused(candidates, [0, 1, 2]) == ({1: "slower than #0", 2: "slower than #0"} if paused else {2: "slower than #0"})


def test_nothing_is_paused_without_a_leader():
    assert decide.paused([candidate(OPEN, FAST, meets=False), candidate(OPEN, SLOW, meets=False)], [0, 1]) == {}


@pytest.mark.parametrize("checks, running, decided", [
    (PASSED, [0], True),  # one left, surely passing every limit
    (OPEN, [0], False),  # one left, one limit open
    (PASSED, [0, 1], False),  # two left, even if both pass
    (OPEN, [], True),  # none left: decided that none meets the limits
], ids=["one passing", "one open", "two", "none"])
def test_the_answer_is_decided_with_one_sure_schedule_or_none_left(checks, running, decided):
    assert decide.is_decided([candidate(checks, FAST), candidate(checks, SLOW)], running) is decided


# -- what is still open -------------------------------------------------------------------------------
def test_without_a_leader_every_undecided_limit_is_open():
    candidates = [candidate(OPEN, FAST, meets=False), candidate([Check("caught >= 95%", "undecided", None), *PASSED[1:]], SLOW, meets=False)]
    assert decide.open_questions(candidates, [0, 1], None) == [("#0 caught >= 95%", 10), ("#1 caught >= 95%", None)]


def test_the_leader_is_compared_with_each_slower_schedule_until_it_is_surely_faster():
    candidates = [candidate(OPEN, FAST), candidate(PASSED, SLOW), candidate(PASSED, est(120.0, 100.0, 140.0))]
    found = decide.open_questions(candidates, [0, 1, 2], 0)
    # 2: half-widths 10 + 20 against a gap of 20 from 40 replications: 40 * (30/20)^2 = 90 in all
    assert found == [("#0 caught >= 95%", 10), ("#0 rollout time < #2's", 50)]
    assert candidates[0].checks[2:] == [Check("rollout time < #1's", "passes"), Check("rollout time < #2's", "undecided", 50)]


def test_a_leader_tied_with_another_schedule_can_never_be_shown_faster():
    candidates = [candidate(PASSED, FAST), candidate(PASSED, FAST)]
    assert decide.open_questions(candidates, [0, 1], 0) == [("#0 rollout time < #1's", None)]


@pytest.mark.parametrize("lead, other, more", [
    (est(100.0, n=2), SLOW, 1), (FAST, est(200.0, n=2), 1), (FAST, NONE, MIN_N), (est(100.0, n=1), est(200.0, n=2), 2),
], ids=["the leader one short of an interval", "the other one short", "the other with none", "the leader's shortfall first"])
def test_a_comparison_without_an_interval_needs_the_replications_that_give_one(lead, other, more):
    candidates = [candidate(PASSED, lead), candidate(PASSED, other)]
    assert decide.open_questions(candidates, [0, 1], 0) == [("#0 rollout time < #1's", more)]


def test_a_faster_schedule_must_be_shown_to_miss_a_limit():
    """One faster on its estimates but not meeting the limits there: the fewest replications of its open limits."""
    misses = [Check("caught >= 95%", "undecided", 30), Check("false rollback <= 5%", "undecided", 12), Check("errors seen <= 4", "undecided", None)]
    candidates = [candidate(PASSED, SLOW), candidate(misses, FAST, meets=False)]
    assert decide.open_questions(candidates, [0, 1], 0) == [("#1 (faster) misses a limit", 12)]
    candidates = [candidate(PASSED, SLOW), candidate(misses[2:], FAST, meets=False)]
    assert decide.open_questions(candidates, [0, 1], 0) == [("#1 (faster) misses a limit", None)]
