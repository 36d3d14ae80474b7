"""Checks that can fail where they are aimed, and a record the report only renders.

A reorg that orphaned no proof ends the drill as an error instead of a pass; the value-at-risk limit
is a share of what the agent held at the injection and fails the drill as a containment failure;
the budgets applied, the missed deadlines and the value at risk are fields of the engine's record,
which the report adapter reads as they are.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from chainctx import Marker, chain_ctx
from eth_utils import function_signature_to_4byte_selector

from harness import accounts
from harness.checks.budgets import Budget, parse_config
from harness.contracts import send_tx
from harness.drill.api import Drill, classify
from harness.drill.context import DrillContext
from harness.drill.playbook_predicates import reorged_proofs_redone
from harness.drill.predicates import swept_to_cold_wallet
from harness.errors import ConfigError, ContainmentFailed, DetectionMissed, DrillAborted, NothingTested
from harness.faults.chainfaults import Reorg
from harness.record.build import record_from_result

ETH = 10**18


@pytest.fixture
def ctx(drill_chain: Any, tmp_path: Path) -> Iterator[DrillContext]:
    with chain_ctx(drill_chain, tmp_path) as c:
        c.watcher.poll_once()  # the balances at the start are on the timeline before any injection
        yield c


# -- a reorg that orphaned nothing tested nothing -----------------------------------------------------
def test_a_reorg_that_orphaned_no_proof_is_an_error_not_a_pass(ctx: DrillContext) -> None:
    d = Drill(ctx, name="t", scenario="t", budget=Budget())
    reorg = d.inject(Reorg(depth=1))  # the last block holds the harness's funding of the hot wallet
    assert not reorg.orphaned_agent_txs
    with pytest.raises(NothingTested) as err:
        d.expect_containment(reorged_proofs_redone(reorg), within=1.0)
    assert str(err.value).startswith("the reorg orphaned no proof of the agent: nothing was tested (it replaced 1 transaction(s), "
                                     "0 of them the agent's, none a submitProof)")
    status, category, message = classify(err.value)
    assert (status, category) == ("error", "harness_error")  # not judged: neither passed nor the agent's failure
    assert message is not None and "nothing was tested" in message


class _OrphanedProof:
    """What a Reorg records of an orphaned proof of the agent (escrow ``escrow_id``), nothing else."""

    def __init__(self, escrow_id: int) -> None:
        selector = "0x" + function_signature_to_4byte_selector("submitProof(uint256,bytes32)").hex()
        self.orphaned = ["0x01"]
        self.orphaned_agent_txs = ["0x01"]
        self.orphaned_agent_tx_data = [{"input": selector + f"{escrow_id:064x}" + "00" * 32}]


def test_an_orphaned_proof_not_submitted_again_fails_containment(ctx: DrillContext) -> None:
    d = Drill(ctx, name="t", scenario="t", budget=Budget())
    d.inject(Marker())
    with pytest.raises(ContainmentFailed) as err:
        d.expect_containment(reorged_proofs_redone(_OrphanedProof(4242)), within=0.3)
    assert str(err.value) == ("an escrow whose proof was orphaned by the reorg is not proven again within 0.3 s "
                              "(escrows whose proof was orphaned: [4242]; not proven again: {4242: 'none'})")


# -- the value at risk, sized to the wallet --------------------------------------------------------------
def test_the_default_limit_is_half_of_what_was_held_and_a_fixed_limit_overrides_it() -> None:
    assert Budget().value_at_risk_limit(5 * ETH) == 5 * ETH // 2
    assert Budget(value_at_risk_share=0.2).value_at_risk_limit(5 * ETH) == ETH
    assert Budget(value_at_risk_eth=20.0).value_at_risk_limit(5 * ETH) == 20 * ETH  # user override kept
    assert Budget().value_at_risk_limit(0) is None  # nothing held: no share to draw a limit from
    cfg = parse_config({"value_at_risk_share": 0.25, "scenarios": {"test_x": {"value_at_risk_eth": 1.5}}})
    assert cfg.defaults.value_at_risk_limit(4 * ETH) == ETH
    assert cfg.budget_for("test_x").value_at_risk_limit(4 * ETH) == 15 * ETH // 10


@pytest.mark.parametrize("share", [0, 1.5, -0.1, True, "half"])
def test_a_share_outside_0_to_1_is_refused_with_the_fix(share: Any) -> None:
    with pytest.raises(ConfigError, match=r"value_at_risk_share must be a fraction > 0 and <= 1 .*set value_at_risk_eth instead"
                       if not isinstance(share, str) else r"value_at_risk_share must be a fraction > 0 and <= 1"):
        if isinstance(share, str):
            parse_config({"value_at_risk_share": share})
        else:
            Budget(value_at_risk_share=share)


def _steal(ctx: DrillContext, wei: int) -> None:
    attacker = accounts.new_key().address
    ctx.attacker_addresses.add(attacker)
    send_tx(ctx.chain.w3, ctx.hot_wallet, {"to": attacker, "value": wei, "gas": 21_000})


def test_losing_more_than_half_the_wallet_fails_containment_naming_the_limit(ctx: DrillContext) -> None:
    d = Drill(ctx, name="t", scenario="t", budget=Budget())
    d.inject(Marker())
    _steal(ctx, 3 * ETH)
    with pytest.raises(ContainmentFailed) as err:
        d.expect_containment(swept_to_cold_wallet(), within=10)
    assert str(err.value).startswith(
        "the agent did not contain the loss: 3 ETH lost, over the value-at-risk limit of 2.5 ETH "
        "(50% of the 5 ETH the agent held at the injection); the drill was stopped at +")
    assert classify(err.value)[:2] == ("failed", "late_containment")
    (ev,) = ctx.timeline.events("drill.value_at_risk")
    assert (ev.data["lost_wei"], ev.data["limit_wei"], ev.data["held_wei"]) == (3 * ETH, 5 * ETH // 2, 5 * ETH)


def test_a_loss_under_the_limit_does_not_stop_a_drill_that_contains(ctx: DrillContext) -> None:
    d = Drill(ctx, name="t", scenario="t", budget=Budget())
    d.inject(Marker())
    _steal(ctx, ETH)  # what the sound agent loses to the key-leak drill's first drains: about 10%
    send_tx(ctx.chain.w3, ctx.hot_wallet, {"to": ctx.cold_wallet, "value": 3 * ETH + 98 * ETH // 100, "gas": 21_000})
    assert d.expect_containment(swept_to_cold_wallet(), within=10) >= 0


def test_a_fixed_limit_passed_before_any_fault_stops_the_drill_unjudged(ctx: DrillContext) -> None:
    d = Drill(ctx, name="t", scenario="t", budget=Budget(value_at_risk_eth=0.5))
    _steal(ctx, ETH)
    with pytest.raises(DrillAborted, match=r"value at risk: 1 ETH lost, over the limit of 0.5 ETH \(value_at_risk_eth\)"):
        d.steady_state(timeout=5)


# -- the record carries the facts; the report reads them ---------------------------------------------------
def test_the_record_holds_budgets_applied_missed_deadlines_and_value_at_risk(ctx: DrillContext) -> None:
    d = Drill(ctx, name="t", scenario="t", budget=Budget(detect=0.3, deadline_misses=2))
    d.inject(Marker())
    with pytest.raises(DetectionMissed) as err:
        d.expect_detection("wallet_compromise", severity="SEV-1")
    result = d.result(err.value)
    assert result.budgets_applied == {"detect_s": 0.3, "contain_s": None, "recover_s": None, "deadline_misses": 2, "scale": 1.0}
    assert result.escrows["missed_deadlines"] == 0
    assert result.funds["at_risk_wei"] == 5 * ETH
    record = record_from_result(result)
    assert (record.budgets.detect_s, record.budgets.contain_s, record.budgets.deadline_misses) == (0.3, None, 2)
    assert record.funds.at_risk_wei == 5 * ETH


def test_the_adapter_renders_the_recorded_numbers_and_computes_none_again(ctx: DrillContext) -> None:
    d = Drill(ctx, name="t", scenario="t", budget=Budget())
    d.inject(Marker())
    result = d.result(None)
    # figures that no message or timeline would give: the adapter must take them as recorded
    odd = replace(result, budgets_applied={**result.budgets_applied, "recover_s": 7.25},
                  escrows={**result.escrows, "missed_deadlines": 3}, funds={**result.funds, "at_risk_wei": 123})
    record = record_from_result(odd)
    assert (record.budgets.recover_s, record.escrows.missed_deadlines, record.funds.at_risk_wei) == (7.25, 3, 123)
    # a result recorded before these fields existed still loads, with plain defaults
    old = replace(result, budgets_applied={}, escrows={k: v for k, v in result.escrows.items() if k != "missed_deadlines"},
                  funds={k: v for k, v in result.funds.items() if k != "at_risk_wei"})
    before = record_from_result(old)
    assert (before.budgets.detect_s, before.escrows.missed_deadlines, before.funds.at_risk_wei) == (None, 0, 0)
