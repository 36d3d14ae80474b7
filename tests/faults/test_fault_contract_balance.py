"""RevertStorm makes proofs revert and heals; BalanceDepletion empties and refunds the wallet."""

from __future__ import annotations

import pytest

from harness.errors import ConfigError
from harness.faults.balance import BalanceDepletion
from harness.faults.contract import RevertStorm


def _rejecting(ctx) -> bool:
    return bool(ctx.deployment.escrow_contract(ctx.chain.w3).functions.rejecting().call())


def test_revert_storm_switches_the_escrow_to_rejecting_and_back(ctx):
    storm = ctx.arm(RevertStorm())
    storm.inject()
    assert _rejecting(ctx)
    storm.heal()
    assert not _rejecting(ctx)


def test_revert_storm_with_a_share_flips_on_and_off(ctx, until):
    storm = ctx.arm(RevertStorm(share=0.5, period=0.6))
    storm.inject()
    until(lambda: storm.toggles >= 4, 10, "two on/off cycles")
    seen = [e.data["on"] for e in ctx.timeline.events("fault.rejecting")]
    assert seen[:4] == [True, False, True, False]
    storm.heal()
    assert not _rejecting(ctx)


def test_balance_depletion_leaves_little_and_heal_gives_it_back(ctx):
    chain, hot = ctx.chain, ctx.hot_wallet.address
    before = chain.balance(hot)
    dep = ctx.arm(BalanceDepletion(leave_wei=10**14))
    dep.inject()
    assert chain.balance(hot) == 10**14
    assert dep.removed_wei == before - 10**14
    dep.heal()
    assert chain.balance(hot) == before
    moves = [(int(e.data["before"]), int(e.data["after"])) for e in ctx.timeline.events("cheat.set_balance")]
    assert moves == [(before, 10**14), (10**14, before)]


def test_balance_depletion_refuses_a_wallet_already_below_the_level(ctx):
    dep = ctx.arm(BalanceDepletion(leave_wei=100 * 10**18))
    with pytest.raises(ConfigError, match="leave_wei"):
        dep.inject()


@pytest.mark.parametrize("cls,kw", [(RevertStorm, {"share": 0}), (RevertStorm, {"share": 1.5}),
                                    (BalanceDepletion, {"leave_wei": -1}), (BalanceDepletion, {"leave_wei": 0.5})])
def test_contract_and_balance_faults_reject_bad_parameters(cls, kw):
    with pytest.raises(ConfigError):
        cls(**kw)
