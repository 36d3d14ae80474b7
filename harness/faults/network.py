"""Network faults: toxics (or a disabled proxy) on the fault proxies in front of the agent's RPC.

Every fault acts on one endpoint role (``"primary"``, ``"backup-1"``, ...) or on ``"all"`` of them.
The drill context supplies ``ctx.proxies`` (a :class:`harness.proxy.control.ProxyControl`),
``ctx.endpoints`` (role -> proxy name) and ``ctx.timeline``. ``inject()`` adds the toxics and
remembers each one the moment it exists; ``heal()`` removes exactly those (and re-enables what an
outage disabled), tolerating toxics that were already removed by a reset.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from harness.errors import ConfigError, UnknownScenarioError
from harness.faults.base import Fault

__all__ = [
    "Bandwidth",
    "DroppedSends",
    "Latency",
    "NetworkFault",
    "Outage",
    "ResetPeer",
    "RpcErrors",
    "Slicer",
    "StaleHead",
    "Timeout",
    "WrongChain",
]

_TARGET = re.compile(r"primary|all|backup-[1-9][0-9]*")
_STREAMS = ("downstream", "upstream", "both")


def _check_int(fault: str, name: str, value: Any, *, minimum: int, unit: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{fault}: {name} must be an integer number of {unit}, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{fault}: {name} must be at least {minimum} {unit}, got {value}")
    return value


def _check_methods(fault: str, methods: Sequence[str]) -> tuple[str, ...]:
    if isinstance(methods, str) or not all(isinstance(m, str) and m for m in methods):
        raise ConfigError(f"{fault}: methods must be a list of JSON-RPC method names "
                          f"(e.g. ['eth_call']), got {methods!r}")
    return tuple(methods)


class NetworkFault(Fault):
    """Base of the network faults: resolves the target and undoes exactly what it added."""

    family: ClassVar[str] = "network"

    def __init__(self, target: str = "primary", *, toxicity: float = 1.0) -> None:
        super().__init__()
        if not isinstance(target, str) or not _TARGET.fullmatch(target):
            raise ConfigError(f"{type(self).__name__}: target must be 'primary', 'backup-N' (N >= 1) "
                              f"or 'all', got {target!r}")
        if isinstance(toxicity, bool) or not isinstance(toxicity, (int, float)) or not 0.0 <= toxicity <= 1.0:
            raise ConfigError(f"{type(self).__name__}: toxicity is the share of connections (or calls) "
                              f"affected, between 0 and 1, got {toxicity!r}")
        self._target = target
        self._toxicity = float(toxicity)
        self._added: list[tuple[str, str]] = []  # (proxy, toxic name), in the order added

    @property
    def target(self) -> str:
        return self._target

    @property
    def toxicity(self) -> float:
        return self._toxicity

    def proxy_names(self) -> list[str]:
        """The proxies the target names in this drill; an endpoint the world did not build is an error.

        The target's form is checked when the fault is built, but which backups exist is known only
        once it is bound to a drill (the standard world builds ``primary`` and ``backup-1``), so
        ``Outage("backup-2")`` is refused here, at injection, before anything is changed.
        """
        endpoints: Mapping[str, str] = self.ctx.endpoints
        label = f"{type(self).__name__}({self._target!r})"
        if self._target == "all":
            if not endpoints:
                raise UnknownScenarioError(f"{label}: the drill has no RPC endpoints to act on")
            return list(endpoints.values())
        if self._target not in endpoints:
            known = ", ".join(sorted(endpoints)) or "none"
            raise UnknownScenarioError(f"{label}: no RPC endpoint {self._target!r} in this drill "
                                       f"(known: {known}, or 'all'); target one of those")
        return [endpoints[self._target]]

    # -- what subclasses describe -------------------------------------------------------------
    def toxics(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(type, stream, attributes) of each toxic to add on every target proxy."""
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        return {}

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"family": self.family, "target": self._target}
        out.update(self.params())
        if self._toxicity != 1.0:
            out["toxicity"] = self._toxicity
        return out

    # -- lifecycle --------------------------------------------------------------------------
    def _inject(self) -> None:
        control = self.ctx.proxies
        try:
            for proxy in self.proxy_names():
                for i, (ttype, stream, attrs) in enumerate(self.toxics()):
                    name = f"drills_{self.name}_{stream}_{id(self):x}_{i}"
                    control.add_toxic(proxy, ttype, stream=stream, toxicity=self._toxicity,
                                      attributes=attrs, name=name)
                    self._added.append((proxy, name))
        except BaseException:
            self._heal()
            raise

    def _heal(self) -> None:
        control = self.ctx.proxies
        errors: list[Exception] = []
        while self._added:
            proxy, name = self._added.pop()
            try:
                control.remove_toxic(proxy, name)
            except UnknownScenarioError:
                pass  # already gone (a reset, or the proxy was deleted)
            except Exception as exc:  # noqa: BLE001 - keep undoing the rest, report after
                errors.append(exc)
        if errors:
            raise errors[0]


def _streams(fault: str, stream: str) -> tuple[str, ...]:
    if stream not in _STREAMS:
        raise ConfigError(f"{fault}: stream must be one of {', '.join(_STREAMS)}, got {stream!r}")
    return ("upstream", "downstream") if stream == "both" else (stream,)


class Outage(NetworkFault):
    """The endpoint is down: its proxy is disabled (connections refused, open ones closed)."""

    name: ClassVar[str] = "rpc_outage"

    def __init__(self, target: str = "primary") -> None:
        super().__init__(target)
        self._disabled: list[str] = []

    def _inject(self) -> None:
        control = self.ctx.proxies
        try:
            for proxy in self.proxy_names():
                control.set_enabled(proxy, False)
                self._disabled.append(proxy)
        except BaseException:
            self._heal()
            raise

    def _heal(self) -> None:
        control = self.ctx.proxies
        while self._disabled:
            proxy = self._disabled.pop()
            try:
                control.set_enabled(proxy, True)
            except UnknownScenarioError:
                pass


class Latency(NetworkFault):
    """Every chunk delayed by ``latency_ms`` (± ``jitter_ms``) on the chosen stream(s)."""

    name: ClassVar[str] = "rpc_latency"

    def __init__(self, target: str = "primary", *, latency_ms: int, jitter_ms: int = 0,
                 stream: str = "downstream", toxicity: float = 1.0) -> None:
        super().__init__(target, toxicity=toxicity)
        self.latency_ms = _check_int("Latency", "latency_ms", latency_ms, minimum=0, unit="ms")
        self.jitter_ms = _check_int("Latency", "jitter_ms", jitter_ms, minimum=0, unit="ms")
        self._streams = _streams("Latency", stream)
        self.stream = stream

    def params(self) -> dict[str, Any]:
        return {"latency_ms": self.latency_ms, "jitter_ms": self.jitter_ms, "stream": self.stream}

    def toxics(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [("latency", s, {"latency": self.latency_ms, "jitter": self.jitter_ms}) for s in self._streams]


class Timeout(NetworkFault):
    """Data stops flowing; connections close after ``timeout_ms`` (0: they hang until healed)."""

    name: ClassVar[str] = "rpc_timeout"

    def __init__(self, target: str = "primary", *, timeout_ms: int = 0, stream: str = "downstream",
                 toxicity: float = 1.0) -> None:
        super().__init__(target, toxicity=toxicity)
        self.timeout_ms = _check_int("Timeout", "timeout_ms", timeout_ms, minimum=0, unit="ms")
        self._streams = _streams("Timeout", stream)
        self.stream = stream

    def params(self) -> dict[str, Any]:
        return {"timeout_ms": self.timeout_ms, "stream": self.stream}

    def toxics(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [("timeout", s, {"timeout": self.timeout_ms}) for s in self._streams]


class ResetPeer(NetworkFault):
    """Connections are reset (TCP RST) ``timeout_ms`` after their first data."""

    name: ClassVar[str] = "rpc_reset"

    def __init__(self, target: str = "primary", *, timeout_ms: int = 0, stream: str = "downstream",
                 toxicity: float = 1.0) -> None:
        super().__init__(target, toxicity=toxicity)
        self.timeout_ms = _check_int("ResetPeer", "timeout_ms", timeout_ms, minimum=0, unit="ms")
        self._streams = _streams("ResetPeer", stream)
        self.stream = stream

    def params(self) -> dict[str, Any]:
        return {"timeout_ms": self.timeout_ms, "stream": self.stream}

    def toxics(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [("reset_peer", s, {"timeout": self.timeout_ms}) for s in self._streams]


class Slicer(NetworkFault):
    """Data cut into small pieces (``average_size`` ± ``size_variation`` bytes, ``delay_us`` apart)."""

    name: ClassVar[str] = "rpc_slicer"

    def __init__(self, target: str = "primary", *, average_size: int, size_variation: int = 0,
                 delay_us: int = 0, stream: str = "downstream", toxicity: float = 1.0) -> None:
        super().__init__(target, toxicity=toxicity)
        self.average_size = _check_int("Slicer", "average_size", average_size, minimum=1, unit="bytes")
        self.size_variation = _check_int("Slicer", "size_variation", size_variation, minimum=0, unit="bytes")
        self.delay_us = _check_int("Slicer", "delay_us", delay_us, minimum=0, unit="µs")
        self._streams = _streams("Slicer", stream)
        self.stream = stream

    def params(self) -> dict[str, Any]:
        return {"average_size": self.average_size, "size_variation": self.size_variation,
                "delay_us": self.delay_us, "stream": self.stream}

    def toxics(self) -> list[tuple[str, str, dict[str, Any]]]:
        attrs = {"average_size": self.average_size, "size_variation": self.size_variation, "delay": self.delay_us}
        return [("slicer", s, attrs) for s in self._streams]


class Bandwidth(NetworkFault):
    """Throughput limited to ``rate_kb_s`` kilobytes (1000 bytes) per second."""

    name: ClassVar[str] = "rpc_bandwidth"

    def __init__(self, target: str = "primary", *, rate_kb_s: int, stream: str = "downstream",
                 toxicity: float = 1.0) -> None:
        super().__init__(target, toxicity=toxicity)
        self.rate_kb_s = _check_int("Bandwidth", "rate_kb_s", rate_kb_s, minimum=1, unit="KB/s")
        self._streams = _streams("Bandwidth", stream)
        self.stream = stream

    def params(self) -> dict[str, Any]:
        return {"rate_kb_s": self.rate_kb_s, "stream": self.stream}

    def toxics(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [("bandwidth", s, {"rate": self.rate_kb_s}) for s in self._streams]


class RpcErrors(NetworkFault):
    """Chosen methods answered with a JSON-RPC error, or an HTTP status (429, 502, 503, ...).

    ``toxicity`` is the share of matching calls that fail.
    """

    name: ClassVar[str] = "rpc_errors"

    def __init__(self, target: str = "primary", *, methods: Sequence[str] = (), code: int = -32000,
                 message: str = "internal error", http_status: int = 0, retry_after_s: int = 1,
                 toxicity: float = 1.0) -> None:
        super().__init__(target, toxicity=toxicity)
        self.methods = _check_methods("RpcErrors", methods)
        if isinstance(code, bool) or not isinstance(code, int):
            raise ConfigError(f"RpcErrors: code must be an integer JSON-RPC error code, got {code!r}")
        if not isinstance(message, str):
            raise ConfigError(f"RpcErrors: message must be a string, got {message!r}")
        if http_status != 0 and not (isinstance(http_status, int) and 400 <= http_status <= 599):
            raise ConfigError(f"RpcErrors: http_status must be 0 (JSON-RPC error) or an HTTP error status "
                              f"400..599 such as 429 or 503, got {http_status!r}")
        self.code = code
        self.message = message
        self.http_status = http_status
        self.retry_after_s = _check_int("RpcErrors", "retry_after_s", retry_after_s, minimum=0, unit="s")

    def params(self) -> dict[str, Any]:
        return {"methods": list(self.methods), "code": self.code, "message": self.message,
                "http_status": self.http_status, "retry_after_s": self.retry_after_s}

    def toxics(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [("rpc_error", "downstream", {"methods": list(self.methods), "code": self.code,
                                             "message": self.message, "http_status": self.http_status,
                                             "retry_after": self.retry_after_s})]


class StaleHead(NetworkFault):
    """The chain head seen through the endpoint lags the real one by ``blocks``."""

    name: ClassVar[str] = "stale_head"

    def __init__(self, target: str = "primary", *, blocks: int, methods: Sequence[str] = ()) -> None:
        super().__init__(target)
        self.blocks = _check_int("StaleHead", "blocks", blocks, minimum=1, unit="blocks")
        self.methods = _check_methods("StaleHead", methods)

    def params(self) -> dict[str, Any]:
        return {"blocks": self.blocks, "methods": list(self.methods)}

    def toxics(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [("rpc_stale_head", "downstream", {"blocks": self.blocks, "methods": list(self.methods)})]


class DroppedSends(NetworkFault):
    """``eth_sendRawTransaction`` answered with the right hash but never forwarded to the chain."""

    name: ClassVar[str] = "dropped_sends"

    def __init__(self, target: str = "primary", *, toxicity: float = 1.0) -> None:
        super().__init__(target, toxicity=toxicity)

    def toxics(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [("rpc_drop_tx", "downstream", {"methods": []})]


class WrongChain(NetworkFault):
    """``eth_chainId`` and ``net_version`` answer ``chain_id`` instead of the real chain's."""

    name: ClassVar[str] = "wrong_chain"

    def __init__(self, target: str = "primary", *, chain_id: int) -> None:
        super().__init__(target)
        self.chain_id = _check_int("WrongChain", "chain_id", chain_id, minimum=1, unit="(chain id)")

    def params(self) -> dict[str, Any]:
        return {"chain_id": self.chain_id}

    def toxics(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [("rpc_wrong_chain", "downstream", {"chain_id": self.chain_id, "methods": []})]
