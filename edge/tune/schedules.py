"""The rollout schedules ``edge tune`` compares: the scenario's own candidates, or a grid.

A scenario's ``tune.candidates`` are decoded at load (``LoadedScenario.candidates``), each over the
tuned service's rollout. Listing none asks for this grid: step lists from cautious to brisk, each
at a short, a middling and a long interval, over the same rollout.
"""

from __future__ import annotations

import msgspec

from edge.scenario.resolved import LoadedScenario
from edge.scenario.schema import Rollout, tuned_service
from edge.scenario.values import Duration

GRID_STEPS = ([1, 5, 25, 50, 100], [5, 25, 50, 100], [10, 50, 100], [1, 10, 100])
GRID_INTERVALS = ("30s", "1m", "2m")


def candidates(loaded: LoadedScenario) -> list[Rollout]:
    if loaded.candidates:
        return loaded.candidates
    base = tuned_service(loaded.spec).rollout
    assert base is not None
    return [
        msgspec.structs.replace(base, steps=list(steps), step_weight=None, max_weight=100, interval=Duration(interval))
        for steps in GRID_STEPS
        for interval in GRID_INTERVALS
    ]
