"""Playbook 4: contract failure — the escrow rejects every proof.

Detect: ``tx_failure_rate`` (SEV-2 when everything fails). Contain: the agent simulates before
sending and pauses the failing contract instead of burning gas on reverts. Recover: the escrow
accepts proofs again and the agent resumes.
"""

from __future__ import annotations

import pytest

from harness.drill.predicates import in_mode, reverts_at_most
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
