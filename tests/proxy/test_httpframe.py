"""The HTTP framer used by the JSON-RPC toxics: boundaries found, bytes untouched."""

from __future__ import annotations

import gzip

import pytest

from harness.proxy.httpframe import (
    FramingError,
    looks_like_request_prefix,
    parse_request,
    parse_response,
    replace_body,
    response_body_length,
)


def test_request_with_length_and_pipelining() -> None:
    one = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}"
    two = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"
    msg, used = parse_request(one + two) or pytest.fail("incomplete")
    assert used == len(one) and msg.raw == one and msg.body == b"{}" and msg.method == b"POST"
    msg2, used2 = parse_request(two) or pytest.fail("incomplete")
    assert used2 == len(two) and msg2.body == b""
    assert parse_request(one[:-1]) is None
    assert parse_request(b"POST / HTTP/1.1\r\nHost") is None


def test_chunked_request_and_keep_alive() -> None:
    raw = b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext\r\nde\r\n0\r\n\r\n"
    msg, used = parse_request(raw) or pytest.fail("incomplete")
    assert used == len(raw) and msg.body == b"abcde" and msg.keep_alive is False
    assert parse_request(raw[:-2]) is None


def test_responses() -> None:
    body = gzip.compress(b'{"result":"0x1"}')
    raw = (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
    msg, used = parse_response(raw + b"HTTP/1.1 204 No Content\r\n\r\n") or pytest.fail("incomplete")
    assert used == len(raw) and msg.decoded_body() == b'{"result":"0x1"}'
    assert response_body_length(raw) == (raw.index(b"\r\n\r\n") + 4, len(body))
    assert response_body_length(b"HTTP/1.1 100 Continue\r\n\r\n") is None
    head = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", head_request=True)
    assert head is not None and head[0].body == b""
    closing = b"HTTP/1.0 200 OK\r\n\r\nuntil the end"
    assert parse_response(closing) is None
    msg, used = parse_response(closing, eof=True) or pytest.fail("incomplete")
    assert msg.body == b"until the end" and msg.keep_alive is False
    rebuilt = replace_body(msg, b"{}")
    assert rebuilt.endswith(b"content-length: 2\r\n\r\n{}")


def test_not_http() -> None:
    assert looks_like_request_prefix(b"GE") is None
    assert looks_like_request_prefix(b"GET ") is True
    assert looks_like_request_prefix(b"\x16\x03\x01") is False  # a TLS hello
    with pytest.raises(FramingError):
        parse_request(b"HELLO there\r\n\r\n")
    with pytest.raises(FramingError):
        parse_response(b"SSH-2.0-OpenSSH\r\n\r\n")
