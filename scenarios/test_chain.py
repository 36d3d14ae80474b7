"""Monitoring drills: the chain itself misbehaves.

Chain stall — no new blocks while work waits. Detect: ``chain_stalled`` (SEV-2); contain: the
agent pauses sending instead of piling up transactions (its ``paused`` claim is checked against the
pool: nothing new sent while it says so); recover: blocks again, work resumes (read on chain).

Reorg — the last blocks are replaced; the counterparty's transactions are mined again on the new
branch, the agent's are not, so proofs it saw confirmed are undone. Detect: ``reorg``; contain:
every escrow whose proof was orphaned is proven again, no nonce gap; recover: steady state.
"""

from __future__ import annotations

import pytest

from harness.drill.playbook_predicates import reorged_proofs_redone
from harness.drill.predicates import no_nonce_gap, silent_while
from harness.faults.chainfaults import ChainStall, Reorg


@pytest.mark.drill(playbook="monitoring", incident="chain_stalled", family="chain")
def test_chain_stall_is_detected_and_sending_paused(drill):
    drill.steady_state()
    drill.inject(ChainStall())
    drill.expect_detection("chain_stalled", severity="SEV-2")
    drill.expect_containment(silent_while("paused"))
    drill.heal()
    drill.expect_recovery()
    drill.verify()


@pytest.mark.drill(playbook="monitoring", incident="reorg", family="chain")
def test_reorg_orphaned_proofs_are_resubmitted(drill):
    drill.steady_state()
    reorg = drill.inject(Reorg(depth=3))
    drill.expect_detection("reorg", severity="SEV-3")
    drill.expect_containment(reorged_proofs_redone(reorg), no_nonce_gap())
    drill.expect_recovery()
    drill.verify()
