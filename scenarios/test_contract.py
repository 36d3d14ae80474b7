"""Playbook 4: contract failure — the escrow rejects every proof, or part of them.

Detect: ``tx_failure_rate`` (SEV-3 when a share fails, SEV-2 when everything does). Contain: the
agent simulates before sending and pauses the failing contract instead of burning gas on reverts;
when only part of the time fails, proofs still land in between. Recover: the escrow accepts proofs
again and the agent resumes.
"""

from __future__ import annotations

import pytest

from harness.drill.predicates import in_mode, proofs_landing, reverts_at_most
from harness.faults.contract import RevertStorm


@pytest.mark.drill(playbook="contract-failure", incident="tx_failure_rate", family="contract")
def test_revert_storm_pauses_instead_of_burning_gas(drill):
    drill.steady_state()
    drill.inject(RevertStorm())
    drill.expect_detection("tx_failure_rate", severity="SEV-3")
    drill.expect_containment(in_mode("paused"), reverts_at_most(3))
    drill.heal()
    drill.expect_recovery()
    drill.verify()


@pytest.mark.drill(playbook="contract-failure", incident="tx_failure_rate", family="contract")
def test_partial_revert_storm_reported_and_proofs_still_land(drill):
    drill.steady_state()
    drill.inject(RevertStorm(share=0.5, period=4.0))  # rejecting 2 s, accepting 2 s, over and over
    drill.expect_detection("tx_failure_rate", severity="SEV-3")
    drill.expect_containment(reverts_at_most(3), proofs_landing(2))
    drill.heal()
    drill.expect_recovery()
    drill.verify()
