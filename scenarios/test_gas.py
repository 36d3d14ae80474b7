"""Playbook 2: stuck transactions — a gas spike leaves the agent's transactions underpriced.

The base fee climbs threefold per block (the agent prices for twice the current fee, so what it
sends during the climb falls behind) and then holds at its peak. Detect: ``stuck_transactions``.
Contain: stuck transactions replaced with at least +10% on fee cap and tip (or cancelled), no
nonce gap. Recover: fees back to normal, the pending queue drained, proofs on time.

Past the fee cap (the long-term step): the base fee climbs above the cap the harness gives the
agent (AGENT_FEE_CAP_WEI), so no replacement the agent may pay for can be mined. Contain: each
stuck nonce cancelled on chain by a zero-value transfer to itself, and the queue behind it mined.
"""

from __future__ import annotations

import pytest

from harness.drill.playbook_predicates import stuck_nonce_cancelled
from harness.drill.predicates import (
    no_nonce_gap,
    pending_queue_drained,
    replaced_with_fee_bump,
)
from harness.errors import UsageError
from harness.faults.gas import GasSpike


def _fee_cap_gwei(drill) -> float:
    """The fee cap the harness gave the agent (AGENT_FEE_CAP_WEI, contract 1.1), in gwei."""
    raw = (drill.ctx.agent_env or {}).get("AGENT_FEE_CAP_WEI", "")
    try:
        return int(raw, 0) / 10**9
    except ValueError:
        raise UsageError(f"AGENT_FEE_CAP_WEI={raw!r} is not an integer number of wei; "
                         f"set it with --agent-env AGENT_FEE_CAP_WEI=500000000000 or leave the harness's default") from None


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


# The long-term step: the base fee climbs past the agent's fee cap (a quarter of the cap, three
# quarters, then twice the cap from the third block on), so no replacement within the cap can be
# mined. The agent cancels each stuck nonce with a zero-value self-transfer (allowed over the cap)
# and holds new work until the base fee is under the cap again; proofs wait, some past their deadline.
@pytest.mark.drill(playbook="stuck-transactions", incident="stuck_transactions", family="gas",
                   budget={"detect": 10, "contain": 20, "deadline_misses": 3})
def test_gas_spike_past_fee_cap_stuck_transactions_cancelled(drill):
    cap_gwei = _fee_cap_gwei(drill)
    drill.steady_state()
    drill.inject(GasSpike(base_fee_gwei=2 * cap_gwei, start_gwei=cap_gwei / 4, growth=3.0, block_time=1.0))
    drill.expect_detection("stuck_transactions", severity="SEV-3")
    drill.expect_containment(stuck_nonce_cancelled(), pending_queue_drained(), no_nonce_gap())
    drill.heal()
    drill.expect_recovery()
    drill.verify()
