"""One proxied connection: two links (client -> upstream, upstream -> client), each a toxic chain.

Sockets are asyncio protocols (:class:`SocketEnd`) that push what they read into a link. While a
link has no toxics and nothing is queued, a chunk is written to the sink inside the read callback
(no task switch: this is what keeps the proxy's added latency low). Otherwise chunks are stamped
with the time they were read and queued for the link's writer task, which runs them through the
toxic stages. Back-pressure pauses reading from the source when the sink's buffer or the queue is
full. When one side ends, its link runs the end of input through its chain and closes its sink; the
other link then sees the end too, so the whole connection closes, as in Toxiproxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from harness.proxy.toxics import Chunk, EndLink, Stage, Toxic

if TYPE_CHECKING:  # pragma: no cover
    from harness.proxy.state import ProxyState

__all__ = ["Connection", "Link", "Sink", "SocketEnd", "Source", "set_linger0"]

_MAX_QUEUED = 64  # chunks queued per link before the source is paused
_HIGH_WATER = 1024 * 1024  # bytes buffered for a socket before its source is paused
_READ_SIZE = 1024 * 1024  # largest single read from a socket


class Source(Protocol):
    def pause(self) -> None: ...
    def resume(self) -> None: ...


class Sink(Protocol):
    paused: bool

    def write(self, data: bytes) -> None: ...
    def close(self, reset: bool = False) -> None: ...
    def arm_reset(self) -> None: ...
    def on_writable(self, callback: Callable[[], None]) -> None: ...


def set_linger0(transport: asyncio.BaseTransport | None) -> None:
    """Make the next close of this socket send RST instead of FIN."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass


class SocketEnd(asyncio.Protocol):
    """One TCP socket of a connection: a source for one link and the sink of the other."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.paused = False  # our writes are buffered above the high-water mark
        self.lost = False
        self._on_data: Callable[[bytes], None] | None = None
        self._on_end: Callable[[], None] | None = None
        self._writable: Callable[[], None] | None = None
        self._early: list[bytes] = []
        self._early_end = False
        self.connected: asyncio.Future[None] | None = None

    # -- asyncio callbacks ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        # fewer, larger reads and fewer pause/resume cycles for bulk transfers
        transport.set_write_buffer_limits(high=_HIGH_WATER)
        if hasattr(transport, "max_size"):
            transport.max_size = _READ_SIZE  # type: ignore[attr-defined]
        if self.connected is not None and not self.connected.done():
            self.connected.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._on_data is not None:
            self._on_data(data)
        else:
            self._early.append(data)

    def eof_received(self) -> bool:
        self._end()
        return True  # keep the transport: the other link may still write to it

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.paused = False
        self._end()
        if self._writable is not None:
            self._writable()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self._writable is not None:
            self._writable()

    def _end(self) -> None:
        if self._on_end is not None:
            cb, self._on_end = self._on_end, None
            self._on_data = None
            cb()
        else:
            self._early_end = True

    # -- wiring -----------------------------------------------------------------------------
    def attach(self, on_data: Callable[[bytes], None], on_end: Callable[[], None]) -> None:
        """Start delivering data (including anything that arrived before) to a link."""
        self._on_data, self._on_end = on_data, on_end
        early, self._early = self._early, []
        for data in early:
            on_data(data)
        if self._early_end or self.lost:
            self._end()

    # -- source -----------------------------------------------------------------------------
    def pause(self) -> None:
        if self.transport is not None and not self.lost:
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.transport is not None and not self.lost:
            self.transport.resume_reading()

    # -- sink -------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.lost:
            self.transport.write(data)

    def close(self, reset: bool = False) -> None:
        t = self.transport
        if t is None:
            return
        if reset:
            set_linger0(t)
            t.abort()
        else:
            t.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def arm_reset(self) -> None:
        set_linger0(self.transport)

    def on_writable(self, callback: Callable[[], None]) -> None:
        self._writable = callback


class Link:
    """One direction of a connection with its chain of toxic stages."""

    def __init__(self, conn: Connection, direction: str, source: Source, sink: Sink,
                 toxics: list[Toxic], metrics: tuple[Any, Any]) -> None:
        self.conn = conn
        self.direction = direction
        self.source = source
        self.sink = sink
        self.stages: list[Stage] = [t.kind.stage(t, self) for t in toxics if t.kind.stage is not None]
        self._received, self._sent = metrics
        self._queue: deque[Chunk | None] = deque()
        self._getter: asyncio.Future[None] | None = None
        self._writable_fut: asyncio.Future[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._busy = False  # the writer task holds a chunk
        self._pauses: set[str] = set()
        self.done = False
        self._sink_closed = False
        sink.on_writable(self._sink_writable)

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        for st in self.stages:
            st.start()
        if self.stages:
            self._ensure_writer()

    def _ensure_writer(self) -> None:
        if self._writer is None and not self.done:
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    def terminate(self, reset: bool = False) -> None:
        """End the link now (timeout toxic): close the sink; the other link follows."""
        if self.done:
            return
        if self._writer is not None and self._writer is not asyncio.current_task():
            self._writer.cancel()
        self._finish(reset)

    def abort(self) -> None:
        for st in self.stages:
            st.stop()
        if self._writer is not None:
            self._writer.cancel()
        self.done = True

    def _finish(self, reset: bool) -> None:
        self.done = True
        for st in self.stages:
            st.stop()
        self._queue.clear()
        if not self._sink_closed:
            self._sink_closed = True
            with contextlib.suppress(Exception):  # a socket that is already gone
                self.sink.close(reset)
        self._unpause("queue")
        self._unpause("sink")
        self.conn.link_done(self)

    # -- back-pressure ----------------------------------------------------------------------
    def _pause(self, reason: str) -> None:
        if not self._pauses:
            self.source.pause()
        self._pauses.add(reason)

    def _unpause(self, reason: str) -> None:
        if reason in self._pauses:
            self._pauses.discard(reason)
            if not self._pauses:
                self.source.resume()

    def _sink_writable(self) -> None:
        self._unpause("sink")
        fut = self._writable_fut
        if fut is not None and not fut.done():
            fut.set_result(None)

    # -- input (called by the source) -------------------------------------------------------
    def feed(self, data: bytes) -> None:
        self._received.inc(len(data))
        if self.done:
            return
        if not self.stages and not self._queue and not self._busy:
            self.sink.write(data)  # the fast path: no toxics, nothing waiting
            self._sent.inc(len(data))
            if self.sink.paused:
                self._pause("sink")
            return
        self._queue.append(Chunk(data, asyncio.get_running_loop().time()))
        self._ensure_writer()
        self._wake_getter()
        if len(self._queue) >= _MAX_QUEUED:
            self._pause("queue")

    def feed_eof(self) -> None:
        if self.done:
            return
        if not self.stages and not self._queue and not self._busy:
            self._finish(False)
            return
        self._queue.append(None)
        self._ensure_writer()
        self._wake_getter()

    def _wake_getter(self) -> None:
        g = self._getter
        if g is not None and not g.done():
            g.set_result(None)

    # -- toxic changes (called from the API handlers, on the loop) --------------------------
    def add_toxic(self, toxic: Toxic) -> None:
        if toxic.kind.stage is None or self.done:
            return
        live = [s for s in self.stages if not s.gone]
        if live:
            live[-1].restart()  # Toxiproxy restarts (and re-rolls) the toxic before the new one
        st = toxic.kind.stage(toxic, self)
        st.start()
        self.stages = self.stages + [st]
        self._ensure_writer()

    def update_toxic(self, toxic: Toxic) -> None:
        for st in self.stages:
            if st.toxic is toxic and not st.gone:
                st.restart()

    def remove_toxic(self, toxic: Toxic) -> None:
        before: Stage | None = None
        for st in self.stages:
            if st.toxic is toxic and not st.gone:
                self.stages = [s for s in self.stages if s is not st]
                if before is not None:
                    before.restart()
                st.removed()
                return
            if not st.gone:
                before = st

    # -- the writer task --------------------------------------------------------------------
    async def _get(self) -> Chunk | None:
        while not self._queue:
            self._busy = False
            self._getter = asyncio.get_running_loop().create_future()
            try:
                await self._getter
            finally:
                self._getter = None
        self._busy = True
        item = self._queue.popleft()
        if len(self._queue) < _MAX_QUEUED // 2:
            self._unpause("queue")
        return item

    async def _write_loop(self) -> None:
        reset = False
        try:
            while True:
                chunk = await self._get()
                stages = tuple(self.stages)
                if chunk is None:
                    await self._eof(stages, 0)
                    break
                try:
                    await self._run(chunk, stages, 0)
                except EndLink as end:
                    reset = end.reset
                    idx = stages.index(end.stage) + 1 if end.stage in stages else len(stages)
                    await self._eof(stages, idx)
                    break
                if not self._queue:
                    self._busy = False
        except EndLink as end:
            reset = end.reset
        except asyncio.CancelledError:
            if not self.done:
                raise
            return
        self._busy = False
        if not self.done:
            self._finish(reset)

    async def _run(self, chunk: Chunk, stages: tuple[Stage, ...], i: int) -> None:
        n = len(stages)
        while i < n:
            st = stages[i]
            if st.active and not st.gone:
                j = i + 1

                async def emit(c: Chunk, _j: int = j) -> None:
                    await self._run(c, stages, _j)

                await st.process(chunk, emit)
                return
            i += 1
        if self.done:
            return
        self.sink.write(chunk.data)
        self._sent.inc(len(chunk.data))
        while self.sink.paused and not self.done:
            self._writable_fut = asyncio.get_running_loop().create_future()
            try:
                await self._writable_fut
            finally:
                self._writable_fut = None

    async def _eof(self, stages: tuple[Stage, ...], i: int) -> None:
        for st in stages[i:]:
            if st.active and not st.gone:
                await st.on_eof()


class Connection:
    """A client socket and its upstream socket, joined by two links."""

    def __init__(self, proxy: ProxyState, client: SocketEnd, upstream: SocketEnd) -> None:
        from harness.proxy.rpc import (
            Interceptor,  # local import: rpc uses this module's helpers
        )

        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.interceptor = Interceptor(proxy, upstream)
        up_toxics = [t for t in proxy.toxics if t.direction == "upstream"]
        down_toxics = [t for t in proxy.toxics if t.direction == "downstream"]
        self.links = {
            "upstream": Link(self, "upstream", client, self.interceptor, up_toxics,
                             proxy.metric_children("upstream")),
            "downstream": Link(self, "downstream", self.interceptor, client, down_toxics,
                               proxy.metric_children("downstream")),
        }
        if any(t.kind.stage is not None and t.kind.stage.arms_reset for t in proxy.toxics):
            client.arm_reset()
            upstream.arm_reset()
        self._done_links = 0
        self.closed = False

    def start(self) -> None:
        for link in self.links.values():
            link.start()
        up, down = self.links["upstream"], self.links["downstream"]
        self.interceptor.attach(down)
        self.client.attach(up.feed, up.feed_eof)

    def link_done(self, link: Link) -> None:
        self._done_links += 1
        if self._done_links >= 2:
            self.close(hard=False)

    def close(self, *, hard: bool = True) -> None:
        """Close both sockets and stop every task.

        ``hard`` (proxy disabled or deleted) drops unsent data at once; otherwise (both links
        ended) whatever is still buffered is flushed before the sockets close.
        """
        if self.closed:
            return
        self.closed = True
        for link in self.links.values():
            link.abort()
        for end in (self.client, self.upstream):
            with contextlib.suppress(Exception):  # a socket that is already gone
                if hard:
                    end.abort()
                else:
                    end.close()
        self.proxy.connections.discard(self)
