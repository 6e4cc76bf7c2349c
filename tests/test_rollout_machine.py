"""The rollout state machine on its own: every transition and every gate at its limit, driven by
events (no clock, no trio, no simulation)."""

from __future__ import annotations

import copy
import dataclasses
import math
import subprocess
import sys

import pytest
from hypothesis import given, strategies as st

from edge.engine.rollout_machine import (
    Abort, Analysis, Approve, Check, Hold, Resume, CompareLimits, Comparison, Log, Milestone, NoData, PauseOver, Phase, Plan, Promote, RecordAnalysis,
    Rollback, RolloutState, ScheduleAnalysis, SchedulePauseEnd, SequentialTest, SetWeight, Start, StartWindow, Step, Verdict, step,
)
from edge.scenario.values import Gate

ERROR_RATIO = Gate.parse("error ratio < 1%")
P99 = Gate.parse("p99 latency < 50ms")
PLAN = Plan(steps=(Step(10), Step(50), Step(100)), interval_s=60.0, interval_label="1m", stable="production", gates=(ERROR_RATIO, P99))
GOOD = (0.001, 0.010)  # measured error ratio and p99 latency, both inside the gates


def at(index: int, plan: Plan = PLAN, **fields) -> RolloutState:
    """A rollout progressing at step ``index``."""
    return RolloutState(plan, phase=Phase.PROGRESSING, step=index, **fields)


def window(answered: int = 1000, errors: int = 1, values: tuple[float, ...] = GOOD, comparison: Comparison | None = None) -> Analysis:
    return Analysis(answered=answered, errors=errors, gate_values=values, comparison=comparison)


def verdict(actions) -> Verdict:
    [recorded] = [a.verdict for a in actions if isinstance(a, RecordAnalysis)]
    return recorded


PASSED = Log(Verdict.PASS, "1000 canary answers, 1 errors; error ratio 0.100% of 1,000 answers (needs < 1%); p99 latency 10ms of 1,000 answers (needs < 50ms)", (
    Check("error ratio", 0.001, "<", 0.01, 1000, True, "%"), Check("p99 latency", 0.010, "<", 0.05, 1000, True, "s")))


def checks(actions) -> tuple[Check, ...]:
    """The checks of the analysis's verdict (the rollback's, for the sequential test's)."""
    [logged] = [a.checks for a in actions if isinstance(a, Log) and isinstance(a.event, Verdict)] or [a.checks for a in actions if isinstance(a, Rollback)]
    return logged


def entered(index: int, plan: Plan = PLAN) -> list:
    """The actions of moving the canary to step ``index``."""
    return [SetWeight(plan.steps[index].weight), StartWindow(), Log(Milestone.STEP, f"step {index + 1} of {len(plan.steps)}"), ScheduleAnalysis(plan.interval_s)]


# -- start -----------------------------------------------------------------------------------------
def test_start_moves_the_canary_to_the_first_step():
    state, actions = step(RolloutState(PLAN), Start())
    assert (state.phase, state.step) == (Phase.PROGRESSING, 0)
    assert actions == [Log(Milestone.START, "3 steps: 10%, 50%, 100%, every 1m"), *entered(0)]


def test_start_waits_for_a_first_step_with_a_pause():
    plan = dataclasses.replace(PLAN, steps=(Step(10, pause_s=30.0, pause_label="30s"), Step(100)))
    state, actions = step(RolloutState(plan), Start())
    assert (state.phase, state.step) == (Phase.WAITING, -1)
    assert actions[1:] == [Log(Milestone.WAITING, "pause of 30s before 10%"), SchedulePauseEnd(0, 30.0)]


def test_start_waits_for_a_manual_first_step():
    plan = dataclasses.replace(PLAN, steps=(Step(10, manual=True), Step(100)))
    state, actions = step(RolloutState(plan), Start())
    assert (state.phase, state.awaiting) == (Phase.WAITING, 0)
    assert actions[1:] == [Log(Milestone.WAITING, "approval before 10%")]


@pytest.mark.parametrize("phase", [p for p in Phase if p is not Phase.PENDING])
def test_a_second_start_changes_nothing(phase):
    state = RolloutState(PLAN, phase=phase, step=1)
    assert step(state, Start()) == (state, [])


# -- passing analyses -----------------------------------------------------------------------------------
def test_a_pass_before_the_last_step_moves_to_the_next():
    state, actions = step(at(0), window())
    assert (state.phase, state.step) == (Phase.PROGRESSING, 1)
    assert actions == [RecordAnalysis(Verdict.PASS), PASSED, *entered(1)]


def test_a_pass_at_the_step_before_the_last_enters_the_last():
    state, actions = step(at(1), window())
    assert (state.phase, state.step) == (Phase.PROGRESSING, 2) and SetWeight(100) in actions


def test_a_pass_at_the_last_step_promotes():
    state, actions = step(at(2), window())
    assert state.phase is Phase.PROMOTED and state.ended
    assert actions == [RecordAnalysis(Verdict.PASS), PASSED, Promote()]


def test_a_single_step_rollout_promotes_on_its_first_pass():
    plan = dataclasses.replace(PLAN, steps=(Step(100),))
    state, _ = step(RolloutState(plan), Start())
    state, actions = step(state, window())
    assert state.phase is Phase.PROMOTED and actions[-1] == Promote()


# -- failures and the failure limit ----------------------------------------------------------------
def test_a_failure_on_the_first_window_rolls_back_with_the_default_limit_of_one():
    state, actions = step(at(0), window(values=(0.05, 0.010)))
    assert state.phase is Phase.ROLLED_BACK and state.failures == 1
    failed = Log(Verdict.FAIL, "error ratio 5.000% of 1,000 answers (needs < 1%)", (
        Check("error ratio", 0.05, "<", 0.01, 1000, False, "%"), Check("p99 latency", 0.010, "<", 0.05, 1000, True, "s")))
    assert actions == [RecordAnalysis(Verdict.FAIL), failed, Rollback("1 failed analyses (limit 1)")]


@pytest.mark.parametrize("before, phase", [(0, Phase.PROGRESSING), (1, Phase.PROGRESSING), (2, Phase.ROLLED_BACK)])
def test_the_failure_limit_rolls_back_exactly_at_the_limit(before, phase):
    plan = dataclasses.replace(PLAN, failure_limit=3)
    state, actions = step(at(1, plan, failures=before), window(values=(0.05, 0.010)))
    assert state.phase is phase and state.failures == before + 1 and state.step == 1
    if phase is Phase.PROGRESSING:  # analysed again at the same weight
        assert actions[-1] == ScheduleAnalysis(60.0) and not any(isinstance(a, SetWeight) for a in actions)
    else:
        assert actions[-1] == Rollback("3 failed analyses (limit 3)")


def test_failures_are_not_reset_by_a_pass():
    plan = dataclasses.replace(PLAN, failure_limit=2)
    state, _ = step(at(0, plan), window(values=(0.05, 0.010)))
    state, _ = step(state, window())
    state, actions = step(state, window(values=(0.05, 0.010)))
    assert state.phase is Phase.ROLLED_BACK and actions[-1] == Rollback("2 failed analyses (limit 2)")


# -- gates at their limits ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "ratio, passed",
    [(0.01, False), (math.nextafter(0.01, 0), True), (math.nextafter(0.01, 1), False)],
    ids=["exactly at the limit", "just under", "just over"],
)
def test_a_strict_gate_at_its_limit(ratio, passed):
    _, actions = step(at(0), window(values=(ratio, 0.010)))
    assert verdict(actions) is (Verdict.PASS if passed else Verdict.FAIL)


@pytest.mark.parametrize(
    "p99, passed", [(0.05, False), (math.nextafter(0.05, 0), True), (math.nextafter(0.05, 1), False)],
    ids=["exactly at the limit", "just under", "just over"],
)
def test_a_latency_gate_at_its_limit(p99, passed):
    _, actions = step(at(0), window(values=(0.001, p99)))
    assert verdict(actions) is (Verdict.PASS if passed else Verdict.FAIL)


@pytest.mark.parametrize("shed, passed", [(10.0, True), (9.0, True), (11.0, False)], ids=["exactly at the limit", "just under", "just over"])
def test_an_inclusive_gate_at_its_limit(shed, passed):
    plan = dataclasses.replace(PLAN, gates=(Gate.parse("shed <= 10"),))
    _, actions = step(at(0, plan), window(values=(shed,)))
    assert verdict(actions) is (Verdict.PASS if passed else Verdict.FAIL)


def test_every_failed_gate_is_named_with_its_measured_value_sample_size_and_limit():
    _, actions = step(at(0), window(values=(0.05, 0.2)))
    assert Log(Verdict.FAIL, "error ratio 5.000% of 1,000 answers (needs < 1%); p99 latency 200ms of 1,000 answers (needs < 50ms)", (
        Check("error ratio", 0.05, "<", 0.01, 1000, False, "%"), Check("p99 latency", 0.2, "<", 0.05, 1000, False, "s"))) in actions


@pytest.mark.parametrize("ratio, passed", [(0.01, False), (math.nextafter(0.01, 0), True)], ids=["exactly at the limit", "just under"])
def test_a_gate_at_its_limit_carries_the_value_it_was_judged_on(ratio, passed):
    _, actions = step(at(0), window(values=(ratio, 0.010)))
    assert checks(actions)[0] == Check("error ratio", ratio, "<", 0.01, 1000, passed, "%")


def test_a_gate_counts_the_samples_its_value_was_measured_over():
    """A latency quantile is read from the answers whose latency was recorded, not all answers."""
    _, actions = step(at(0), Analysis(answered=1000, errors=1, gate_values=GOOD, gate_samples=(1000, 998)))
    assert [(c.name, c.samples) for c in checks(actions)] == [("error ratio", 1000), ("p99 latency", 998)]
    assert "p99 latency 10ms of 998 answers" in [a for a in actions if isinstance(a, Log)][0].detail


def test_a_value_for_every_gate_is_required():
    with pytest.raises(ValueError):
        step(at(0), window(values=(0.001,)))


# -- no data: min_requests -------------------------------------------------------------------------
@pytest.mark.parametrize("answered, judged", [(100, True), (99, False), (101, True)], ids=["exactly met", "one short", "one over"])
def test_min_requests_at_its_limit(answered, judged):
    plan = dataclasses.replace(PLAN, min_requests=100, failure_limit=5)
    _, actions = step(at(0, plan), window(answered=answered))
    assert verdict(actions) is (Verdict.PASS if judged else Verdict.NO_DATA)
    assert checks(actions)[0] == Check("canary answers", answered, ">=", 100, answered, judged)
    if not judged:  # the gates are not judged on too few answers
        assert Log(Verdict.NO_DATA, f"no data: canary answers {answered} (needs >= 100)", checks(actions)) in actions
        assert len(checks(actions)) == 1


@pytest.mark.parametrize("answered, judged", [(0, False), (1, True)])
def test_without_min_requests_an_empty_window_is_still_no_data(answered, judged):
    _, actions = step(at(0, dataclasses.replace(PLAN, failure_limit=5)), window(answered=answered, errors=0))
    assert verdict(actions) is (Verdict.PASS if judged else Verdict.NO_DATA)


def test_no_data_skips_the_gates():
    plan = dataclasses.replace(PLAN, min_requests=100, no_data=NoData.PASS)
    _, actions = step(at(0, plan), window(answered=99, values=(1.0, 1.0)))
    assert verdict(actions) is Verdict.PASS


def test_no_data_as_a_failure_counts_towards_the_limit():
    plan = dataclasses.replace(PLAN, min_requests=100, failure_limit=2)
    state, actions = step(at(0, plan), window(answered=0, errors=0))
    assert (state.phase, state.failures, actions[-1]) == (Phase.PROGRESSING, 1, ScheduleAnalysis(60.0))
    state, actions = step(state, window(answered=0, errors=0))
    assert state.phase is Phase.ROLLED_BACK and actions[-1] == Rollback("2 failed analyses (limit 2)")


def test_no_data_as_a_pass_moves_on():
    plan = dataclasses.replace(PLAN, min_requests=100, no_data=NoData.PASS)
    state, actions = step(at(0, plan), window(answered=0, errors=0))
    assert state.step == 1 and verdict(actions) is Verdict.PASS


def test_no_data_as_a_hold_counts_nothing_and_stays_at_the_step():
    plan = dataclasses.replace(PLAN, min_requests=100, no_data=NoData.HOLD)
    state, actions = step(at(1, plan), window(answered=0, errors=0))
    assert (state.phase, state.step, state.failures) == (Phase.PROGRESSING, 1, 0)
    held = Log(Verdict.HOLD, "no data: canary answers 0 (needs >= 100)", (Check("canary answers", 0, ">=", 100, 0, False),))
    assert actions == [RecordAnalysis(Verdict.HOLD), held, ScheduleAnalysis(60.0)]


# -- the latency comparison ------------------------------------------------------------------------
COMPARE = dataclasses.replace(PLAN, compare=CompareLimits(alpha=0.01, min_shift_s=0.001))


@pytest.mark.parametrize(
    "p, shift, passed",
    [
        (math.nextafter(0.01, 0), math.nextafter(0.001, 1), False),  # both just past their limits
        (0.01, 0.005, True), (math.nextafter(0.01, 1), 0.005, True),  # p exactly at alpha, just over
        (0.0001, 0.001, True), (0.0001, math.nextafter(0.001, 0), True),  # shift exactly at, just under
    ],
)
def test_the_comparison_fails_only_when_both_limits_are_passed(p, shift, passed):
    _, actions = step(at(0, COMPARE), window(comparison=Comparison(p_value=p, median_shift_s=shift)))
    assert verdict(actions) is (Verdict.PASS if passed else Verdict.FAIL)


def test_a_failed_comparison_names_the_stable_environment_its_level_and_samples():
    _, actions = step(at(0, COMPARE), window(comparison=Comparison(p_value=0.0001, median_shift_s=0.002, samples=640)))
    failed = "Mann-Whitney p against production 0.0001 of 640 answers (needs >= 0.01), median +2ms (fails only beyond +1ms)"
    assert [a.detail for a in actions if isinstance(a, Log)] == [failed]
    assert checks(actions)[-1] == Check("Mann-Whitney p against production", 0.0001, ">=", 0.01, 640, False, note="median +2ms (fails only beyond +1ms)")


def test_a_passed_comparison_is_a_check_too():
    _, actions = step(at(0, COMPARE), window(comparison=Comparison(p_value=0.0001, median_shift_s=-0.002, samples=640)))
    assert verdict(actions) is Verdict.PASS
    assert checks(actions)[-1].passed and checks(actions)[-1].note.startswith("median -2ms")


def test_nothing_to_compare_passes():
    _, actions = step(at(0, COMPARE), window(comparison=None))
    assert verdict(actions) is Verdict.PASS


def test_a_comparison_without_compare_settings_is_ignored():
    _, actions = step(at(0), window(comparison=Comparison(p_value=0.0, median_shift_s=1.0)))
    assert verdict(actions) is Verdict.PASS


# -- the sequential test -----------------------------------------------------------------------------
SPRT = SequentialTest(p0=0.001, p1=0.01, alpha=0.01, beta=0.05)
SEQUENTIAL = dataclasses.replace(PLAN, sequential=SPRT, min_requests=100, no_data=NoData.HOLD)
UPPER = math.log((1 - SPRT.beta) / SPRT.alpha)
LOWER = math.log(SPRT.beta / (1 - SPRT.alpha))
EMPTY = window(answered=0, errors=0)  # moves the log-likelihood ratio by nothing


def test_the_sequential_test_adds_each_window_to_its_ratio():
    state, _ = step(at(0, SEQUENTIAL, llr=0.5), window(answered=100, errors=1))
    assert state.llr == 0.5 + math.log(0.01 / 0.001) + 99 * math.log(0.99 / 0.999)


@pytest.mark.parametrize("llr, rolled_back", [(UPPER, True), (math.nextafter(UPPER, 0), False), (math.nextafter(UPPER, 99), True)],
                         ids=["exactly at the bound", "just under", "just over"])
def test_the_upper_bound_rolls_back_at_once(llr, rolled_back):
    state, actions = step(at(0, SEQUENTIAL, llr=llr), EMPTY)
    assert (state.phase is Phase.ROLLED_BACK) is rolled_back
    if rolled_back:  # not a counted failure, and no no-data verdict either
        assert state.failures == 0 and actions[0] == RecordAnalysis(Verdict.ROLLBACK) and isinstance(actions[-1], Rollback)
        assert actions[-1].why.startswith("sequential test: error ratio nearer 1.000% than 0.100%")
        [check] = actions[-1].checks
        assert (check.name, check.passed, check.op, check.limit) == ("log-likelihood ratio", False, "<", round(UPPER, 6))
        assert not any(isinstance(a, Log) for a in actions)  # the controller logs the rollback itself
    else:
        assert verdict(actions) is Verdict.HOLD


@pytest.mark.parametrize("llr, settled", [(LOWER, True), (math.nextafter(LOWER, 0), False), (math.nextafter(LOWER, -99), True)],
                         ids=["exactly at the bound", "just over", "just under"])
def test_the_lower_bound_settles_the_question(llr, settled):
    state, actions = step(at(0, SEQUENTIAL, llr=llr), EMPTY)
    assert state.sprt_settled is settled and state.phase is Phase.PROGRESSING
    notes = [a for a in actions if isinstance(a, Log) and a.event is Milestone.SETTLED]
    assert len(notes) == int(settled)
    if settled:  # noted first, then the window is judged as usual
        assert actions.index(notes[0]) == 0 and verdict(actions) is Verdict.HOLD


def test_a_settled_test_is_not_run_again():
    state, actions = step(at(0, SEQUENTIAL, llr=UPPER + 1, sprt_settled=True), window(answered=1000, errors=900, values=GOOD))
    assert state.llr == UPPER + 1 and verdict(actions) is Verdict.PASS


def test_the_sequential_test_goes_before_the_gates():
    plan = dataclasses.replace(SEQUENTIAL, min_requests=0)
    _, actions = step(at(0, plan, llr=UPPER), window(answered=10, errors=1, values=(0.5, 0.5)))  # a window that raises the ratio
    assert verdict(actions) is Verdict.ROLLBACK


# -- pauses and approvals -----------------------------------------------------------------------------
PAUSED = dataclasses.replace(PLAN, steps=(Step(10), Step(50, pause_s=180.0, pause_label="3m"), Step(100)))
MANUAL = dataclasses.replace(PLAN, steps=(Step(10), Step(50, manual=True), Step(100)))
BOTH = dataclasses.replace(PLAN, steps=(Step(10), Step(50, pause_s=180.0, pause_label="3m", manual=True), Step(100)))


def test_a_pass_before_a_paused_step_waits_then_the_pause_ends():
    state, actions = step(at(0, PAUSED), window())
    assert (state.phase, state.step) == (Phase.WAITING, 0)
    assert actions[-2:] == [Log(Milestone.WAITING, "pause of 3m before 50%"), SchedulePauseEnd(1, 180.0)]
    state, actions = step(state, PauseOver(1))
    assert (state.phase, state.step, state.paused_for) == (Phase.PROGRESSING, 1, 1) and actions == entered(1, PAUSED)


def test_a_pause_over_while_not_waiting_changes_nothing():
    state = at(1, PAUSED)
    assert step(state, PauseOver(1)) == (state, [])


def test_a_manual_step_waits_for_its_approval():
    state, actions = step(at(0, MANUAL), window())
    assert (state.phase, state.awaiting) == (Phase.WAITING, 1) and actions[-1] == Log(Milestone.WAITING, "approval before 50%")
    state, actions = step(state, Approve())
    assert (state.phase, state.step, state.approvals, state.awaiting) == (Phase.PROGRESSING, 1, 0, -1)
    assert actions == [Log(Milestone.APPROVED, ""), *entered(1, MANUAL)]


def test_an_approval_in_advance_is_kept_for_the_next_manual_step():
    state, actions = step(at(0, MANUAL), Approve())
    assert (state.phase, state.approvals, actions) == (Phase.PROGRESSING, 1, [])
    state, actions = step(state, window())
    assert (state.phase, state.step, state.approvals) == (Phase.PROGRESSING, 1, 0) and SetWeight(50) in actions


def test_a_paused_manual_step_waits_for_the_pause_then_for_the_approval():
    state, _ = step(at(0, BOTH), window())
    state, actions = step(state, PauseOver(1))
    assert (state.phase, state.awaiting) == (Phase.WAITING, 1) and actions == [Log(Milestone.WAITING, "approval before 50%")]
    state, actions = step(state, Approve())
    assert (state.phase, state.step) == (Phase.PROGRESSING, 1)


def test_an_approval_during_a_pause_lets_the_manual_step_through_when_it_ends():
    state, _ = step(at(0, BOTH), window())
    state, actions = step(state, Approve())
    assert (state.phase, state.approvals, actions) == (Phase.WAITING, 1, [])
    state, actions = step(state, PauseOver(1))
    assert (state.phase, state.step, state.approvals) == (Phase.PROGRESSING, 1, 0) and actions == entered(1, BOTH)


# -- what the phases ignore ---------------------------------------------------------------------------
@pytest.mark.parametrize("phase", [Phase.PENDING, Phase.WAITING, Phase.PROMOTED, Phase.ROLLED_BACK])
def test_an_analysis_outside_progressing_changes_nothing(phase):
    state = RolloutState(PLAN, phase=phase, step=1)
    assert step(state, window(values=(0.5, 0.5))) == (state, [])


@pytest.mark.parametrize("phase", [Phase.PROMOTED, Phase.ROLLED_BACK])
def test_an_ended_rollout_only_counts_approvals(phase):
    state = RolloutState(MANUAL, phase=phase, step=1)
    for event in (Start(), PauseOver(1), window()):
        assert step(state, event) == (state, [])
    after, actions = step(state, Approve())
    assert (after.phase, after.approvals, actions) == (phase, 1, [])


# -- purity -----------------------------------------------------------------------------------------
EVENTS = st.one_of(
    st.just(Start()), st.just(Approve()), st.integers(0, 2).map(PauseOver),
    st.builds(lambda answered, errors, ratio, p99: Analysis(answered, min(errors, answered), (ratio, p99)),
              st.integers(0, 2000), st.integers(0, 50), st.floats(0, 0.05), st.floats(0, 0.1)),
)


@given(st.sampled_from([PLAN, PAUSED, MANUAL, BOTH, SEQUENTIAL, dataclasses.replace(PLAN, failure_limit=2)]), st.lists(EVENTS, max_size=30))
def test_step_is_a_pure_function(plan, events):
    state = RolloutState(plan)
    for event in events:
        before = copy.deepcopy(state)
        first, second = step(state, event), step(state, event)
        assert first == second  # the same input, the same output
        assert state == before  # the input is not changed
        state, actions = first
        if before.ended:
            assert state.phase is before.phase and not [a for a in actions if not isinstance(a, RecordAnalysis)]


def test_the_machine_needs_no_clock_metrics_trio_or_randomness():
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, edge.engine.rollout_machine; print(' '.join(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    assert not {"trio", "numpy", "random", "edge.platform.clock", "edge.metrics", "edge.engine.topology", "actors"} & set(loaded)


def test_the_sequential_tests_check_counts_every_answer_it_has_read():
    state, _ = step(at(0, SEQUENTIAL), window(answered=150, errors=0))
    assert state.sprt_answers == 150
    state, actions = step(dataclasses.replace(state, llr=UPPER), window(answered=100, errors=1))  # one error in 100 raises the ratio
    [check] = checks(actions)
    assert check.samples == 250 and "of 250 answers" in actions[-1].why


# -- the operator: pause, resume, abort ------------------------------------------------------------
@pytest.mark.parametrize("phase", [Phase.PENDING, Phase.PROGRESSING, Phase.WAITING])
def test_a_pause_holds_any_unfinished_phase_and_resume_returns_to_it(phase):
    state = RolloutState(PAUSED, phase=phase, step=-1 if phase is Phase.PENDING else 0)  # waiting: for the 3m before 50%
    held, actions = step(state, Hold())
    assert held.phase is Phase.PAUSED and actions == [Log(Milestone.PAUSED, "by the operator")]
    resumed, actions = step(held, Resume())
    assert resumed.phase is phase and actions[0] == Log(Milestone.RESUMED, "by the operator")


def test_a_paused_rollout_ignores_its_analyses():
    held, _ = step(at(1), Hold())
    assert step(held, window(values=(0.5, 0.5))) == (held, [])


def test_resuming_a_progressing_rollout_sets_its_weight_again_and_analyses_afresh():
    """The operator may have moved the split while paused; the rollout's step weight comes back."""
    held, _ = step(at(1), Hold())
    state, actions = step(held, Resume())
    assert (state.phase, state.step) == (Phase.PROGRESSING, 1)
    assert actions == [Log(Milestone.RESUMED, "by the operator"), SetWeight(50), StartWindow(), ScheduleAnalysis(60.0)]


@pytest.mark.parametrize("final", [Phase.PROMOTED, Phase.ROLLED_BACK])
def test_a_finished_rollout_cannot_be_paused_resumed_or_aborted(final):
    state = RolloutState(PLAN, phase=final, step=2)
    for event in (Hold(), Resume(), Abort()):
        assert step(state, event) == (state, [])


def test_a_second_pause_and_a_resume_of_a_running_rollout_change_nothing():
    held, _ = step(at(1), Hold())
    assert step(held, Hold()) == (held, [])
    assert step(at(1), Resume()) == (at(1), [])


@pytest.mark.parametrize("phase", [Phase.PENDING, Phase.PROGRESSING, Phase.WAITING, Phase.PAUSED])
def test_abort_rolls_back_from_any_unfinished_phase(phase):
    state, actions = step(RolloutState(PLAN, phase=phase, step=1), Abort())
    assert state.phase is Phase.ROLLED_BACK and actions == [Rollback("aborted by the operator")]


def test_a_start_during_a_pause_starts_the_rollout_when_resumed():
    held, _ = step(RolloutState(PLAN), Hold())
    held, actions = step(held, Start())
    assert held.phase is Phase.PAUSED and actions == []
    state, actions = step(held, Resume())
    assert state.phase is Phase.PROGRESSING and state.step == 0 and SetWeight(10) in actions


def test_a_steps_pause_that_ends_during_the_operators_pause_moves_on_when_resumed():
    state, _ = step(at(0, PAUSED), window())  # waits 3m before 50%
    held, _ = step(state, Hold())
    held, actions = step(held, PauseOver(1))
    assert held.phase is Phase.PAUSED and actions == []
    state, actions = step(held, Resume())
    assert (state.phase, state.step) == (Phase.PROGRESSING, 1) and SetWeight(50) in actions


def test_a_steps_pause_not_yet_over_keeps_waiting_when_resumed():
    state, _ = step(at(0, PAUSED), window())
    held, _ = step(state, Hold())
    state, actions = step(held, Resume())
    assert state.phase is Phase.WAITING and actions == [Log(Milestone.RESUMED, "by the operator"), SetWeight(10)]
    state, actions = step(state, PauseOver(1))  # the step's own timer, as scheduled before the pause
    assert (state.phase, state.step) == (Phase.PROGRESSING, 1)


@pytest.mark.parametrize("approved", [False, True])
def test_an_approval_during_a_pause_is_used_when_resumed(approved):
    state, _ = step(at(0, MANUAL), window())  # waits for an approval before 50%
    held, _ = step(state, Hold())
    if approved:
        held, actions = step(held, Approve())
        assert held.phase is Phase.PAUSED and actions == []  # not resumed by an approval
    state, _ = step(held, Resume())
    assert (state.phase, state.step) == ((Phase.PROGRESSING, 1) if approved else (Phase.WAITING, 0))


# -- pinned by mutation testing (docs/mutation.md) -------------------------------------------------
def test_a_check_shows_a_count_whole_and_a_statistic_to_three_digits():
    """A count past 999 must not turn into "1.5e+03"; a statistic is not shown to more digits than it means."""
    assert Check("canary answers", 1500, ">=", 2000, 1500, False).shown() == "canary answers 1500 (needs >= 2000)"
    assert Check("log-likelihood ratio", 4.567891, "<", 4.553877, 1500, False).shown() == "log-likelihood ratio 4.57 of 1,500 answers (needs < 4.55)"


@pytest.mark.parametrize("limits, shown", [
    # a level under 0.1% in plain digits, exactly 0.1% as a percent, and a whole percent without ".00"
    (CompareLimits(0.05, 0.001, spending="obrien-fleming", levels=(0.0005, 0.001, 0.05)),
     "Mann-Whitney at 0.05 overall over 3 comparisons (O'Brien-Fleming: 0.0005, 0.10%, 5%)"),
    (CompareLimits(0.05, 0.001, spending="pocock", levels=(0.0294,)), "Mann-Whitney at 0.05 overall over 1 comparison (Pocock: 2.94%)"),
    (CompareLimits(0.05, 0.001, levels=(0.05, 0.05)), "Mann-Whitney at 0.05 per comparison over 2 comparisons: 0.0975 overall"),
    (CompareLimits(0.05, 0.001, levels=(0.05,)), "Mann-Whitney at 0.05 per comparison over 1 comparison: 0.05 overall"),
], ids=["obrien-fleming", "pocock-one", "per-look-two", "per-look-one"])
def test_the_comparisons_plan_is_shown_with_each_planned_level(limits, shown):
    assert limits.shown() == shown


def test_the_start_entry_names_the_comparisons_plan():
    plan = dataclasses.replace(PLAN, compare=CompareLimits(0.05, 0.001, levels=(0.05,)))
    _, actions = step(RolloutState(plan), Start())
    assert actions[0] == Log(Milestone.START, "3 steps: 10%, 50%, 100%, every 1m; Mann-Whitney at 0.05 per comparison over 1 comparison: 0.05 overall")


def test_a_manual_first_step_is_entered_on_its_approval():
    """The step waited for is index 0: an approval must not be taken for "nothing awaited"."""
    plan = dataclasses.replace(PLAN, steps=(Step(10, manual=True), Step(100)))
    state, _ = step(RolloutState(plan), Start())
    state, actions = step(state, Approve())
    assert (state.phase, state.step, state.approvals, state.awaiting) == (Phase.PROGRESSING, 0, 0, -1)
    assert actions == [Log(Milestone.APPROVED, ""), *entered(0, plan)]


def test_resuming_a_manual_first_step_without_its_approval_only_resumes():
    """Still waiting for the approval of step 0: nothing is entered, no weight is set (the canary has none yet)."""
    plan = dataclasses.replace(PLAN, steps=(Step(10, manual=True), Step(100)))
    state, _ = step(RolloutState(plan), Start())
    held, _ = step(state, Hold())
    resumed, actions = step(held, Resume())
    assert resumed == state and actions == [Log(Milestone.RESUMED, "by the operator")]


@pytest.mark.parametrize("plan, index", [(PLAN, 1), (PAUSED, 0), (MANUAL, 0)], ids=["progressing", "waiting for a pause", "waiting for an approval"])
def test_a_pause_and_a_resume_give_back_the_state_they_found(plan, index):
    state, _ = step(at(index, plan), window()) if plan is not PLAN else (at(index, plan), [])
    held, _ = step(state, Hold())
    assert step(held, Resume())[0] == state


def test_a_rollout_aborted_while_paused_stays_rolled_back_when_resumed():
    held, _ = step(at(1), Hold())
    aborted, _ = step(held, Abort())
    assert step(aborted, Resume()) == (aborted, [])


def test_a_start_missed_during_a_pause_is_used_once():
    """A second pause of the started rollout resumes it at its step, not by starting it again."""
    held, _ = step(RolloutState(PLAN), Hold())
    held, _ = step(held, Start())
    started, _ = step(held, Resume())
    held, _ = step(started, Hold())
    state, actions = step(held, Resume())
    assert state == started
    assert actions == [Log(Milestone.RESUMED, "by the operator"), SetWeight(10), StartWindow(), ScheduleAnalysis(60.0)]


@pytest.mark.parametrize("min_requests, listed", [(1, False), (2, True), (0, False)], ids=["exactly 1", "just over", "just under"])
def test_the_answers_check_is_listed_only_for_a_min_requests_above_one(min_requests, listed):
    """One answer is what any judged window has: the check says something only from two up."""
    _, actions = step(at(0, dataclasses.replace(PLAN, min_requests=min_requests)), window())
    assert [c.name for c in checks(actions)] == ["canary answers"] * listed + ["error ratio", "p99 latency"]


SPENT = dataclasses.replace(PLAN, steps=(Step(10),) * 5, failure_limit=9,
                            compare=CompareLimits(alpha=0.05, min_shift_s=0.001, spending="pocock", levels=(0.001, 0.02)))
SLOWER = Comparison(p_value=0.015, median_shift_s=0.002, samples=100)


def test_each_comparison_spends_the_next_planned_level_and_past_the_plan_none_can_fail():
    state = at(0, SPENT)
    seen = []
    for _ in range(4):
        state, actions = step(state, window(comparison=SLOWER))
        check = checks(actions)[-1]
        seen.append((state.comparisons, check.limit, check.passed, check.note))
    assert seen[:2] == [
        (1, 0.001, True, "median +2ms (fails only beyond +1ms), comparison 1 of 2"),
        (2, 0.02, False, "median +2ms (fails only beyond +1ms), comparison 2 of 2"),
    ]
    assert [s[:3] for s in seen[2:]] == [(3, 0.0, True), (4, 0.0, True)]  # exactly one past the plan, and two
    assert SPENT.compare.level(2) == 0.0 and SPENT.compare.level(1) == 0.02


@pytest.mark.parametrize("spends, window_", [
    (False, window(comparison=None)),  # nothing to compare
    (False, window(answered=0, errors=0, comparison=SLOWER)),  # no data: the comparison is not judged
    (True, window(comparison=SLOWER)),
], ids=["no comparison", "no data", "compared"])
def test_only_a_judged_comparison_spends_a_level(spends, window_):
    state, _ = step(at(0, SPENT), window_)
    assert state.comparisons == int(spends)
    _, actions = step(state, window(comparison=SLOWER))
    assert checks(actions)[-1].limit == SPENT.compare.levels[int(spends)]


def test_a_comparison_without_planned_levels_is_at_alpha_every_time():
    plan = dataclasses.replace(SPENT, compare=CompareLimits(alpha=0.02, min_shift_s=0.001))
    state = at(0, plan)
    for _ in range(3):
        state, actions = step(state, window(comparison=SLOWER))
        assert (checks(actions)[-1].limit, checks(actions)[-1].passed, checks(actions)[-1].note) == (0.02, False, "median +2ms (fails only beyond +1ms)")


@pytest.mark.parametrize("shift, sign", [(0.0, "+"), (math.nextafter(0.0, -1), "-"), (0.001, "+")], ids=["exactly zero", "just under", "just over"])
def test_a_median_shift_of_zero_is_shown_as_plus(shift, sign):
    _, actions = step(at(0, COMPARE), window(comparison=Comparison(p_value=0.5, median_shift_s=shift)))
    assert checks(actions)[-1].note.startswith(f"median {sign}")


def test_the_sequential_tests_rollback_check_carries_its_ratio_to_six_decimals_and_its_hypotheses():
    llr = UPPER + 0.123456789
    _, actions = step(at(0, SEQUENTIAL, llr=llr, sprt_answers=500), EMPTY)
    assert checks(actions) == (Check("log-likelihood ratio", round(llr, 6), "<", round(UPPER, 6), 500, False,
                                     note="sequential test of error ratio 0.100% against 1.000%"),)


def test_the_sequential_tests_settled_entry_says_where_it_settled():
    _, actions = step(at(0, SEQUENTIAL, llr=LOWER - 0.5, sprt_answers=1200), EMPTY)
    assert actions[0] == Log(Milestone.SETTLED, f"sequential test: error ratio nearer 0.100% (log-likelihood ratio {LOWER - 0.5:.2f} <= {LOWER:.2f} over 1,200 answers)")
