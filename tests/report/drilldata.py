"""Drill-like data for the report tests: engine ``DrillResult``s built from a real ``Timeline``.

The events are recorded through the harness's own Timeline (as the engine's observers do), with
the shapes the alert sink, chain watcher, runtime and faults record; the result is the engine's
frozen ``DrillResult``. ``key`` is a throwaway private key that a test can plant somewhere.
"""

from __future__ import annotations

import time
from typing import Any

from harness.checks.budgets import POLICY, Budget
from harness.checks.metrics import compute, incidents
from harness.drill.result import DrillResult
from harness.observe.timeline import Event


class Timeline:
    """Records real ``Event``s like the harness's Timeline, on a scripted clock: ``at(seconds)`` moves it."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._base_t = time.monotonic()
        self._base_wall = time.time()
        self.now = 0.0

    def at(self, seconds: float) -> "Timeline":
        self.now = seconds
        return self

    def record(self, kind: str, source: str, /, **data: Any) -> Event:
        ev = Event(t=self._base_t + self.now, wall=self._base_wall + self.now, kind=kind, source=source, data=data)
        self._events.append(ev)
        return ev

    def events(self) -> list[Event]:
        return list(self._events)

HOT = "0x" + "11" * 20
COLD = "0x" + "22" * 20
NEW = "0x" + "33" * 20
KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"


def _alert(tl: Timeline, inc: str, kind: str, sev: str, status: str, summary: str, actions: list[str], **details: Any) -> None:
    tl.record("alert", "alert-sink", incident_id=inc, kind=kind, severity=sev, status=status, summary=summary,
              ts=time.time(), actions=actions, details=details)


def wallet_compromise(*, late: bool = False, output: str | None = None, scenario: str = "test_leaked_key_is_swept") -> DrillResult:
    """A SEV-1 key-leak drill: detected, swept, recovered; ``late`` makes containment miss its budget."""
    tl = Timeline()
    t_start = tl.record("world.start", "world").t
    tl.at(0.4).record("world.funded", "world", hot=HOT, eth=5.0, tokens=100, cold=COLD)
    tl.record("chain.balances", "chainwatch", balances={HOT: {"eth": 5 * 10**18, "token": 100 * 10**18}})
    tl.at(1.5).record("world.ready", "world", rpc_urls=["http://127.0.0.1:1"], control_url="http://127.0.0.1:2", alert_url="x")
    tl.at(1.6).record("agent.start", "runtime", pid=1234, start=1)
    tl.at(2.0).record("health", "health", status="ok", mode="normal", rpc="http://127.0.0.1:1", address=HOT, pending_txs=0)
    tl.at(2.2).record("escrow.opened", "chainwatch", id=1, agent=HOT, deadline=10, amount=10**16, block=3)
    tl.at(3.0).record("escrow.proven", "chainwatch", id=1, agent=HOT, block=4, tx="0xaa")
    tl.at(3.4).record("drill.steady", "drill", took=0.5, seen="ok")
    t0 = tl.at(4.0).record("fault.inject", "fault:key_leak", family="key", drain_every=0.5).t
    tl.at(4.5).record("attacker.tx", "fault:key_leak", tx_hash="0xbb", asset="ETH", amount="1000")
    _alert(tl.at(5.2), "INC-2026-11-28-001", "wallet_compromise", "SEV-1", "detected", "Outgoing transfer not made by the agent",
           ["halted sending"])
    tl.at(5.25).record("drill.detected", "drill", kind="wallet_compromise", severity="SEV-1", incident_id="INC-2026-11-28-001", mttd=1.2)
    tl.at(6.0).record("health", "health", status="degraded", mode="safe", rpc="http://127.0.0.1:1", address=NEW, pending_txs=0)
    _alert(tl.at(7.0), "INC-2026-11-28-001", "wallet_compromise", "SEV-1", "contained", "Funds swept to the cold wallet",
           ["swept ETH to cold wallet", "revoked escrow allowance"], new_address=NEW, swept_to=COLD)
    tl.at(7.1).record("agent.new_address", "world", address=NEW, incident_id="INC-2026-11-28-001")
    tl.at(7.6).record("escrow.reassigned", "chainwatch", id=2, old=HOT, new=NEW, block=9)
    if late:  # containment never confirmed: the drill stops at t0 + 10 s and cleanup heals the fault
        tl.at(13.0).record("escrow.expired", "chainwatch", id=3, agent=HOT, block=12)
        tl.at(14.1).record("fault.heal", "fault:key_leak", family="key", drain_every=0.5)
    else:
        tl.at(8.0).record("drill.contained", "drill", time_to_contain=4.0, predicates=["funds swept to the cold wallet"])
        tl.at(9.0).record("fault.heal", "fault:key_leak", family="key", drain_every=0.5)
        _alert(tl.at(11.0), "INC-2026-11-28-001", "wallet_compromise", "SEV-1", "resolved", "Operating from the new address", [])
        tl.at(11.5).record("health", "health", status="ok", mode="normal", rpc="http://127.0.0.1:1", address=NEW, pending_txs=0)
        tl.at(12.0).record("escrow.expired", "chainwatch", id=3, agent=HOT, block=12)
        tl.at(13.0).record("drill.recovered", "drill", mttr=9.0, incident_id="INC-2026-11-28-001")
        tl.at(15.0).record("drill.verified", "drill", verdict="passed", failed=[])
    m = compute(tl.events(), kind="wallet_compromise", min_severity="SEV-1")
    budget = Budget(detect=5, contain=10, recover=30, deadline_misses=0 if late else 1)
    status, category, message = ("passed", None, None)
    if late:
        status, category = "failed", "late_containment"
        message = "no sweep to the cold wallet within 10.0 s (cold wallet received 0 ETH; hot wallet holds 4.9 ETH)"
    events = tl.events()
    return DrillResult(
        name=f"scenarios/test_wallet.py::{scenario}", scenario=scenario, playbook="wallet-compromise", family="key",
        fault="KeyLeak(drain_every=0.5)", faults=({"name": "key_leak", "family": "key", "repr": "KeyLeak(drain_every=0.5)"},),
        expected_incident="wallet_compromise", status=status, category=category, message=message,
        t_start=t_start, t0=t0, mttd=m.mttd, time_to_contain=m.time_to_contain, mttr=m.mttr,
        incident_id=m.incident_id, detected_severity=m.detected_severity, budget=budget.to_json(), policy=POLICY.to_json(),
        incidents=tuple(i.to_json(t0) for i in incidents(events)),
        invariants=({"name": "funds accounted for", "verdict": "passed", "message": "gas 0.001 ETH, swept 3.9 ETH"},
                    {"name": "deadlines missed within allowance", "verdict": "failed" if late else "passed",
                     "message": f"1 missed (1 expired, 0 overdue), allowance {0 if late else 1}"}),
        funds={"gas_wei": 10**15, "swept_wei": 39 * 10**17, "lost_wei": 10**18, "unexplained_wei": 0, "at_risk_wei": 5 * 10**18},
        escrows={"opened": 3, "proven": 1, "expired": 1}, gas_spent_wei=10**15, harness_overhead_s=1.5,
        duration_s=round(events[-1].t - t_start + 0.5, 3), timeline=tuple(e.to_json(t0) for e in events),
        agent_output=output, agent_cmd=("python", "-m", "reference_agent"), restarts=0, alert_duplicates=1,
        contract_violations=0, chain_backend="anvil", budget_scale=1.0, rerun=f"pytest scenarios/test_wallet.py::{scenario}",
    )


def rpc_down(*, missed: bool = False, mttd: float = 1.5, mttr_extra: float = 0.0) -> DrillResult:
    """A SEV-3 RPC failover drill; ``missed`` makes the agent never raise the incident."""
    tl = Timeline()
    t_start = tl.record("world.start", "world").t
    tl.at(1.2).record("world.ready", "world", rpc_urls=[], control_url="", alert_url="")
    tl.at(3.0).record("drill.steady", "drill", took=0.2, seen="ok")
    t0 = tl.at(3.5).record("fault.inject", "fault:rpc_outage", family="network", target="primary").t
    if not missed:
        _alert(tl.at(3.5 + mttd), "INC-2026-11-28-002", "rpc_failure", "SEV-3", "detected", "Primary RPC down; on backup", ["switched to backup-1"],
               endpoint="backup-1")
        tl.at(3.55 + mttd).record("drill.detected", "drill", kind="rpc_failure", severity="SEV-3", incident_id="INC-2026-11-28-002", mttd=mttd, within=5.0)
        tl.at(6.0 + mttd).record("drill.contained", "drill", time_to_contain=round(2.5 + mttd, 3), predicates=["failed over to backup-1"])
        tl.at(9.0 + mttd).record("fault.heal", "fault:rpc_outage", family="network", target="primary")
        _alert(tl.at(10.0 + mttr_extra + mttd), "INC-2026-11-28-002", "rpc_failure", "SEV-3", "resolved", "Primary back", ["switched to primary"])
        tl.at(10.5 + mttr_extra + mttd).record("drill.recovered", "drill", mttr=7.0, incident_id="INC-2026-11-28-002")
        tl.at(12.0 + mttr_extra + mttd).record("drill.verified", "drill", verdict="passed", failed=[])
    else:
        tl.at(5.0).record("agent.exit", "runtime", pid=9, ran=1.0, code=1)
        tl.at(5.5).record("agent.restart", "runtime", restart=1, backoff=0.5)
        tl.at(9.0).record("fault.heal", "fault:rpc_outage", family="network", target="primary")
    m = compute(tl.events(), kind="rpc_failure", min_severity="SEV-3")
    events = tl.events()
    return DrillResult(
        name="scenarios/test_network.py::test_primary_rpc_down_fails_over", scenario="test_primary_rpc_down_fails_over",
        playbook="network-issues", family="network", fault="RpcOutage(target='primary')",
        faults=({"name": "rpc_outage", "family": "network", "repr": "RpcOutage(target='primary')"},),
        expected_incident="rpc_failure", status="failed" if missed else "passed",
        category="missed_detection" if missed else None,
        message="no rpc_failure alert at SEV-3 or above within 5.0 s of injection (no alert since injection)" if missed else None,
        t_start=t_start, t0=t0, mttd=m.mttd, time_to_contain=m.time_to_contain, mttr=m.mttr, incident_id=m.incident_id,
        detected_severity=m.detected_severity, budget=Budget().to_json(), policy=POLICY.to_json(),
        incidents=tuple(i.to_json(t0) for i in incidents(events)),
        invariants=({"name": "no secret in any output", "verdict": "passed", "message": "no key found"},),
        funds={"gas_wei": 2 * 10**14}, escrows={"opened": 4, "proven": 4, "expired": 0}, gas_spent_wei=2 * 10**14,
        harness_overhead_s=1.1, duration_s=round(events[-1].t - t_start + 0.5, 3), timeline=tuple(e.to_json(t0) for e in events),
        agent_output=None, agent_cmd=("python", "-m", "reference_agent"), restarts=1 if missed else 0, alert_duplicates=0,
        contract_violations=0, chain_backend="anvil", budget_scale=1.0, rerun="pytest scenarios/test_network.py::test_primary_rpc_down_fails_over",
    )
