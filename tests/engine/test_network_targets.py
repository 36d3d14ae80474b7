"""Network fault targets resolved against the endpoints a drill built (a recording stand-in for the proxy API).

The standard world builds two endpoints, ``primary`` and ``backup-1``; a fault aimed at an endpoint
the drill does not have is refused when it is injected, naming those that exist, and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from harness.drill.world import ENDPOINT_ROLES
from harness.errors import UnknownScenarioError, UsageError
from harness.faults.network import Latency, Outage, RpcErrors
from harness.observe.timeline import Timeline


class RecordingProxies:
    """Records the calls a network fault makes to the proxy API."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def set_enabled(self, proxy: str, enabled: bool) -> None:
        self.calls.append(("set_enabled", proxy, enabled))

    def add_toxic(self, proxy: str, ttype: str, **kw: Any) -> None:
        self.calls.append(("add_toxic", proxy, ttype, kw["stream"]))

    def remove_toxic(self, proxy: str, name: str) -> None:
        self.calls.append(("remove_toxic", proxy))


@dataclass
class Ctx:
    proxies: RecordingProxies = field(default_factory=RecordingProxies)
    endpoints: dict[str, str] = field(default_factory=lambda: dict(ENDPOINT_ROLES))
    timeline: Timeline = field(default_factory=Timeline)


def test_the_world_builds_a_primary_and_one_backup() -> None:
    assert ENDPOINT_ROLES == {"primary": "rpc-primary", "backup-1": "rpc-backup-1"}


@pytest.mark.parametrize("make", [lambda: Outage("backup-2"), lambda: Latency("backup-2", latency_ms=100),
                                  lambda: RpcErrors("backup-7")])
def test_a_backup_the_world_lacks_is_refused_at_inject_naming_the_endpoints(make: Any) -> None:
    ctx = Ctx()
    fault = make()  # the form backup-N is valid; whether it exists is known only in a drill
    with pytest.raises(UnknownScenarioError) as info:
        fault.bind(ctx).inject()
    message = str(info.value)
    assert message.startswith(f"{type(fault).__name__}({fault.target!r}): no RPC endpoint {fault.target!r} in this drill")
    assert "known: backup-1, primary, or 'all'" in message
    assert isinstance(info.value, UsageError)  # a mistake in the drill, not a harness bug
    assert ctx.proxies.calls == []  # nothing was changed
    assert not fault.active and fault.heal() is None
    assert ctx.timeline.events("fault.inject") == []


def test_all_acts_on_every_endpoint_and_heal_undoes_it() -> None:
    ctx = Ctx()
    fault = Outage("all").bind(ctx)
    fault.inject()
    assert ctx.proxies.calls == [("set_enabled", "rpc-primary", False), ("set_enabled", "rpc-backup-1", False)]
    fault.heal()
    assert ctx.proxies.calls[2:] == [("set_enabled", "rpc-backup-1", True), ("set_enabled", "rpc-primary", True)]


def test_backup_1_acts_on_its_proxy_only() -> None:
    ctx = Ctx()
    fault = Latency("backup-1", latency_ms=50, stream="both").bind(ctx)
    fault.inject()
    assert ctx.proxies.calls == [("add_toxic", "rpc-backup-1", "latency", "upstream"),
                                 ("add_toxic", "rpc-backup-1", "latency", "downstream")]
    fault.heal()
    assert ctx.proxies.calls[2:] == [("remove_toxic", "rpc-backup-1"), ("remove_toxic", "rpc-backup-1")]


def test_a_drill_without_endpoints_refuses_all() -> None:
    ctx = Ctx(endpoints={})
    with pytest.raises(UnknownScenarioError, match=r"Outage\('all'\): the drill has no RPC endpoints to act on"):
        Outage("all").bind(ctx).inject()
