"""Playbook: backup and restore — the agent's state was damaged or lost while it was down.

Detect: ``state_corruption`` (the agent notices on start). Contain: it rebuilds its state from the
chain: no escrow proven twice, no nonce gap, proofs landing. Recover: steady state.
"""

from __future__ import annotations

import pytest

from harness.drill.playbook_predicates import no_work_lost
from harness.drill.predicates import no_nonce_gap, proofs_landing, restarted
from harness.faults.state import StateCorruption, StateLoss

# The agent is restarted: detection waits for the new process to start (4-5 s on a busy machine).
backup_restore = pytest.mark.drill(playbook="backup-restore", incident="state_corruption", family="state",
                                   budget={"detect": 10, "contain": 15})


@backup_restore
def test_state_corrupted_rebuilds_from_chain_without_duplicate_proof(drill):
    drill.steady_state()
    drill.inject(StateCorruption())
    drill.expect_detection("state_corruption", severity="SEV-2")
    drill.expect_containment(restarted(), no_nonce_gap(), no_work_lost(), proofs_landing(1))
    drill.expect_recovery()
    drill.verify()


@backup_restore
def test_state_lost_rebuilds_from_chain_without_duplicate_proof(drill):
    drill.steady_state()
    drill.inject(StateLoss())
    drill.expect_detection("state_corruption", severity="SEV-2")
    drill.expect_containment(restarted(), no_nonce_gap(), no_work_lost(), proofs_landing(1))
    drill.expect_recovery()
    drill.verify()
