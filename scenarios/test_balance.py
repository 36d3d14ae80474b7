"""Playbook 5: low balance — the hot wallet is drained of ETH down to a few proofs' worth of gas.

Detect: ``balance_low`` at SEV-2. Contain: non-essential work paused, the most urgent proofs first
(the agent still proves, within what it has). Recover: the wallet is funded again and the agent
returns to full operation.
"""

from __future__ import annotations

import pytest

from harness.drill.predicates import in_mode
from harness.faults.balance import BalanceDepletion


@pytest.mark.drill(playbook="low-balance", incident="balance_low", family="balance")
def test_balance_low_alerts_and_serves_urgent_proofs_first(drill):
    drill.steady_state()
    drill.inject(BalanceDepletion(leave_wei=2 * 10**15))
    drill.expect_detection("balance_low", severity="SEV-2")
    drill.expect_containment(in_mode("paused"))
    drill.heal()
    drill.expect_recovery()
    drill.verify()
