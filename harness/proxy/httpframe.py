"""Finding HTTP/1.x message boundaries in a byte stream, without changing the bytes.

The JSON-RPC toxics must see whole requests and responses on a keep-alive connection and forward
untouched messages byte for byte. No installed package exposes a parser that reports where a
message ends in a raw buffer (h11/httptools are absent, aiohttp's parser is private), so this small
framer is written here: request and response heads, Content-Length, chunked bodies, bodies that
end with the connection, and the statuses that carry no body.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass, field

__all__ = [
    "FramingError",
    "Message",
    "build_response",
    "looks_like_request_prefix",
    "parse_request",
    "parse_response",
    "replace_body",
    "response_body_length",
]

_METHODS = (b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"OPTIONS ", b"PATCH ", b"CONNECT ", b"TRACE ")
_MAX_HEAD = 64 * 1024


class FramingError(ValueError):
    """The bytes are not HTTP/1.x as this framer understands it; the caller falls back to raw relay."""


@dataclass
class Message:
    """One complete request or response: the raw bytes plus what was parsed out of them."""

    raw: bytes
    start_line: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes  # de-chunked, still content-encoded
    chunked: bool = False
    method: bytes = b""
    status: int = 0
    keep_alive: bool = True
    extra: dict[str, object] = field(default_factory=dict)

    def header(self, name: bytes) -> bytes | None:
        lname = name.lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v
        return None

    def decoded_body(self) -> bytes:
        """The body with gzip/deflate content encoding removed."""
        enc = (self.header(b"content-encoding") or b"").strip().lower()
        if enc == b"gzip":
            return gzip.decompress(self.body)
        if enc == b"deflate":
            return zlib.decompress(self.body)
        return self.body


def looks_like_request_prefix(buf: bytes) -> bool | None:
    """True if ``buf`` starts like an HTTP request line, False if it cannot, None if too short to say."""
    for m in _METHODS:
        n = min(len(buf), len(m))
        if buf[:n] == m[:n]:
            if len(buf) >= len(m):
                return True
            return None
    return False


def _split_head(buf: bytes) -> tuple[bytes, list[tuple[bytes, bytes]], int] | None:
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > _MAX_HEAD:
            raise FramingError("header section too long")
        return None
    lines = buf[:end].split(b"\r\n")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        k, sep, v = line.partition(b":")
        if not sep:
            raise FramingError(f"malformed header line {line[:60]!r}")
        headers.append((k.strip(), v.strip()))
    return lines[0], headers, end + 4


def _hget(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def _read_chunked(buf: bytes, pos: int) -> tuple[bytes, int] | None:
    """De-chunk from ``pos``; return (body, end offset) or None when incomplete."""
    parts: list[bytes] = []
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size_s = buf[pos:eol].split(b";", 1)[0].strip()
        try:
            size = int(size_s, 16)
        except ValueError as exc:
            raise FramingError(f"bad chunk size {size_s[:20]!r}") from exc
        pos = eol + 2
        if size == 0:
            # trailers until an empty line
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                if eol == pos:
                    return b"".join(parts), eol + 2
                pos = eol + 2
        if len(buf) < pos + size + 2:
            return None
        parts.append(buf[pos : pos + size])
        pos += size + 2


def _keep_alive(version: bytes, headers: list[tuple[bytes, bytes]]) -> bool:
    conn = (_hget(headers, b"connection") or b"").lower()
    if b"close" in conn:
        return False
    if version.upper().endswith(b"/1.0"):
        return b"keep-alive" in conn
    return True


def parse_request(buf: bytes) -> tuple[Message, int] | None:
    """Parse one request from the start of ``buf``: (message, bytes used) or None if incomplete."""
    split = _split_head(buf)
    if split is None:
        return None
    start, headers, body_at = split
    parts = start.split(b" ")
    if len(parts) != 3 or not parts[2].upper().startswith(b"HTTP/1."):
        raise FramingError(f"not an HTTP/1.x request line: {start[:60]!r}")
    te = (_hget(headers, b"transfer-encoding") or b"").lower()
    chunked = b"chunked" in te
    if chunked:
        got = _read_chunked(buf, body_at)
        if got is None:
            return None
        body, end = got
    else:
        cl = _hget(headers, b"content-length")
        try:
            n = int(cl) if cl is not None else 0
        except ValueError as exc:
            raise FramingError(f"bad Content-Length {cl!r}") from exc
        if n < 0:
            raise FramingError("negative Content-Length")
        if len(buf) < body_at + n:
            return None
        body, end = buf[body_at : body_at + n], body_at + n
    msg = Message(
        raw=buf[:end], start_line=start, headers=headers, body=body, chunked=chunked,
        method=parts[0].upper(), keep_alive=_keep_alive(parts[2], headers),
    )
    return msg, end


def response_body_length(buf: bytes, *, head_request: bool = False) -> tuple[int, int] | None:
    """(head length, body length) of the response at the start of ``buf`` when its head is complete
    and its body is delimited by Content-Length; None otherwise (incomplete head, chunked, 1xx, or a
    body that ends with the connection)."""
    split = _split_head(buf)
    if split is None:
        return None
    start, headers, body_at = split
    parts = start.split(b" ", 2)
    if len(parts) < 2 or not parts[0].upper().startswith(b"HTTP/1."):
        return None
    try:
        status = int(parts[1])
    except ValueError:
        return None
    if 100 <= status < 200:
        return None
    if head_request or status in (204, 304):
        return body_at, 0
    if b"chunked" in (_hget(headers, b"transfer-encoding") or b"").lower():
        return None
    cl = _hget(headers, b"content-length")
    try:
        n = int(cl) if cl is not None else -1
    except ValueError:
        return None
    return (body_at, n) if n >= 0 else None


def parse_response(buf: bytes, *, head_request: bool = False, eof: bool = False) -> tuple[Message, int] | None:
    """Parse one response from the start of ``buf``; ``eof`` says the connection has ended."""
    split = _split_head(buf)
    if split is None:
        return None
    start, headers, body_at = split
    parts = start.split(b" ", 2)
    if len(parts) < 2 or not parts[0].upper().startswith(b"HTTP/1."):
        raise FramingError(f"not an HTTP/1.x status line: {start[:60]!r}")
    try:
        status = int(parts[1])
    except ValueError as exc:
        raise FramingError(f"bad status {parts[1][:10]!r}") from exc
    keep = _keep_alive(parts[0], headers)
    if head_request or 100 <= status < 200 or status in (204, 304):
        body, end = b"", body_at
        chunked = False
    else:
        te = (_hget(headers, b"transfer-encoding") or b"").lower()
        chunked = b"chunked" in te
        cl = _hget(headers, b"content-length")
        if chunked:
            got = _read_chunked(buf, body_at)
            if got is None:
                return None
            body, end = got
        elif cl is not None:
            try:
                n = int(cl)
            except ValueError as exc:
                raise FramingError(f"bad Content-Length {cl!r}") from exc
            if len(buf) < body_at + n:
                return None
            body, end = buf[body_at : body_at + n], body_at + n
        else:
            # the body runs until the server closes the connection
            if not eof:
                return None
            body, end = buf[body_at:], len(buf)
            keep = False
    msg = Message(raw=buf[:end], start_line=start, headers=headers, body=body, chunked=chunked,
                  status=status, keep_alive=keep)
    return msg, end


_REASONS = {200: b"OK", 429: b"Too Many Requests", 500: b"Internal Server Error", 502: b"Bad Gateway",
            503: b"Service Unavailable", 504: b"Gateway Timeout", 403: b"Forbidden", 401: b"Unauthorized"}


def build_response(status: int, body: bytes, *, keep_alive: bool = True,
                   extra_headers: list[tuple[bytes, bytes]] | None = None) -> bytes:
    """A complete HTTP/1.1 response with a JSON body."""
    reason = _REASONS.get(status, b"Error" if status >= 400 else b"OK")
    lines = [b"HTTP/1.1 %d %s" % (status, reason), b"content-type: application/json",
             b"content-length: %d" % len(body)]
    for k, v in extra_headers or []:
        lines.append(k + b": " + v)
    if not keep_alive:
        lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def replace_body(msg: Message, body: bytes) -> bytes:
    """Re-serialise ``msg`` with a new, plain (unencoded, unchunked) body."""
    drop = {b"content-length", b"transfer-encoding", b"content-encoding"}
    lines = [msg.start_line]
    lines += [k + b": " + v for k, v in msg.headers if k.lower() not in drop]
    lines.append(b"content-length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
