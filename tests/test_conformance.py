"""Edge against workerd, Cloudflare's own runtime, as the oracle: the pairs of ``tests/conformance``.

Both runtimes start once for the module (workerd from npm at the pinned version; the tests fail,
never skip, without it) and each request of each case is sent, byte for byte, to both. See
``tests/oracle.py`` for what a case holds and how answers compare.
"""

from __future__ import annotations

import pytest

import oracle
from live import serve

CASES = oracle.cases()
EXCHANGES = [(case, exchange) for case in CASES for exchange in case.requests]


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    scenario = oracle.edge_scenario(CASES, tmp_path_factory.mktemp("conformance"))
    # No Server header, as workerd sends none (edge's default, "edge", is its own; see below).
    with oracle.workerd(CASES) as ports, serve(str(scenario), "--server-header", "") as edge:
        yield ports, edge.port


@pytest.mark.parametrize(("case", "exchange"), [pytest.param(c, e, id=f"{c.name}/{e.name}") for c, e in EXCHANGES])
def test_edge_answers_as_workerd(servers, case, exchange):
    ports, edge_port = servers
    data = exchange.data(case.name)
    theirs = oracle.view(oracle.answer(ports[case.name], data), exchange)
    ours = oracle.view(oracle.answer(edge_port, data), exchange)
    assert theirs.status, f"workerd closed without answering {data!r}"
    if exchange.differs is None:
        assert ours == theirs
        return
    declared = exchange.differs
    assert (ours.status, ours.body if declared.body is not None else None) == (declared.status, declared.body)
    assert theirs != ours, "workerd now answers as edge does: the documented difference is gone, remove it"


def test_every_case_is_well_formed():
    assert len(CASES) >= 15
    for case in CASES:
        assert case.behaviour and case.source and case.requests, case.name
        names = [exchange.name for exchange in case.requests]
        assert len(names) == len(set(names)), f"{case.name}: two requests share a name"
        for exchange in case.requests:
            assert "HOST" in exchange.raw, f"{case.name}/{exchange.name}: edge routes on the case's host"


def test_the_docs_summary_is_the_suite():
    # Regenerate with: python tests/oracle.py --write-doc
    assert oracle.documented() == oracle.summary(CASES)


def test_a_difference_must_be_sourced():
    for case, exchange in EXCHANGES:
        if exchange.differs is not None:
            assert exchange.differs.source.startswith(("D:", "S")), f"{case.name}/{exchange.name}"


@pytest.mark.parametrize(("flag", "sent"), [((), "edge"), (("--server-header", "cloudflare"), "cloudflare")])
def test_the_server_header_is_edges_unless_told_otherwise(tmp_path, flag, sent):
    case = next(case for case in CASES if case.name == "text")
    with serve(str(oracle.edge_scenario([case], tmp_path)), *flag) as edge:
        answer = oracle.answer(edge.port, case.requests[0].data(case.name))
    assert answer.status == 200 and answer.headers["server"] == sent
