"""The admission decisions (edge.live.admission) with a fake clock: limits at the boundary, the
limit's adaptation, the backlog's stale requests."""

from __future__ import annotations

import pytest

from edge.live.admission import ADMIT, FLOOR, SHED, STALL, WAIT, WORK_SHARE, AdaptiveLimit

TARGET, INTERVAL = 0.005, 0.1


def limiter(ceiling: int = 64) -> AdaptiveLimit:
    return AdaptiveLimit(TARGET, INTERVAL, ceiling)


def run_interval(limit: AdaptiveLimit, start: float, delays: list[float], in_flight: int = 0, work: float = INTERVAL) -> None:
    """Requests (not first on their connection) taken up within [start, start + INTERVAL), the
    admitted ones' handlers taking ``work`` seconds of it in all (by default all of it)."""
    for index, delay in enumerate(delays):
        limit.decide(start + index * INTERVAL / (2 * len(delays)), delay, in_flight, 0, first=False)
    limit.worked(work)


def test_admits_under_the_limit_and_queues_up_to_the_limit_over_it():
    limit = limiter(ceiling=8)
    assert limit.limit == 8  # starts at the ceiling
    assert limit.decide(0.0, 0.0, 7, 0, first=False) == ADMIT  # just under
    assert limit.decide(0.0, 0.0, 8, 0, first=False) == WAIT  # at
    assert limit.decide(0.0, 0.0, 9, 0, first=False) == WAIT  # over
    assert limit.decide(0.0, 0.0, 8, 7, first=False) == WAIT  # the queue just under the limit
    assert limit.decide(0.0, 0.0, 8, 8, first=False) == SHED  # at


def test_a_first_request_stale_in_the_backlog_is_shed_under_pressure():
    limit = limiter(ceiling=8)
    stale = INTERVAL + 1e-6
    assert limit.decide(0.0, INTERVAL, 8, 0, first=True) == WAIT  # waited exactly an interval
    assert limit.decide(0.0, stale, 8, 0, first=True) == SHED  # just over, the limit reached
    assert AdaptiveLimit(TARGET, INTERVAL, 8).decide(0.0, stale, 7, 1, first=True) == SHED  # others wait
    # no pressure: a one-off stall, served up to STALL intervals
    assert AdaptiveLimit(TARGET, INTERVAL, 8).decide(0.0, stale, 7, 0, first=True) == ADMIT
    assert AdaptiveLimit(TARGET, INTERVAL, 8).decide(0.0, STALL * INTERVAL, 0, 0, first=True) == ADMIT
    assert AdaptiveLimit(TARGET, INTERVAL, 8).decide(0.0, STALL * INTERVAL + 1e-6, 0, 0, first=True) == SHED
    # the limit reached earlier in this interval, or in the last one: pressure still
    assert limit.decide(0.05, stale, 0, 0, first=True) == SHED
    limit.decide(INTERVAL, 0.0, 0, 0, first=False)
    assert limit.decide(INTERVAL + 0.01, stale, 0, 0, first=True) == SHED
    limit.decide(2 * INTERVAL, 0.0, 0, 0, first=False)  # an interval without: it has passed
    assert limit.decide(2 * INTERVAL + 0.01, stale, 0, 0, first=True) == ADMIT
    # a later request of a connection: its wait is the server's lag, which the limit acts on
    assert limit.decide(0.0, 10 * INTERVAL, 0, 0, first=False) == ADMIT


def test_the_least_delay_at_the_target_keeps_the_limit_and_just_over_shrinks_it():
    limit = limiter()
    run_interval(limit, 0.0, [0.050, TARGET, 0.020])  # least exactly the target
    limit.decide(INTERVAL, 0.0, 0, 0, first=False)  # the next interval begins: the last one is judged
    assert limit.limit == 64
    limit = limiter()
    run_interval(limit, 0.0, [0.050, TARGET * 1.25, 0.020])  # least just over
    limit.decide(INTERVAL, 0.0, 0, 0, first=False)
    assert limit.limit == round(64 / 1.25)  # in proportion: target / least


def test_one_request_under_the_target_means_no_standing_queue():
    limit = limiter()
    run_interval(limit, 0.0, [0.5] * 50 + [0.001] + [0.5] * 50)  # a burst: most waited, not all
    limit.decide(INTERVAL, 0.0, 0, 0, first=False)
    assert limit.limit == 64


def test_the_limit_halves_at_most_per_interval_and_stops_at_the_floor():
    limit = limiter()
    expected = [32, 16, 8, FLOOR, FLOOR]
    for step, want in enumerate(expected):
        run_interval(limit, step * INTERVAL, [1.0, 2.0])  # 200x the target: halve, no more
        limit.decide((step + 1) * INTERVAL, 1.0, 0, 0, first=False)
        assert limit.limit == want


def intervals(limit: AdaptiveLimit, contents: list[tuple[list[float], int]], work: float = INTERVAL) -> int:
    """Consecutive intervals, each (delays, in_flight), the last one with ``work`` seconds of
    admitted work; the limit once the last one is judged."""
    for step, (delays, in_flight) in enumerate(contents):
        run_interval(limit, step * INTERVAL, delays, in_flight, work if step == len(contents) - 1 else INTERVAL)
    limit.decide(len(contents) * INTERVAL, 0.0, 0, 0, first=False)
    return limit.limit


def test_the_limit_grows_when_it_made_requests_wait_and_the_queue_kept_up():
    shrunk = [([1.0], 0), ([1.0], 0)]  # 64 -> 32 -> 16
    assert intervals(limiter(), shrunk) == 16
    assert intervals(limiter(), [*shrunk, ([0.001], 0)]) == 16  # not limited: no reason to grow
    # limited (a request waited) with the least delay half the target: doubles, no more
    assert intervals(limiter(), [*shrunk, ([TARGET / 10, TARGET / 2], 16)]) == 32
    # limited with the least delay just under the target: one more at least
    assert intervals(limiter(), [*shrunk, ([TARGET * 0.99], 16)]) == 17
    # never over the ceiling
    assert intervals(limiter(), [*shrunk, *[([0.0], 64)] * 4]) == 64


def test_the_limit_shrinks_only_while_admitted_work_takes_its_share_of_the_passes():
    """Long passes not made of admitted work (shedding, accepting, other processes on the CPU):
    a lower limit would only serve less. Exactly at the share the limit shrinks; just under it
    holds, or grows in proportion when it held requests back."""
    at = WORK_SHARE * INTERVAL
    assert intervals(limiter(), [([1.0], 0)], work=at) == 32  # at the share: halves as before
    assert intervals(limiter(), [([1.0], 0)], work=at * 0.99) == 64  # just under, none held back: holds
    shrunk = [([1.0], 0), ([1.0], 0)]  # 64 -> 32 -> 16
    assert intervals(limiter(), [*shrunk, ([1.0], 16)], work=at) == 8  # held back, at the share: shrinks
    assert intervals(limiter(), [*shrunk, ([1.0], 16)], work=at / 1.25) == 20  # held back, under: x share / work
    assert intervals(limiter(), [*shrunk, ([1.0], 16)], work=at / 10) == 32  # by 2x at most
    assert intervals(limiter(), [*shrunk, ([1.0], 16)], work=0.0) == 16  # nothing admitted ran: no signal


def test_only_the_loops_own_share_of_a_delay_counts_against_the_target():
    """On a machine shared with busy processes, part of every delay is time the loop's thread
    waited for a CPU: the least delay is scaled by the share of the time the loop ran passes that
    it was not waiting for one. Time blocked in its own worker (sleeping, blocking I/O) counts."""
    def judged(busy: float, waiting: float) -> int:
        limit = limiter()
        waited = [3.0]  # cumulative, read at each interval's end
        limit.cpu_wait = lambda: waited[0]
        limit.decide(0.0, 2 * TARGET, 0, 0, first=False)  # the first interval begins: the wait so far
        waited[0] += waiting
        run_interval(limit, 0.0, [2 * TARGET])  # twice the target, on the wall clock
        limit.ran(busy)
        limit.decide(INTERVAL, 0.0, 0, 0, first=False)
        return limit.limit

    assert judged(0.08, 0.04) == 64  # half of it waiting for a CPU: exactly the target
    assert judged(0.08, 0.036) == round(64 / 1.1)  # a little less: just over, shrinks in proportion
    assert judged(0.08, 0.0) == 32  # all of it the loop's own (running, or blocked in its own worker)
    assert judged(0.08, 0.2) == 64  # never less than nothing
    assert judged(0.0, 0.0) == 32  # no pass measured: the delay is taken as it is


def test_a_held_back_request_is_no_signal():
    """A request read once its connection's hold after a shed ended is taken up at once: its
    short delay says nothing about the loop's lag."""
    limit = limiter()
    run_interval(limit, 0.0, [1.0])
    limit.decide(0.05, 0.0, 0, 0, first=False, held=True)
    limit.decide(INTERVAL, 0.0, 0, 0, first=False)
    assert limit.limit == 32  # judged on the 1 s delay alone


def test_a_request_waits_only_if_the_queue_ahead_takes_under_half_an_interval_at_the_last_pace():
    limit = limiter(ceiling=8)
    for index in range(100):  # 100 requests given a slot in the first interval
        assert limit.decide(index * INTERVAL / 200, 0.0, 0, 0, first=False) == ADMIT
    limit.decide(INTERVAL, 0.0, 0, 0, first=False)  # judged: the pace is 100 an interval
    assert limit.decide(INTERVAL, 0.0, 8, 49, first=False) == WAIT  # 49 ahead: just under half the pace
    assert limit.decide(INTERVAL, 0.0, 8, 50, first=False) == SHED  # 50: at it
    limit.admitted()  # waiting requests given a slot count towards the pace too
    for index in range(99):
        limit.decide(INTERVAL + index * INTERVAL / 200, 0.0, 0, 0, first=False)
    limit.decide(2 * INTERVAL, 0.0, 0, 0, first=False)
    assert limit.decide(2 * INTERVAL, 0.0, 8, 50, first=False) == SHED  # 1 + 99 + 1: pace 101, half 50
    assert limit.decide(2 * INTERVAL, 0.0, 8, 49, first=False) == WAIT
    limit.decide(4 * INTERVAL, 0.0, 0, 0, first=False)  # after an idle interval the pace is forgotten
    assert limit.decide(4 * INTERVAL, 0.0, 8, 8, first=False) == SHED  # the limit's own bound again


def test_an_idle_interval_and_stale_requests_are_no_signal():
    limit = limiter()
    run_interval(limit, 0.0, [1.0])
    limit.decide(2 * INTERVAL + 0.01, 0.0, 0, 0, first=False)  # a whole interval without requests first
    assert limit.limit == 64
    limit = limiter()
    for index in range(20):  # only stale first requests, shed (the limit reached): the limit does not move
        assert limit.decide(index * INTERVAL / 4, 2.0, 64, 0, first=True) == SHED
    assert limit.limit == 64


@pytest.mark.parametrize("target, interval, ceiling", [(0.0, 0.1, 8), (-1.0, 0.1, 8), (0.1, 0.1, 8), (0.005, 0.1, 0)])
def test_bad_settings_are_refused(target, interval, ceiling):
    with pytest.raises(ValueError, match="admission needs"):
        AdaptiveLimit(target, interval, ceiling)


@pytest.mark.parametrize(("flags", "message"), [
    (["--queue-delay-target", "100ms", "--queue-delay-interval", "100ms"], "must be under --queue-delay-interval"),
    (["--max-in-flight", "0"], "expected at least 1"),
    (["--max-connections", "-1"], "expected at least 1"),
    (["--write-timeout", "0s"], "expected a positive duration"),
])
def test_serve_refuses_admission_settings_that_cannot_work(flags, message):
    """The settings are checked by the command (exit 2, one line) before anything listens."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "edge.cli", "serve", "--port", "0", "--admin-port", "0", *flags],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_serve_takes_admission_settings_just_inside_the_bounds():
    """A target just under the interval is accepted: the server starts and answers."""
    import urllib.request

    from live import serve

    with serve("--queue-delay-target", "99ms", "--queue-delay-interval", "100ms", "--max-in-flight", "1",
               "--max-connections", "1", "--write-timeout", "1ms") as served:
        with urllib.request.urlopen(served.metrics, timeout=5) as answer:
            assert answer.status == 200


# -- pinned by mutation testing (docs/mutation.md) -------------------------------------------------
@pytest.mark.parametrize("ceiling", [1, 2])
def test_a_ceiling_of_one_is_allowed_and_is_its_own_floor(ceiling):
    limit = AdaptiveLimit(TARGET, INTERVAL, ceiling)
    assert (limit.limit, limit.floor) == (ceiling, ceiling)
    assert limit.decide(0.0, 0.0, ceiling - 1, 0, first=False) == ADMIT and limit.decide(0.0, 0.0, ceiling, 0, first=False) == WAIT


def test_a_stale_first_request_is_shed_when_it_would_reach_the_limit_itself():
    stale = INTERVAL + 1e-6
    assert AdaptiveLimit(TARGET, INTERVAL, 8).decide(0.0, stale, 8, 0, first=True) == SHED  # exactly at the limit
    assert AdaptiveLimit(TARGET, INTERVAL, 8).decide(0.0, stale, 9, 0, first=True) == SHED
    assert AdaptiveLimit(TARGET, INTERVAL, 8).decide(0.0, stale, 7, 0, first=True) == ADMIT


@pytest.mark.parametrize("then, pressed", [(2 * INTERVAL, False), (2 * INTERVAL - 1e-9, True)],
                         ids=["exactly an interval later: the last interval had none", "just under"])
def test_pressure_lasts_the_interval_it_was_felt_in_and_the_next(then, pressed):
    """The limit reached in [0, I): a stale first request is shed in [I, 2I), served from 2I on."""
    limit = limiter(ceiling=8)
    limit.decide(0.0, 0.0, 8, 0, first=False)  # the limit reached
    limit.decide(INTERVAL / 2, 0.0, 0, 0, first=False)
    assert limit.decide(then, INTERVAL + 1e-6, 0, 0, first=True) == (SHED if pressed else ADMIT)


@pytest.mark.parametrize("then, judged", [(2 * INTERVAL, False), (2 * INTERVAL - 1e-9, True)],
                         ids=["exactly a whole interval idle", "just under"])
def test_an_interval_followed_by_a_whole_idle_one_is_no_signal(then, judged):
    limit = limiter()
    run_interval(limit, 0.0, [1.0])
    limit.decide(then, 0.0, 0, 0, first=False)
    assert limit.limit == (32 if judged else 64)


def test_an_interval_whose_only_requests_were_held_back_is_no_signal():
    limit = limiter()
    limit.decide(0.0, 0.0, 0, 0, first=False, held=True)
    limit.worked(INTERVAL)  # admitted work had all of its share: only the missing signal holds the limit
    limit.decide(INTERVAL, 0.0, 0, 0, first=False)
    assert limit.limit == 64


def test_a_limit_that_held_requests_back_with_no_delay_at_all_doubles_no_more():
    shrunk = [([1.0], 0), ([1.0], 0)]  # 64 -> 32 -> 16
    assert intervals(limiter(), [*shrunk, ([0.0], 16)]) == 32


def test_under_the_target_the_limit_grows_by_the_delay_whatever_share_admitted_work_took():
    """The work share stops only shrinking; a limit that held requests back while the delay was
    under the target grows by target / least even when the passes were mostly other work."""
    shrunk = [([1.0], 0), ([1.0], 0)]
    under = WORK_SHARE * INTERVAL / 1.25
    assert intervals(limiter(), [*shrunk, ([TARGET / 1.5], 16)], work=under) == 24
    assert intervals(limiter(), [*shrunk, ([TARGET], 16)], work=under) == 16  # exactly the target: holds


def test_admitted_work_adds_up_over_the_interval():
    at = WORK_SHARE * INTERVAL
    limit = limiter()
    run_interval(limit, 0.0, [1.0], work=at / 2)
    limit.worked(at / 2)  # a second request's work: the two together take the share
    limit.decide(INTERVAL, 0.0, 0, 0, first=False)
    assert limit.limit == 32


def test_passes_add_up_over_the_interval_for_the_loops_own_share():
    limit = limiter()
    waited = [3.0]
    limit.cpu_wait = lambda: waited[0]
    limit.decide(0.0, 2 * TARGET, 0, 0, first=False)
    waited[0] += 0.036
    run_interval(limit, 0.0, [2 * TARGET])
    limit.ran(0.04)
    limit.ran(0.04)  # two passes: 0.08 s ran, 0.036 of it waiting for a CPU
    limit.decide(INTERVAL, 0.0, 0, 0, first=False)
    assert limit.limit == round(64 / 1.1)


def test_with_no_pass_measured_a_delay_under_the_target_is_taken_as_it_is():
    limit = limiter()
    limit.cpu_wait = lambda: 0.0
    run_interval(limit, 0.0, [0.6 * TARGET])
    limit.decide(INTERVAL, 0.0, 0, 0, first=False)
    assert limit.limit == 64


def test_waiting_requests_given_a_slot_set_the_pace_alone():
    limit = limiter(ceiling=8)
    limit.decide(0.0, 0.0, 8, 0, first=False)  # one waits: nothing admitted by decide
    for _ in range(100):
        limit.admitted()
    limit.decide(INTERVAL, 0.0, 8, 0, first=False)  # judged: a pace of 100 an interval
    assert limit.decide(INTERVAL, 0.0, 8, 49, first=False) == WAIT
    assert limit.decide(INTERVAL, 0.0, 8, 50, first=False) == SHED


def test_after_an_idle_interval_the_pace_of_the_one_before_is_forgotten():
    """The docstring: a request waits only if those waiting would have a slot within half an
    interval at the last interval's pace. The last interval had no request at all: pace 0."""
    limit = limiter(ceiling=8)
    for index in range(100):
        limit.decide(index * INTERVAL / 200, 0.0, 0, 0, first=False)  # a pace of 100 in [0, I)
    # nothing in [I, 2I)
    assert limit.decide(2 * INTERVAL + 0.01, 0.0, 8, 49, first=False) == SHED  # the limit's own bound (8) again
