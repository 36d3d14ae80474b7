"""Two-fault drills: each catches a defect of the reference agent that no single fault shows.

Not collected on its own (the name does not start with ``test_``): test_combination_defects.py runs
it in an inner ``pytest -p harness.drill.pytest_plugin tests/reference_agent/combination_drills.py
-m drill`` against the sound agent, which must pass both drills, and against each defect, which must
fail the drill aimed at it. Every defect aimed at here also passes every single-fault drill of
scenarios/ (docs/agent.md, section 5): only the two faults overlapping show it.

The schedules, as data, in the form of scenarios/schedules/*.json (``at``: inject offset in seconds
after steady state; ``at + hold``: heal offset). The drills themselves wait for the events named in
the notes, which came at about these offsets in the runs that measured them (pyevm, 2 cores):

``test_restart_during_fee_bump_keeps_the_replacement``, aimed at ``kill_loses_replacement``::

    {"fault": "gas_spike", "params": {"base_fee_gwei": 60}, "at": 0, "hold": 10}
    {"fault": "process_kill", "params": {"down": 0.0}, "at": 4, "hold": 2}

    notes: GasSpike(base_fee_gwei=60, growth=3.0, block_time=1.0), the catalogue's spike. The kill
    comes once a replacement of a stuck transaction is in the pool (stuck_transactions detected and
    the first replacement at 3.2-3.5 s); the spike is healed after the containment check (6.2 s
    for the sound agent; the defect never gets there, its queue waits for the heal).

``test_failover_while_transactions_are_stuck_keeps_their_nonces``, aimed at ``failover_forgets_pending``::

    {"fault": "gas_spike", "params": {"base_fee_gwei": 200}, "at": 0, "hold": 10}
    {"fault": "rpc_outage", "params": {"target": "primary"}, "at": 3.5, "hold": 5}

    notes: Outage("primary") right after stuck_transactions is detected (3.2-3.4 s); both healed
    after the containment check (6.1-6.2 s for the sound agent, measured with the 60 gwei spike).
    The spike climbs to 200 gwei here, a block further than the catalogue's: since contract 1.1
    the agent rides out the first 1.5 s of an outage on the primary (a blip is no failover), so it
    fails over at about 5 s, and the transactions must still be stuck then.

The spike climbs threefold a block (1 s) from twice the normal base fee to 60 gwei, about 6 s in:
while it climbs the agent's transactions fall under the base fee and are replaced, and at the
peak the agent's market price (twice the next base fee) gets them mined. The second fault has to
come while replaced or stuck transactions wait in the pool (from about 3 s to 5.5 s): earlier there
is nothing to lose, later the peak has let them through.

Replayed as schedules with fixed offsets (``test_schedule_replay --drill-schedule FILE``), the two
step lists above pass with the sound agent and fail with the defect aimed at, on the invariant
"no escrow proven or proof attempted twice": once the spike is healed at 10 s the transaction the
defective agent lost track of is mined beside the proof it sent again for the same escrow.
"""

from __future__ import annotations

import pytest

from harness.drill.predicates import (
    Predicate,
    Probe,
    Seen,
    failed_over,
    replaced_with_fee_bump,
    restarted,
)
from harness.faults.gas import GasSpike
from harness.faults.network import Outage
from harness.faults.process import ProcessKill


def climbing_spike() -> GasSpike:
    """The catalogue's spike (scenarios/test_gas.py): threefold a block up to 60 gwei."""
    return GasSpike(base_fee_gwei=60, growth=3.0, block_time=1.0)


def higher_climbing_spike() -> GasSpike:
    """The catalogue's spike climbing one block further, to 200 gwei (twice it stays under the
    agent's 500 gwei cap): transactions stay stuck about a second longer, long enough for an outage
    injected at detection to outlast the agent's blip grace (1.5 s) and fail over among them."""
    return GasSpike(base_fee_gwei=200, growth=3.0, block_time=1.0)


class proofs_since_last_fault(Predicate):
    """At least ``count`` escrows proven since the latest fault was injected (the engine's own
    ``proofs_landing`` counts from the first one)."""

    evidence = True

    def __init__(self, count: int = 2) -> None:
        self.count = count
        self.name = f"{count} proof(s) landing after the second fault"
        self.failure = f"fewer than {count} proof(s) landed after the second fault (the first one still active)"

    def __call__(self, probe: Probe) -> Seen:
        injected = [e.t for e in probe.ctx.timeline.events("drill.inject")]
        since = injected[-1] if injected else probe.since
        proven = sorted(probe.watcher.proven(since), key=lambda e: e.proven_t or 0.0)
        expired = probe.watcher.expired(since)
        pending = sum(len(v) for v in (probe.watcher.pool or {}).values())
        ok = len(proven) >= self.count
        return Seen(ok, f"{len(proven)} proven, {len(expired)} expired since the second fault; "
                        f"{pending} of the agent's transactions pending in the pool",
                    since=proven[self.count - 1].proven_t if ok else None)


# Budgets from the first injection: stuck transactions come at about 3 s, the second fault right
# after, and the queue moves again at the peak (6 s); recovery is counted from the last heal.
combination = pytest.mark.drill(playbook="stuck-transactions", incident="stuck_transactions", family="gas",
                                budget={"detect": 10, "contain": 20})


@combination
def test_restart_during_fee_bump_keeps_the_replacement(drill):
    drill.steady_state()
    spike = drill.inject(climbing_spike())
    drill.expect_detection("stuck_transactions", severity="SEV-3")
    drill.wait_until(replaced_with_fee_bump(min_ratio=1.10), within=15)  # a fee-bump episode under way
    drill.inject(ProcessKill())
    # The restarted agent must carry on from the replacement it journalled: its queue moves at the peak.
    drill.expect_containment(restarted(), proofs_since_last_fault(2))
    drill.heal(spike)
    drill.expect_recovery()
    drill.verify()  # and no escrow proven twice


@combination
def test_failover_while_transactions_are_stuck_keeps_their_nonces(drill):
    drill.steady_state()
    spike = drill.inject(higher_climbing_spike())
    drill.expect_detection("stuck_transactions", severity="SEV-3")
    outage = drill.inject(Outage("primary"))
    # On the backup the agent must keep bumping what it sent before the switch: its queue moves at the peak.
    drill.expect_containment(failed_over("backup-1"), proofs_since_last_fault(2))
    drill.heal(outage)
    drill.heal(spike)
    drill.expect_recovery()
    drill.verify()  # and no escrow proven twice
