"""Property tests of the fetch API: whatever a worker passes in either works or raises the
documented error, never anything else (an ``AttributeError`` or ``UnicodeError`` from deep inside
would surface as a confusing 1101, or worse, in platform code after the worker is done).

Documented errors: ``TypeError`` for a header name, value, URL, method or body the platform
cannot use (``BodyUsedError`` is one), ``ValueError`` for a status outside 200..599 or a body
that is not JSON. A fixed, derandomized budget keeps CI fast and repeatable.
"""

from __future__ import annotations

import ada_url
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.platform.fetch import BodyUsedError, Headers, Request, Response

BUDGET = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

TOKEN = st.text(alphabet="!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=20)
ANYTHING = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.binary(), st.lists(st.integers(), max_size=3))
NAMES = st.one_of(TOKEN, st.text(max_size=20), ANYTHING)
VALUES = st.one_of(st.text(max_size=40), ANYTHING)
URLS = st.one_of(
    st.builds(lambda scheme, host, path: f"{scheme}://{host}{path}", st.sampled_from(["http", "https", "h2c", "1x"]),
              st.one_of(st.text(max_size=20), st.sampled_from(["[::1", "[zz]", "\u2100", "a:99999", "[::1]:8"])), st.text(max_size=20)),
    st.text(max_size=40),
    ANYTHING,
)
BODIES = st.one_of(st.none(), st.text(max_size=50), st.binary(max_size=50), st.binary(max_size=50).map(bytearray), ANYTHING)


def read(coro):
    async def run():
        return await coro

    return trio.run(run)


@BUDGET
@given(st.lists(st.tuples(NAMES, VALUES), max_size=6))
def test_headers_take_pairs_or_raise_type_error(pairs):
    try:
        headers = Headers(pairs)
    except TypeError:
        return
    for name, value in pairs:
        lowercase = name.lower()
        assert headers.has(name.upper()) and headers.has(lowercase)
        assert value.strip(" \t") in headers.get_all(name)
        assert "\r" not in headers.get(name) and "\n" not in headers.get(name)
    assert len(headers.raw()) == len(pairs)
    assert headers == headers.copy()


@BUDGET
@given(NAMES, VALUES)
def test_each_headers_method_works_or_raises_type_error(name, value):
    headers = Headers()
    for call in (lambda: headers.append(name, value), lambda: headers.set(name, value), lambda: headers.get(name),
                 lambda: headers.has(name), lambda: headers.delete(name), lambda: headers.get_all(name)):
        try:
            call()
        except TypeError:
            pass


@BUDGET
@given(URLS, st.one_of(st.none(), st.sampled_from(["GET", "post", "PATCH", "HEAD"]), NAMES), BODIES)
def test_requests_build_or_raise_type_error_and_their_urls_read_back(url, method, body):
    try:
        request = Request(url, method=method, body=body)
    except TypeError:
        return
    assert request.url == ada_url.normalize_url(url)  # the WHATWG parser's URL, as workerd's
    assert Request(request.url).url == request.url  # and normalizing it again changes nothing
    try:
        host, path, query = request.host, request.path, request.query
    except TypeError:  # a URL only its parts reveal as invalid (an unclosed "[" host)
        return
    assert host == host.lower() and path.startswith("/") and not query.startswith("?")
    clone = request.clone()
    assert read(request.bytes()) == read(clone.bytes())


@BUDGET
@given(BODIES, st.one_of(st.integers(min_value=-1000, max_value=1000), ANYTHING), st.one_of(st.none(), VALUES))
def test_responses_build_or_raise_the_documented_error(body, status, status_text):
    try:
        response = Response(body, status=status, status_text=status_text)
    except (TypeError, ValueError):
        return
    assert 200 <= response.status <= 599
    expected = b"" if body is None else body.encode() if isinstance(body, str) else bytes(body)
    assert read(response.clone().bytes()) == expected
    assert read(response.text()) == expected.decode("utf-8", "replace")
    if body is not None:
        try:
            read(response.bytes())
        except BodyUsedError:
            pass
        else:
            raise AssertionError("a body is read once")


JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1), st.floats(allow_nan=False, allow_infinity=False), st.text()),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(st.text(max_size=5), children, max_size=3)),
    max_leaves=10,
)


@BUDGET
@given(JSON)
def test_json_responses_round_trip(data):
    """Finite floats: infinities encode as ``null``, as ``JSON.stringify`` does."""
    assert read(Response.json(data).json()) == data


@BUDGET
@given(st.binary(max_size=30))
def test_reading_a_body_as_json_is_the_value_or_a_value_error(body):
    try:
        read(Response(body).json())
    except ValueError:
        pass


@BUDGET
@given(ANYTHING)
def test_response_headers_only_take_headers(value):
    response = Response("x")
    try:
        response.headers = value
    except TypeError:
        assert type(response.headers) is Headers
