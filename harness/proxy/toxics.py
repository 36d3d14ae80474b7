"""Toxic types: their attributes, validation, JSON form and per-link behaviour.

Standard types (same names, attributes and semantics as Toxiproxy 2.12):

``latency``      latency (ms), jitter (ms): every chunk leaves ``latency ± jitter`` after it was
                 read; chained latencies add; throughput is not limited.
``bandwidth``    rate (KB/s, 1 KB = 1000 bytes): data is paced to the rate, big chunks go out in
                 ``rate*100``-byte pieces every 100 ms. A rate of 0 or below is refused with a 400
                 (the Go server spins or stalls on it); to stop traffic use ``timeout`` or disable
                 the proxy.
``slow_close``   delay (ms): data passes; when the input ends the close waits ``delay``.
``timeout``      timeout (ms): all data is dropped; the connection closes after ``timeout`` ms,
                 never when 0; removing the toxic closes the connection.
``reset_peer``   timeout (ms): on the first data (or end of input) the data is dropped, then after
                 ``timeout`` ms the connection is closed with a TCP RST (SO_LINGER 0 is set on the
                 sockets of connections opened while such a toxic exists).
``slicer``       average_size (bytes, > 0), size_variation (bytes), delay (µs): chunks are cut into
                 pieces of about ``average_size ± size_variation`` with ``delay`` between them.
``limit_data``   bytes: forwards that many bytes on this link, then closes the connection (0: closes
                 on the first data).
``noop``         passes data unchanged.

Negative durations, sizes and rates are refused with a 400 (``bad request body: ...``).

The JSON-RPC types (``rpc_error``, ``rpc_stale_head``, ``rpc_drop_tx``, ``rpc_wrong_chain``) are
declared here too so they are created and listed like any toxic; their behaviour and attributes are
described in :mod:`harness.proxy.rpc`.

Toxicity is rolled once per connection and direction whenever a toxic (re)starts on a link: when
the connection opens, when the toxic is updated, and when another toxic is appended after it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from harness.proxy.gojson import BadBody, decode_fields

if TYPE_CHECKING:  # pragma: no cover
    from harness.proxy.link import Link

__all__ = ["RPC_TYPES", "TOXIC_TYPES", "AttrSpec", "Chunk", "EndLink", "Stage", "Toxic", "ToxicType"]


class Chunk:
    """Bytes read from one side, stamped with when they were read (event-loop time)."""

    __slots__ = ("data", "ts")

    def __init__(self, data: bytes, ts: float) -> None:
        self.data = data
        self.ts = ts


class EndLink(Exception):
    """Raised by a stage to end its link (the rest of the chain sees end of input)."""

    def __init__(self, stage: Stage, *, reset: bool = False) -> None:
        super().__init__(stage.toxic.name)
        self.stage = stage
        self.reset = reset


Emit = Callable[[Chunk], Awaitable[None]]


class Stage:
    """One toxic running on one link: rolled toxicity, per-link state, interruptible sleeps."""

    arms_reset: ClassVar[bool] = False

    def __init__(self, toxic: Toxic, link: Link) -> None:
        self.toxic = toxic
        self.link = link
        self.active = False
        self.gone = False
        self._wake: asyncio.Future[bool] | None = None

    @property
    def attrs(self) -> dict[str, Any]:
        return self.toxic.attributes

    def start(self) -> None:
        self.active = random.random() < self.toxic.toxicity

    def restart(self) -> None:
        self.interrupt()
        self.stop()
        self.start()

    def stop(self) -> None:
        """Cancel timers owned by the stage (connection closing or stage restarting)."""

    def removed(self) -> None:
        self.gone = True
        self.interrupt()
        self.stop()

    def interrupt(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(False)

    async def sleep(self, seconds: float) -> bool:
        """Sleep unless interrupted; True when the whole delay passed."""
        if seconds <= 0:
            return True
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        self._wake = fut
        handle = loop.call_later(seconds, _resolve, fut)
        try:
            return await fut
        finally:
            handle.cancel()
            self._wake = None

    async def process(self, chunk: Chunk, emit: Emit) -> None:
        await emit(chunk)

    async def on_eof(self) -> None:
        return None


def _resolve(fut: asyncio.Future[bool]) -> None:
    if not fut.done():
        fut.set_result(True)


class LatencyStage(Stage):
    async def process(self, chunk: Chunk, emit: Emit) -> None:
        delay = self.attrs["latency"]
        jitter = self.attrs["jitter"]
        if jitter > 0:
            delay += random.randint(-jitter, jitter)
        due = chunk.ts + max(delay, 0) / 1000.0
        loop = asyncio.get_running_loop()
        if await self.sleep(due - loop.time()):
            chunk.ts = due
        await emit(chunk)


class BandwidthStage(Stage):
    def start(self) -> None:
        super().start()
        self._free_at = 0.0

    async def process(self, chunk: Chunk, emit: Emit) -> None:
        loop = asyncio.get_running_loop()
        data = chunk.data
        while data:
            rate = self.attrs["rate"]  # bytes per millisecond
            piece = data[: rate * 100]
            data = data[len(piece):]
            self._free_at = max(self._free_at, loop.time()) + len(piece) / rate / 1000.0
            if not await self.sleep(self._free_at - loop.time()):
                # interrupted: pass everything left at once, nothing is dropped
                self._free_at = loop.time()
                await emit(Chunk(piece + data, chunk.ts))
                return
            await emit(Chunk(piece, chunk.ts))


class SlowCloseStage(Stage):
    async def on_eof(self) -> None:
        await self.sleep(self.attrs["delay"] / 1000.0)


class TimeoutStage(Stage):
    def start(self) -> None:
        super().start()
        self._timer: asyncio.TimerHandle | None = None
        ms = self.attrs["timeout"]
        if self.active and ms > 0:
            self._timer = asyncio.get_running_loop().call_later(ms / 1000.0, self.link.terminate)

    def stop(self) -> None:
        timer = getattr(self, "_timer", None)
        if timer is not None:
            timer.cancel()
            self._timer = None

    def removed(self) -> None:
        super().removed()
        # Toxiproxy closes the link when a timeout toxic is taken away
        self.link.terminate()

    async def process(self, chunk: Chunk, emit: Emit) -> None:
        return None  # data is dropped


class ResetPeerStage(Stage):
    arms_reset = True

    async def _reset(self) -> None:
        # like Toxiproxy, the wait is not interrupted by updates or removal
        await asyncio.sleep(self.attrs["timeout"] / 1000.0)
        raise EndLink(self, reset=True)

    async def process(self, chunk: Chunk, emit: Emit) -> None:
        await self._reset()

    async def on_eof(self) -> None:
        await self._reset()


class SlicerStage(Stage):
    async def process(self, chunk: Chunk, emit: Emit) -> None:
        data = chunk.data
        avg = self.attrs["average_size"]
        var = self.attrs["size_variation"]
        delay = self.attrs["delay"] / 1_000_000.0
        while len(data) - avg > var:
            size = avg + (random.randint(-var, var) if var > 0 else 0)
            size = max(1, min(size, len(data) - 1))
            piece, data = data[:size], data[size:]
            await emit(Chunk(piece, chunk.ts))
            if not await self.sleep(delay):
                break
        if data:
            await emit(Chunk(data, chunk.ts))


class LimitDataStage(Stage):
    def __init__(self, toxic: Toxic, link: Link) -> None:
        super().__init__(toxic, link)
        self.passed = 0  # kept across restarts, like Toxiproxy's per-link state

    async def process(self, chunk: Chunk, emit: Emit) -> None:
        left = self.attrs["bytes"] - self.passed
        data = chunk.data[: max(left, 0)]
        if data:
            self.passed += len(data)
            await emit(Chunk(data, chunk.ts))
        if self.attrs["bytes"] - self.passed <= 0:
            raise EndLink(self)


@dataclass(frozen=True, kw_only=True)
class AttrSpec:
    name: str
    gotype: str  # "int64", "int", "string", "[]string"
    minimum: int | None = 0  # smallest accepted integer (None: no check)
    default: Any = 0
    hint: str = ""

    def check(self, value: Any, toxic_type: str) -> None:
        if self.minimum is not None and isinstance(value, int) and value < self.minimum:
            need = "greater than 0" if self.minimum == 1 else f"at least {self.minimum}"
            raise BadBody(f"{toxic_type} attribute {self.name} must be {need}, got {value}"
                          + (f"; {self.hint}" if self.hint else ""))


@dataclass(frozen=True, kw_only=True)
class ToxicType:
    name: str
    struct: str  # Go type named in decode errors
    attrs: tuple[AttrSpec, ...]
    stage: type[Stage] | None  # None: not a byte-stream toxic (JSON-RPC types)
    rpc: bool = False

    def defaults(self) -> dict[str, Any]:
        return {a.name: (list(a.default) if isinstance(a.default, list) else a.default) for a in self.attrs}

    def decode_attrs(self, obj: Any, base: dict[str, Any]) -> dict[str, Any]:
        """Merge the ``attributes`` object ``obj`` over ``base``; check kinds and ranges."""
        fields = {a.name: a.gotype for a in self.attrs}
        got = decode_fields(obj, fields, "", go_value=f"toxics.{self.struct}", prefix="attributes.")
        merged = dict(base)
        merged.update(got)
        for spec in self.attrs:
            spec.check(merged[spec.name], self.name)
        return merged


def _int(name: str, *, minimum: int | None = 0, hint: str = "", gotype: str = "int64") -> AttrSpec:
    return AttrSpec(name=name, gotype=gotype, minimum=minimum, hint=hint)


TOXIC_TYPES: dict[str, ToxicType] = {
    t.name: t
    for t in (
        ToxicType(name="latency", struct="LatencyToxic", attrs=(_int("latency"), _int("jitter")), stage=LatencyStage),
        ToxicType(name="bandwidth", struct="BandwidthToxic",
                  attrs=(_int("rate", minimum=1, hint="the rate is in KB/s; to stop all traffic use a timeout "
                                                      "toxic or disable the proxy"),), stage=BandwidthStage),
        ToxicType(name="slow_close", struct="SlowCloseToxic", attrs=(_int("delay"),), stage=SlowCloseStage),
        ToxicType(name="timeout", struct="TimeoutToxic", attrs=(_int("timeout"),), stage=TimeoutStage),
        ToxicType(name="reset_peer", struct="ResetToxic", attrs=(_int("timeout"),), stage=ResetPeerStage),
        ToxicType(name="slicer", struct="SlicerToxic",
                  attrs=(_int("average_size", minimum=1, gotype="int"), _int("size_variation", gotype="int"),
                         _int("delay", gotype="int")), stage=SlicerStage),
        ToxicType(name="limit_data", struct="LimitDataToxic", attrs=(_int("bytes"),), stage=LimitDataStage),
        ToxicType(name="noop", struct="NoopToxic", attrs=(), stage=Stage),
    )
}

_METHODS = AttrSpec(name="methods", gotype="[]string", minimum=None, default=[])
RPC_TYPES: dict[str, ToxicType] = {
    t.name: t
    for t in (
        ToxicType(name="rpc_error", struct="RpcErrorToxic", rpc=True, stage=None, attrs=(
            _METHODS,
            AttrSpec(name="code", gotype="int64", minimum=None, default=-32000),
            AttrSpec(name="message", gotype="string", minimum=None, default="internal error"),
            AttrSpec(name="http_status", gotype="int64", minimum=0, default=0,
                     hint="0 answers with a JSON-RPC error; 100..599 answers with that HTTP status"),
            AttrSpec(name="retry_after", gotype="int64", minimum=0, default=1),
        )),
        ToxicType(name="rpc_stale_head", struct="RpcStaleHeadToxic", rpc=True, stage=None, attrs=(
            _METHODS,
            AttrSpec(name="blocks", gotype="int64", minimum=1, default=0,
                     hint="blocks is how far the head seen by clients lags the real one"),
        )),
        ToxicType(name="rpc_drop_tx", struct="RpcDropTxToxic", rpc=True, stage=None, attrs=(_METHODS,)),
        ToxicType(name="rpc_wrong_chain", struct="RpcWrongChainToxic", rpc=True, stage=None, attrs=(
            _METHODS,
            AttrSpec(name="chain_id", gotype="int64", minimum=1, default=0,
                     hint="chain_id is the chain id clients are told"),
        )),
    )
}

ALL_TYPES: dict[str, ToxicType] = {**TOXIC_TYPES, **RPC_TYPES}


class Toxic:
    """A toxic as the API knows it (shared by every link of its proxy)."""

    def __init__(self, *, name: str, kind: ToxicType, stream: str, toxicity: float,
                 attributes: dict[str, Any]) -> None:
        self.name = name
        self.kind = kind
        self.stream = stream
        self.toxicity = toxicity
        self.attributes = attributes

    @property
    def type(self) -> str:
        return self.kind.name

    @property
    def direction(self) -> str:
        return "upstream" if self.stream.lower() == "upstream" else "downstream"

    def to_json(self) -> dict[str, Any]:
        tox: float | int = self.toxicity
        if isinstance(tox, float) and tox.is_integer():
            tox = int(tox)
        return {"attributes": dict(self.attributes), "name": self.name, "type": self.type,
                "stream": self.stream, "toxicity": tox}

    def __repr__(self) -> str:
        return f"Toxic({self.name!r}, {self.type}, {self.stream}, {self.toxicity}, {self.attributes})"
