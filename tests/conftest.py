"""Shared helpers: build a scenario from TOML text (plus worker sources) and send requests through it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import signal

import pytest

import scenario_builder
from edge.scenario.resolved import LoadedScenario
from edge.platform.fetch import Request, Response
from edge.engine.simulate import RunResult, simulate


@pytest.fixture(autouse=True)
def signal_handlers_restored():
    """A test that leaves a signal handler behind changes every later test in its worker process,
    and every process it forks: ``edge.cli.main`` called in-process once left its SIGTERM handler,
    and a pool's forked children then answered SIGTERM with KeyboardInterrupt."""
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    after = {signum: signal.getsignal(signum) for signum in before}
    changed = [signal.Signals(signum).name for signum in before if after[signum] != before[signum]]
    for signum in before:
        signal.signal(signum, before[signum])
    assert not changed, f"the test left its own handler for {', '.join(changed)}"


class Sent:
    """Requests sent at given model times, and the responses they got."""

    def __init__(self) -> None:
        self.responses: list[tuple[int, Response, float]] = []  # (index, response, latency)

    def by_index(self) -> list[Response]:
        return [r for _, r, _ in sorted(self.responses, key=lambda item: item[0])]


@pytest.fixture
def make_scenario(tmp_path: Path) -> Callable[..., LoadedScenario]:
    """``scenario_builder.load`` into the test's folder: TOML text (a literal, or composed by
    ``scenario_builder.compose``) and the workers it names."""

    def make(toml: str, workers: dict[str, str] | None = None) -> LoadedScenario:
        return scenario_builder.load(tmp_path, toml, workers)

    return make


def send(
    loaded: LoadedScenario,
    requests: list[Request | tuple[float, Request]],
    *,
    seed: int = 1,
    duration: float = 0.0,
    setup: Callable[..., Any] | None = None,
) -> tuple[list[Response], RunResult]:
    """Submit ``requests`` (at time 0, or at (time, request)) and run until all are answered."""
    sent = Sent()

    def start(topology, front, clock) -> None:
        if setup is not None:
            setup(topology, front, clock)
        for index, item in enumerate(requests):
            at, request = item if isinstance(item, tuple) else (0.0, item)

            def fire(index: int = index, request: Request = request, at: float = at) -> None:
                front.submit(request, at, lambda response: sent.responses.append((index, response, clock.now() - at)))

            clock.call_later(at, fire)

    last = max((item[0] for item in requests if isinstance(item, tuple)), default=0.0)
    result = simulate(loaded, seed=seed, duration=max(duration, last), setup=start)
    assert len(sent.responses) == len(requests), "every request must be answered"
    return sent.by_index(), result


def text(response: Response) -> str:
    """A response body as text, read synchronously (bodies are bytes in memory)."""
    import trio

    async def read() -> str:
        return await response.clone().text()

    return trio.run(read)


# --- tiers (tests/tiers.py) -----------------------------------------------------------------------

_TIER = pytest.StashKey[tuple[str, str]]()
_REFUSED = pytest.StashKey[list[str]]()


@pytest.hookimpl(tryfirst=True)  # before -m deselects: `pytest -m unit` selects on these markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import tiers

    system, integration = tiers.system_objects(), tiers.integration_objects()
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        tier, why = tiers.classify(item, system, integration)
        item.stash[_TIER] = (tier, why)
        if tier in tiers.TIERS:  # a slow test stays in the slow tier alone: `pytest -m system` is not 10 minutes
            item.add_marker(getattr(pytest.mark, tier))


def _guarded(item: pytest.Item):
    """Runs a phase of ``item`` under its tier's guard (setup and call: fixtures that start servers
    count as the test's own doing)."""
    import tiers

    tier, _ = item.stash.get(_TIER, ("system", ""))
    with tiers.guard(tier) as refused:
        yield
    item.stash.setdefault(_REFUSED, []).extend(refused)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    yield from _guarded(item)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    yield from _guarded(item)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A test that caught the guard's refusal and went on still fails, with the refusal."""
    outcome = yield
    report = outcome.get_result()
    refused = item.stash.get(_REFUSED, [])
    if refused and report.when == "call" and report.passed:
        tier, why = item.stash[_TIER]
        report.outcome = "failed"
        report.longrepr = "\n".join(refused) + f"\n(its tier: {tier}, as it {why})"
