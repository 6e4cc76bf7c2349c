"""Fuzzing the scenario decoder: whatever the file holds, the answer is a scenario or a ConfigError
that names the file (never a traceback from somewhere inside)."""

from __future__ import annotations

import copy
import tomllib

import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.scenario.errors import ConfigError
from edge.scenario.load import loads
from edge.engine.simulate import default_scenario_path

DEFAULT = default_scenario_path()
BASE = tomllib.loads(DEFAULT.read_text())

scalars = st.one_of(
    st.text(max_size=30), st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.sampled_from(["1ms", "-5s", "poisson(10/s)", "exp(1ms)", "200%", "app@canary", "secret:auth.SECRET_TOKEN", "", "p99 latency < 1ms"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=12)


def paths(node, prefix=()):
    """Every place in the scenario a value can be replaced or added."""
    yield prefix
    if isinstance(node, dict):
        for key, child in node.items():
            yield from paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from paths(child, (*prefix, index))


PATHS = [p for p in paths(BASE) if p]


def check(text: str) -> None:
    try:
        loads(text, file="fuzz.toml", base_dir=str(DEFAULT.parent))
    except ConfigError as exc:
        assert str(exc).startswith("fuzz.toml"), str(exc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), value=values, add=st.booleans(), key=st.text(min_size=1, max_size=10))
def test_any_value_anywhere_is_a_scenario_or_a_config_error(path, value, add, key):
    data = copy.deepcopy(BASE)
    parent = data
    for step in path[:-1]:
        parent = parent[step]
    if add and isinstance(parent[path[-1]], dict):
        parent[path[-1]][key] = value
    else:
        parent[path[-1]] = value
    try:
        text = tomli_w.dumps(data)
    except (TypeError, ValueError):  # not representable in TOML (e.g. a NaN inside an array is fine, None is not)
        return
    check(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_a_scenario_or_a_config_error(text):
    check(text)
