"""harness.faults.network through a real embedded proxy, with a timeline."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from proxyfixtures import EchoServer, RpcServer, connect, recv_exactly

from harness.errors import ConfigError, UnknownScenarioError
from harness.faults.network import (
    Bandwidth,
    DroppedSends,
    Latency,
    NetworkFault,
    Outage,
    ResetPeer,
    RpcErrors,
    Slicer,
    StaleHead,
    Timeout,
    WrongChain,
)
from harness.observe.timeline import Timeline
from harness.proxy.control import ProxyControl


@dataclass
class Ctx:
    proxies: ProxyControl
    endpoints: dict[str, str]
    timeline: Timeline = field(default_factory=Timeline)


@pytest.fixture
def ctx(control: ProxyControl, rpc_server: RpcServer) -> Ctx:
    for role in ("primary", "backup-1"):
        control.create(f"rpc-{role}", rpc_server.addr)
    control.add_toxic("rpc-primary", "noop", name="someone-elses")
    return Ctx(control, {"primary": "rpc-primary", "backup-1": "rpc-backup-1"})


def _toxics(ctx: Ctx, proxy: str) -> list[dict[str, Any]]:
    return ctx.proxies.toxics(proxy)


def _rpc(ctx: Ctx, role: str, method: str, params: list | None = None) -> requests.Response:
    url = ctx.proxies.endpoint(ctx.endpoints[role]).url
    return requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}, timeout=5)


ALL_FAULTS = [
    (Latency(latency_ms=30, jitter_ms=5, stream="both"), [("latency", "upstream", {"latency": 30, "jitter": 5}),
                                                          ("latency", "downstream", {"latency": 30, "jitter": 5})]),
    (Timeout(timeout_ms=100), [("timeout", "downstream", {"timeout": 100})]),
    (ResetPeer(timeout_ms=10, stream="upstream"), [("reset_peer", "upstream", {"timeout": 10})]),
    (Slicer(average_size=8, size_variation=2, delay_us=100),
     [("slicer", "downstream", {"average_size": 8, "size_variation": 2, "delay": 100})]),
    (Bandwidth(rate_kb_s=64), [("bandwidth", "downstream", {"rate": 64})]),
    (RpcErrors(methods=["eth_call"], http_status=429, retry_after_s=2, toxicity=0.5),
     [("rpc_error", "downstream", {"methods": ["eth_call"], "code": -32000, "message": "internal error",
                                   "http_status": 429, "retry_after": 2})]),
    (StaleHead(blocks=4), [("rpc_stale_head", "downstream", {"methods": [], "blocks": 4})]),
    (DroppedSends(), [("rpc_drop_tx", "downstream", {"methods": []})]),
    (WrongChain(chain_id=5), [("rpc_wrong_chain", "downstream", {"methods": [], "chain_id": 5})]),
]


@pytest.mark.parametrize(("fault", "expected"), ALL_FAULTS, ids=[type(f).__name__ for f, _ in ALL_FAULTS])
def test_inject_adds_exactly_and_heal_removes_exactly(ctx: Ctx, fault: NetworkFault,
                                                      expected: list[tuple[str, str, dict]]) -> None:
    fault.bind(ctx)
    ev = fault.inject()
    assert ev.kind == "fault.inject" and ev.source == f"fault:{fault.name}" and ev.data["family"] == "network"
    assert ev.data["target"] == "primary"
    mine = [t for t in _toxics(ctx, "rpc-primary") if t["name"] != "someone-elses"]
    assert [(t["type"], t["stream"], t["attributes"]) for t in mine] == expected
    assert {t["toxicity"] for t in mine} == {fault.toxicity}
    assert _toxics(ctx, "rpc-backup-1") == []
    healed = fault.heal()
    assert healed is not None and healed.kind == "fault.heal"
    assert [t["name"] for t in _toxics(ctx, "rpc-primary")] == ["someone-elses"]
    assert fault.heal() is None  # a second heal is a no-op
    assert [e.kind for e in ctx.timeline] == ["fault.inject", "fault.heal"]


def test_outage_on_all(ctx: Ctx) -> None:
    fault = Outage("all").bind(ctx)
    fault.inject()
    for role in ("primary", "backup-1"):
        with pytest.raises(requests.ConnectionError):
            _rpc(ctx, role, "eth_chainId")
    fault.heal()
    for role in ("primary", "backup-1"):
        assert _rpc(ctx, role, "eth_chainId").json()["result"] == hex(31337)


def test_rpc_faults_act_on_traffic(ctx: Ctx, rpc_server: RpcServer) -> None:
    faults = [RpcErrors(methods=["eth_getBalance"], code=-32005, message="rate limited").bind(ctx),
              StaleHead(blocks=7).bind(ctx), DroppedSends().bind(ctx), WrongChain("backup-1", chain_id=10).bind(ctx)]
    for f in faults:
        f.inject()
    assert _rpc(ctx, "primary", "eth_getBalance", ["0x" + "00" * 20, "latest"]).json()["error"]["code"] == -32005
    assert _rpc(ctx, "primary", "eth_blockNumber").json()["result"] == hex(93)
    assert _rpc(ctx, "primary", "eth_sendRawTransaction", ["0x01"]).json()["result"].startswith("0x")
    assert "eth_sendRawTransaction" not in rpc_server.backend.methods()
    assert _rpc(ctx, "backup-1", "eth_chainId").json()["result"] == "0xa"
    assert _rpc(ctx, "primary", "eth_chainId").json()["result"] == hex(31337)
    for f in faults:
        f.heal()
    assert _rpc(ctx, "primary", "eth_blockNumber").json()["result"] == hex(100)
    assert _rpc(ctx, "backup-1", "eth_chainId").json()["result"] == hex(31337)


def test_latency_fault_through_echo(control: ProxyControl, echo: EchoServer) -> None:
    control.create("echo", echo.addr)
    ctx = Ctx(control, {"primary": "echo"})
    ep = control.endpoint("echo")
    s = connect(f"{ep.host}:{ep.port}")
    fault = Latency(latency_ms=100).bind(ctx)
    fault.inject()
    t0 = time.perf_counter()
    s.sendall(b"x")
    assert recv_exactly(s, 1) == b"x"
    assert time.perf_counter() - t0 >= 0.09  # the open connection is slowed too
    fault.heal()
    t0 = time.perf_counter()
    s.sendall(b"y")
    assert recv_exactly(s, 1) == b"y"
    assert time.perf_counter() - t0 < 0.09
    s.close()


def test_heal_tolerates_reset_and_inject_rolls_back(ctx: Ctx) -> None:
    fault = Latency("all", latency_ms=1).bind(ctx)
    fault.inject()
    ctx.proxies.reset()
    fault.heal()  # the toxics are already gone: no error
    broken = Ctx(ctx.proxies, {"primary": "rpc-primary", "backup-1": "does-not-exist"})
    fault = Latency("all", latency_ms=1).bind(broken)
    with pytest.raises(UnknownScenarioError, match="proxy not found"):
        fault.inject()
    assert _toxics(ctx, "rpc-primary") == []  # what was added before the failure was removed
    assert not fault.active


def test_unknown_target(ctx: Ctx) -> None:
    with pytest.raises(UnknownScenarioError, match="no RPC endpoint 'backup-2'.*known: backup-1, primary"):
        Timeout("backup-2").bind(ctx).inject()


@pytest.mark.parametrize(("make", "match"), [
    (lambda: Latency(latency_ms=-1), "latency_ms must be at least 0"),
    (lambda: Latency(latency_ms=1.5), "latency_ms must be an integer"),
    (lambda: Latency(latency_ms=10, stream="sideways"), "stream must be one of"),
    (lambda: Timeout("secondary"), "target must be 'primary', 'backup-N'"),
    (lambda: Slicer(average_size=0), "average_size must be at least 1"),
    (lambda: Bandwidth(rate_kb_s=0), "rate_kb_s must be at least 1"),
    (lambda: RpcErrors(http_status=200), "http_status must be 0"),
    (lambda: RpcErrors(methods="eth_call"), "methods must be a list"),
    (lambda: RpcErrors(toxicity=1.5), "toxicity is the share"),
    (lambda: StaleHead(blocks=0), "blocks must be at least 1"),
    (lambda: WrongChain(chain_id=0), "chain_id must be at least 1"),
])
def test_parameters_validated(make: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make()


def test_describe_and_repr() -> None:
    f = RpcErrors("all", methods=["eth_call"], http_status=503)
    assert f.describe() == {"family": "network", "target": "all", "methods": ["eth_call"], "code": -32000,
                            "message": "internal error", "http_status": 503, "retry_after_s": 1}
    assert repr(Outage()) == "Outage(target='primary')"
