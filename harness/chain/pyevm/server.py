"""The embedded node served over JSON-RPC HTTP on loopback, in a daemon thread with its own loop.

The node, the HTTP handlers and the interval-mining timer all run on that one asyncio loop, so the
node is only ever touched from one thread and needs no locks. ``call()`` lets the embedding process
reach the node in-process through the same loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import threading
from dataclasses import replace
from typing import Any, Self

from aiohttp import web

from harness.errors import ChainStartError, HarnessError, PortInUseError, RpcError
from harness.safety import check_loopback_host

from .genesis import NodeConfig
from .node import PyEvmNode
from .rpc import RpcDispatcher

__all__ = ["PyEvmServer"]

log = logging.getLogger(__name__)

_MAX_BODY = 32 * 1024 * 1024
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    bind_host = "127.0.0.1" if host == "localhost" else host.strip("[]")
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((bind_host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"pyevm chain: {host}:{port} is already in use; stop what listens there "
                f"(e.g. `ss -ltnp 'sport = :{port}'`) or choose another port (port 0 picks a free one)"
            ) from exc
        raise ChainStartError(
            f"pyevm chain: cannot listen on {host}:{port}: {exc}"
        ) from exc
    sock.setblocking(False)
    return sock


class PyEvmServer:
    """A py-evm development node on ``http://host:port``; ``start()`` returns the URL.

    ``answer_before_mining`` (default off): under automine, send a transaction's hash back before
    its block is built, so that a client in another process works while the block is mined (see
    ``_handle``). Off by default: with the client in this process both compete for the GIL and it
    measured slower.

    ``block_time`` None: automine (every accepted transaction mined at once); S > 0: a block every
    S seconds and no automine. Both can be changed later over RPC (``evm_setAutomine``,
    ``evm_setIntervalMining``).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        block_time: float | None = None,
        config: NodeConfig | None = None,
    ) -> None:
        check_loopback_host(host, what="pyevm chain listen host")
        if not 0 <= port <= 65535:
            raise ChainStartError(
                f"pyevm chain: port {port} is outside 0..65535 (0 picks a free one)"
            )
        base = config or NodeConfig()
        if block_time is not None:
            base = replace(base, block_time=block_time, automine=False)
        self.config = base
        self.host = host
        self.port = port
        self.url: str | None = None
        self.node: PyEvmNode | None = None
        self._dispatcher: RpcDispatcher | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._timer: asyncio.Task[None] | None = None
        self._startup_error: BaseException | None = None
        self.answer_before_mining = False
        self._serving = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> str:
        if self._thread is not None:
            raise HarnessError(
                "this PyEvmServer was already started; make a new one to serve again"
            )
        sock = _bind(self.host, self.port)
        try:
            self.port = sock.getsockname()[1]
            host = self.host.strip("[]")
            self.url = (
                f"http://[{host}]:{self.port}"
                if ":" in host
                else f"http://{host}:{self.port}"
            )
            self.node = PyEvmNode(
                self.config, on_interval_change=self._on_interval_change
            )
            self._dispatcher = RpcDispatcher(self.node)
        except BaseException:
            sock.close()
            raise
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run,
            args=(sock, ready),
            name=f"pyevm-rpc-{self.port}",
            daemon=True,
        )
        self._thread.start()
        if not ready.wait(_START_TIMEOUT) or self._startup_error is not None:
            self.stop()
            raise ChainStartError(
                f"pyevm chain did not start serving on {self.url}: {self._startup_error}"
            )
        self._serving = True
        log.info("pyevm chain serving on %s", self.url)
        return self.url

    def stop(self) -> None:
        """Close the listener and every connection, stop the timer, join the thread. Idempotent."""
        thread, loop = self._thread, self._loop
        if thread is None:
            return
        if loop is not None and thread.is_alive():
            try:
                loop.call_soon_threadsafe(loop.stop)
            except RuntimeError:  # loop already closed
                pass
        thread.join(_STOP_TIMEOUT)
        if thread.is_alive():
            raise HarnessError(
                f"pyevm chain thread on {self.url} did not stop within {_STOP_TIMEOUT} s"
            )

    def serve_forever(self) -> None:
        """Start (if needed) and serve in the foreground until interrupted (Ctrl-C), then stop."""
        if self._thread is None:
            self.start()
        assert self._thread is not None
        try:
            while self._thread.is_alive():
                self._thread.join(0.5)
        finally:
            self.stop()

    def __enter__(self) -> Self:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._serving and self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ in-process access
    def call(self, method: str, *params: Any, timeout: float = 30.0) -> Any:
        """Run one JSON-RPC method on the server's loop, from any thread; raise RpcError on error."""
        if self._loop is None or not self.running:
            raise HarnessError("the pyevm chain is not running; call start() first")
        dispatcher = self._dispatcher
        assert dispatcher is not None

        async def run() -> dict[str, Any]:
            try:
                return dispatcher.call(method, list(params))
            finally:
                dispatcher.node.flush_automine()

        answer = asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)
        if "error" in answer:
            err = answer["error"]
            raise RpcError(err["code"], err["message"], err.get("data"), method=method)
        return answer["result"]

    # ------------------------------------------------------------------ inside the thread
    def _run(self, sock: socket.socket, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            try:
                loop.run_until_complete(self._setup(sock))
            except BaseException as exc:  # noqa: BLE001 (start() re-raises it as ChainStartError)
                self._startup_error = exc
                sock.close()
                return
            finally:
                ready.set()
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(self._teardown())
            finally:
                loop.close()

    async def _setup(self, sock: socket.socket) -> None:
        app = web.Application(client_max_size=_MAX_BODY)
        app.router.add_post("/{tail:.*}", self._handle)
        runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=1.0
        )
        await runner.setup()
        self._runner = runner
        await web.SockSite(runner, sock).start()
        assert self.node is not None
        if self.node.interval is not None:
            self._on_interval_change(self.node.interval)

    async def _teardown(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        """One HTTP request. With ``answer_before_mining`` the block automine owes is built after
        the answer is written; nothing can observe the difference, as this loop serves the next
        request (the client's receipt poll included) only once the block is in."""
        body = await request.read()
        node, dispatcher = self.node, self._dispatcher
        assert node is not None and dispatcher is not None
        node.defer_automine = self.answer_before_mining
        try:
            answer = dispatcher.handle_body(body)
        finally:
            node.defer_automine = False
        response = web.Response(body=answer, content_type="application/json")
        try:
            await response.prepare(request)
            await response.write_eof()
        finally:
            try:
                node.flush_automine()
            except (
                Exception
            ):  # a bug while mining: the answer is already out; keep serving
                log.exception("pyevm automine failed after %s", request.path)
        return response

    def _on_interval_change(self, seconds: float | None) -> None:
        """Called by the node (on the loop thread) when interval mining is turned on, off or retimed."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if seconds is not None:
            self._timer = asyncio.get_running_loop().create_task(
                self._interval_mining(seconds)
            )

    async def _interval_mining(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + seconds
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            assert self.node is not None
            try:
                self.node.interval_tick()
            except (
                Exception
            ):  # a failed block must not stop the timer; the log says why
                log.exception("pyevm interval mining failed")
            due += seconds
            if due < loop.time():
                due = loop.time() + seconds
