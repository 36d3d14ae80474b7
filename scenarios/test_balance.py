"""Playbook 5: low balance — the hot wallet is drained of ETH down to a few proofs' worth of gas.

Detect: ``balance_low`` at SEV-2. Contain: non-essential work paused, the most urgent proofs first
(the agent still proves, within what it has), judged on chain: blocks come every 0.5 s, five
escrows of mixed deadlines arrive at once, and the agent's proofs must land one per block, none sent
while a more urgent escrow waited. Recover: the wallet is funded again and the agent returns to
full operation.
"""

from __future__ import annotations

import pytest

from harness.drill.predicates import in_mode, one_proof_at_a_time
from harness.faults.balance import BalanceDepletion
from harness.faults.chainfaults import BlockTime


@pytest.mark.drill(playbook="low-balance", incident="balance_low", family="balance")
def test_balance_low_alerts_and_serves_urgent_proofs_first(drill):
    drill.steady_state()
    drill.inject(BalanceDepletion(leave_wei=2 * 10**15))
    drill.inject(BlockTime(0.5))  # proofs sent together would share a block
    drill.expect_detection("balance_low", severity="SEV-2")
    drill.open_escrows(40, 12, 30, 20, 25)  # mixed urgency, arriving at once
    drill.expect_containment(in_mode("paused"), one_proof_at_a_time(count=6))
    drill.heal()  # the block time
    drill.heal()  # the wallet is funded again
    drill.expect_recovery()
    drill.verify()
