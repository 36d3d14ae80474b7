"""JSON-RPC toxics: faults that understand the HTTP JSON-RPC requests passing through a proxy.

They are created, listed, updated and removed through the API like any toxic, with these extra
``type`` names. They act on request/response pairs, so they must be created on the ``downstream``
stream (the default); ``upstream`` is refused with a 400. ``toxicity`` is rolled for every
JSON-RPC call (not once per connection as for the byte-stream toxics), so ``toxicity: 0.3`` makes
about 30% of the matching calls fail. ``methods`` is a list of JSON-RPC method names the toxic
applies to; an empty list means every method the toxic makes sense for (below). Changes reach
open keep-alive connections at their next request.

``rpc_error``        methods ([] = all), code (default -32000), message (default "internal
                     error"), http_status (0 = answer HTTP 200 with a JSON-RPC error object;
                     otherwise answer the whole HTTP exchange with that status, e.g. 429, 502,
                     503), retry_after (seconds, sent as ``Retry-After`` with a 429; default 1).
                     A matching call is answered by the proxy and never reaches the node; in a
                     batch only the matching calls get errors (with an HTTP status, the whole
                     batch gets it).
``rpc_stale_head``   blocks (>= 1), methods ([] = all of eth_blockNumber, eth_getBlockByNumber,
                     eth_getBalance, eth_getTransactionCount, eth_getCode, eth_getStorageAt,
                     eth_call, eth_estimateGas, eth_getBlockTransactionCountByNumber,
                     eth_getUncleCountByBlockNumber, eth_getLogs): the head the client sees lags the
                     node's by ``blocks``. ``eth_blockNumber`` answers head - blocks; the tags
                     ``latest``/``pending`` (or an omitted block) are replaced by that number;
                     blocks above it are unknown (``null`` for block queries, error -32000
                     "header not found" for state queries). The proxy asks the node for its head
                     (one extra ``eth_blockNumber`` on the same connection) before such a call.
``rpc_drop_tx``      methods ([] = eth_sendRawTransaction): the call is answered with the
                     transaction's hash (keccak-256 of the raw bytes) and never forwarded.
``rpc_wrong_chain``  chain_id (>= 1), methods ([] = eth_chainId and net_version): answered with
                     the given chain id (hex for eth_chainId, decimal string for net_version).

Traffic that is not HTTP/1.x (decided from the first bytes the client sends, or because the server
speaks first), requests that are not POSTs of JSON-RPC objects or batches, upgraded connections
(websockets) and anything this module cannot frame pass through unchanged: a JSON-RPC toxic never
breaks traffic it does not understand.
"""

from __future__ import annotations

import json
import random
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from eth_hash.auto import keccak

from harness.proxy.httpframe import (
    FramingError,
    Message,
    build_response,
    looks_like_request_prefix,
    parse_request,
    parse_response,
    replace_body,
    response_body_length,
)
from harness.proxy.link import Link, SocketEnd
from harness.proxy.toxics import Toxic

if TYPE_CHECKING:  # pragma: no cover
    from harness.proxy.state import ProxyState

__all__ = ["STALE_BLOCK_PARAM", "Interceptor"]

_SNIFF, _HTTP, _OPAQUE = 0, 1, 2

#: distinct (proxy, method) series the call counter keeps before it lumps new names into "(other)"
_MAX_METHOD_LABELS = 512

#: methods the stale-head toxic rewrites, with the index of their block parameter
STALE_BLOCK_PARAM: dict[str, int] = {
    "eth_getBlockByNumber": 0,
    "eth_getBlockTransactionCountByNumber": 0,
    "eth_getUncleCountByBlockNumber": 0,
    "eth_getBalance": 1,
    "eth_getTransactionCount": 1,
    "eth_getCode": 1,
    "eth_call": 1,
    "eth_estimateGas": 1,
    "eth_getStorageAt": 2,
}
_STALE_ALL = frozenset(STALE_BLOCK_PARAM) | {"eth_blockNumber", "eth_getLogs"}
_BLOCK_QUERIES = frozenset({"eth_getBlockByNumber", "eth_getBlockTransactionCountByNumber",
                            "eth_getUncleCountByBlockNumber"})
_HEAD_ID = "agent-drills-head"


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _error(call: dict[str, Any], code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": call.get("id"), "error": {"code": code, "message": message}}


def _result(call: dict[str, Any], result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": call.get("id"), "result": result}


def _applies(toxic: Toxic, method: str, default: frozenset[str] | None) -> bool:
    methods = toxic.attributes.get("methods") or []
    if methods:
        return method in methods and (default is None or toxic.type != "rpc_wrong_chain" or method in default)
    return default is None or method in default


class _Slot:
    """A request awaiting its response, in the order the client sent them."""

    __slots__ = ("close_after", "finish", "head", "ready", "upgrade")

    def __init__(self, *, ready: bytes | None = None, finish: Callable[[Message], bytes | None] | None = None,
                 head: bool = False, close_after: bool = False, upgrade: bool = False) -> None:
        self.ready = ready
        self.finish = finish
        self.head = head
        self.close_after = close_after
        self.upgrade = upgrade


class _Plan:
    """What happens to each call of one JSON-RPC request."""

    def __init__(self, msg: Message, payload: Any, calls: list[dict[str, Any]]) -> None:
        self.msg = msg
        self.batch = isinstance(payload, list)
        self.calls = calls
        self.local: dict[int, dict[str, Any] | None] = {}  # index -> answer (None: notification)
        self.http: tuple[int, int, dict[str, Any]] | None = None  # status, retry_after, error body
        self.stale: dict[int, int] = {}  # index -> blocks of lag
        self.modified = False  # a call's params were rewritten


class Interceptor:
    """Sits between the links and the upstream socket; frames HTTP and applies the JSON-RPC toxics.

    It is the sink of the client->upstream link and the source of the upstream->client link: what
    the upstream socket reads is parsed here and pushed into the downstream link.
    """

    def __init__(self, proxy: ProxyState, up: SocketEnd) -> None:
        self.proxy = proxy
        self.up = up
        self.mode = _SNIFF
        self.down: Link | None = None
        self._reqbuf = b""
        self._respbuf = b""
        self._pending: deque[_Slot] = deque()
        self._held = False  # a head lookup is in flight; later requests wait in _reqbuf
        self._ended = False
        self._stream_left = 0  # body bytes of an untouched response still to pass straight through

    def attach(self, down: Link) -> None:
        self.down = down
        self.up.attach(self._on_up_data, self._on_up_eof)

    # -- source side, as seen by the downstream link ----------------------------------------
    def pause(self) -> None:
        self.up.pause()

    def resume(self) -> None:
        self.up.resume()

    # -- sink side (client -> upstream) -------------------------------------------------------
    @property
    def paused(self) -> bool:
        return self.up.paused

    def on_writable(self, callback: Callable[[], None]) -> None:
        self.up.on_writable(callback)

    def write(self, data: bytes) -> None:
        if self.mode == _OPAQUE:
            if self._reqbuf:  # bytes held while sniffing, before the server spoke first
                data, self._reqbuf = self._reqbuf + data, b""
            self.up.write(data)
            return
        self._reqbuf += data
        if self.mode == _SNIFF:
            verdict = looks_like_request_prefix(self._reqbuf)
            if verdict is None:
                return
            if not verdict:
                self._go_opaque()
                return
            self.mode = _HTTP
        self._drain_requests()

    def close(self, reset: bool = False) -> None:
        if not reset and self._reqbuf and self.mode != _HTTP:
            self.up.write(self._reqbuf)
            self._reqbuf = b""
        self.up.close(reset)

    def arm_reset(self) -> None:
        self.up.arm_reset()

    def _go_opaque(self) -> None:
        self.mode = _OPAQUE
        if self._reqbuf:
            self.up.write(self._reqbuf)
            self._reqbuf = b""

    def _drain_requests(self) -> None:
        while self._reqbuf and not self._held and self.mode == _HTTP:
            try:
                got = parse_request(self._reqbuf)
            except FramingError:
                self._go_opaque()
                return
            if got is None:
                return
            msg, used = got
            self._reqbuf = self._reqbuf[used:]
            upgrade = msg.header(b"upgrade") is not None or msg.method == b"CONNECT"
            if upgrade:
                self._forward(msg.raw, _Slot(upgrade=True))
                self._go_opaque()
                return
            self._handle(msg)

    def _forward(self, raw: bytes, slot: _Slot) -> None:
        self._pending.append(slot)
        self.up.write(raw)

    def _answer(self, raw: bytes, *, close_after: bool) -> None:
        self._pending.append(_Slot(ready=raw, close_after=close_after))
        self._emit_ready()

    # -- JSON-RPC decisions ----------------------------------------------------------------
    def _handle(self, msg: Message) -> None:
        toxics = [t for t in self.proxy.toxics if t.kind.rpc]
        if msg.method != b"POST":
            self._forward(msg.raw, _Slot(head=msg.method == b"HEAD"))
            return
        try:
            payload = json.loads(msg.decoded_body())
        except (ValueError, OSError, EOFError):
            self._forward(msg.raw, _Slot())
            return
        calls = payload if isinstance(payload, list) else [payload]
        if not calls or not all(isinstance(c, dict) and isinstance(c.get("method"), str) for c in calls):
            self._forward(msg.raw, _Slot())
            return
        self._count(calls)
        if not toxics:
            self._forward(msg.raw, _Slot())
            return
        plan = _Plan(msg, payload, calls)
        for i, call in enumerate(calls):
            self._decide(plan, i, call, toxics)
        self._execute(plan)

    def _count(self, calls: list[dict[str, Any]]) -> None:
        counter = self.proxy.coll.rpc_calls
        for call in calls:
            method = call["method"]
            # a client controls the label: keep it short and printable, so no flood of odd names grows the metrics
            label = method if len(method) <= 64 and method.isascii() and method.isprintable() else "(other)"
            if (self.proxy.name, label) not in counter.cells and len(counter.cells) >= _MAX_METHOD_LABELS:
                label = "(other)"
            counter.labels(self.proxy.name, label).inc(1)

    def _decide(self, plan: _Plan, i: int, call: dict[str, Any], toxics: list[Toxic]) -> None:
        method = call["method"]
        params = call.get("params")
        for t in toxics:
            kind = t.type
            if kind == "rpc_error":
                if not _applies(t, method, None) or random.random() >= t.toxicity:
                    continue
                a = t.attributes
                if a["http_status"]:
                    if plan.http is None:
                        plan.http = (a["http_status"], a["retry_after"], _error(call, a["code"], a["message"]))
                    return
                plan.local[i] = _error(call, a["code"], a["message"]) if "id" in call else None
                return
            if kind == "rpc_drop_tx":
                if not _applies(t, method, frozenset({"eth_sendRawTransaction"})):
                    continue
                raw = params[0] if isinstance(params, list) and params else None
                try:
                    blob = bytes.fromhex(raw[2:] if raw.startswith(("0x", "0X")) else raw)  # type: ignore[union-attr]
                except (AttributeError, ValueError):
                    continue  # not a raw transaction: let the node answer its own error
                if random.random() >= t.toxicity:
                    continue
                plan.local[i] = _result(call, "0x" + keccak(blob).hex()) if "id" in call else None
                return
            if kind == "rpc_wrong_chain":
                if not _applies(t, method, frozenset({"eth_chainId", "net_version"})):
                    continue
                if random.random() >= t.toxicity:
                    continue
                cid = t.attributes["chain_id"]
                value = hex(cid) if method == "eth_chainId" else str(cid)
                plan.local[i] = _result(call, value) if "id" in call else None
                return
            if kind == "rpc_stale_head":
                if i in plan.stale or not _applies(t, method, _STALE_ALL) or method not in _STALE_ALL:
                    continue
                if random.random() >= t.toxicity:
                    continue
                plan.stale[i] = t.attributes["blocks"]

    def _execute(self, plan: _Plan) -> None:
        msg = plan.msg
        close_after = not msg.keep_alive
        if plan.http is not None:
            status, retry_after, body = plan.http
            extra = [(b"retry-after", str(retry_after).encode())] if status == 429 else []
            payload: Any = [body] if plan.batch else body
            self._answer(build_response(status, _dumps(payload), keep_alive=msg.keep_alive, extra_headers=extra),
                         close_after=close_after)
            return
        forward = [i for i in range(len(plan.calls)) if i not in plan.local]
        if not forward:
            answers = [plan.local[i] for i in range(len(plan.calls))]
            present = [a for a in answers if a is not None]
            if plan.batch:
                body = _dumps(present) if present else b""
            else:
                body = _dumps(present[0]) if present else b""
            self._answer(build_response(200, body, keep_alive=msg.keep_alive), close_after=close_after)
            return
        needs_head = any(plan.calls[i]["method"] != "eth_blockNumber" for i in plan.stale if i in forward)
        if needs_head:
            self._held = True
            self._forward(_head_request(msg), _Slot(finish=lambda resp: self._got_head(plan, resp)))
            return
        self._send_plan(plan, forward, head=None)

    def _got_head(self, plan: _Plan, resp: Message) -> None:
        head: int | None = None
        try:
            body = json.loads(resp.decoded_body())
            head = int(body["result"], 16)
        except (ValueError, KeyError, TypeError, OSError, EOFError):
            head = None
        forward = [i for i in range(len(plan.calls)) if i not in plan.local]
        if head is not None:
            self._apply_stale(plan, forward, head)
            forward = [i for i in forward if i not in plan.local]
        self._held = False
        if forward:
            self._send_plan(plan, forward, head=head)
        else:
            self._execute(plan)
        self._drain_requests()

    def _apply_stale(self, plan: _Plan, forward: list[int], head: int) -> None:
        """Rewrite block tags to the lagging head; answer calls about blocks it has not seen."""
        for i in forward:
            lag = plan.stale.get(i)
            call = plan.calls[i]
            method = call["method"]
            if lag is None or method == "eth_blockNumber":
                continue
            seen = max(head - lag, 0)
            params = list(call.get("params") or [])
            if method == "eth_getLogs":
                if params and isinstance(params[0], dict) and "blockHash" not in params[0]:
                    flt = dict(params[0])
                    for key in ("fromBlock", "toBlock"):
                        tag = flt.get(key, "latest")
                        if tag in ("latest", "pending"):
                            flt[key] = hex(seen)
                    params[0] = flt
                    plan.calls[i] = {**call, "params": params}
                    plan.modified = True
                continue
            pos = STALE_BLOCK_PARAM[method]
            if len(params) < pos:
                continue
            tag = params[pos] if len(params) > pos else "latest"
            if tag in ("latest", "pending"):
                if len(params) > pos:
                    params[pos] = hex(seen)
                else:
                    params.append(hex(seen))
                plan.calls[i] = {**call, "params": params}
                plan.modified = True
            elif isinstance(tag, str) and tag.startswith("0x"):
                try:
                    number = int(tag, 16)
                except ValueError:
                    continue
                if number > seen:
                    if method in _BLOCK_QUERIES:
                        plan.local[i] = _result(call, None) if "id" in call else None
                    else:
                        plan.local[i] = _error(call, -32000, "header not found") if "id" in call else None

    def _send_plan(self, plan: _Plan, forward: list[int], head: int | None) -> None:
        msg = plan.msg
        changed = bool(plan.local) or plan.modified
        lags = {i: plan.stale[i] for i in forward if i in plan.stale and plan.calls[i]["method"] == "eth_blockNumber"}
        if not plan.batch and not changed:
            raw = msg.raw
        else:
            sub: Any = [plan.calls[i] for i in forward] if plan.batch else plan.calls[forward[0]]
            raw = replace_body(msg, _dumps(sub))
        if not plan.local and not lags:
            self._forward(raw, _Slot())
            return

        def finish(resp: Message) -> bytes:
            return self._merge(plan, forward, lags, resp)

        self._forward(raw, _Slot(finish=finish))

    def _merge(self, plan: _Plan, forward: list[int], lags: dict[int, int], resp: Message) -> bytes:
        try:
            got = json.loads(resp.decoded_body())
        except (ValueError, OSError, EOFError):
            return resp.raw
        if plan.batch:
            if not isinstance(got, list):
                return resp.raw
            by_id = {json.dumps(r.get("id")): r for r in got if isinstance(r, dict)}
            out: list[Any] = []
            for i, call in enumerate(plan.calls):
                if i in plan.local:
                    if plan.local[i] is not None:
                        out.append(plan.local[i])
                    continue
                r = by_id.get(json.dumps(call.get("id")))
                if r is not None:
                    out.append(_lag_block_number(r, lags.get(i)))
            return replace_body(resp, _dumps(out))
        if not isinstance(got, dict):
            return resp.raw
        return replace_body(resp, _dumps(_lag_block_number(got, lags.get(forward[0]))))

    # -- upstream -> client ----------------------------------------------------------------
    def _push(self, data: bytes) -> None:
        if data and not self._ended and self.down is not None:
            self.down.feed(data)

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            if self.down is not None:
                self.down.feed_eof()

    def _emit_ready(self) -> None:
        while self._pending and self._pending[0].ready is not None:
            slot = self._pending.popleft()
            self._push(slot.ready or b"")
            if slot.close_after:
                self._end()

    def _on_up_data(self, data: bytes) -> None:
        if self.mode == _SNIFF:
            self.mode = _OPAQUE  # the server spoke first: not HTTP
        if self.mode == _OPAQUE and not self._pending:
            if self._respbuf:
                data, self._respbuf = self._respbuf + data, b""
            self._push(data)
            return
        if self._stream_left:
            n = min(self._stream_left, len(data))
            self._push(data[:n])
            self._stream_left -= n
            data = data[n:]
            if self._stream_left:
                return
            self._pending.popleft()
        self._respbuf += data
        self._drain_responses(eof=False)

    def _on_up_eof(self) -> None:
        if self._respbuf:
            self._drain_responses(eof=True)
            if self._respbuf:
                self._push(self._respbuf)
                self._respbuf = b""
        self._emit_ready()
        self._end()

    def _drain_responses(self, *, eof: bool) -> None:
        """Parse complete responses for pending requests and pass them on."""
        while True:
            self._emit_ready()
            if not self._pending:
                if self._respbuf:  # bytes nobody asked for (or after an upgrade): pass them on
                    self._push(self._respbuf)
                    self._respbuf = b""
                return
            slot = self._pending[0]
            if slot.finish is None and not slot.upgrade and not eof:
                # an untouched response with a known length passes through as it arrives
                sized = response_body_length(self._respbuf, head_request=slot.head)
                if sized is not None:
                    total = sized[0] + sized[1]
                    chunk, self._respbuf = self._respbuf[:total], self._respbuf[total:]
                    self._push(chunk)
                    if len(chunk) < total:
                        self._stream_left = total - len(chunk)
                        return
                    self._pending.popleft()
                    continue
            try:
                got = parse_response(self._respbuf, head_request=slot.head, eof=eof)
            except FramingError:
                self._pending.clear()
                self.mode = _OPAQUE
                continue
            if got is None:
                return
            msg, used = got
            self._respbuf = self._respbuf[used:]
            if 100 <= msg.status < 200 and msg.status != 101:
                self._push(msg.raw)
                continue
            self._pending.popleft()
            out = msg.raw if slot.finish is None else slot.finish(msg)
            if out is not None:
                self._push(out)
            if slot.upgrade and msg.status == 101:
                self._pending.clear()
                self.mode = _OPAQUE


def _lag_block_number(resp: dict[str, Any], lag: int | None) -> dict[str, Any]:
    if lag is None or not isinstance(resp.get("result"), str):
        return resp
    try:
        n = int(resp["result"], 16)
    except ValueError:
        return resp
    return {**resp, "result": hex(max(n - lag, 0))}


def _head_request(msg: Message) -> bytes:
    body = _dumps({"jsonrpc": "2.0", "id": _HEAD_ID, "method": "eth_blockNumber", "params": []})
    drop = {b"content-length", b"transfer-encoding", b"content-encoding", b"connection", b"expect"}
    lines = [msg.start_line] + [k + b": " + v for k, v in msg.headers if k.lower() not in drop]
    lines.append(b"content-length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
