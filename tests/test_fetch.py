"""Behaviour of the fetch API objects that worker code depends on: header semantics, read-once
bodies and clone(), URL parts, and the Response factories."""

from __future__ import annotations

from http import HTTPStatus

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.platform.fetch import BodyUsedError, Headers, Request, Response

URL = "https://Example.COM:8443/items/42?q=1&r=two#frag"
NORMALIZED_URL = "https://example.com:8443/items/42?q=1&r=two#frag"  # URL as the WHATWG parser gives it


def request_body_used_message() -> str:
    # workerd's words, the same for a Request and a Response (tests/conformance/body-used-message)
    return "Body has already been used. It can only be used once. Use tee() first if you need to read it twice."


def response_body_used_message() -> str:
    return request_body_used_message()


# -- Headers ----------------------------------------------------------------------------------


def test_headers_names_are_case_insensitive() -> None:
    headers = Headers({"Content-Type": "text/html"})
    assert headers.get("content-type") == "text/html"
    assert headers.get("CONTENT-TYPE") == "text/html"
    assert headers.has("cOnTeNt-TyPe")
    assert "content-type" in headers
    assert "x-missing" not in headers
    assert headers.get("x-missing") is None
    assert headers.get_all("x-missing") == []


def test_headers_multiple_values_are_joined_by_get_and_kept_apart_by_get_all() -> None:
    headers = Headers()
    headers.append("Accept", "text/html")
    headers.append("accept", "application/json")
    assert headers.get("ACCEPT") == "text/html, application/json"
    assert headers.get_all("accept") == ["text/html", "application/json"]
    assert len(headers) == 1


def test_headers_set_replaces_every_value() -> None:
    headers = Headers([("X-A", "1"), ("x-a", "2")])
    headers.set("X-a", "3")
    assert headers.get_all("x-a") == ["3"]
    assert headers.raw() == [("X-a", "3")]


def test_headers_delete_removes_every_value_and_ignores_missing_names() -> None:
    headers = Headers([("X-A", "1"), ("x-a", "2"), ("x-b", "3")])
    headers.delete("X-A")
    assert not headers.has("x-a")
    assert headers.get("x-a") is None
    assert len(headers) == 1
    headers.delete("x-not-there")
    assert list(headers) == [("x-b", "3")]


def test_headers_constructor_accepts_dict_pairs_headers_and_none() -> None:
    from_dict = Headers({"X-One": "1", "X-Two": "2"})
    from_pairs = Headers([("x-one", "1"), ("X-TWO", "2")])
    from_generator = Headers((name, value) for name, value in [("x-one", "1"), ("x-two", "2")])
    assert from_dict == from_pairs == from_generator
    assert Headers(from_dict) == from_dict
    assert len(Headers()) == 0
    assert len(Headers(None)) == 0


def test_headers_dict_with_names_differing_only_in_case_keeps_both_values() -> None:
    headers = Headers({"X-A": "1", "x-a": "2"})
    assert headers.get_all("x-a") == ["1", "2"]


def test_headers_copy_constructor_and_copy_are_independent() -> None:
    original = Headers({"x-a": "1"})
    copied = Headers(original)
    duplicate = original.copy()
    copied.append("x-a", "2")
    duplicate.set("x-b", "3")
    original.delete("x-a")
    assert copied.get_all("x-a") == ["1", "2"]
    assert duplicate.get("x-a") == "1"
    assert duplicate.get("x-b") == "3"
    assert original.get("x-b") is None
    assert len(original) == 0


def test_headers_iterate_sorted_by_lowercase_name_with_values_combined() -> None:
    headers = Headers()
    headers.append("X-Zeta", "z")
    headers.append("Accept", "a1")
    headers.append("content-type", "text/plain")
    headers.append("ACCEPT", "a2")
    expected = [("accept", "a1, a2"), ("content-type", "text/plain"), ("x-zeta", "z")]
    assert list(headers) == expected
    assert headers.items() == expected


def test_headers_iteration_keeps_set_cookie_values_separate() -> None:
    headers = Headers()
    headers.append("Set-Cookie", "a=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT")
    headers.append("Set-Cookie", "b=2")
    assert list(headers) == [
        ("set-cookie", "a=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT"),
        ("set-cookie", "b=2"),
    ]
    assert headers.get_all("set-cookie") == ["a=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT", "b=2"]


def test_headers_raw_keeps_original_case_and_insertion_order() -> None:
    headers = Headers()
    headers.append("X-Zeta", "z")
    headers.append("Content-Type", "text/plain")
    headers.append("x-zeta", "z2")
    headers.append("ETag", '"abc"')
    assert headers.raw() == [
        ("X-Zeta", "z"),
        ("x-zeta", "z2"),
        ("Content-Type", "text/plain"),
        ("ETag", '"abc"'),
    ]


def test_headers_set_on_existing_name_keeps_its_place_in_raw() -> None:
    headers = Headers([("A", "1"), ("B", "2")])
    headers.set("a", "3")
    assert headers.raw() == [("a", "3"), ("B", "2")]


def test_headers_len_counts_distinct_names() -> None:
    headers = Headers([("a", "1"), ("A", "2"), ("b", "3")])
    assert len(headers) == 2


def test_headers_equality_ignores_name_case_and_name_order_but_not_value_order() -> None:
    assert Headers([("A", "1"), ("b", "2")]) == Headers([("B", "2"), ("a", "1")])
    assert Headers([("a", "1"), ("a", "2")]) != Headers([("a", "2"), ("a", "1")])
    assert Headers({"a": "1"}) != Headers({"a": "1", "b": "2"})
    assert Headers({"a": "1"}) != {"a": "1"}


def test_headers_strip_surrounding_spaces_and_tabs_from_values() -> None:
    headers = Headers({"x-a": " \tpadded value\t "})
    assert headers.get("x-a") == "padded value"


@pytest.mark.parametrize(
    "name", ["", "bad name", "bad:name", "caf\u00e9", "tab\tname", "x\r\ny", "(comment)", "a/b"]
)
def test_headers_reject_names_that_are_not_http_tokens(name: str) -> None:
    with pytest.raises(TypeError, match="invalid header name"):
        Headers({name: "v"})
    with pytest.raises(TypeError, match="invalid header name"):
        Headers().append(name, "v")
    with pytest.raises(TypeError, match="invalid header name"):
        Headers().get(name)


@pytest.mark.parametrize("value", ["a\rb", "a\nb", "a\r\nInjected: yes", "nul\0byte", "trailing\n"])
def test_headers_reject_values_with_cr_lf_or_nul(value: str) -> None:
    with pytest.raises(TypeError, match="CR, LF or NUL"):
        Headers({"x-a": value})
    headers = Headers()
    with pytest.raises(TypeError, match="CR, LF or NUL"):
        headers.set("x-a", value)
    with pytest.raises(TypeError, match="CR, LF or NUL"):
        headers.append("x-a", value)
    assert len(headers) == 0


def test_headers_reject_non_str_names_and_values() -> None:
    with pytest.raises(TypeError, match="header name must be a str"):
        Headers([(b"x-a", "1")])
    with pytest.raises(TypeError, match="header value must be a str"):
        Headers({"x-a": 1})
    with pytest.raises(TypeError, match="header value must be a str"):
        Headers().set("x-a", b"1")


def test_headers_reject_entries_that_are_not_pairs() -> None:
    with pytest.raises(TypeError, match="pair"):
        Headers([("x-a", "1", "extra")])
    with pytest.raises(TypeError, match="pair"):
        Headers(["x-a"])


def test_headers_repr_shows_names_but_never_values() -> None:
    headers = Headers({"X-Custom-Token": "s3cret-value", "Content-Type": "text/plain"})
    text = repr(headers)
    assert text == "Headers(['content-type', 'x-custom-token'])"
    assert "s3cret" not in text
    assert "s3cret" not in str(headers)


def test_headers_are_unhashable_because_mutable() -> None:
    with pytest.raises(TypeError):
        hash(Headers())


header_names = st.text(
    alphabet="!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    min_size=1,
    max_size=12,
).filter(lambda name: name.lower() != "set-cookie")  # iterates specially, tested on its own
header_values = st.text(
    alphabet=st.characters(blacklist_characters="\r\n\0", blacklist_categories=("Cs",)), max_size=20
).map(lambda value: value.strip(" \t"))


@given(st.lists(st.tuples(header_names, header_values), max_size=12))
def test_headers_agree_with_a_naive_model(pairs: list[tuple[str, str]]) -> None:
    headers = Headers(pairs)
    model: dict[str, list[str]] = {}
    for name, value in pairs:
        model.setdefault(name.lower(), []).append(value)
    assert len(headers) == len(model)
    for lowercase, values in model.items():
        assert headers.get_all(lowercase.upper()) == values
        assert headers.get(lowercase) == ", ".join(values)
    assert sorted(headers.raw(), key=lambda pair: pair[0].lower()) == sorted(
        pairs, key=lambda pair: pair[0].lower()
    )
    assert [name for name, _ in headers] == sorted(model)


# -- Request ----------------------------------------------------------------------------------


def test_request_defaults() -> None:
    request = Request("https://example.com/")
    assert request.method == "GET"
    assert request.url == "https://example.com/"
    assert len(request.headers) == 0
    assert request.body_used is False
    assert request.body_size == 0


def test_request_url_parts() -> None:
    request = Request(URL)
    assert request.host == "example.com"
    assert request.path == "/items/42"
    assert request.query == "q=1&r=two"
    assert request.url == NORMALIZED_URL


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("http://Example.COM:80/a/./b/../c#fragment", "http://example.com/a/c#fragment"),
        ("https://x.test:443/caf\u00e9?q=a b", "https://x.test/caf%C3%A9?q=a%20b"),
        ("HTTP://x.test", "http://x.test/"),
        ("http://x.test/a/../../b?", "http://x.test/b?"),
        ("http://x.test:8080/p", "http://x.test:8080/p"),
    ],
)
def test_a_built_requests_url_is_the_whatwg_parsers_and_an_incoming_one_is_kept(given, url) -> None:
    # The same URLs, checked against workerd itself in tests/conformance/constructed-url.
    assert Request(given).url == url
    assert Request.incoming(given, "GET", None, None).url == given


@pytest.mark.parametrize(
    ("url", "host", "path", "query"),
    [
        ("https://example.com", "example.com", "/", ""),
        ("https://example.com?x=1", "example.com", "/", "x=1"),
        ("http://user:pw@API.example.com:80/a/b/", "api.example.com", "/a/b/", ""),
        ("http://[::1]:8080/v1?", "::1", "/v1", ""),
    ],
)
def test_request_url_parts_edge_cases(url: str, host: str, path: str, query: str) -> None:
    request = Request(url)
    assert (request.host, request.path, request.query) == (host, path, query)


@pytest.mark.parametrize(
    "url", ["/relative/path", "example.com/path", "https://", "https:///path", "://host/", "", "1http://x/"]
)
def test_request_rejects_urls_without_scheme_or_host(url: str) -> None:
    with pytest.raises(TypeError, match="absolute URL"):
        Request(url)


def test_request_rejects_url_of_wrong_type() -> None:
    with pytest.raises(TypeError, match="url must be a str or a Request"):
        Request(b"https://example.com/")  # type: ignore[arg-type]


@pytest.mark.parametrize(("given", "expected"), [("post", "POST"), ("Patch", "PATCH"), ("purge", "PURGE")])
def test_request_method_is_uppercased(given: str, expected: str) -> None:
    assert Request("https://example.com/", method=given, body=None).method == expected


@pytest.mark.parametrize("method", ["", "GE T", "POST\r\n", "G:ET"])
def test_request_rejects_methods_that_are_not_tokens(method: str) -> None:
    with pytest.raises(TypeError, match="invalid method"):
        Request("https://example.com/", method=method)


@pytest.mark.parametrize("method", ["GET", "get", "HEAD", "head"])
@pytest.mark.parametrize("body", ["x", b"", b"x"])
def test_request_with_get_or_head_cannot_have_body(method: str, body: str | bytes) -> None:
    with pytest.raises(TypeError, match="^Request with GET/HEAD method cannot have body$"):
        Request("https://example.com/", method=method, body=body)


def test_request_headers_are_copied_from_given_headers() -> None:
    given = Headers({"x-a": "1"})
    request = Request("https://example.com/", headers=given)
    given.set("x-a", "changed")
    assert request.headers.get("x-a") == "1"


def test_request_str_body_gets_text_content_type_unless_given() -> None:
    defaulted = Request("https://example.com/", method="POST", body="hi")
    assert defaulted.headers.get("content-type") == "text/plain;charset=UTF-8"
    explicit = Request("https://example.com/", method="POST", body="{}", headers={"Content-Type": "application/json"})
    assert explicit.headers.get_all("content-type") == ["application/json"]
    raw = Request("https://example.com/", method="POST", body=b"hi")
    assert not raw.headers.has("content-type")


def test_request_repr_shows_method_and_url_but_not_headers_or_body() -> None:
    request = Request(
        "https://example.com/x", method="POST", headers={"Authorization": "Bearer s3cret"}, body="b0dy-s3cret"
    )
    assert repr(request) == "<Request POST https://example.com/x>"
    assert "s3cret" not in repr(request)


@pytest.mark.trio
async def test_request_text_reads_once() -> None:
    request = Request("https://example.com/", method="POST", body="h\u00e9llo")
    assert request.body_size == len("h\u00e9llo".encode())
    assert await request.text() == "h\u00e9llo"
    assert request.body_used
    with pytest.raises(BodyUsedError) as caught:
        await request.text()
    assert str(caught.value) == request_body_used_message()
    assert isinstance(caught.value, TypeError)
    with pytest.raises(BodyUsedError):
        await request.bytes()
    with pytest.raises(BodyUsedError):
        await request.json()


@pytest.mark.trio
async def test_request_bytes_and_array_buffer_read_once() -> None:
    request = Request("https://example.com/", method="PUT", body=bytearray(b"\x00\x01"))
    assert await request.array_buffer() == b"\x00\x01"
    with pytest.raises(BodyUsedError, match="Body has already been used"):
        await request.bytes()


@pytest.mark.trio
async def test_request_json_reads_once() -> None:
    request = Request("https://example.com/", method="POST", body=b'{"a": [1, 2]}')
    assert await request.json() == {"a": [1, 2]}
    with pytest.raises(BodyUsedError, match="Body has already been used"):
        await request.json()


@pytest.mark.trio
async def test_body_is_copied_from_mutable_buffers() -> None:
    buffer = bytearray(b"abc")
    request = Request("https://example.com/", method="POST", body=memoryview(buffer))
    buffer[0] = ord("z")
    assert await request.bytes() == b"abc"


def test_request_rejects_unsupported_body_types() -> None:
    with pytest.raises(TypeError, match="body must be"):
        Request("https://example.com/", method="POST", body={"a": 1})  # type: ignore[arg-type]


@pytest.mark.trio
async def test_invalid_json_raises_value_error_and_consumes_body() -> None:
    request = Request("https://example.com/", method="POST", body="{not json")
    with pytest.raises(ValueError, match="Request body is not valid JSON"):
        await request.json()
    assert request.body_used


@pytest.mark.trio
async def test_null_body_reads_as_empty_any_number_of_times() -> None:
    request = Request("https://example.com/")
    for _ in range(3):
        assert await request.bytes() == b""
        assert await request.text() == ""
    assert request.body_used is False
    response = Response()
    assert await response.text() == ""
    assert await response.array_buffer() == b""
    assert response.body_used is False
    with pytest.raises(ValueError, match="Response body is not valid JSON"):
        await response.json()


@pytest.mark.trio
async def test_request_clone_before_read_gives_two_readable_copies() -> None:
    request = Request(URL, method="POST", headers={"X-A": "1"}, body="payload")
    copy = request.clone()
    assert copy is not request
    assert (copy.method, copy.url, copy.host, copy.path) == ("POST", NORMALIZED_URL, "example.com", "/items/42")
    assert await copy.text() == "payload"
    assert copy.body_used and not request.body_used
    assert await request.text() == "payload"
    copy.headers.set("x-a", "2")
    assert request.headers.get("x-a") == "1"


@pytest.mark.trio
async def test_request_clone_after_read_raises() -> None:
    request = Request("https://example.com/", method="POST", body="payload")
    await request.bytes()
    with pytest.raises(BodyUsedError) as caught:
        request.clone()
    assert str(caught.value) == request_body_used_message()


@pytest.mark.trio
async def test_clone_of_null_body_request_after_reads_is_allowed() -> None:
    request = Request("https://example.com/")
    await request.text()
    assert await request.clone().text() == ""


@pytest.mark.trio
async def test_request_from_request_copies_and_consumes_the_original_body() -> None:
    original = Request(URL, method="POST", headers={"X-A": "1"}, body="payload")
    copy = Request(original)
    assert (copy.method, copy.url, copy.query) == ("POST", NORMALIZED_URL, "q=1&r=two")
    assert copy.headers == original.headers
    assert original.body_used
    assert not copy.body_used
    with pytest.raises(BodyUsedError):
        await original.text()
    assert await copy.text() == "payload"
    copy.headers.set("x-a", "2")
    assert original.headers.get("x-a") == "1"


def test_request_from_used_request_raises() -> None:
    original = Request("https://example.com/", method="POST", body="payload")
    Request(original)
    with pytest.raises(BodyUsedError, match="Body has already been used"):
        Request(original)


@pytest.mark.trio
async def test_request_from_request_with_overrides() -> None:
    original = Request("https://example.com/", method="POST", headers={"X-A": "1"}, body="old")
    copy = Request(original, method="put", headers={"X-B": "2"}, body="new")
    assert copy.method == "PUT"
    assert not copy.headers.has("x-a")
    assert copy.headers.get("x-b") == "2"
    assert await copy.text() == "new"
    assert not original.body_used, "a replacement body leaves the original's untouched"
    assert await original.text() == "old"


def test_request_from_request_cannot_turn_a_body_into_a_get() -> None:
    original = Request("https://example.com/", method="POST", body="payload")
    with pytest.raises(TypeError, match="GET/HEAD"):
        Request(original, method="GET")
    assert not original.body_used


def test_request_from_bodyless_request_keeps_it_usable() -> None:
    original = Request("https://example.com/")
    Request(original)
    Request(original)
    assert not original.body_used


# -- Response ---------------------------------------------------------------------------------


def test_response_defaults() -> None:
    response = Response()
    assert response.status == 200
    assert response.status_text == "OK"
    assert response.ok
    assert len(response.headers) == 0
    assert response.body_size == 0


@pytest.mark.parametrize(
    ("status", "text", "ok"),
    [
        (201, "Created", True), (299, "Successful", True), (300, "Multiple Choices", False), (399, "Redirection", False),
        (404, "Not Found", False), (418, "I'm a teapot", False), (425, "Client Error", False),
        (503, "Service Unavailable", False), (599, "Server Error", False),
    ],
)
def test_response_status_text_defaults_to_reason_phrase(status: int, text: str, ok: bool) -> None:
    # workerd's phrases: its class's for a status it does not know (425, 299, 599)
    response = Response(status=status)
    assert response.status_text == text
    assert response.ok is ok


def test_response_explicit_status_text_is_kept() -> None:
    assert Response(status=404, status_text="Nope").status_text == "Nope"
    with pytest.raises(TypeError, match="status text"):
        Response(status=200, status_text="OK\r\nX-Injected: 1")


def test_response_accepts_http_status_members_as_plain_ints() -> None:
    response = Response(status=HTTPStatus.NOT_FOUND)
    assert response.status == 404
    assert type(response.status) is int


@pytest.mark.parametrize("status", [0, 101, 199, 600, 1000, -200, True, 200.0, "200", None])
def test_response_rejects_status_outside_200_to_599(status: object) -> None:
    with pytest.raises(ValueError, match="status"):
        Response(status=status)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [204, 205, 304])
def test_response_with_null_body_status_cannot_have_body(status: int) -> None:
    assert Response(status=status).body_size == 0
    for empty in ("", b""):  # empty is no content: allowed, as on workerd (tests/conformance/empty-body-204)
        response = Response(empty, status=status)
        assert response.body_size == 0 and not response.headers.has("content-type")
    with pytest.raises(TypeError, match="null body status"):
        Response("x", status=status)


def test_response_str_body_gets_text_content_type_unless_given() -> None:
    assert Response("hi").headers.get("content-type") == "text/plain;charset=UTF-8"
    assert Response("<p>", headers={"Content-Type": "text/html"}).headers.get("content-type") == "text/html"
    assert not Response(b"hi").headers.has("content-type")


def test_response_repr_shows_status_only() -> None:
    response = Response("s3cret", status=201, headers={"Set-Cookie": "session=s3cret"})
    assert repr(response) == "<Response 201>"


@pytest.mark.trio
async def test_response_reads_once() -> None:
    response = Response(b'{"ok": true}')
    assert response.body_size == 12
    assert await response.json() == {"ok": True}
    assert response.body_used
    assert response.body_size == 12, "the size stays known after the body is read"
    with pytest.raises(BodyUsedError) as caught:
        await response.text()
    assert str(caught.value) == response_body_used_message()


@pytest.mark.trio
async def test_response_text_replaces_invalid_utf8() -> None:
    assert await Response(b"ok\xff").text() == "ok\ufffd"


@pytest.mark.trio
async def test_response_clone_before_read_gives_two_readable_copies() -> None:
    response = Response("body", status=404, status_text="Gone Fishing", headers={"X-A": "1"})
    copy = response.clone()
    assert (copy.status, copy.status_text, copy.headers) == (404, "Gone Fishing", response.headers)
    assert await response.text() == "body"
    assert await copy.text() == "body"
    copy.headers.append("x-a", "2")
    assert response.headers.get_all("x-a") == ["1"]


@pytest.mark.trio
async def test_response_clone_after_read_raises() -> None:
    response = Response("body")
    await response.text()
    with pytest.raises(BodyUsedError) as caught:
        response.clone()
    assert str(caught.value) == response_body_used_message()


@pytest.mark.trio
async def test_response_json_round_trip() -> None:
    data = {"name": "edge", "ids": [1, 2, 3], "nested": {"ok": True, "none": None}}
    response = Response.json(data)
    assert isinstance(response, Response)
    assert response.status == 200
    assert response.headers.get("content-type") == "application/json"
    assert await response.json() == data


@pytest.mark.trio
async def test_response_json_keeps_given_status_and_content_type() -> None:
    response = Response.json([1], status=201, headers={"Content-Type": "application/vnd.api+json", "X-A": "1"})
    assert response.status == 201
    assert response.headers.get_all("content-type") == ["application/vnd.api+json"]
    assert response.headers.get("x-a") == "1"
    assert msgspec.json.decode(await response.bytes()) == [1]


def test_response_json_rejects_unencodable_data() -> None:
    with pytest.raises(TypeError):
        Response.json({"a": object()})


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_response_redirect(status: int) -> None:
    response = Response.redirect("https://example.com/new", status)
    assert response.status == status
    assert response.headers.get("location") == "https://example.com/new"
    assert response.body_size == 0


def test_response_redirect_defaults_to_302() -> None:
    assert Response.redirect("https://example.com/").status == 302


@pytest.mark.parametrize("status", [200, 300, 304, 404])
def test_response_redirect_rejects_non_redirect_status(status: int) -> None:
    with pytest.raises(ValueError, match="redirect status"):
        Response.redirect("https://example.com/", status)


def test_response_redirect_rejects_relative_url() -> None:
    with pytest.raises(TypeError, match="redirect URL"):
        Response.redirect("/elsewhere")
