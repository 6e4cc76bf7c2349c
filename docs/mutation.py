"""Mutation testing of one core module with mutmut 3 (docs/mutation.md): `python docs/mutation.py MODULE`.

mutmut 3 copies the source into a `mutants/` folder beside the config and runs pytest there. It
runs in a copy of the tree in a temporary folder, so nothing it writes lands in the repo and an
edit made meanwhile does not change what is measured. Each module is run with the unit tests that
import it in-process: a test that starts a subprocess with PYTHONPATH=ROOT would run the
unmutated code. One child process (the machine has two cores, shared).

Prints mutmut's survivors and the ones docs/mutation.md lists as equivalent; exits 1 when a
survivor is not in that list.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# module -> (the tests that exercise it in-process, tests to leave out and why)
MODULES: dict[str, tuple[list[str], list[str]]] = {
    "edge/engine/rollout_machine.py": (
        ["tests/test_rollout_machine.py"],
        # checks what importing the module loads: mutmut's trampolines import mutmut itself
        ["tests/test_rollout_machine.py::test_the_machine_needs_no_clock_metrics_trio_or_randomness"],
    ),
    "edge/scenario/thresholds.py": (["tests/test_thresholds.py"], []),
    "edge/tune/decide.py": (["tests/test_decide.py", "tests/test_intervals.py"], []),
    "edge/platform/cpu.py": (["tests/test_cpu.py", "tests/test_actors.py", "tests/test_bindings.py", "tests/test_fibers.py", "tests/test_capacity.py"], []),
    "edge/live/admission.py": (["tests/test_admission.py"], []),
    "edge/tune/intervals.py": (["tests/test_intervals.py", "tests/test_decide.py"], []),
    "actors/mailbox.py": (["tests/test_mailbox.py", "tests/test_live_slots.py"], []),
    "actors/router.py": (["tests/test_router_limits.py"], []),
    "actors/environment.py": (
        ["tests/test_environment_limits.py", "tests/test_environment_faults.py", "tests/test_environment_hangups.py", "tests/test_bindings.py", "tests/test_fibers.py", "tests/test_isolates.py",
         "tests/test_live_slots.py", "tests/test_live_hops.py"],
        # a system test: the spinning worker runs in `edge serve`, a subprocess that sees no mutant
        ["tests/test_live_hops.py::test_a_bound_worker_that_spins_inline_is_stopped_at_the_chains_budget_for_its_call_only"],
    ),
}

# mutmut's names of the survivors that cannot be killed, each with why (docs/mutation.md).
EQUIVALENT: dict[str, str] = {
    "edge.engine.rollout_machine.x_step__mutmut_30": "_enter sets the phase on every path, so Start's phase=None is overwritten",
    "edge.engine.rollout_machine.x_step__mutmut_32": "the same: Start's phase=PROGRESSING is overwritten by _enter",
    "edge.engine.rollout_machine.x__resume__mutmut_32": "awaiting is -1 or step+1 (a PauseOver only comes for the step whose pause was scheduled)",
    "edge.engine.rollout_machine.x__resume__mutmut_34": "the same: with awaiting 0, step is -1 and step+1 is 0",
    "edge.engine.rollout_machine.x__resume__mutmut_35": "the same: with awaiting 0, step is -1 and step+1 is 0",
    "edge.scenario.thresholds.xǁThresholdǁ__hash____mutmut_1": "hash(None) for every threshold: sets and dicts still hold what __eq__ says, only slower",
    "edge.tune.decide.x__proportion__mutmut_13": "an assert after the bounded check: low and high are both set there, so `or` cannot fail either",
    "edge.tune.decide.x__mean_at_most__mutmut_16": "the same assert after the bounded check",
    "edge.tune.decide.x__more_to_separate__mutmut_10": "the same assert after the bounded check",
    "edge.tune.decide.x__more_to_separate__mutmut_1": "a bounded Estimate always has its point value (intervals.py sets value with low/high)",
    "edge.tune.decide.x__mean_at_most__mutmut_37": "at value == line the gap is 0 and more_for_gap gives None whichever half is taken",
    "edge.tune.decide.x__proportion__mutmut_60": "at value == line more_for_proportion gives None for above=True and False alike",
    "edge.tune.decide.x__time__mutmut_6": 'float("INF") is float("inf")',
    "edge.tune.decide.x_checks__mutmut_22": "at_least=None is falsy: the same branch as at_least=False",
    "edge.tune.decide.x_checks__mutmut_69": "promoted implies an interval, so n >= MIN_N and _too_few gives None anyway",
    "edge.platform.cpu.xǁCpuAccountǁcharge__mutmut_12": "used never passes limit (each charge is capped at what is left), so left <= 0 means left == 0.0: the same 0.0",
    "edge.platform.cpu.xǁCpuAccountǁcharge__mutmut_13": "the same: at left == 0.0, left and 0.0 are one value",
    "edge.live.admission.xǁAdaptiveLimitǁ__init____mutmut_22": "the first decide() always runs _adapt (the interval end starts at -inf), which resets this before it is read",
    "edge.live.admission.xǁAdaptiveLimitǁ__init____mutmut_23": "the first decide() always runs _adapt (the interval end starts at -inf), which resets this before it is read",
    "edge.live.admission.xǁAdaptiveLimitǁ__init____mutmut_24": "the first decide() always runs _adapt (the interval end starts at -inf), which resets this before it is read",
    "edge.live.admission.xǁAdaptiveLimitǁ__init____mutmut_25": "the first decide() always runs _adapt (the interval end starts at -inf), which resets this before it is read",
    "edge.live.admission.xǁAdaptiveLimitǁ__init____mutmut_26": "the first decide() always runs _adapt (the interval end starts at -inf), which resets this before it is read",
    "edge.live.admission.xǁAdaptiveLimitǁ__init____mutmut_27": "the first decide() always runs _adapt (the interval end starts at -inf), which resets this before it is read",
    "edge.live.admission.xǁAdaptiveLimitǁ__init____mutmut_29": "the first decide() always runs _adapt (the interval end starts at -inf), which resets this before it is read",
    "edge.live.admission.xǁAdaptiveLimitǁ__init____mutmut_30": "the first decide() always runs _adapt (the interval end starts at -inf), which resets this before it is read",
    "edge.live.admission.xǁAdaptiveLimitǁ__init____mutmut_31": "the first decide() always runs _adapt (the interval end starts at -inf), which resets this before it is read",
    "edge.live.admission.xǁAdaptiveLimitǁ__init____mutmut_34": "the first decide() always runs _adapt (the interval end starts at -inf), which resets this before it is read",
    "edge.live.admission.xǁAdaptiveLimitǁ__init____mutmut_36": "the first decide() always runs _adapt (the interval end starts at -inf), which resets this before it is read",
    "edge.live.admission.xǁAdaptiveLimitǁ_adapt__mutmut_76": "None is falsy like False, and _limited is only read for its truth",
    "edge.live.admission.xǁAdaptiveLimitǁ_adapt__mutmut_9": "at least == target the scale is target/least == 1.0: the limit is unchanged either way",
    "edge.live.admission.xǁAdaptiveLimitǁ_adapt__mutmut_82": "BUG: the pace's condition is read after _interval_end moved, so it is always true (docs/mutation.md)",
    "edge.live.admission.xǁAdaptiveLimitǁ_adapt__mutmut_83": "BUG: the same always-true condition",
    "edge.live.admission.xǁAdaptiveLimitǁ_adapt__mutmut_85": "BUG: the same condition's else branch is never taken",
    "edge.live.admission.xǁAdaptiveLimitǁdecide__mutmut_14": "the stale branch returned SHED already for in_flight >= limit: here in_flight < limit always",
    "edge.live.admission.xǁAdaptiveLimitǁdecide__mutmut_15": "the same: in_flight < limit always holds there",
    "edge.live.admission.xǁAdaptiveLimitǁdecide__mutmut_17": "a delay equal to the least so far sets the least to the same value",
    "edge.tune.intervals.x__betting__mutmut_102": "a wealth exactly at log(1/alpha) on a grid point: no sample found that lands on it",
    "edge.tune.intervals.x_bounded_mean__mutmut_11": "a zero span maps any interval to the bound itself: the same Estimate(m, low, low, n)",
    "edge.tune.intervals.x_bounded_mean__mutmut_31": "values are floats: asarray gives float64 with or without dtype",
    "edge.tune.intervals.x_bounded_mean__mutmut_33": "the same",
    "edge.tune.intervals.x_mean__mutmut_37": "values are floats: asarray gives float64 with or without dtype",
    "edge.tune.intervals.x_mean__mutmut_39": "the same",
    "edge.tune.intervals.x_mean__mutmut_33": "scipy's bootstrap defaults to method='BCa'",
    "edge.tune.intervals.x_mean__mutmut_41": "scipy's bootstrap takes the method's name in any case",
    "edge.tune.intervals.x_mean__mutmut_42": "the same",
    "edge.tune.intervals.x_more_for_proportion__mutmut_6": "the early return only skips a search that finds nothing up to _FAR on or past the limit: None either way",
    "edge.tune.intervals.x_more_for_proportion__mutmut_8": "the same, for p exactly at the limit",
    "edge.tune.intervals.x_more_for_proportion__mutmut_11": "the same, for p exactly at the limit",
    "edge.tune.intervals.x_more_for_proportion__mutmut_23": "an interval bound exactly equal to the limit: no trial count found that lands on it",
    "edge.tune.intervals.x_more_for_proportion__mutmut_24": "the same",
    "edge.tune.intervals.x_more_for_proportion__mutmut_34": "bracketing by x3 instead of x2: the bisection finds the same least count (the bound is monotone in m)",
    "edge.tune.intervals.x_more_for_proportion__mutmut_35": "only when the doubling lands exactly on 10**6 with the answer in (5e5, 1e6]: no case found",
    "edge.tune.intervals.x_mean__mutmut_48": "`or` made `and`: a degenerate BCa (NaN acceleration) makes both bounds NaN at once; no sample found with one NaN bound",
    "actors.mailbox.xǁMailboxǁpost__mutmut_3": "len(idle) == the mark sets the mark to the value it has",
    "actors.router.xǁAffinityǁpoint__mutmut_11": "header names are case-insensitive: COOKIE is cookie",
    "actors.router.xǁRetryBudgetǁ__init____mutmut_13": "the first bucket index: every bucket starts empty, so clearing from 1 instead of 0 clears nothing that holds a count",
    "actors.router.xǁRouterActorǁ__init____mutmut_11": "the router's mailbox only gets force()d answers, which no capacity refuses",
    "actors.router.xǁRouterActorǁ__init____mutmut_12": "set_weights sets the table two lines below, before anything reads it",
    "actors.router.xǁRouterActorǁ_route__mutmut_3": "a call with a method (RPC) is always built with request None (Binding._call), so the condition only restates it",
    "actors.router.xǁRouterActorǁ_settle__mutmut_27": "retries_denied holds 0 for every non-fallback environment from __init__ whenever a budget exists (the only way to a denial), so get's default is never used",
    "actors.router.xǁRouterActorǁ_settle__mutmut_29": "the same: the key is always there",
    "actors.router.xǁRouterActorǁ_settle__mutmut_30": "the same: the key is always there",
    "actors.router.xǁRouterActorǁset_weights__mutmut_16": "abs(total - 100) is a multiple of 2**-46 near 100, never exactly 1e-9",
    "actors.environment.xǁBindingǁ_redirected__mutmut_15": "a fetch call's args are never read (only an RPC method's): () or None alike",
    "actors.environment.xǁBindingǁfetch__mutmut_45": "the same: a fetch call's args are never read",
    "actors.environment.xǁBindingǁfetch__mutmut_1": "the default redirect mode: only 'manual' and 'error' are told apart, any other value follows",
    "actors.environment.xǁBindingǁfetch__mutmut_2": "the same: 'XXfollowXX' follows as 'follow' does",
    "actors.environment.xǁBindingǁfetch__mutmut_3": "the same: 'FOLLOW' follows as 'follow' does",
    "actors.environment.xǁBindingǁ_rpc__mutmut_12": "RpcError's detail defaults to its message, and every RpcFailure's detail is its message",
    "actors.environment.xǁBindingǁ_rpc__mutmut_16": "the same: detail left out is the message",
    "actors.environment.xǁEnvironmentActorǁ_failed__mutmut_47": "RpcFailure's detail defaults to its message, which _failed sets to the same text",
    "actors.environment.xǁEnvironmentActorǁ_failed__mutmut_51": "the same",
    "actors.environment.xǁEnvironmentActorǁ_fiber_slot__mutmut_2": "config None: the first call rebuilds an env identical to the one the slot just built",
    "actors.environment.xǁEnvironmentActorǁ_inject__mutmut_3": "errors 0: `0 or random() < 0` is False as `0 and ...` is",
    "actors.environment.xǁEnvironmentActorǁ_inject__mutmut_4": "`<=` differs only when random() returns exactly the error rate",
    "actors.environment.xǁEnvironmentActorǁ_post_to_fiber__mutmut_17": "_fibers is an ordered set: its values are never read",
    "actors.environment.xǁEnvironmentActorǁ_rpc__mutmut_2": "typing.cast does nothing at run time",
    "actors.environment.xǁEnvironmentActorǁ_rpc__mutmut_8": "_rpc is only called for a call with a method",
    "actors.environment.xǁEnvironmentActorǁnew_version__mutmut_11": "_config is a generation counter, only compared for inequality: -= 1 is a change too",
    "actors.environment.xǁEnvironmentActorǁnew_version__mutmut_12": "the same: += 2 is a change too",
    "actors.environment.xǁBindingǁ_call__mutmut_43": "200 or 201: the same status class, the only use of the status there",
    "actors.environment.xǁBindingǁ_call__mutmut_47": "the binding's own cache missed: metrics.histogram returns the same histogram for the same labels",
    "actors.environment.xǁBindingǁ_call__mutmut_48": "the same",
    "actors.environment.xǁBindingǁfetch__mutmut_30": "a fetch call's args are never read: () or None alike",
    "actors.environment.xǁBindingǁfetch__mutmut_31": "redirect None: only 'manual' and 'error' are told apart, None follows as 'follow' does",
    "actors.environment.xǁBindingǁfetch__mutmut_42": "header names are case-insensitive: CONTENT-LENGTH is content-length",
    "actors.environment.xǁEnvironmentActorǁrollback__mutmut_15": "the same values and bindings put back, and an extra rebuild of identical envs",
    "actors.environment.xǁEnvironmentActorǁrollback__mutmut_18": "_config is a generation counter, only compared for inequality: -= 1 is a change too",
    "actors.environment.xǁEnvironmentActorǁrollback__mutmut_19": "the same: += 2 is a change too",
    "actors.environment.xǁEnvironmentActorǁpost__mutmut_1": "__init__ rebinds post for every kind of worker: the class's own post is never called",
    "actors.environment.xǁEnvironmentActorǁ__init____mutmut_1": "keep_warm's default: the only constructor (topology.build) always passes keep_warm",
    "actors.environment.xǁEnvironmentActorǁ__init____mutmut_2": "live's default: topology.build always passes live",
    "actors.environment.xǁEnvironmentActorǁ__init____mutmut_3": "measure_cpu's default: topology.build always passes measure_cpu",
    "actors.environment.xǁEnvironmentActorǁ__init____mutmut_27": "_waiting is never read",
    "actors.environment.xǁEnvironmentActorǁ__init____mutmut_50": "down is only read for its truth: None is falsy like False",
    "actors.environment.xǁEnvironmentActorǁ__init____mutmut_55": "_config is a generation counter compared only for inequality: starting at 1 changes nothing",
    "actors.environment.xǁEnvironmentActorǁ__init____mutmut_98": "inline is only acted on through has_room_inline, which needs the nursery only a live code worker's run sets (a synthetic worker's post is SyntheticCalls', never the actor's)",
    "actors.environment.xǁEnvironmentActorǁ_serve__mutmut_7": "MeteredContext reads declared and measured only through their differences and increments: both starting at 1.0 charges the same",
    "actors.environment.xǁEnvironmentActorǁ_serve__mutmut_33": "typing.cast does nothing at run time",
    "actors.environment.xǁEnvironmentActorǁ_serve__mutmut_52": "type(None) is not Response: checked_response runs for every answer, and gives a plain Response back as it is; the type test before it only skips the call",
    "actors.environment.xǁEnvironmentActorǁfinish__mutmut_6": "200 and 201 are one status class, the only thing finish counts by",
    "actors.environment.xǁEnvironmentActorǁfinish__mutmut_11": "stats.counts(self.version) is the very list self._counts holds: the lookup only costs time",
    "actors.environment.xǁEnvironmentActorǁ_interrupted__mutmut_11": "the charge of a CPU interruption runs only if the account is not yet exceeded, and it always is: cpu.metered charges the interrupted step's own CPU, more than the budget it had left (the breach), as the interruption unwinds through it",
    "actors.environment.xǁEnvironmentActorǁ_interrupted__mutmut_12": "the same: that charge is never reached",
    "actors.environment.xǁEnvironmentActorǁ_interrupted__mutmut_13": "the same: that charge is never reached",
    "actors.environment.xǁEnvironmentActorǁ_interrupted__mutmut_14": "the same: that charge is never reached",
    "actors.environment.xǁEnvironmentActorǁ_live_slot__mutmut_2": "config None: the first call rebuilds an env identical to the one the slot just built (as _fiber_slot__mutmut_2)",
    "actors.environment.xǁEnvironmentActorǁ_live_slot__mutmut_5": "running's first value is never read: the scope only catches its own cancel, which only the call it is lent to (call.scope, set together with running) can make",
    "actors.environment.xǁEnvironmentActorǁ_live_slot__mutmut_37": "call.scope is read only by Call.cancel, and an answered call is never cancelled (LiveRuntime.fetch cancels an unanswered one, the front door's cut a waiting one, a binding caller's abort runs once while it waits)",
    "actors.environment.xǁEnvironmentActorǁserve_inline__mutmut_29": "the inline slot kept with config None: the next inline call rebuilds an env identical to the one it has",
    "actors.environment.xǁEnvironmentActorǁserve_inline__mutmut_38": "the same, on the path where the actor's run ended meanwhile",
    "actors.environment.xǁEnvironmentActorǁbegin__mutmut_11": "isolates is None exactly when cold_start is None (both set in __init__ only, never changed): `a or b` and `a and b` agree",
    "actors.environment.x_inline_target__mutmut_6": "every Post handed out (actor.post, router.post, SyntheticCalls.post) is a bound method: __self__ is always there",
}


def run(module: str, source: Path, keep: bool, show: bool) -> int:
    tests, deselected = MODULES[module]
    work = Path(tempfile.mkdtemp(prefix="edge-mutation-"))
    try:
        for part in ("edge", "actors", "tests", "scenarios"):
            shutil.copytree(source / part, work / part, ignore=shutil.ignore_patterns("__pycache__", ".hypothesis"))
        shutil.copy2(source / "pyproject.toml", work / "pyproject.toml")
        lines = ["[mutmut]", "source_paths =", "    edge", "    actors", f"only_mutate = {module}",
                 "pytest_add_cli_args_test_selection =", *(f"    {t}" for t in tests),
                 "pytest_add_cli_args =", "    -p", "    no:randomly", "    -n", "    0", *(f"    --deselect\n    {d}" for d in deselected)]
        # -n 0: in one process, as mutmut's pytest plugin needs; pyproject's addopts runs the suite on pytest-xdist.
        (work / "setup.cfg").write_text("\n".join(lines) + "\n")
        # A session of its own: a mutant of code that signals a process may signal pid 0, its whole
        # process group, which must not be this script's or its shell's. (edge/platform/aside.py is
        # not run here for that reason: such a mutant ends mutmut itself, which shares the group.)
        subprocess.run(["mutmut", "run", "--max-children", "1"], cwd=work, check=True, stdout=subprocess.DEVNULL, start_new_session=True)
        results = subprocess.run(["mutmut", "results", "--all", "true"], cwd=work, check=True, capture_output=True, text=True).stdout
        statuses = dict(line.strip().rsplit(": ", 1) for line in results.splitlines() if ": " in line)
        counts: dict[str, int] = {}
        for status in statuses.values():
            counts[status] = counts.get(status, 0) + 1
        print(module, len(statuses), "mutants:", ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
        unexplained = 0
        for name, status in sorted(statuses.items()):
            if status in ("killed", "timeout"):
                continue
            why = EQUIVALENT.get(name)
            print(f"  {status}: {name}: {why or 'NOT LISTED AS EQUIVALENT'}")
            if why is None:
                unexplained += 1
                if show:
                    print(subprocess.run(["mutmut", "show", name], cwd=work, capture_output=True, text=True).stdout)
        return 1 if unexplained else 0
    finally:
        if keep:
            print("kept", work)
        else:
            shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", choices=sorted(MODULES))
    parser.add_argument("--source", type=Path, default=ROOT, help="the tree to copy (default: this repo)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy, to look at mutants with `mutmut show`")
    parser.add_argument("--show", action="store_true", help="print the diff of each survivor not listed as equivalent")
    args = parser.parse_args()
    return run(args.module, args.source.resolve(), args.keep, args.show)


if __name__ == "__main__":
    sys.exit(main())
