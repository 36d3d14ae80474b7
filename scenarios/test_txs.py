"""Playbook 2: stuck transactions — a node loses the agent's transaction, or another sender takes its nonce.

Dropped: blocks come every two seconds, so the agent's proof waits in the pool, where the fault
removes it. Detect: ``stuck_transactions`` (a hash the node no longer knows). Contain: the same
signed transaction, or a replacement, sent again and mined. Recover: proofs on time again.

Nonce taken: a transaction signed with the agent's key takes its next nonce. Detect:
``nonce_conflict``. Contain, on chain: the nonce re-read (the agent's next transaction mined past
the taken nonce) or the conflicting transaction cancelled (the agent's zero-value self-transfer
mined at that nonce), as the guide allows; nothing queued behind a gap, proofs landing. Recover:
steady state.
"""

from __future__ import annotations

import pytest

from harness.drill.playbook_predicates import collided_nonce_settled, dropped_txs_resent
from harness.drill.predicates import no_nonce_gap, pending_queue_drained, proofs_landing
from harness.faults.txs import DroppedTransaction, NonceCollision


@pytest.mark.drill(playbook="stuck-transactions", incident="stuck_transactions", family="txs")
def test_dropped_transaction_rebroadcast_and_proofs_resume(drill):
    drill.steady_state()
    drop = drill.inject(DroppedTransaction(count=1, block_time=2.0))
    drill.expect_detection("stuck_transactions", severity="SEV-3")
    drill.expect_containment(dropped_txs_resent(drop), no_nonce_gap())
    drill.heal()
    drill.expect_recovery()
    drill.verify()


@pytest.mark.drill(playbook="stuck-transactions", incident="nonce_conflict", family="txs")
def test_nonce_collision_is_detected_and_nonce_resynced(drill):
    drill.steady_state()
    collision = drill.inject(NonceCollision())
    drill.expect_detection("nonce_conflict", severity="SEV-3")
    drill.expect_containment(collided_nonce_settled(collision), no_nonce_gap(), pending_queue_drained(), proofs_landing(1))
    drill.expect_recovery()
    drill.verify()
