"""The faults a schedule can use out of the box, each as a ``FaultSpec`` in ``FAULTS``.

Each is one of the catalogue's faults with the parameters its single-fault drill uses, and a few
values around them for the search. Kept out on purpose (for now): a key leak (it rotates the
agent's address, and a second fault against the old one means little), a chain stall and a reorg
(they stop or rewrite what the other faults' detection is measured against), the state faults
(they act only at a restart, which a process kill already gives).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.schedule.model import FaultSpec, register_fault

__all__ = ["BUILTIN"]


def _outage(p: Mapping[str, Any]) -> Any:
    from harness.faults.network import Outage

    return Outage(p.get("target", "primary"))


def _gas(p: Mapping[str, Any]) -> Any:
    from harness.faults.gas import GasSpike

    return GasSpike(base_fee_gwei=p.get("base_fee_gwei", 60), growth=3.0, block_time=1.0)


def _kill(p: Mapping[str, Any]) -> Any:
    from harness.faults.process import ProcessKill

    return ProcessKill(down=float(p.get("down", 0.0)))


def _dropped(p: Mapping[str, Any]) -> Any:
    from harness.faults.txs import DroppedTransaction

    return DroppedTransaction(count=p.get("count", 1), block_time=2.0)


def _reverts(p: Mapping[str, Any]) -> Any:
    from harness.faults.contract import RevertStorm

    return RevertStorm(share=1.0)


#: the shortest stretch of an outage an agent must run through to be expected to see it: contract
#: 1.1 lets an agent ride out a blip of about a second without an incident (the reference agent waits
#: 1.5 s), and it must then notice, so an outage shorter than this is a blip, not a fault to detect
_TOO_LATE = 3.0


def _agent_there(fault: Any, drill: Any, t_inject: float, t_heal: float) -> float | None:
    """When the agent was there to meet the outage, on the supervisor's evidence (``agent.start``,
    ``agent.exit``, ``agent.stop``): the start of the first stretch of the outage it ran through
    without a stop for ``_TOO_LATE`` seconds or more (the injection itself when it was up then); None
    when no stretch was that long (killed within its blip grace, or back with too little of the
    outage left: nothing it could fairly have seen).
    """
    tl = drill.timeline
    need = _TOO_LATE * getattr(drill, "time_scale", 1.0)  # a real-time drill's agent waits out a longer blip
    marks = sorted([(e.t, True) for e in tl.events("agent.start")] +
                   [(e.t, False) for e in tl.events("agent.exit") + tl.events("agent.stop")])
    up_since = None
    for t, starts in marks:
        if t > t_heal:
            break
        if starts:
            up_since = t if up_since is None else up_since
        else:
            if up_since is not None and t - max(up_since, t_inject) >= need:
                return max(up_since, t_inject)
            up_since = None
    if up_since is not None and t_heal - max(up_since, t_inject) >= need:
        return max(up_since, t_inject)
    return None


def _stranded(fault: Any, drill: Any, t_inject: float, t_heal: float) -> float | None:
    """When an agent transaction first seen while the spike was on started a wait of 2 s or more to be mined."""
    w = drill.ctx.watcher
    agents = set(drill.ctx.agent_addresses)
    with w.lock:
        waits = [t.sent_t for t in w.txs if t.sender in agents and t.sent_t is not None
                 and t_inject <= t.sent_t <= t_heal and t.t - t.sent_t >= 2.0]
    waits += [s.t for s in w.sends(t_inject) if s.sender in agents and not s.mined and s.t <= t_heal - 2.0]
    return min(waits, default=None)


def _first_drop(fault: Any, drill: Any, t_inject: float, t_heal: float) -> float | None:
    """When the node first lost one of the agent's transactions."""
    drops = [e.t for e in drill.timeline.events("fault.tx_dropped") if t_inject <= e.t <= t_heal]
    return min(drops, default=None)


def _proofs_due(fault: Any, drill: Any, t_inject: float, t_heal: float) -> float | None:
    """When the third of the agent's escrows open during the storm was there: proofs it had to attempt.

    Not the reverts themselves: an agent that simulates first never sends a proof that would revert.
    """
    w = drill.ctx.watcher
    agents = set(drill.ctx.agent_addresses)
    with w.lock:
        due = sorted(max(e.opened_t, t_inject) for e in w.escrows.values() if e.agent in agents
                     and e.opened_t <= t_heal and (e.proven_t is None or e.proven_t >= t_inject))
    return due[2] if len(due) >= 3 else None


BUILTIN = (
    FaultSpec(name="rpc_outage", make=_outage, incident="rpc_failure", params={"target": ("primary",)},
              holds=lambda p: (f"rpc:{p.get('target', 'primary')}",), min_hold=_TOO_LATE, shown=_agent_there,
              doc="the endpoint's proxy refuses every connection (Outage)"),
    FaultSpec(name="gas_spike", make=_gas, incident="stuck_transactions", params={"base_fee_gwei": (60, 100, 40)},
              holds=lambda p: ("mining",), min_hold=8.0, detect=10.0, shown=_stranded, busy=(3.0, 5.0),
              doc="the base fee climbs x3 a block to the peak, blocks every 1 s (GasSpike)"),
    FaultSpec(name="process_kill", make=_kill, incident="process_crash", params={"down": (0.0, 1.0, 3.0)},
              holds=lambda p: ("agent",), instant=True, min_hold=2.0,
              shown=lambda fault, drill, t_inject, t_heal: t_inject if getattr(fault, "killed_pid", None) else None,
              doc="SIGKILL of the agent, restarted by the supervisor after `down` seconds (ProcessKill)"),
    FaultSpec(name="dropped_tx", make=_dropped, incident="stuck_transactions", params={"count": (1, 2)},
              holds=lambda p: ("mining",), min_hold=5.0, shown=_first_drop,
              doc="the node loses the agent's next `count` transactions from its pool, blocks every 2 s (DroppedTransaction)"),
    FaultSpec(name="revert_storm", make=_reverts, incident="tx_failure_rate", params={},
              holds=lambda p: ("escrow",), min_hold=6.0, max_hold=6.0, rest=10.0, shown=_proofs_due,
              doc="every proof reverts (RevertStorm, share 1)"),
)

for _spec in BUILTIN:
    register_fault(_spec)
