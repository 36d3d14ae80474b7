"""The HTTP API of the fault proxy: Toxiproxy's routes, statuses, bodies and headers.

Routing is done by hand rather than with aiohttp's router so that unknown paths and wrong methods
answer exactly as Toxiproxy's router does (``404 page not found`` as text, a bare 405).
"""

from __future__ import annotations

import asyncio
import errno
import json
import re
import signal
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from harness.errors import ConfigError, PortInUseError
from harness.proxy.state import ApiError, Collection, ProxyState
from harness.safety import check_loopback_host

__all__ = ["VERSION", "ToxiproxyServer", "serve", "check_config_file"]

VERSION = "2.12.0"

Handler = Callable[[web.Request, list[str]], Awaitable[web.StreamResponse]]


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=_dumps(obj), status=status, headers={"Content-Type": "application/json"})


def _error(err: ApiError) -> web.Response:
    body = _dumps({"error": err.message, "status": err.status}) + b"\n"
    return web.Response(body=body, status=err.status, headers={
        "Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"})


def _text(text: str, status: int) -> web.Response:
    return web.Response(body=text.encode(), status=status, headers={
        "Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"})


class ToxiproxyServer:
    """The API server and its proxies, all on the current event loop."""

    def __init__(self, *, allow_remote: bool = False) -> None:
        self.coll = Collection(allow_remote=allow_remote)
        self.allow_remote = allow_remote
        self._runner: web.AppRunner | None = None
        self.host = ""
        self.port = 0
        seg = r"([^/]+)"
        self._routes: list[tuple[re.Pattern[str], dict[str, Handler]]] = [
            (re.compile(r"/reset"), {"POST": self._reset}),
            (re.compile(r"/proxies"), {"GET": self._proxy_index, "POST": self._proxy_create}),
            (re.compile(r"/populate"), {"POST": self._populate}),
            (re.compile(rf"/proxies/{seg}"), {"GET": self._proxy_show, "POST": self._proxy_update,
                                               "PATCH": self._proxy_update, "DELETE": self._proxy_delete}),
            (re.compile(rf"/proxies/{seg}/toxics"), {"GET": self._toxic_index, "POST": self._toxic_create}),
            (re.compile(rf"/proxies/{seg}/toxics/{seg}"), {"GET": self._toxic_show, "POST": self._toxic_update,
                                                           "PATCH": self._toxic_update,
                                                           "DELETE": self._toxic_delete}),
            (re.compile(r"/version"), {"GET": self._version}),
            (re.compile(r"/metrics"), {"*": self._metrics}),
        ]

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 8474) -> str:
        """Listen on ``host:port`` (port 0: any free one); return the API base URL."""
        check_loopback_host(host, what="API listen host", allow_remote=self.allow_remote)
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1" if host == "localhost" else host, port))
        except OSError as exc:
            sock.close()
            await runner.cleanup()
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(
                    f"fault proxy API: {host}:{port} is already in use; stop what listens there "
                    f"(e.g. `ss -ltnp 'sport = :{port}'`) or pick another port with --port (0 picks a free one)"
                ) from exc
            raise
        site = web.SockSite(runner, sock)
        await site.start()
        self._runner = runner
        self.host, self.port = sock.getsockname()[:2]
        return self.url

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        """Close every proxy listener and connection, then the API listener."""
        self.coll.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def populate_file(self, path: str) -> list[ProxyState]:
        data = await asyncio.to_thread(Path(path).read_bytes)
        return await self.coll.populate(data)

    # -- dispatch ---------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        for pattern, methods in self._routes:
            m = pattern.fullmatch(path)
            if m is None:
                continue
            handler = methods.get(request.method) or methods.get("*")
            if handler is None:
                continue  # Toxiproxy's router keeps looking, then answers 405
            if request.headers.get("User-Agent", "").startswith("Mozilla/"):
                return _text("User agent not allowed\n", 403)
            try:
                return await handler(request, list(m.groups()))
            except ApiError as err:
                return _error(err)
        if any(p.fullmatch(path) for p, _ in self._routes):
            return web.Response(status=405)
        return _text("404 page not found\n", 404)

    # -- handlers ---------------------------------------------------------------------------
    async def _proxy_index(self, request: web.Request, _: list[str]) -> web.Response:
        return _json({name: self.coll.proxies[name].to_json() for name in sorted(self.coll.proxies)})

    async def _proxy_create(self, request: web.Request, _: list[str]) -> web.Response:
        proxy = await self.coll.create(await request.read())
        return _json(proxy.to_json(), 201)

    async def _populate(self, request: web.Request, _: list[str]) -> web.Response:
        try:
            proxies = await self.coll.populate(await request.read())
        except ApiError as err:
            done = getattr(err, "done", [])
            return _json({"error": err.message, "status": err.status,
                          "proxies": [p.to_json() for p in done]}, err.status)
        return _json({"proxies": [p.to_json() for p in proxies]}, 201)

    async def _proxy_show(self, request: web.Request, args: list[str]) -> web.Response:
        return _json(self.coll.get(args[0]).to_json())

    async def _proxy_update(self, request: web.Request, args: list[str]) -> web.Response:
        self.coll.get(args[0])
        proxy = await self.coll.update(args[0], await request.read())
        return _json(proxy.to_json())

    async def _proxy_delete(self, request: web.Request, args: list[str]) -> web.Response:
        self.coll.delete(args[0])
        return web.Response(status=204)

    async def _toxic_index(self, request: web.Request, args: list[str]) -> web.Response:
        return _json(self.coll.get(args[0]).toxics_json())

    async def _toxic_create(self, request: web.Request, args: list[str]) -> web.Response:
        self.coll.get(args[0])
        toxic = self.coll.create_toxic(args[0], await request.read())
        return _json(toxic.to_json())

    async def _toxic_show(self, request: web.Request, args: list[str]) -> web.Response:
        return _json(self.coll.get_toxic(args[0], args[1]).to_json())

    async def _toxic_update(self, request: web.Request, args: list[str]) -> web.Response:
        self.coll.get(args[0])
        toxic = self.coll.update_toxic(args[0], args[1], await request.read())
        return _json(toxic.to_json())

    async def _toxic_delete(self, request: web.Request, args: list[str]) -> web.Response:
        self.coll.delete_toxic(args[0], args[1])
        return web.Response(status=204)

    async def _reset(self, request: web.Request, _: list[str]) -> web.Response:
        await self.coll.reset()
        return web.Response(status=204)

    async def _version(self, request: web.Request, _: list[str]) -> web.Response:
        body = f'{{"version": "{VERSION}"}}\n'.encode()
        return web.Response(body=body, headers={"Content-Type": "application/json;charset=utf-8"})

    async def _metrics(self, request: web.Request, _: list[str]) -> web.Response:
        return web.Response(body=generate_latest(self.coll.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _serve(host: str, port: int, config: str | None, allow_remote: bool) -> None:
    server = ToxiproxyServer(allow_remote=allow_remote)
    url = await server.start(host, port)
    try:
        if config:
            proxies = await server.populate_file(config)
            print(f"fault proxy: loaded {len(proxies)} proxies from {config}", flush=True)
        print(f"fault proxy (Toxiproxy API 2.12.0) listening on {url}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await server.stop()


def serve(host: str = "127.0.0.1", port: int = 8474, config: str | None = None, *,
          allow_remote: bool = False) -> None:
    """Run the fault proxy until SIGINT/SIGTERM; load ``config`` (a /populate array) first.

    Raises RemoteAddressError for a non-loopback host without ``allow_remote``, PortInUseError when
    the port is taken, and ConfigError when the config file is missing or refused.
    """
    check_loopback_host(host, what="fault proxy listen host", allow_remote=allow_remote)
    if config:
        check_config_file(config)
    try:
        asyncio.run(_serve(host, port, config, allow_remote))
    except ApiError as exc:
        raise ConfigError(f"config file {config}: {exc.message}") from None
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {config} not found ({exc.strerror})") from None


_CONFIG_EXAMPLE = '[{"name": "rpc", "listen": "127.0.0.1:18545", "upstream": "127.0.0.1:8545"}]'
_JSON_KINDS = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
               float: "a number", type(None): "null"}


def check_config_file(path: str) -> None:
    """Check that ``path`` holds a /populate array, with a message for people rather than Go's decoder.

    The HTTP ``/populate`` route keeps Toxiproxy's own error bodies; a file given on the command line is
    checked here first so that ``drill proxy --config`` says what the file should look like.
    """
    where = f"config file {path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{where} not found ({exc.strerror})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where} cannot be read: {exc}") from None
    shape = f"it must hold a JSON array of proxies (the Toxiproxy /populate format), e.g. {_CONFIG_EXAMPLE}"
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{where} is not JSON ({exc}); {shape}") from None
    if not isinstance(data, list):
        raise ConfigError(f"{where} holds {_JSON_KINDS.get(type(data), type(data).__name__)}; {shape}")
    for i, entry in enumerate(data, start=1):
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: proxy {i} is {_JSON_KINDS.get(type(entry), type(entry).__name__)}, "
                              f"not an object; {shape}")
        for key in ("name", "upstream"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise ConfigError(f"{where}: proxy {i} needs {key!r} as a non-empty string; {shape}")
        if "listen" in entry and not isinstance(entry["listen"], str):
            raise ConfigError(f"{where}: proxy {i}'s 'listen' must be a string like \"127.0.0.1:18545\" "
                              "(port 0 or no 'listen' picks a free port)")
        if "enabled" in entry and not isinstance(entry["enabled"], bool):
            raise ConfigError(f"{where}: proxy {i}'s 'enabled' must be true or false")
