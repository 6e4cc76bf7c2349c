"""``edge tune``: estimates against brute-force replays, the closed form against simulation, the
same answers on every executor (this process, a process pool, a local Dask cluster); the adaptive
rounds (a schedule that surely fails dropped, an early stop once decided, the budget when it
cannot decide); intervals inside [0, 1] and above 0 at their edges; the progress and the table."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

import msgspec
import pytest
from rich.cells import cell_len
from rich.text import Text

from edge.scenario.errors import ConfigError
from edge.scenario.load import load
from edge.report.build import build_report
from edge.engine.simulate import simulate
from edge.tune.budget import Budget, parse_budget
from edge.tune.intervals import bounded_mean, mean, proportion
from edge.tune.tuner import Task, replicate, tune, wald_expected_requests
from scenario_builder import canary_service, compose, traffic

SCENARIO = """
[scenario]
name = "tune-test"
duration = "{duration}"

[[services]]
name = "app"
routes = ["app.test/*"]
[services.environments.production]
model = {{ latency = "2ms", errors = {p0} }}
[services.environments.canary]
model = {{ latency = "2ms", errors = {canary_errors} }}
[services.split]
weights = {{ production = 100, canary = 0 }}
retry = {{ to = "production", methods = ["GET"] }}

[services.rollout]
{rollout}

[[traffic]]
arrivals = "poisson({rate}/s)"
requests = [{{ weight = 9, url = "https://app.test/" }}, {{ weight = 1, method = "POST", url = "https://app.test/" }}]

[tune]
bad = {{ errors = {p1} }}
replications = {replications}
{candidates}
"""

GATED = 'steps = [10, 50, 100]\ninterval = "30s"\ngates = ["error ratio < 3%"]\nmin_requests = 20\nno_data = "hold"'


SAME = 'candidates = [{ steps = [10, 50, 100], interval = "30s" }]'


def write(tmp_path, *, rollout=GATED, candidates=SAME, rate=50, p0=0.002, p1=0.025, canary_errors=None, replications=24, duration="5m"):
    path = tmp_path / "tune.toml"
    path.write_text(SCENARIO.format(
        duration=duration, p0=p0, p1=p1, canary_errors=p0 if canary_errors is None else canary_errors,
        rollout=rollout, rate=rate, replications=replications, candidates=candidates,
    ))
    return path


@pytest.mark.slow  # statistical agreement: the slow tier (pytest -m slow)
def test_estimates_agree_with_a_brute_force_replay_of_the_chosen_schedule(tmp_path):
    result = tune(load(write(tmp_path)), budget=Budget(fixed=24), executor=None)
    chosen = result.candidates[0]
    # The replay: the schedule as a plain scenario, the canary's bug written into its model, other
    # seeds, judged by `edge run`'s own report.
    (tmp_path / "bad").mkdir()
    (tmp_path / "good").mkdir()
    bad = load(write(tmp_path / "bad", canary_errors=0.025))
    good = load(write(tmp_path / "good", canary_errors=0.002))
    seeds = range(1000, 1024)
    caught = sum(build_report(simulate(bad, seed=seed)).rollouts["app"].phase == "rolled back" for seed in seeds)
    times = []
    for seed in seeds:
        rollout = build_report(simulate(good, seed=seed)).rollouts["app"]
        if rollout.phase == "promoted":
            times.append(rollout.ended_at_s)
    replayed_caught, replayed_time = proportion(caught, 24, 0.95), bounded_mean(times, 0.95, 90.0, 330.0)  # 3 steps of 30 s .. 5 min + drain
    assert _overlap(chosen.caught, replayed_caught), (chosen.caught, replayed_caught)
    assert _overlap(chosen.rollout_time_s, replayed_time) or chosen.rollout_time_s.value == replayed_time.value
    assert 0.2 < chosen.caught.value < 1.0  # a case where the estimate has something to agree about


def _overlap(a, b) -> bool:
    return a.low <= b.high and b.low <= a.high


@pytest.mark.slow  # statistical agreement: the slow tier (pytest -m slow)
def test_the_closed_form_matches_the_simulation_for_a_sequential_test(tmp_path):
    # The canary takes all the traffic at once and is judged every half second on a handful of
    # answers: the SPRT sees nearly every observation, as Wald's formula assumes. The other gates
    # hold for ever (no interval has a million answers), so only the SPRT can end the rollout.
    rollout = (
        'steps = [100]\ninterval = "500ms"\nsequential = { p0 = 0.01, p1 = 0.03, alpha = 0.01, beta = 0.05 }\n'
        'min_requests = 1000000\nno_data = "hold"'
    )
    candidates = 'candidates = [{ steps = [100], interval = "500ms" }]'
    # 400 replications (batched, a second): the mean's standard error is 3% of Wald's figure, so
    # the band below is several errors wide (with 40, one seed range fell below Wald's figure).
    loaded = load(write(tmp_path, rollout=rollout, candidates=candidates, rate=10, p0=0.01, p1=0.03, replications=400, duration="2m"))
    result = tune(loaded, budget=Budget(fixed=400), executor=None)
    assert result.engine.batched == 800
    c = result.candidates[0]
    assert c.closed_form_requests == pytest.approx(wald_expected_requests(0.01, 0.03, 0.01, 0.05)) == pytest.approx(317.6, abs=0.5)
    assert c.caught.value > 0.9
    # Wald's approximation ignores the overshoot of the boundary (an error moves the statistic by
    # ln 3, a quarter of the way), and the test sees five answers at a time: the simulated mean
    # sits somewhat above it, and its interval must still reach near it.
    simulated = c.canary_requests_to_rollback
    assert c.closed_form_requests <= simulated.value <= 1.3 * c.closed_form_requests, simulated
    assert simulated.low <= 1.1 * c.closed_form_requests, simulated


def test_every_executor_gives_the_same_answer(tmp_path):
    from distributed import Client, LocalCluster

    # A 20% bug: #0 catches it every time, which 4 replications cannot show to be >= 99%, so a
    # second round runs (#1, which never catches it, is dropped after the first).
    loaded = load(write(tmp_path, candidates=TWO, replications=5, rate=20, duration="3m", p1=0.2))
    alone = tune(loaded, executor=None)
    assert alone.rounds == 2  # the rounds' sizes, not just one batch, are the same everywhere
    here = msgspec.json.encode(alone)
    with ProcessPoolExecutor(max_workers=2) as pool:
        assert msgspec.json.encode(tune(loaded, executor=pool)) == here
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        assert msgspec.json.encode(tune(loaded, executor=client.get_executor())) == here


def test_a_bad_canary_costs_fewer_errors_with_the_fallback(tmp_path):
    result = tune(load(write(tmp_path, replications=8)), budget=Budget(fixed=8), executor=None)
    c = result.candidates[0]
    assert c.errors_seen.value < c.errors_without_fallback.value  # GETs retried on production
    assert c.errors_seen.value > 0  # the POSTs are not retried
    assert 0 < c.extra_load.value < 0.05


def _edge_tune(*args, hash_seed="0"):
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "PYTHONHASHSEED": hash_seed}
    return subprocess.run([sys.executable, "-m", "edge.cli", "tune", *map(str, args)], capture_output=True, text=True, env=env, timeout=300)


def test_edge_tune_cli_writes_json_and_plot_prints_a_line_per_round_and_a_narrow_table(tmp_path):
    # stderr is a pipe here: one plain line per round instead of a bar; stdout is a pipe too, and
    # the table still fits 120 columns. A second process (another hash seed) writes the same bytes.
    path = write(tmp_path, candidates=TWO + "\n" + CLEAR_LIMITS, p1=0.2, rate=20, replications=12, duration="5m")
    done = _edge_tune(path, "--jobs", "2", "--json", tmp_path / "t.json", "--plot", tmp_path / "t.png")
    assert done.returncode == 0, done.stderr
    written = json.loads((tmp_path / "t.json").read_text())
    assert [c["schedule"] for c in written["candidates"]] == ["10/50/100 every 30s", "50/100 every 20s; gates error ratio < 50%"]
    assert {"caught", "false_rollback", "rollout_time_s", "errors_seen", "checks", "dropped", "replications"} <= set(written["candidates"][0])
    assert written["budget"] == "12 replications" and written["confidence"] == 0.95
    rounds = done.stderr.splitlines()
    assert len(rounds) == written["rounds"] >= 2, done.stderr
    assert all(line.startswith(f"edge tune: round {i}, ") for i, line in enumerate(rounds, 1)), rounds
    assert "dropped #1 (fails caught >= 80%)" in rounds[0]
    lines = done.stdout.splitlines()
    assert max(map(len, lines)) <= 120, max(lines, key=len)
    assert any("reps" in line and "verdict" in line for line in lines)
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = _edge_tune(path, "--jobs", "1", "-q", "--json", tmp_path / "again.json", hash_seed="12345")
    assert again.returncode == 0 and again.stdout == again.stderr == "", again.stderr
    assert (tmp_path / "again.json").read_bytes() == (tmp_path / "t.json").read_bytes()


TWO = 'candidates = [{ steps = [10, 50, 100], interval = "30s" }, { steps = [50, 100], interval = "20s", gates = ["error ratio < 50%"] }]'
"""A schedule that catches a 20% bug at once, and one whose gate never fires."""

CLEAR_LIMITS = 'limits = { false_rollback = "30%", caught = "80%" }'
"""Limits that a run of a few dozen replications can decide: 0/n false rollbacks is surely under
30% from n = 11 (Clopper-Pearson), n/n catches surely over 80% from n = 17."""


def test_a_schedule_that_surely_fails_is_dropped_and_the_run_stops_once_decided(tmp_path):
    from rich.console import Console

    from edge.tune.progress import TuneProgress

    slower = '{ steps = [10, 50, 100], interval = "1m" }'
    three = TWO[: TWO.rindex("]")] + ", " + slower + "]"
    loaded = load(write(tmp_path, candidates=three + "\n" + CLEAR_LIMITS, p1=0.2, rate=20, replications=60))
    terminal = io.StringIO()
    with TuneProgress(Console(file=terminal, force_terminal=True, width=120)) as progress:
        result = tune(loaded, executor=None, progress=progress)
    winner, never, slow = result.candidates
    # Round 1: three seeds each. The never-firing gate caught 0 of 3: the upper end of its
    # confidence sequence (72%) is under 80%, so it is dropped there. The slower schedule promotes
    # in 180 s every time, the winner in 90 s; a rollout time is only known to lie between the
    # schedule's shortest (its steps' intervals) and the end of the run, so the winner's interval
    # reaches below 180 s only after some rounds: the slower one runs until then, then is paused,
    # and is dropped without another replication once the winner surely passes every limit.
    assert (never.replications, never.dropped, never.dropped_after) == (3, "fails caught >= 80%", 1)
    assert (slow.replications, slow.dropped, slow.dropped_after) == (15, "slower than #0", 7)
    assert winner.replications == result.replications == 39 and result.rounds == 7
    assert result.decided and result.stopped == "decided" and result.recommended == 0
    assert result.undecided == [] and result.more_replications is None
    assert [c.status for c in winner.checks] == ["passes"] * 3
    assert winner.rollout_time_s.high < 180.0 == slow.rollout_time_s.low
    assert winner.caught.low is not None and winner.caught.low >= 0.8 > proportion(16, 16, 0.95).low
    # On a terminal: a bar with an ETA, and each round's line above it.
    shown = terminal.getvalue()
    assert "ETA" in shown and "round 7: seeds " in shown and "decided: #0" in shown


def test_a_long_fixed_run_recommends_what_the_adaptive_run_decided_with_a_third_of_the_replications(tmp_path):
    """The same example as above, replicated 60 times per schedule as a fixed run: the same
    recommendation, on 180 replications where the adaptive run needed 57 (39 + 3 + 15)."""
    slower = '{ steps = [10, 50, 100], interval = "1m" }'
    three = TWO[: TWO.rindex("]")] + ", " + slower + "]"
    loaded = load(write(tmp_path, candidates=three + "\n" + CLEAR_LIMITS, p1=0.2, rate=20, replications=60))
    adaptive = tune(loaded, executor=None)
    with ProcessPoolExecutor(max_workers=2) as pool:
        fixed = tune(loaded, budget=Budget(fixed=60), executor=pool)
    spent = [sum(c.replications for c in run.candidates) for run in (adaptive, fixed)]
    assert spent == [57, 180]
    assert fixed.recommended == adaptive.recommended == 0 and adaptive.decided
    assert [c.meets_limits for c in fixed.candidates] == [True, False, True]  # the slower one meets them, later


def test_the_run_goes_to_the_budget_when_it_cannot_decide_and_says_what_is_open(tmp_path):
    # The same schedule twice: common random numbers make their replications identical, so
    # neither is ever surely faster than the other.
    twins = 'candidates = [{ steps = [10, 50, 100], interval = "30s" }, { steps = [10, 50, 100], interval = "30s" }]'
    loaded = load(write(tmp_path, candidates=twins + "\n" + CLEAR_LIMITS, p1=0.2, rate=20, replications=60))
    result = tune(loaded, budget=Budget(replications=10), executor=None)
    assert (result.replications, result.rounds, result.stopped, result.decided) == (10, 3, "budget", False)  # 4 + 4 + 2
    assert [c.replications for c in result.candidates] == [10, 10]
    assert result.recommended == 0 and result.more_replications is None
    assert "#0 rollout time < #1's: no number of replications would decide it on these estimates" in result.undecided
    # caught >= 80% is still open at 10 of 10 (lower bound 63%); the bound clears 80% at 18.
    assert "#0 caught >= 80%: about 8 more replications" in result.undecided
    assert proportion(10, 10, 0.95).low < 0.8 < proportion(18, 18, 0.95).low and proportion(17, 17, 0.95).low < 0.8


def test_a_wall_time_budget_stops_between_rounds(tmp_path):
    loaded = load(write(tmp_path, candidates=TWO + "\n" + CLEAR_LIMITS, p1=0.2, rate=20, replications=60))
    # 1 ms: less than a round takes even batched (the budget is looked at between rounds).
    result = tune(loaded, budget=parse_budget("1ms"), executor=None)
    assert (result.rounds, result.replications, result.stopped, result.budget) == (1, 4, "budget", "wall time 1ms")


@pytest.mark.parametrize(("text", "expected"), [("200", Budget(replications=200)), ("1", Budget(replications=1)),
                                                ("5m", Budget(seconds=300.0)), ("1h30m", Budget(seconds=5400.0))])
def test_budget_is_replications_or_wall_time(text, expected):
    assert parse_budget(text) == expected


@pytest.mark.parametrize(("flag", "text"), [("--budget", "0"), ("--budget", "0s"), ("--budget", "-5m"), ("--budget", "lots"),
                                          ("--budget", "200 reps"), ("--confidence", "100"), ("--confidence", "49.9"),
                                          ("--confidence", "high")])
def test_a_bad_budget_or_confidence_exits_2_naming_the_flag(flag, text):
    done = _edge_tune("scenarios/tune-canary.toml", flag, text)
    assert done.returncode == 2 and flag in done.stderr and "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize("n", [1, 2, 3, 4, 10])
def test_probability_intervals_stay_in_0_1_at_none_and_all(n):
    for k in (0, n):
        e = proportion(k, n, 0.95)
        assert e.value == k / n
        if n < 3:  # too few to say anything: no interval rather than a made-up one
            assert (e.low, e.high) == (None, None)
        else:
            assert 0 <= e.low <= e.value <= e.high <= 1
            assert (e.low == 0) if k == 0 else (e.high == 1)


def test_a_mean_of_counts_gets_an_interval_from_count_min_n_replications_within_the_data():
    assert mean([], 0.95, 0).value is None
    for values in ([7.0], [0.0, 9.0], [0.0, 0.0, 40.0] * 26 + [1.0]):  # 79: one short
        e = mean(values, 0.95, 0)
        assert e.value == pytest.approx(sum(values) / len(values), rel=1e-5) and (e.low, e.high) == (None, None)
    skewed = mean([0.0, 0.0, 40.0] * 27, 0.95, 0)  # 81
    assert 0 <= skewed.low <= skewed.value <= skewed.high <= 40
    assert mean([0.0] * 80, 0.95, 0) == mean([0.0] * 80, 0.95, 1)  # all equal: that point, no NaN
    assert mean([0.0, 1.0, 9.0, 3.0] * 20, 0.95, 7) == mean([0.0, 1.0, 9.0, 3.0] * 20, 0.95, 7)  # seeded


def test_a_bounded_mean_never_claims_certainty_and_stays_in_its_range():
    assert bounded_mean([5.0, 6.0], 0.95, 0.0, 10.0).low is None  # two: too few
    same = bounded_mean([180.0] * 3, 0.95, 180.0, 1830.0)
    assert same.low == 180.0 < 1000 < same.high <= 1830.0  # three equal values show little
    assert bounded_mean([180.0] * 80, 0.95, 180.0, 1830.0).high < same.high  # more show more
    assert bounded_mean([0.5] * 10, 0.95, 0.0, 1.0).low > 0.0  # never zero width, never the whole range either
    skewed = bounded_mean([0.0, 0.0, 40.0], 0.95, 0.0, 100.0)
    assert 0 <= skewed.low <= skewed.value <= skewed.high <= 100


def test_the_probability_interval_covers_a_known_probability_at_least_at_its_nominal_rate():
    from scipy.stats import binom

    # Exact coverage (every outcome k weighted by its probability), not a simulation of it. A
    # confidence sequence holds at every n at once, so at one n it covers more than it says.
    for p, n in ((0.05, 40), (0.3, 20), (0.9, 60), (0.99, 200), (0.5, 3)):
        coverage = sum(binom.pmf(k, n, p) for k in range(n + 1)
                       if proportion(k, n, 0.95).low <= p <= proportion(k, n, 0.95).high)
        assert coverage >= 0.95, (p, n, coverage)


def test_the_table_fits_120_columns_and_says_too_few(tmp_path):
    from rich.console import Console

    from edge.tune.table import print_table

    long = ('candidates = [{ steps = [1, 2, 3, 5, 8, 13, 21, 34, 55, 100], interval = "30s", gates = ["error ratio < 3%", '
            '"p99 latency < 500ms", "p50 latency < 400ms"], failure_limit = 3 }]')
    result = tune(load(write(tmp_path, candidates=long, rate=20, duration="3m")), budget=Budget(fixed=2), executor=None)
    out = io.StringIO()
    print_table(result, Console(file=out, width=120))
    lines = out.getvalue().splitlines()
    assert max(map(len, lines)) <= 120, max(lines, key=len)
    text = out.getvalue()
    assert "too few" in text and "±" not in text  # two replications: no interval, rather than a made-up one
    assert "#0  1/2/3/5/8/13/21/34/55/100 every 30s; gates error ratio < 3%" in text  # the long schedule, under the table
    from edge.tune.plots import write_tune_plot

    write_tune_plot(result, tmp_path / "t.png")  # points without error bars, rather than made-up ones
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def three_schedules(tmp_path, limits=CLEAR_LIMITS):
    """The winner, the gate that never fires, and the slower one: quick to run, every verdict."""
    slower = '{ steps = [10, 50, 100], interval = "1m" }'
    three = TWO[: TWO.rindex("]")] + ", " + slower + "]"
    return load(write(tmp_path, candidates=three + "\n" + limits, p1=0.2, rate=20, replications=60))


def rendered(print_function, result, width):
    from rich.console import Console

    console = Console(width=width, record=True, file=io.StringIO())
    print_function(result, console)
    return console.export_text()


def assert_whole(text, width, cells):
    """Every line within the width, nothing cropped, and every value and interval bound of the
    cells shown whole (wrapping may only part a value from its interval)."""
    lines = text.splitlines()
    assert max(map(len, lines)) <= width, max(lines, key=len)
    assert "…" not in text
    words = set(text.split())
    for cell in cells:
        for word in Text.from_markup(cell).plain.split():
            assert word in words, (word, cell)


def shown_columns(text, width, all_columns):
    """The columns a table printed, read from its "not shown" line."""
    note = re.search(rf"not shown at {width} columns: (.*?) \(a wider", " ".join(text.split()))
    return [c for c in all_columns if note is None or c not in note.group(1).split(", ")]


TUNE_COLUMNS = ["#", "reps", "bad: caught", "time to rollback", "errors seen", "good: false rollback", "rollout time", "verdict"]


@pytest.mark.parametrize("width", [80, 120])
def test_the_table_shows_every_value_whole_at_80_and_120_columns(tmp_path, width):
    from edge.tune.table import print_table, shown

    result = tune(three_schedules(tmp_path), budget=Budget(fixed=20), executor=None)
    text = rendered(print_table, result, width)
    columns = shown_columns(text, width, TUNE_COLUMNS)
    # The one column left out at 80 is one that decides nothing here (errors seen is no limit of this scenario).
    assert columns == (TUNE_COLUMNS if width == 120 else [c for c in TUNE_COLUMNS if c != "errors seen"])
    figures = {"bad: caught": lambda c: shown(c.caught, as_percent=True), "time to rollback": lambda c: shown(c.time_to_rollback_s, " s"),
               "errors seen": lambda c: shown(c.errors_seen), "good: false rollback": lambda c: shown(c.false_rollback, as_percent=True),
               "rollout time": lambda c: shown(c.rollout_time_s, " s")}
    cells = [figures[column](c) for c in result.candidates for column in columns if column in figures]
    assert any("(" in cell for cell in cells)  # intervals to keep whole
    assert_whole(text, width, cells + [c.schedule for c in result.candidates])
    assert "★ leading" in text and "leading: #0, on the estimates; not decided (fixed replications)" in " ".join(text.split())


@pytest.mark.parametrize(("limits", "order"), [
    (CLEAR_LIMITS, ["errors seen", "time to rollback", "reps", "rollout time"]),
    (CLEAR_LIMITS[:-2] + ', errors_seen = 100 }', ["time to rollback", "reps", "errors seen", "rollout time"]),
])
def test_columns_are_left_out_one_by_one_exactly_when_their_widest_words_no_longer_fit(tmp_path, limits, order):
    from edge.tune.table import print_table

    result = tune(three_schedules(tmp_path, limits), budget=Budget(fixed=20), executor=None)
    widths = {width: shown_columns(rendered(print_table, result, width), width, TUNE_COLUMNS) for width in range(44, 121)}
    full = min(width for width, columns in widths.items() if columns == TUNE_COLUMNS)
    # At the boundary the table is exactly as wide as the terminal; one column less and the least
    # important column goes (errors seen matters once it is a limit), then the next: never a value cut instead.
    assert max(map(len, rendered(print_table, result, full).splitlines())) == full
    assert widths[full - 1] == [c for c in TUNE_COLUMNS if c != order[0]]
    assert set(widths[44]) == set(TUNE_COLUMNS) - set(order)
    for width, columns in widths.items():
        left_out = set(TUNE_COLUMNS) - set(columns)
        assert left_out == set(order[: len(left_out)]), (width, left_out)
        assert_whole(rendered(print_table, result, width), width, [])


@pytest.mark.parametrize("width", [80, 120])
def test_the_progress_bar_and_round_lines_fit_the_terminal(width):
    from rich.console import Console

    from edge.tune.progress import TuneProgress

    terminal = io.StringIO()
    line = "edge tune: round 9, 38 replications; dropped #1 (fails caught >= 95%); leading #3; 4 open, about 1,169 more replications to decide"
    with TuneProgress(Console(file=terminal, force_terminal=True, width=width)) as progress:
        progress.round_started(7, {0: range(1024, 1030), 2: range(1010, 1030), 3: range(1024, 1030)}, 96)
        for _ in range(40):
            progress.simulation_done()
        progress.bar.refresh()
        progress.said(line)
    # What the terminal was sent: each redraw of the bar ends in a carriage return, each line in a newline.
    drawn = [segment for segment in re.split(r"[\r\n]", ANSI.sub("", terminal.getvalue())) if segment]
    assert max(map(cell_len, drawn)) <= width, max(drawn, key=cell_len)
    bars = [segment for segment in drawn if "ETA" in segment]
    assert bars and all(bar.startswith("round 7: seeds 1010–1029 ") and " 40/96 " in bar for bar in bars[-1:])
    said = [segment for segment in drawn if "ETA" not in segment]
    assert " ".join(" ".join(said).split()) == line  # wrapped between words, none lost or cut


def test_the_plot_says_what_the_table_says(tmp_path):
    import matplotlib.pyplot as plt

    from edge.tune.plots import tune_figure
    from edge.tune.table import print_table

    loaded = three_schedules(tmp_path)
    for result, word in ((tune(loaded, budget=Budget(fixed=4), executor=None), "leading"), (tune(loaded, executor=None), "recommended")):
        assert result.decided == (word == "recommended")
        table = " ".join(rendered(print_table, result, 120).split())
        (table_word,) = set(re.findall(r"★ (\w+)", table))
        figure = tune_figure(result)
        labels = [t.get_text() for ax in figure.axes for t in ax.texts]
        (caption,) = [t.get_text() for t in figure.texts if t.get_text() != figure.get_suptitle()]
        assert table_word == word
        assert {w for label in labels for w in re.findall(r"★ (\w+)", label)} == {table_word}
        answer = caption.splitlines()[0].removesuffix(".")
        assert answer.startswith(f"{table_word}: #0") and answer in table
        # Every point is labelled with the verdict of its row: words the table has too.
        assert {label.split(" ", 1)[0] for label in labels} == {f"#{i}" for i in range(len(result.candidates))}
        for label in labels:
            assert label.split(" ", 1)[1] in table, label
        plt.close(figure)


def test_plot_error_bars_run_to_the_interval_bounds():
    from edge.tune.plots import _bar
    from edge.tune.intervals import Estimate

    # A skewed mean: 2 errors, interval 0-9. Symmetric bars of the t interval reached below zero.
    assert _bar(Estimate(2.0, 0.0, 9.0, 5), 1.0) == [[2.0], [7.0]]
    assert _bar(Estimate(0.5, 0.2, 0.9, 5), 100.0) == [[pytest.approx(30.0)], [pytest.approx(40.0)]]
    assert _bar(Estimate(2.0, None, None, 2), 1.0) is None


@pytest.mark.parametrize(
    "tune_table, path, expected",
    [
        ('bad = { errors = "lots" }', "tune.bad.errors", "ratio"),
        ('bad = { errors = "1%" }\ncandidates = [{ steps = [50, 10] }]', "tune.candidates[0].steps[1]", "increase"),
        ('bad = { errors = "1%" }\ncandidates = [{ intervall = "1m" }]', "tune.candidates[0]", "intervall"),
        ('bad = { errors = "1%" }\nreplications = 1', "tune.replications", "at least 2"),
        ('bad = { errors = "1%" }\nservice = "db"', "tune.service", "with a rollout"),
        ('bad = { latency = "x0" }', "tune.bad.latency", '"xN" with 0 < N <= 1000'),
        ('bad = { cpu = "x1000.5" }', "tune.bad.cpu", '"xN" with 0 < N <= 1000'),
    ],
)
def test_bad_tune_tables_name_the_path(tmp_path, tune_table, path, expected):
    text = write(tmp_path).read_text()
    text = text[: text.index("[tune]")] + "[tune]\n" + tune_table + "\n"
    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(ConfigError) as raised:
        load(tmp_path / "bad.toml")
    assert path in str(raised.value) and expected in str(raised.value), str(raised.value)


def test_fixed_sample_closed_form():
    from scipy.stats import binom

    from edge.tune.tuner import fixed_sample_requests

    # 0.1% against 0.5% at 5% / 80%: checked against the exact binomial test of that size.
    n = round(fixed_sample_requests(0.001, 0.005))
    assert n == pytest.approx(775, abs=1)
    critical = int(binom.isf(0.05, n, 0.001)) + 1  # the fewest errors that reject p0 at 5%
    assert binom.sf(critical - 1, n, 0.001) <= 0.05
    assert 0.7 < binom.sf(critical - 1, n, 0.005) < 0.9  # the power the formula promised, near 80%
    assert fixed_sample_requests(0.01, 0.1) < fixed_sample_requests(0.01, 0.02)  # bigger effects need fewer


@pytest.mark.parametrize(
    "args, expected",
    [
        (["scenarios/default.toml"], "expected a [tune] table"),
        (["scenarios/tune-canary.toml", "--dask", "tcp://127.0.0.1:9", "--dask-timeout", "1s", "--replications", "2"], "cannot reach the Dask scheduler"),
    ],
)
def test_edge_tune_bad_input_exits_2(args, expected):
    _edge_tune_exits_2(args, expected)


def test_a_dask_address_that_accepts_and_never_speaks_dask_exits_2():
    # A listening socket nobody accepts from: the kernel completes the connection, and nothing is ever said.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        _edge_tune_exits_2(["scenarios/tune-canary.toml", "--dask", address, "--dask-timeout", "1s", "--replications", "2"],
                           "cannot reach the Dask scheduler")


def _edge_tune_exits_2(args, expected):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-m", "edge.cli", "tune", *args], capture_output=True, text=True, cwd=root, timeout=120)
    assert done.returncode == 2 and expected in done.stderr and "Traceback" not in done.stderr, done.stderr


def latency(bad: str, *, alpha: float = 0.01, canary: dict | None = None, **tune_fields) -> str:
    """A canary with ``bad`` latency tuned over a gate and a comparison at ``alpha``; ``canary`` is its
    table (default: production's model)."""
    app = canary_service(production={"model": {"latency": "lognormal(p50=2ms, p99=15ms)"}}, canary=canary,
                         rollout={"steps": [10, 50, 100], "interval": "30s", "min_requests": 20, "no_data": "hold"})
    candidates = [{"steps": [10, 50, 100], "interval": "30s", "gates": ["p99 latency < 50ms"]},
                  {"steps": [10, 50, 100], "interval": "30s", "compare": {"alpha": alpha}}]
    tune_table = {"bad": {"latency": bad}, "limits": {"false_rollback": "5%", "caught": "95%"}, "candidates": candidates}
    return compose(app, traffic=[traffic("poisson(50/s)")], tune=tune_table | tune_fields, name="tune-latency", duration="5m")


def test_a_latency_bug_is_caught_by_the_comparison_and_no_bug_as_often_as_a_good_canary(tmp_path):
    (tmp_path / "x3.toml").write_text(latency("x3"))
    slow = tune(load(tmp_path / "x3.toml"), budget=Budget(fixed=12), executor=None)
    gated, compared = slow.candidates
    # Three times the latency (p99 15ms -> 45ms) stays mostly under the 50ms gate; Mann-Whitney
    # sees the shift in every interval.
    assert compared.caught.value == 1.0 and compared.caught.low > 0.7
    assert gated.caught.value is not None and gated.caught.value < compared.caught.value
    assert compared.time_to_rollback_s.value == 30.0  # the first analysis
    assert compared.schedule == "10/50/100 every 30s; Mann-Whitney at 0.01 (obrien-fleming)"
    assert compared.false_rollback.value == 0.0 and compared.false_rollback.high < 0.3
    # x1 is the canary's own model: with common random numbers each "bad" replication is the good
    # one, to the request, so a bug-free canary is caught exactly as often as it is falsely rolled
    # back (here with a loose alpha, so that some are).
    loose = latency("x1", alpha=0.3)
    (tmp_path / "x1.toml").write_text(loose)
    path = str((tmp_path / "x1.toml").resolve())
    pairs = [tuple(replicate(Task(path, 1, h, seed)) for h in ("bad", "good")) for seed in range(4)]
    assert any(good.phase == "rolled back" for _, good in pairs)
    for bad, good in pairs:
        assert msgspec.structs.replace(bad, hypothesis="good") == good


def test_a_factor_needs_a_model_canary(tmp_path):
    (tmp_path / "worker.py").write_text("async def fetch(request, env, ctx):\n    return None\n")
    (tmp_path / "code.toml").write_text(latency("x2", canary={"worker": "worker.py"}))
    with pytest.raises(ConfigError) as raised:
        load(tmp_path / "code.toml")
    assert "tune.bad.latency" in str(raised.value) and "app@canary runs code" in str(raised.value), str(raised.value)
    (tmp_path / "plain.toml").write_text(latency("20ms", canary={"worker": "worker.py"}))  # a distribution is an extra wait for code
    assert load(tmp_path / "plain.toml").spec.tune.bad.latency.distribution.mean == 0.02


GRID = '\ngrid = {{ errors = ["0.5%", "2.5%", "5%", "10%"], replications = {n} }}'


def with_grid(tmp_path, grid=GRID.format(n=8), **kwargs):
    path = write(tmp_path, **kwargs)
    path.write_text(path.read_text() + grid + "\n")
    return path


def test_a_power_curve_rises_with_the_bug_and_each_point_is_a_tune_run_with_that_bug(tmp_path):
    from edge.tune.power import power

    result = power(load(with_grid(tmp_path)), executor=None)
    (curve,) = result.curves
    caught = [p.caught.value for p in curve.points]
    assert caught == sorted(caught) and caught[0] < 0.5 and caught[-1] == 1.0, caught  # the gate is "error ratio < 3%"
    assert [p.bug for p in curve.points] == ["0.5%", "2.5%", "5%", "10%"] and result.kind == "errors"
    # Common random numbers: the point "2.5%" is `edge tune` with bad = 2.5%, seed for seed (and 10% likewise).
    for index, p1 in ((1, 0.025), (3, 0.1)):
        (tmp_path / str(index)).mkdir()
        brute = tune(load(write(tmp_path / str(index), p1=p1)), budget=Budget(fixed=8), executor=None).candidates[0]
        assert curve.points[index].caught == brute.caught and curve.points[index].time_to_rollback_s == brute.time_to_rollback_s
        assert curve.false_rollback == brute.false_rollback
    target = result.target  # the default limits: caught >= 99%
    assert curve.smallest_caught == next(p.bug for p in curve.points if p.caught.value >= target)
    assert msgspec.json.encode(power(load(with_grid(tmp_path, grid=GRID.format(n=3))), executor=None)) == msgspec.json.encode(
        power(load(with_grid(tmp_path, grid=GRID.format(n=3))), executor=None))  # seeded: the same bytes


@pytest.mark.parametrize("width", [80, 120])
def test_the_power_table_and_plot_show_every_interval(tmp_path, width):
    from edge.tune.plots import power_figure
    from edge.tune.power import power
    from edge.tune.table import print_power_table, shown

    schedules = 'candidates = [{ steps = [10, 50, 100], interval = "30s" }, { steps = [50, 100], interval = "20s" }]'
    result = power(load(with_grid(tmp_path, grid=GRID.format(n=3), candidates=schedules)), executor=None)
    text = rendered(print_power_table, result, width)
    assert "not shown" not in text  # two schedules and four bugs fit 80 columns
    assert_whole(text, width, [shown(c.false_rollback, as_percent=True) for c in result.curves])
    # The plot: a bar from each interval's low to its high bound, a hollow point where there is none.
    figure = power_figure(result)
    caught_axis, time_axis = figure.axes
    for axis, estimates, scale in ((caught_axis, [p.caught for c in result.curves for p in c.points], 100.0),
                                   (time_axis, [p.time_to_rollback_s for c in result.curves for p in c.points
                                                if p.time_to_rollback_s.value is not None], 1.0)):
        bars = {(round(low, 9), round(high, 9)) for container in axis.containers if container.has_yerr
                for (_, low), (_, high) in container.lines[2][0].get_segments()}
        assert bars == {(round(e.low * scale, 9), round(e.high * scale, 9)) for e in estimates if e.low is not None}
        hollow = sum(container.lines[0].get_markerfacecolor() == "white" for container in axis.containers)
        assert hollow == sum(e.low is None for e in estimates)
    assert any(e.low is None for c in result.curves for p in c.points for e in [p.time_to_rollback_s] if e.value is not None)
    labels = caught_axis.get_legend_handles_labels()[1]
    for index, curve in enumerate(result.curves):
        assert f"#{index}: false rollback {Text.from_markup(shown(curve.false_rollback, as_percent=True)).plain}" in labels
    assert "bars: 95% intervals" in figure.get_suptitle()


def test_the_smallest_bug_caught_is_the_one_from_which_every_larger_is():
    from edge.tune.intervals import Estimate
    from edge.tune.power import PowerPoint, _smallest

    def points(*values):
        return [PowerPoint(bug=f"{i}%", size=i / 100, caught=Estimate(v, v - 0.1, v, 10), time_to_rollback_s=Estimate(None, None, None, 0))
                for i, v in enumerate(values)]

    value, low = (lambda e: e.value), (lambda e: e.low)
    assert _smallest(points(0.5, 0.95, 1.0), value, 0.95) == "1%"  # exactly at the target counts
    assert _smallest(points(0.5, 0.94, 1.0), value, 0.95) == "2%"  # just under does not
    assert _smallest(points(0.96, 0.5, 1.0), value, 0.95) == "2%"  # a dip: not from the first crossing
    assert _smallest(points(0.5, 0.9), value, 0.95) is None
    assert _smallest(points(0.5, 1.0), low, 0.95) is None  # 1.0 with low 0.9: not surely


@pytest.mark.parametrize(
    "grid, path, expected",
    [
        ('grid = { errors = ["1%"], latency = ["x2"] }', "tune.grid.errors", "exactly one of errors, latency or cpu"),
        ("grid = { replications = 5 }", "tune.grid.errors", "exactly one of errors, latency or cpu"),
        ('grid = { latency = ["x1", "5ms"] }', "tune.grid.latency[1]", 'a factor like "x1.5"'),
        ('grid = { errors = ["1%", "1%"] }', "tune.grid.errors[1]", "bugs that grow, got 1% after 1%"),
        ('grid = { cpu = ["x2", "x1.5"] }', "tune.grid.cpu[1]", "bugs that grow"),
        ('grid = { errors = ["1%", "2%"], replications = 1 }', "tune.grid.replications", "at least 2"),
    ],
)
def test_bad_grids_name_the_path(tmp_path, grid, path, expected):
    (tmp_path / "bad.toml").write_text(write(tmp_path).read_text() + grid + "\n")
    with pytest.raises(ConfigError) as raised:
        load(tmp_path / "bad.toml")
    assert path in str(raised.value) and expected in str(raised.value), str(raised.value)


def test_a_grid_of_two_growing_bugs_with_two_replications_is_accepted(tmp_path):
    (tmp_path / "ok.toml").write_text(write(tmp_path).read_text() + 'grid = { latency = ["x1", "x1.000001"], replications = 2 }\n')
    grid = load(tmp_path / "ok.toml").spec.tune.grid
    assert grid.sizes == [1.0, 1.000001] and grid.behaviour(1).latency.factor == 1.000001


def test_a_latency_grid_needs_a_model_canary(tmp_path):
    (tmp_path / "worker.py").write_text("async def fetch(request, env, ctx):\n    return None\n")
    (tmp_path / "code.toml").write_text(latency("20ms", canary={"worker": "worker.py"}, grid={"latency": ["x1", "x2"]}))
    with pytest.raises(ConfigError, match=r"tune\.grid\.latency.*runs code"):
        load(tmp_path / "code.toml")


def test_edge_tune_power_writes_the_curves(tmp_path):
    path = with_grid(tmp_path)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    run = [sys.executable, "-m", "edge.cli", "tune", str(path), "--jobs", "1"]
    done = subprocess.run([*run, "--power", str(tmp_path / "power.png"), "--json", str(tmp_path / "power.json"), "--replications", "3"],
                          capture_output=True, text=True, timeout=300, cwd=root)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "power.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curves = json.loads((tmp_path / "power.json").read_text())
    assert curves["replications"] == 3 and [p["bug"] for p in curves["curves"][0]["points"]] == ["0.5%", "2.5%", "5%", "10%"]
    assert "caught ≥ 99% from" in done.stdout
    # A line as each point is done (stderr is a pipe: whole lines, no bar), its P(caught) that of the curves.
    (curve,) = curves["curves"]
    caught = [f"{p['caught']['value']:.0%}" for p in curve["points"]]
    assert done.stderr.splitlines() == [
        "edge tune --power: 15 simulations (1 schedule(s), 4 bugs and a good canary, 3 replications each)",
        *(f"edge tune --power: bug {bug} ({i} of 4), caught: #0 {c}" for i, (bug, c) in enumerate(zip(["0.5%", "2.5%", "5%", "10%"], caught), 1)),
        f"edge tune --power: good canary, rolled back: #0 {curve['false_rollback']['value']:.0%}",
    ]
    refused = subprocess.run([*run, "--power", str(tmp_path / "p.png"), "--plot", str(tmp_path / "t.png")], capture_output=True, text=True, timeout=120, cwd=root)
    assert refused.returncode == 2 and "--plot" in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
    write(tmp_path)  # tune.toml again, without its grid
    no_grid = subprocess.run([*run, "--power", str(tmp_path / "p.png")], capture_output=True, text=True, timeout=120, cwd=root)
    assert no_grid.returncode == 2 and "tune.grid" in no_grid.stderr and "Traceback" not in no_grid.stderr, no_grid.stderr


@pytest.mark.parametrize("x, shown", [(0.0, "0%"), (0.0004999, "0%"), (0.0005, "0.1%"), (0.062, "6.2%"), (0.0999, "10.0%"), (0.1, "10%"), (0.95, "95%")])
def test_a_percent_has_one_decimal_from_005_percent_to_10_percent(x, shown):
    from edge.tune.wording import percent

    assert percent(x) == shown
