"""Playbook 4: contract failure — the escrow rejects every proof, or part of them.

Detect: ``tx_failure_rate`` (SEV-3 when a share fails, SEV-2 when everything does; exactly). Contain: the
agent simulates before sending and pauses the failing contract instead of burning gas on reverts;
when only part of the time fails, proofs still land in between. Recover: the escrow accepts proofs
again and the agent resumes.

A single failed transaction is no incident: the escrow rejects proofs for one second, one proof
reverts, and the agent logs it at SEV-4 or not at all, and neither pauses nor halts (judged on the
chain: proofs go on landing).
"""

from __future__ import annotations

import pytest

from harness.drill.predicates import in_mode, proofs_landing, reverts_at_most
from harness.faults.contract import RevertBlip, RevertStorm


# "all failing" takes the agent a few seconds of unbroken failures to tell from "some failing"
@pytest.mark.drill(playbook="contract-failure", incident="tx_failure_rate", family="contract", budget={"detect": 8})
def test_revert_storm_pauses_instead_of_burning_gas(drill):
    drill.steady_state()
    drill.inject(RevertStorm())
    drill.expect_detection("tx_failure_rate", severity="SEV-2")  # every transaction failing: cannot operate
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


# the guide's threshold is "more than 20% failing": a storm in the 20-30% band must be seen, and as
# "some failing"; it takes a longer view (more proofs) than a storm that fails half the time
@pytest.mark.drill(playbook="contract-failure", incident="tx_failure_rate", family="contract", budget={"detect": 30})
def test_revert_storm_just_over_threshold_is_sev3(drill):
    drill.steady_state()
    drill.inject(RevertStorm(share=0.25, period=4.0))  # rejecting 1 s out of every 4
    drill.expect_detection("tx_failure_rate", severity="SEV-3")
    drill.expect_containment(reverts_at_most(3), proofs_landing(2))
    drill.heal()
    drill.expect_recovery()
    drill.verify()


@pytest.mark.drill(playbook="contract-failure", incident="tx_failure_rate", family="contract")
def test_single_failed_transaction_is_no_incident(drill):
    drill.steady_state()
    drill.inject(RevertBlip(hold=1.0))
    drill.open_escrows(20)  # work waiting while the escrow rejects: one proof fails
    drill.expect_no_overreaction(hold=6.0, proofs=2)
    drill.verify()
