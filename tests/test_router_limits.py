"""The router's limits and boundaries, through ``RouterActor`` and its helpers with real calls:
a retry budget spent exactly (and one over), a window that forgets exactly a window later,
weights that sum to 100 within rounding, a draw landing exactly on a split's edge, the fallback
retrying a >= 500 answer and nothing below it, an override header and a sticky key.

Targets are plain functions standing for environments' ``post`` (they record the calls they are
given and answer None, accepted, or a Response at once); the router's own task runs in ``trio.run``.
"""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from actors.mailbox import Call
from actors.router import Affinity, RetryBudget, RetryPolicy, RouterActor, key_point, moved_weights, split_table
from edge.metrics.recorders import RunMetrics
from edge.platform.clock import VirtualClock
from edge.platform.fetch import Request, Response


class Target:
    """An environment's ``post``: records each call, answers ``immediate`` (None: accepted)."""

    def __init__(self, immediate: Response | None = None) -> None:
        self.calls: list[Call] = []
        self.immediate = immediate

    def __call__(self, call: Call) -> Response | None:
        self.calls.append(call)
        return self.immediate


class Fixed(random.Random):
    """A draw that always lands at ``point`` on the 0-100 weight line."""

    def __init__(self, point: float) -> None:
        super().__init__(0)
        self.point = point

    def random(self) -> float:
        return self.point / 100.0


def router(weights: dict[str, float], *, targets: dict[str, Target] | None = None, retry: RetryPolicy | None = None,
           rng: random.Random | None = None, affinity: Affinity | None = None, override: str | None = None,
           clock: VirtualClock | None = None, metrics: RunMetrics | None = None) -> RouterActor:
    return RouterActor(
        service="app", targets=targets or {name: Target() for name in weights}, weights=weights, retry=retry,
        rng=rng or random.Random(1), clock=clock or VirtualClock(), metrics=metrics or RunMetrics(),
        affinity=affinity, override=override,
    )


def replies() -> tuple[list, object]:
    got: list = []
    return got, lambda call, result: got.append((call, result))


# --- the retry budget ------------------------------------------------------------------------------


def test_a_retry_budget_allows_exactly_its_floor_plus_its_ratio_and_not_one_more():
    budget = RetryBudget(ratio=0.5, min_per_second=0.3, window=10)  # floor: 3 retries per window
    for _ in range(4):
        budget.note_request(0.0)
    assert [budget.spend(0.0) for _ in range(6)] == [True] * 5 + [False]  # 3 + 0.5 x 4 = 5, exactly
    assert (budget.requests, budget.retries) == (4, 5)  # the refused one took nothing
    budget.note_request(0.0)
    assert budget.spend(0.0) is False  # 5.5 allowed now: a sixth would be over
    budget.note_request(0.0)
    assert budget.spend(0.0) is True and budget.spend(0.0) is False  # 6 allowed at 6 requests


def test_a_retry_budget_without_a_floor_allows_none_before_a_request():
    budget = RetryBudget(ratio=1.0, min_per_second=0, window=10)
    assert budget.spend(0.0) is False
    budget.note_request(0.0)
    assert budget.spend(0.0) is True and budget.spend(0.0) is False


def test_requests_and_retries_leave_the_budget_exactly_one_window_later():
    budget = RetryBudget(ratio=1.0, min_per_second=0, window=10)  # buckets of 1 s
    budget.note_request(0.5)
    budget.note_request(3.5)
    assert budget.spend(3.5) is True and budget.spend(3.5) is True and budget.spend(3.5) is False
    assert budget.spend(9.99) is False  # both requests still in the window
    budget.note_request(10.0)  # the bucket of 0.5 is reused: its request and retries leave
    assert (budget.requests, budget.retries) == (2, 2)
    assert budget.spend(10.0) is False  # 2 retries at 2 requests: none left
    budget.note_request(13.2)  # the bucket of 3.5 leaves: with its two retries
    assert (budget.requests, budget.retries) == (2, 0)
    assert budget.spend(13.2) is True


def test_a_budget_idle_for_longer_than_its_window_forgets_everything():
    budget = RetryBudget(ratio=1.0, min_per_second=0, window=10)
    for at in (0.0, 4.0, 9.0):
        budget.note_request(at)
        assert budget.spend(at)
    budget.note_request(95.0)  # nine windows later: every bucket emptied once, none twice
    assert (budget.requests, budget.retries) == (1, 0)
    assert budget.spend(95.0) is True and budget.spend(95.0) is False


def test_exactly_a_window_later_the_oldest_bucket_leaves_and_the_next_stays():
    budget = RetryBudget(ratio=1.0, min_per_second=0, window=20)  # ten buckets of 2 s
    budget.note_request(1.0)  # bucket 0, twice
    budget.note_request(1.5)
    budget.note_request(3.0)  # bucket 1
    budget.note_request(19.9)  # bucket 9: all four in the window
    assert budget.requests == 4
    budget.note_request(20.0)  # bucket 10 reuses bucket 0's place: only its two requests leave
    assert budget.requests == 3
    budget.note_request(23.9)  # bucket 11: bucket 1 leaves
    assert budget.requests == 3
    assert [budget.spend(24.0) for _ in range(4)] == [True, True, True, False]


# --- weights and the split -----------------------------------------------------------------------


def test_a_draw_exactly_on_a_split_edge_goes_to_the_next_environment():
    table = split_table({"production": 90.0, "off": 0.0, "canary": 10.0})
    assert table == [(90.0, "production"), (100.0, "canary")]  # no weight: not in the split
    assert router({"production": 90.0, "canary": 10.0}, rng=Fixed(89.999))._choose(None) == "production"
    assert router({"production": 90.0, "canary": 10.0}, rng=Fixed(90.0))._choose(None) == "canary"
    assert router({"production": 90.0, "canary": 10.0}, rng=Fixed(0.0))._choose(None) == "production"


def test_a_weight_under_1_percent_is_in_the_split_and_kept_in_proportion():
    assert split_table({"production": 99.5, "canary": 0.5}) == [(99.5, "production"), (100.0, "canary")]
    assert router({"production": 99.5, "canary": 0.5}, rng=Fixed(99.6))._choose(None) == "canary"
    moved = moved_weights({"production": 99.5, "canary": 0.3, "beta": 0.2}, "production", 90.0)
    assert moved == pytest.approx({"production": 90.0, "canary": 6.0, "beta": 4.0})  # 0.5 held: shared 3:2


def test_a_draw_past_a_sum_short_of_100_goes_to_the_last_environment():
    # Three thirds sum to 100 within 1e-9 but their cumulative may fall short: the last takes the rest.
    thirds = router({"a": 100 / 3, "b": 100 / 3, "c": 100 / 3}, rng=Fixed(99.9999999999))
    assert thirds._choose(None) == "c"
    assert router({"a": 50.0, "b": 50.0}, rng=Fixed(100.0))._choose(None) == "b"
    short = router({"a": 50.0, "b": 25.0, "c": 25.0 - 1e-10}, rng=Fixed(99.99999999995))  # sums to 99.9999999999
    assert short._choose(None) == "c"


def test_weights_must_sum_to_100_within_rounding_and_none_may_be_negative():
    r = router({"production": 100.0, "canary": 0.0})
    r.set_weights({"production": 100.0 - 1e-10, "canary": 0.0})  # rounding: accepted
    with pytest.raises(ValueError, match="sum to 100"):
        r.set_weights({"production": 99.999999, "canary": 0.0})
    with pytest.raises(ValueError, match="sum to 100"):
        r.set_weights({"production": 100.000001, "canary": 0.0})
    with pytest.raises(ValueError, match="sum to 100"):
        r.set_weights({"production": 101.0, "canary": -1.0})
    with pytest.raises(ValueError, match=r"^app has no environment 'staging' \(has: production, canary\)$"):
        r.set_weights({"production": 100.0, "staging": 0.0})
    assert r.weights == {"production": 100.0 - 1e-10, "canary": 0.0}  # refused splits changed nothing


def test_an_environment_left_out_of_the_weights_gets_none_and_the_gauge_says_so():
    metrics = RunMetrics()
    r = router({"production": 100.0}, targets={"production": Target(), "canary": Target()}, metrics=metrics)
    assert r.weights == {"production": 100.0, "canary": 0.0}
    assert metrics.canary_weights == {("app", "production"): 100.0, ("app", "canary"): 0.0}
    r.set_weight("canary", 25)
    assert metrics.canary_weights == {("app", "production"): 75.0, ("app", "canary"): 25.0}


def test_set_weight_takes_0_to_100_and_shares_the_rest_in_proportion():
    r = router({"production": 60.0, "canary": 30.0, "beta": 10.0})
    assert r.set_weight("canary", 100) == {"production": 0.0, "canary": 100.0, "beta": 0.0}
    assert r.set_weight("canary", 0) == {"production": 50.0, "canary": 0.0, "beta": 50.0}  # none held any: equal shares
    assert r.set_weight("beta", 20) == {"production": 80.0, "canary": 0.0, "beta": 20.0}
    for percent in (-0.001, 100.001):
        with pytest.raises(ValueError, match="percentage from 0 to 100"):
            r.set_weight("canary", percent)
    with pytest.raises(ValueError, match=r"^app has no environment 'staging' \(has: production, canary, beta\)$"):
        r.set_weight("staging", 10)
    assert list(moved_weights({"a": 30.0, "b": 70.0}, "b", 40.0)) == ["b", "a"]  # the one moved first


# --- affinity and override -------------------------------------------------------------------------


def test_a_sticky_key_decides_by_its_point_and_a_missing_one_draws_at_random():
    key = next(f"user-{i}" for i in range(1000) if key_point(f"user-{i}") < 20)  # a key in canary's fifth
    r = router({"canary": 20.0, "production": 80.0}, rng=Fixed(99.0), affinity=Affinity(header="x-user"))
    assert r._choose(Request("https://app.test/", headers={"x-user": key})) == "canary"
    assert r._choose(Request("https://app.test/")) == "production"  # no key: the draw (99)
    assert r._choose(None) == "production"  # an RPC call has no request: the draw


def test_a_routed_request_goes_where_its_key_puts_it_whatever_the_draw():
    key = next(f"user-{i}" for i in range(1000) if key_point(f"user-{i}") < 20)
    targets = {"canary": Target(), "production": Target()}
    r = router({"canary": 20.0, "production": 80.0}, targets=targets, rng=Fixed(99.0), affinity=Affinity(header="x-user"))
    call = Call(Request("https://app.test/", headers={"x-user": key}), None, None, 0.0)  # type: ignore[arg-type]
    assert r.post(call) is None and targets["canary"].calls == [call] and call.routed_to == "canary"


@pytest.mark.parametrize("cookie, key", [
    ("session=abc", "abc"),
    ("theme=dark; session=abc", "abc"),
    (' theme=dark ;  session = "abc" ', None),  # a space before = is part of the name
    ('theme=dark; session="abc"', "abc"),  # quotes are not part of the value
    ("xsession=1; session=abc", "abc"),  # a name that only ends with it is another cookie
    ("session; session=abc", "abc"),  # no =: not a pair
    ("theme=dark;session=XabcX", "XabcX"),  # no space after ;, and only quotes are stripped
    ("session=YWJj==", "YWJj=="),  # a value may hold = (base64 padding): the name ends at the first
    ("theme=dark", None),
    (None, None),
])
def test_a_cookie_key_is_the_named_cookies_value(cookie, key):
    affinity = Affinity(cookie="session")
    headers = {} if cookie is None else {"cookie": cookie}
    point = affinity.point(Request("https://app.test/", headers=headers))
    assert point == (None if key is None else key_point(key))


def test_an_override_pins_to_a_named_environment_even_at_weight_zero_and_refuses_an_unknown_one():
    targets = {"production": Target(), "canary": Target()}
    r = router({"production": 100.0, "canary": 0.0}, targets=targets, override="x-env")
    pinned = Call(Request("https://app.test/", headers={"x-env": "canary"}), None, None, 0.0)  # type: ignore[arg-type]
    assert r.post(pinned) is None and targets["canary"].calls == [pinned] and pinned.routed_to == "canary"
    unknown = Call(Request("https://app.test/", headers={"x-env": "staging"}), None, None, 0.0)  # type: ignore[arg-type]
    answer = r.post(unknown)
    assert answer is not None and answer.status == 400 and unknown.served_by is r  # the router answered it
    assert targets["production"].calls == [] and unknown.routed_to is None
    rpc = Call(None, None, None, 0.0, "hello")  # type: ignore[arg-type]
    assert r.post(rpc) is None and targets["production"].calls == [rpc]  # an RPC call carries no header


def test_without_an_override_setting_the_header_means_nothing():
    targets = {"production": Target(), "canary": Target()}
    r = router({"production": 100.0, "canary": 0.0}, targets=targets)
    call = Call(Request("https://app.test/", headers={"x-env": "canary"}), None, None, 0.0)  # type: ignore[arg-type]
    assert r.post(call) is None and targets["production"].calls == [call] and call.routed_to == "production"


# --- the fallback ----------------------------------------------------------------------------------


def _fallback(canary_answer: Response | None = None, budget: RetryBudget | None = None, methods=frozenset({"GET"})):
    metrics, clock = RunMetrics(), VirtualClock()
    targets = {"production": Target(), "canary": Target(canary_answer)}
    r = router({"production": 0.0, "canary": 100.0}, targets=targets, metrics=metrics, clock=clock,
               retry=RetryPolicy("production", frozenset(methods), budget))
    return r, targets, metrics


THROWN = ValueError("what the canary's worker raised")


def _settled(r: RouterActor, answers: list[tuple[Call, Response]]) -> None:
    """Run the router's task until it has settled what its mailbox holds, then deliver ``answers``
    (attempts answered by the canary) and settle those too."""

    async def main():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(r.run)
            await trio.testing.wait_all_tasks_blocked()
            for attempt, answer in answers:
                attempt.served_by, attempt.version = "canary-actor", "7"
                attempt.thrown = THROWN
                attempt.on_reply(attempt, answer)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()

    trio.run(main)


@pytest.mark.parametrize("status, retried", [(500, True), (503, True), (499, False), (200, False)])
def test_the_fallback_retries_an_answer_of_500_or_more_and_nothing_below(status, retried):
    r, targets, metrics = _fallback()
    got, reply = replies()
    original = Call(Request("https://app.test/"), "account", reply, 0.0)  # type: ignore[arg-type]
    assert r.post(original) is None and original.routed_to == "canary"
    [attempt] = targets["canary"].calls
    assert attempt is not original and attempt.request is not original.request  # a clone tries the canary
    assert attempt.account == "account" and attempt.context.original is original
    assert attempt.posted_at == r.clock.now()  # posted now, for the environment's queue wait and latency
    answer = Response("from canary", status=status)
    _settled(r, [(attempt, answer)])
    if retried:
        assert targets["production"].calls == [original] and got == []  # production answers the caller itself
        assert metrics.retries == {("app", "canary", "production"): 1}
    else:
        assert targets["production"].calls == [] and got == [(original, answer)]
        assert (original.served_by, original.version) == ("canary-actor", "7")  # who answered, for the metrics
        assert original.thrown is THROWN  # for the caller's binding to raise again
        assert metrics.retries == {}


def test_only_the_retry_methods_go_through_the_fallback():
    r, targets, _ = _fallback(methods={"GET"})
    post = Call(Request("https://app.test/", method="POST", body="x"), None, None, 0.0)  # type: ignore[arg-type]
    assert r.post(post) is None and targets["canary"].calls == [post]  # forwarded as it is: not retryable


def test_a_call_routed_to_the_fallback_itself_is_forwarded_as_it_is():
    metrics, clock = RunMetrics(), VirtualClock()
    targets = {"production": Target(), "canary": Target()}
    r = router({"production": 100.0, "canary": 0.0}, targets=targets, metrics=metrics, clock=clock,
               retry=RetryPolicy("production", frozenset({"GET"})))
    call = Call(Request("https://app.test/"), None, None, 0.0)  # type: ignore[arg-type]
    assert r.post(call) is None and targets["production"].calls == [call]


def test_an_attempt_answered_at_once_is_retried_too_and_the_fallbacks_immediate_answer_reaches_the_caller():
    shed = Response("shed", status=503)
    r, targets, metrics = _fallback(canary_answer=shed)
    refused = Response("down", status=503)
    targets["production"].immediate = refused
    got, reply = replies()
    original = Call(Request("https://app.test/"), None, reply, 0.0)  # type: ignore[arg-type]
    assert r.post(original) is None  # the caller waits: the router decides in its own task
    _settled(r, [])
    assert targets["production"].calls == [original] and got == [(original, refused)]
    assert metrics.retries == {("app", "canary", "production"): 1}


def test_a_spent_budget_leaves_the_failure_to_the_caller_and_counts_it_denied():
    budget = RetryBudget(ratio=0.0, min_per_second=0.1, window=10)  # one retry per window
    r, targets, metrics = _fallback(budget=budget)
    assert metrics.retries_denied == {("app", "canary"): 0}  # counted from the start, fallback excluded
    got, reply = replies()
    first, second = (Call(Request("https://app.test/"), None, reply, 0.0) for _ in range(2))  # type: ignore[arg-type]
    r.post(first), r.post(second)
    assert budget.requests == 2
    failed = Response("boom", status=500)
    _settled(r, [(attempt, failed) for attempt in targets["canary"].calls])
    assert targets["production"].calls == [first]  # the budget's one retry
    assert got == [(second, failed)] and second.served_by == "canary-actor"
    assert metrics.retries == {("app", "canary", "production"): 1}
    assert metrics.retries_denied == {("app", "canary"): 1}


def test_retries_and_denials_add_up_per_environment():
    budget = RetryBudget(ratio=0.0, min_per_second=0.2, window=10)  # two retries per window
    r, targets, metrics = _fallback(budget=budget)
    calls = [Call(Request("https://app.test/"), None, lambda c, a: None, 0.0) for _ in range(5)]  # type: ignore[arg-type]
    for call in calls:
        r.post(call)
    _settled(r, [(attempt, Response("boom", status=502)) for attempt in targets["canary"].calls])
    assert metrics.retries == {("app", "canary", "production"): 2}
    assert metrics.retries_denied == {("app", "canary"): 3}


def test_a_call_that_cannot_be_routed_costs_that_call_a_500_not_the_router(caplog):
    r, targets, _ = _fallback(methods={"POST"})
    request = Request("https://app.test/", method="POST", body="once")

    async def read():  # a body already read cannot be cloned for the attempt
        await request.text()

    trio.run(read)
    call = Call(request, None, None, 0.0)  # type: ignore[arg-type]
    answer = r.post(call)
    assert answer is not None and answer.status == 500 and call.served_by is r
    [record] = [rec for rec in caplog.records if rec.name == "edge.router"]
    assert record.getMessage() == "router of app failed a call" and record.exc_info is not None
    assert targets["canary"].calls == [] and targets["production"].calls == []
    ok = Call(Request("https://app.test/", method="POST", body="fresh"), None, None, 0.0)  # type: ignore[arg-type]
    assert r.post(ok) is None and len(targets["canary"].calls) == 1  # the next call is routed as usual
