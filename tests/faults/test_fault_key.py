"""KeyLeak really drains a funded key, keeps draining what arrives, and stops when healed."""

from __future__ import annotations

import pytest

from harness.contracts import send_tx
from harness.errors import ConfigError
from harness.faults.key import KeyLeak


def test_key_leak_drains_eth_and_tokens_to_the_attacker(ctx, until):
    token = ctx.deployment.token_contract(ctx.chain.w3)
    hot = ctx.hot_wallet.address
    leak = ctx.arm(KeyLeak(drain_every=0.2, eth_per_round=None, tokens_per_round=None))
    leak.inject()
    assert leak.attacker_address in ctx.attacker_addresses
    until(lambda: token.functions.balanceOf(hot).call() == 0, 10, "the hot wallet's tokens drained")
    until(lambda: ctx.chain.balance(hot) < 10**15, 10, "the hot wallet's ETH drained")
    assert token.functions.balanceOf(leak.attacker_address).call() == 100 * 10**18
    assert ctx.chain.balance(leak.attacker_address) > 9 * 10**18
    txs = ctx.timeline.events("attacker.tx")
    assert {e.data["asset"] for e in txs} == {"ETH", "DRILL"}
    for e in txs:  # every recorded theft is a real transaction from the leaked address
        tx = ctx.chain.rpc("eth_getTransactionByHash", e.data["tx_hash"])
        assert tx["from"].lower() == hot.lower()


def test_key_leak_keeps_draining_what_arrives_later_until_healed(ctx, until, idle):
    hot = ctx.hot_wallet.address
    leak = ctx.arm(KeyLeak(drain_every=0.2, drain_tokens=False, eth_per_round=None))
    leak.inject()
    until(lambda: ctx.chain.balance(hot) < 10**15, 10, "the first drain")
    send_tx(ctx.chain.w3, ctx.chain.accounts[2], {"to": hot, "value": 10**18, "gas": 21_000})
    until(lambda: ctx.chain.balance(hot) < 10**15, 10, "the refill drained too")
    leak.heal()
    n = len(ctx.timeline.events("attacker.tx"))
    send_tx(ctx.chain.w3, ctx.chain.accounts[2], {"to": hot, "value": 10**18, "gas": 21_000})
    idle(0.8)  # four drain periods: a live attacker would have struck
    assert ctx.chain.balance(hot) >= 10**18
    assert len(ctx.timeline.events("attacker.tx")) == n
    assert leak.heal() is None  # idempotent


def test_key_leak_survives_nonce_races_with_the_key_owner(ctx, until):
    """The key's owner sends at the same time; the attacker loses some races but keeps going."""
    hot = ctx.hot_wallet
    leak = ctx.arm(KeyLeak(drain_every=0.1, drain_tokens=False, eth_per_round=None))
    leak.inject()
    from harness.errors import RpcError
    from harness.faults._chainops import send_signed

    for _ in range(10):
        try:
            send_signed(ctx.chain, hot, {"to": ctx.cold_wallet, "value": 1, "gas": 21_000})
        except RpcError:
            pass  # the owner may lose races too
    send_tx(ctx.chain.w3, ctx.chain.accounts[2], {"to": hot.address, "value": 10**18, "gas": 21_000})
    until(lambda: ctx.chain.balance(hot.address) < 10**15, 10, "the drain after the races")
    assert leak._loop is not None and leak._loop._thread.is_alive()


def test_key_leak_by_default_drains_in_slices(ctx, until):
    token = ctx.deployment.token_contract(ctx.chain.w3)
    leak = ctx.arm(KeyLeak(drain_every=0.2, eth_per_round=10**18, tokens_per_round=30 * 10**18))
    leak.inject()
    until(lambda: token.functions.balanceOf(ctx.hot_wallet.address).call() == 10 * 10**18, 10, "three token slices")
    leak.heal()
    amounts = sorted({(e.data["asset"], e.data["amount"]) for e in ctx.timeline.events("attacker.tx")})
    assert amounts == [("DRILL", str(30 * 10**18)), ("ETH", str(10**18))]


@pytest.mark.parametrize("kw", [{"eth_per_round": 0}, {"tokens_per_round": 1.5}, {"drain_every": 0}, {"drain_every": -1}, {"drain_eth": False, "drain_tokens": False}])
def test_key_leak_rejects_bad_parameters(kw):
    with pytest.raises(ConfigError):
        KeyLeak(**kw)
