"""Per-run state: two simulations in one process, at once, each as it would be alone."""

from __future__ import annotations

import argparse
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec
import pytest
import trio

from edge import cli
from edge.engine.simulate import simulate
from edge.platform import redact, runs, trio_internals
from edge.report.build import build_report, write_json
from edge.scenario import load as scenario_load
from edge.scenario.resolved import LoadedScenario
from edge.scenario.values import enc_hook
from scenario_builder import compose, load, service, traffic

def run_toml(name: str, *, secret: str, seed: int, rate: int, duration: str) -> str:
    """NAME's front calls NAME-back, which holds the run's secret; one request in ten fails."""
    front = service(name, routes=[f"{name}.example.com/*"], worker="front.py", bindings={"BACK": f"{name}-back"})
    back = service(f"{name}-back", routes=None, worker="back.py", concurrency=4, secrets={"KEY": secret})
    users = traffic(f"poisson({rate}/s)", name="users", requests=[
        {"weight": 9, "url": f"https://{name}.example.com/"}, {"weight": 1, "url": f"https://{name}.example.com/fail"},
    ])
    return compose(front, back, traffic=[users], name=name, duration=duration, seed=seed, cores=4)

FRONT = """
async def fetch(request, env, ctx):
    await ctx.cpu("200us")
    return await env.BACK.fetch(request)
"""

BACK = """
import logging

from edge.platform.fetch import Response

failed = []

async def fetch(request, env, ctx):
    await ctx.cpu("300us")
    await ctx.sleep("2ms")
    if request.path == "/fail":
        if not failed:
            logging.getLogger("worker").warning("about to fail with %s", env.KEY)
        failed.append(request)
        raise RuntimeError("refused by " + env.KEY)
    return Response("ok")
"""

RUNS = {
    "alpha": {"secret": "alpha-secret-7f3e", "seed": 3, "rate": 700, "duration": "6s"},
    "beta": {"secret": "beta-secret-91ac", "seed": 8, "rate": 500, "duration": "8s"},
}


def _scenario(tmp_path: Path, name: str) -> LoadedScenario:
    return load(tmp_path / name, run_toml(name, **RUNS[name]), {"front.py": FRONT, "back.py": BACK})


def _report(loaded: LoadedScenario, path: Path, setup=None) -> bytes:
    write_json(build_report(simulate(loaded, setup=setup)), path)
    return path.read_bytes()


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[str, str]] = []  # (thread, the line as a handler would write it)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.threadName, self.format(record)))


def test_two_simulations_at_once_in_two_threads_each_report_as_alone_and_keep_their_secrets(tmp_path):
    loaded = {name: _scenario(tmp_path, name) for name in RUNS}
    alone = {name: _report(loaded[name], tmp_path / f"{name}-alone.json") for name in RUNS}

    both_built = threading.Barrier(len(RUNS), timeout=60)
    masked: dict[str, str] = {}
    every_secret = " ".join(run["secret"] for run in RUNS.values())

    def together(name: str) -> bytes:
        threading.current_thread().name = name

        def setup(topology, front, clock) -> None:
            # Both runs are built, their secrets registered, and neither has sent a request: each
            # then runs its traffic while the other does. What this run masks is its own only.
            both_built.wait()
            masked[name] = redact.redact(every_secret)

        return _report(loaded[name], tmp_path / f"{name}-together.json", setup)

    lines = _Lines()
    logging.getLogger().addHandler(lines)
    try:
        with ThreadPoolExecutor(len(RUNS)) as pool:
            together_reports = dict(zip(RUNS, pool.map(together, RUNS)))
    finally:
        logging.getLogger().removeHandler(lines)

    assert together_reports == alone  # byte for byte
    assert masked == {
        "alpha": f"{redact.MASK} {RUNS['beta']['secret']}",
        "beta": f"{RUNS['alpha']['secret']} {redact.MASK}",
    }
    for name in RUNS:
        own = [line for thread, line in lines.lines if thread == name]
        assert f"about to fail with {redact.MASK}" in own  # the worker's own log line, masked
        assert any(f"RuntimeError: refused by {redact.MASK}" in line for line in own)  # the platform's
    assert not any(run["secret"] in line for _, line in lines.lines for run in RUNS.values())


def _batch_orders(seed: int, lockstep: threading.Barrier | None = None) -> list[int]:
    order = []

    async def worker(i: int) -> None:
        for _ in range(20):
            await trio.lowlevel.checkpoint()
            if i == 0 and lockstep is not None:
                lockstep.wait()  # the other run takes its pass, and draws, before this one goes on
            order.append(i)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for i in range(6):
                nursery.start_soon(worker, i)

    with runs.new():
        trio_internals.seed_scheduler(seed)
        trio.run(main)
    return order


def test_two_trio_runs_in_lockstep_each_draw_their_own_scheduling_order():
    alone = [_batch_orders(seed) for seed in (1, 2)]
    lockstep = threading.Barrier(2, timeout=60)
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(lambda seed: _batch_orders(seed, lockstep), (1, 2)))
    assert together == alone


def test_a_traceback_that_escapes_a_run_masks_that_runs_secrets_after_it(tmp_path):
    loaded = _scenario(tmp_path, "alpha")
    secret = RUNS["alpha"]["secret"]

    def escape(topology, front, clock) -> None:
        raise LookupError(f"edge's own bug, holding {secret}")

    with pytest.raises(BaseException) as escaped:  # in the nursery's exception group
        simulate(loaded, setup=escape)
    shown = redact.format_exception(escaped.value)
    assert f"LookupError: edge's own bug, holding {redact.MASK}" in shown and secret not in shown
    assert redact.redact(secret) == secret  # the run is over: nothing of it is masked any more


def test_edge_run_flags_leave_the_loaded_scenario_as_it_was(tmp_path, monkeypatch):
    scenario = _scenario(tmp_path, "alpha").file
    real_load = scenario_load.load
    loads: list[LoadedScenario] = []

    def load(path):  # the command's own load, kept to look at after the run
        loads.append(real_load(path))
        return loads[-1]

    monkeypatch.setattr(scenario_load, "load", load)
    code = cli.main(["run", scenario, "--measure-cpu", "--duration", "1s", "--seed", "5", "--quiet", "--json", str(tmp_path / "r.json")])
    assert code == cli.EXIT_OK
    report = msgspec.json.decode((tmp_path / "r.json").read_bytes())
    assert report["measured_cpu"] is True and report["seed"] == 5 and report["duration_s"] == 1
    [loaded] = loads
    assert loaded.spec.scenario.measure_cpu is False
    assert msgspec.to_builtins(loaded, enc_hook=enc_hook) == msgspec.to_builtins(real_load(scenario), enc_hook=enc_hook)


def test_the_flags_derive_a_new_scenario_only_when_they_change_it(tmp_path):
    loaded = _scenario(tmp_path, "beta")
    assert cli._with_flags(loaded, argparse.Namespace(measure_cpu=False)) is loaded
    derived = cli._with_flags(loaded, argparse.Namespace(measure_cpu=True))
    assert derived.spec.scenario.measure_cpu and not loaded.spec.scenario.measure_cpu
    assert derived.spec.services is loaded.spec.services  # the rest is shared, not copied


def test_a_runs_worker_modules_leave_sys_modules_when_it_ends(tmp_path):
    """Each run imports a fresh copy of its worker modules; a process running hundreds (tune's
    replications) would otherwise keep every copy."""
    import sys

    worker = "from edge.platform.fetch import Response\n\nasync def fetch(request, env, ctx):\n    return Response('ok')\n"
    loaded = load(tmp_path, compose(service("app", worker="leakcheck.py"), traffic=[traffic("constant(10/s)", url="https://app.test/")],
                                    duration="1s"), {"leakcheck.py": worker})
    seen = []

    def setup(topology, front, clock):
        seen.extend(name for name in sys.modules if name.startswith("edge_worker_leakcheck_"))

    for _ in range(2):
        result = simulate(loaded, seed=1, setup=setup)
        assert result.metrics.clients.requests == 10
    assert len(seen) == 2  # one copy while each run ran
    assert not [name for name in sys.modules if name.startswith("edge_worker_leakcheck_")]
