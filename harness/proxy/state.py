"""Proxies and their toxics: what the API manipulates, with Toxiproxy's rules and messages.

Everything here runs on the server's event loop, so no locks are needed.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from harness.errors import RemoteAddressError
from harness.proxy.gojson import BadBody, decode_fields, first_value
from harness.proxy.link import Connection, SocketEnd
from harness.proxy.toxics import ALL_TYPES, Toxic
from harness.safety import check_loopback_host

__all__ = ["ApiError", "Collection", "ProxyState"]

_DIAL_TIMEOUT = 10.0
_BACKLOG = 1024


class ApiError(Exception):
    """An error the API answers as ``{"error": message, "status": status}``."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def bad_body(exc: BadBody) -> ApiError:
    return ApiError(f"bad request body: {exc}", 400)


PROXY_NOT_FOUND = ("proxy not found", 404)
PROXY_EXISTS = ("proxy already exists", 409)
INVALID_STREAM = ("stream was invalid, can be either upstream or downstream", 400)
INVALID_TYPE = ("invalid toxic type", 400)
TOXIC_EXISTS = ("toxic already exists", 409)
TOXIC_NOT_FOUND = ("toxic not found", 404)

_PROXY_FIELDS = {"name": "string", "listen": "string", "upstream": "string", "enabled": "bool"}
_TOXIC_FIELDS = {"name": "string", "type": "string", "stream": "string", "toxicity": "float32"}
_UPDATE_FIELDS = {"toxicity": "float32"}


def _split_hostport(addr: str) -> tuple[str, str]:
    host, sep, port = addr.rpartition(":")
    if not sep:
        raise ApiError(f"listen tcp: address {addr}: missing port in address", 500)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port


def _bind(listen: str) -> socket.socket:
    """Bind and listen like Go's ``net.Listen("tcp", listen)``; errors carry Go's wording."""
    host, port_s = _split_hostport(listen)
    try:
        port = int(port_s) if port_s else 0
        if not 0 <= port <= 65535:
            raise ValueError
    except ValueError:
        raise ApiError(f"listen tcp: address {port_s}: invalid port", 500) from None
    if host == "localhost":
        host = "127.0.0.1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if host == "":
        host = "0.0.0.0"
    elif not _is_ip(host):
        try:
            host = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
        except OSError:
            raise ApiError(f"listen tcp: lookup {host}: no such host", 500) from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(_BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        text = os.strerror(exc.errno) if exc.errno else str(exc)
        text = text[:1].lower() + text[1:]
        shown = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        raise ApiError(f"listen tcp {shown}: bind: {text}", 500) from exc
    return sock


def _is_ip(host: str) -> bool:
    for fam in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(fam, host)
            return True
        except OSError:
            continue
    return False


class _ClientEnd(SocketEnd):
    """An accepted client socket: reading waits until the upstream is dialled."""

    def __init__(self, proxy: ProxyState) -> None:
        super().__init__()
        self.proxy = proxy

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self.transport is not None:
            self.transport.pause_reading()
        self.proxy._dial(self)


class ProxyState:
    """One proxy: a listener (when enabled), its toxics and its open connections."""

    def __init__(self, coll: Collection, name: str, listen: str, upstream: str) -> None:
        self.coll = coll
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.toxics: list[Toxic] = []
        self.connections: set[Connection] = set()
        self._server: asyncio.AbstractServer | None = None
        self._generation = 0
        self._dialing: dict[asyncio.Task[None], _ClientEnd] = {}

    # -- JSON -------------------------------------------------------------------------------
    def toxics_json(self) -> list[dict[str, Any]]:
        ups = [t.to_json() for t in self.toxics if t.direction == "upstream"]
        downs = [t.to_json() for t in self.toxics if t.direction == "downstream"]
        return ups + downs

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "listen": self.listen, "upstream": self.upstream,
                "enabled": self.enabled, "toxics": self.toxics_json()}

    # -- listening --------------------------------------------------------------------------
    async def start(self) -> None:
        if self.enabled:
            return
        sock = _bind(self.listen)
        host, port = sock.getsockname()[:2]
        self.listen = f"[{host}]:{port}" if sock.family == socket.AF_INET6 else f"{host}:{port}"
        self._generation += 1
        self._server = await asyncio.get_running_loop().create_server(lambda: _ClientEnd(self), sock=sock)
        self.enabled = True

    def stop(self) -> None:
        self._generation += 1
        if self._server is not None:
            self._server.close()
            self._server = None
        for conn in list(self.connections):
            conn.close(hard=True)
        self.connections.clear()
        for task, client in list(self._dialing.items()):
            task.cancel()
            client.abort()
        self._dialing.clear()
        self.enabled = False

    def _dial(self, client: _ClientEnd) -> None:
        task = asyncio.get_running_loop().create_task(self._on_client(client))
        self._dialing[task] = client
        task.add_done_callback(lambda t: self._dialing.pop(t, None))

    async def _on_client(self, client: _ClientEnd) -> None:
        gen = self._generation
        host, _, port = self.upstream.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        loop = asyncio.get_running_loop()
        try:
            _, up = await asyncio.wait_for(loop.create_connection(SocketEnd, host, int(port)), _DIAL_TIMEOUT)
        except (TimeoutError, OSError, ValueError):
            # Toxiproxy closes the accepted client when the upstream cannot be dialled
            client.close()
            return
        except asyncio.CancelledError:
            client.abort()  # the proxy stopped while dialling
            return
        if gen != self._generation or not self.enabled:
            client.abort()
            up.abort()
            return
        conn = Connection(self, client, up)
        self.connections.add(conn)
        conn.start()
        client.resume()

    def metric_children(self, direction: str) -> tuple[Any, Any]:
        labels = (direction, self.name, self.listen, self.upstream)
        return self.coll.received.labels(*labels), self.coll.sent.labels(*labels)

    # -- toxics -----------------------------------------------------------------------------
    def find_toxic(self, name: str) -> Toxic | None:
        for t in self.toxics:
            if t.name == name:
                return t
        return None

    def add_toxic(self, toxic: Toxic) -> None:
        self.toxics.append(toxic)
        for conn in list(self.connections):
            conn.links[toxic.direction].add_toxic(toxic)

    def update_toxic(self, toxic: Toxic) -> None:
        for conn in list(self.connections):
            conn.links[toxic.direction].update_toxic(toxic)

    def remove_toxic(self, toxic: Toxic) -> None:
        self.toxics.remove(toxic)
        for conn in list(self.connections):
            conn.links[toxic.direction].remove_toxic(toxic)


class _Cell:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, n: float) -> None:
        self.value += n


class _ByteCounter(Collector):
    """A labelled byte counter exposed like Toxiproxy's (a ``_total`` series, no ``_created``).

    Increments happen on the event loop for every chunk, so a cell is a bare float (no lock); the
    metrics endpoint reads them on the same loop.
    """

    LABELS: tuple[str, ...] = ("direction", "proxy", "listener", "upstream")

    def __init__(self, name: str, doc: str, labels: tuple[str, ...] | None = None) -> None:
        self.name = name
        self.doc = doc
        if labels is not None:
            self.LABELS = labels
        self.cells: dict[tuple[str, ...], _Cell] = {}

    def labels(self, *values: str) -> _Cell:
        cell = self.cells.get(values)
        if cell is None:
            cell = self.cells[values] = _Cell()
        return cell

    def describe(self) -> list[CounterMetricFamily]:
        return [CounterMetricFamily(self.name, self.doc, labels=self.LABELS)]

    def collect(self) -> list[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.doc, labels=self.LABELS)
        for values, cell in list(self.cells.items()):
            family.add_metric(list(values), cell.value)
        return [family]


class Collection:
    """All proxies of one server, and the operations behind each API endpoint."""

    def __init__(self, *, allow_remote: bool = False) -> None:
        self.allow_remote = allow_remote
        self.proxies: dict[str, ProxyState] = {}
        self.registry = CollectorRegistry()
        self.received = _ByteCounter("toxiproxy_proxy_received_bytes", "Bytes the proxy read from a side of a link")
        self.sent = _ByteCounter("toxiproxy_proxy_sent_bytes", "Bytes the proxy wrote to a side of a link")
        # Not in Toxiproxy: JSON-RPC calls per proxy and method, so a drill can tell a transaction
        # sent through an endpoint (eth_sendRawTransaction) from health probes of it.
        self.rpc_calls = _ByteCounter("toxiproxy_proxy_rpc_calls", "JSON-RPC calls the proxy read from its client, by method",
                                      labels=("proxy", "method"))
        self.registry.register(self.received)
        self.registry.register(self.sent)
        self.registry.register(self.rpc_calls)

    def get(self, name: str) -> ProxyState:
        proxy = self.proxies.get(name)
        if proxy is None:
            raise ApiError(*PROXY_NOT_FOUND)
        return proxy

    # -- address policy -----------------------------------------------------------------------
    def _check_addresses(self, listen: str, upstream: str, *, where: str = "") -> None:
        if self.allow_remote:
            return
        try:
            if listen:
                host, _ = _split_hostport(listen)
                check_loopback_host(host or "0.0.0.0", what=f"listen address {listen!r}{where}")
            uhost = upstream.rpartition(":")[0] or upstream
            check_loopback_host(uhost, what=f"upstream {upstream!r}{where}")
        except RemoteAddressError as exc:
            raise ApiError(f"{exc} (this server was started loopback-only)", 400) from None

    # -- proxies ----------------------------------------------------------------------------
    def _new(self, fields: dict[str, Any]) -> ProxyState:
        listen = fields.get("listen") or "127.0.0.1:0"
        return ProxyState(self, fields["name"], listen, fields["upstream"])

    async def create(self, body: bytes) -> ProxyState:
        try:
            fields = decode_fields(first_value(body), _PROXY_FIELDS, "Proxy", go_value="toxiproxy.Proxy")
        except BadBody as exc:
            raise bad_body(exc) from None
        if not fields.get("name"):
            raise ApiError("missing required field: name", 400)
        if not fields.get("upstream"):
            raise ApiError("missing required field: upstream", 400)
        if fields["name"] in self.proxies:
            raise ApiError(*PROXY_EXISTS)
        self._check_addresses(fields.get("listen", ""), fields["upstream"])
        proxy = self._new(fields)
        if fields.get("enabled", True):
            await proxy.start()
        self.proxies[proxy.name] = proxy
        return proxy

    async def update(self, name: str, body: bytes) -> ProxyState:
        proxy = self.get(name)
        try:
            fields = decode_fields(first_value(body), _PROXY_FIELDS, "Proxy", go_value="toxiproxy.Proxy")
        except BadBody as exc:
            raise bad_body(exc) from None
        listen = fields.get("listen", proxy.listen)
        upstream = fields.get("upstream", proxy.upstream)
        enabled = fields.get("enabled", proxy.enabled)
        self._check_addresses(listen if listen != proxy.listen else "", upstream)
        if listen != proxy.listen or upstream != proxy.upstream:
            proxy.stop()
            proxy.listen = listen
            proxy.upstream = upstream
        if enabled != proxy.enabled:
            if enabled:
                await proxy.start()
            else:
                proxy.stop()
        return proxy

    def delete(self, name: str) -> None:
        proxy = self.get(name)
        proxy.stop()
        del self.proxies[name]

    async def reset(self) -> None:
        for proxy in list(self.proxies.values()):
            await proxy.start()
            for toxic in list(proxy.toxics):
                proxy.remove_toxic(toxic)

    async def populate(self, body: bytes) -> list[ProxyState]:
        """Create or replace the listed proxies; raises ApiError with ``done`` set on a failure."""
        try:
            value = first_value(body)
            if value is not None and not isinstance(value, list):
                raise BadBody(f"json: cannot unmarshal {_kind(value)} into Go value of type "
                              "[]struct { toxiproxy.Proxy; Enabled *bool \"json:\\\"enabled\\\"\" }")
            entries = [decode_fields(v, _PROXY_FIELDS, "Proxy", go_value="toxiproxy.Proxy") for v in value or []]
        except BadBody as exc:
            raise bad_body(exc) from None
        for i, e in enumerate(entries, start=1):
            if not e.get("name"):
                raise ApiError(f"missing required field: name at proxy {i}", 400)
            if not e.get("upstream"):
                raise ApiError(f"missing required field: upstream at proxy {i}", 400)
            self._check_addresses(e.get("listen", ""), e["upstream"], where=f" at proxy {i}")
        done: list[ProxyState] = []
        for e in entries:
            old = self.proxies.get(e["name"])
            listen = e.get("listen") or "127.0.0.1:0"
            if old is not None and old.listen == listen and old.upstream == e["upstream"]:
                done.append(old)
                continue
            if old is not None:
                old.stop()
                del self.proxies[old.name]
            proxy = self._new(e)
            if e.get("enabled", True):
                try:
                    await proxy.start()
                except ApiError as exc:
                    exc.done = done  # type: ignore[attr-defined]
                    raise
            self.proxies[proxy.name] = proxy
            done.append(proxy)
        return done

    # -- toxics -----------------------------------------------------------------------------
    def create_toxic(self, proxy_name: str, body: bytes) -> Toxic:
        proxy = self.get(proxy_name)
        try:
            obj = first_value(body)
            fields = decode_fields(obj, _TOXIC_FIELDS, "ToxicWrapper", go_value="toxics.ToxicWrapper")
        except BadBody as exc:
            raise bad_body(exc) from None
        stream = fields.get("stream", "downstream")
        if stream.lower() not in ("upstream", "downstream"):
            raise ApiError(*INVALID_STREAM)
        ttype = fields.get("type", "")
        name = fields.get("name") or f"{ttype}_{stream}"
        kind = ALL_TYPES.get(ttype)
        if kind is None:
            raise ApiError(*INVALID_TYPE)
        if proxy.find_toxic(name) is not None:
            raise ApiError(*TOXIC_EXISTS)
        try:
            attrs_obj = _attributes_of(obj)
            attrs = kind.decode_attrs(attrs_obj, kind.defaults())
        except BadBody as exc:
            raise bad_body(exc) from None
        if kind.rpc and stream.lower() != "downstream":
            raise ApiError(f"bad request body: {ttype} acts on request/response pairs and must be created "
                           "on the downstream stream (leave stream out or set it to downstream)", 400)
        toxic = Toxic(name=name, kind=kind, stream=stream, toxicity=float(fields.get("toxicity", 1.0)),
                      attributes=attrs)
        proxy.add_toxic(toxic)
        return toxic

    def get_toxic(self, proxy_name: str, toxic_name: str) -> Toxic:
        toxic = self.get(proxy_name).find_toxic(toxic_name)
        if toxic is None:
            raise ApiError(*TOXIC_NOT_FOUND)
        return toxic

    def update_toxic(self, proxy_name: str, toxic_name: str, body: bytes) -> Toxic:
        proxy = self.get(proxy_name)
        toxic = proxy.find_toxic(toxic_name)
        if toxic is None:
            raise ApiError(*TOXIC_NOT_FOUND)
        try:
            obj = first_value(body)
            fields = decode_fields(obj, _UPDATE_FIELDS, "", go_value="struct { Attributes interface {} "
                                   "\"json:\\\"attributes\\\"\"; Toxicity float32 \"json:\\\"toxicity\\\"\" }")
            attrs = toxic.kind.decode_attrs(_attributes_of(obj), toxic.attributes)
        except BadBody as exc:
            raise bad_body(exc) from None
        toxic.attributes = attrs
        if "toxicity" in fields:
            toxic.toxicity = float(fields["toxicity"])
        proxy.update_toxic(toxic)
        return toxic

    def delete_toxic(self, proxy_name: str, toxic_name: str) -> None:
        proxy = self.get(proxy_name)
        toxic = proxy.find_toxic(toxic_name)
        if toxic is None:
            raise ApiError(*TOXIC_NOT_FOUND)
        proxy.remove_toxic(toxic)

    def close_all(self) -> None:
        for proxy in self.proxies.values():
            proxy.stop()


def _attributes_of(obj: Any) -> Any:
    """The ``attributes`` value of a toxic body (key matched case-insensitively), or None."""
    if not isinstance(obj, dict):
        return None
    if "attributes" in obj:
        return obj["attributes"]
    for k, v in obj.items():
        if k.lower() == "attributes":
            return v
    return None


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dict):
        return "object"
    return "array"

