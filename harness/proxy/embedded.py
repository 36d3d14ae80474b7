"""Running the fault proxy inside the harness's own process, on a thread with its own event loop."""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import Self

from harness.errors import HarnessError
from harness.proxy.server import ToxiproxyServer

__all__ = ["EmbeddedProxy"]

_START_TIMEOUT = 15.0


class EmbeddedProxy:
    """A fault proxy API server on ``host:port`` (port 0: a free one) served from a daemon thread.

    ``start()`` returns the API base URL once the server is listening; ``stop()`` closes every
    proxy listener and connection and joins the thread. Also a context manager.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, allow_remote: bool = False,
                 config: str | None = None) -> None:
        self.host = host
        self.port = port
        self.allow_remote = allow_remote
        self.config = config
        self.url: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: ToxiproxyServer | None = None
        self._stopped: asyncio.Event | None = None

    def start(self) -> str:
        if self._thread is not None:
            raise HarnessError("EmbeddedProxy.start() called twice")
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(ready, failure), name="fault-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(_START_TIMEOUT):
            raise HarnessError(f"fault proxy did not start listening within {_START_TIMEOUT:.0f} s")
        if failure:
            self._thread.join(5)
            self._thread = None
            raise failure[0]
        assert self.url is not None
        return self.url

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(ready, failure))
        finally:
            ready.set()
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    async def _main(self, ready: threading.Event, failure: list[BaseException]) -> None:
        self._stopped = asyncio.Event()
        server = ToxiproxyServer(allow_remote=self.allow_remote)
        try:
            self.url = await server.start(self.host, self.port)
            if self.config:
                await server.populate_file(self.config)
        except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
            failure.append(exc)
            await server.stop()
            return
        self._server = server
        ready.set()
        await self._stopped.wait()
        await server.stop()
        # let aborted transports and cancelled tasks finish before the loop closes
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0)

    def stop(self) -> None:
        thread, loop, stopped = self._thread, self._loop, self._stopped
        if thread is None:
            return
        if loop is not None and stopped is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stopped.set)
            except RuntimeError:
                pass  # the loop already finished
        thread.join(15)
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
