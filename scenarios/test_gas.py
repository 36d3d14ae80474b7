"""Playbook 2: stuck transactions — a gas spike leaves the agent's transactions underpriced.

The base fee climbs threefold per block (the agent prices for twice the current fee, so what it
sends during the climb falls behind) and then holds at its peak. Detect: ``stuck_transactions``.
Contain: stuck transactions replaced with at least +10% on fee cap and tip (or cancelled), no
nonce gap. Recover: fees back to normal, the pending queue drained, proofs on time.
"""

from __future__ import annotations

import pytest

from harness.drill.predicates import (
    no_nonce_gap,
    pending_queue_drained,
    replaced_with_fee_bump,
)
from harness.faults.gas import GasSpike


# The spike climbs for a few blocks before anything can be stuck, and "stuck" takes 2 blocks.
@pytest.mark.drill(playbook="stuck-transactions", incident="stuck_transactions", family="gas",
                   budget={"detect": 10, "contain": 15})
def test_gas_spike_stuck_transactions_replaced_with_fee_bump(drill):
    drill.steady_state()
    drill.inject(GasSpike(base_fee_gwei=60, growth=3.0, block_time=1.0))
    drill.expect_detection("stuck_transactions", severity="SEV-3")
    drill.expect_containment(replaced_with_fee_bump(min_ratio=1.10), no_nonce_gap())
    drill.heal()
    drill.wait_until(pending_queue_drained(), within=drill.budget.contain)
    drill.expect_recovery()
    drill.verify()


# The spike climbs for a few blocks before anything can be stuck, and "stuck" takes 2 blocks.
@pytest.mark.drill(playbook="stuck-transactions", incident="stuck_transactions", family="gas",
                   budget={"detect": 10, "contain": 15})
def test_gas_spike_replacement_bumps_cap_and_tip_by_ten_percent(drill):
    # Whatever the node accepts (anvil takes +1 wei), every replacement must raise both the fee cap
    # and the tip by at least 10% (geth's rule); a bump that only follows the base fee fails on the tip.
    drill.steady_state()
    drill.inject(GasSpike(base_fee_gwei=60, growth=3.0, block_time=1.0))
    drill.expect_detection("stuck_transactions", severity="SEV-3")
    drill.expect_containment(replaced_with_fee_bump(min_ratio=1.10))
    drill.heal()
    drill.expect_recovery()
    drill.verify()
