"""DroppedTransaction removes the agent's pending transactions; NonceCollision takes its next nonce."""

from __future__ import annotations

import pytest

from harness.errors import ConfigError, RpcError
from harness.faults._chainops import MiningState, send_signed, wait_receipt
from harness.faults.txs import DroppedTransaction, NonceCollision


def test_dropped_transaction_removes_the_agents_pending_tx_and_only_that(ctx, until):
    chain = ctx.chain
    before = MiningState.capture(chain)
    drop = ctx.arm(DroppedTransaction(count=1, block_time=1.0))
    drop.inject()
    other, _ = send_signed(chain, chain.accounts[4], {"to": ctx.cold_wallet, "value": 1, "gas": 21_000})
    mine, _ = send_signed(chain, ctx.hot_wallet, {"to": ctx.cold_wallet, "value": 1, "gas": 21_000})
    until(lambda: drop.dropped, 5, "the agent's transaction dropped")
    assert drop.dropped == [mine]
    assert wait_receipt(chain, other, timeout=5) is not None  # a stranger's transaction is left alone
    assert chain.rpc("eth_getTransactionReceipt", mine) is None
    assert chain.nonce(ctx.hot_wallet.address) == 0
    # count=1: the rebroadcast goes through.
    again, _ = send_signed(chain, ctx.hot_wallet, {"to": ctx.cold_wallet, "value": 1, "gas": 21_000})
    assert wait_receipt(chain, again, timeout=5) is not None
    assert [e.data["tx_hash"] for e in ctx.timeline.events("fault.tx_dropped")] == [mine]
    drop.heal()
    assert MiningState.capture(chain) == before


def test_dropped_transaction_without_count_drops_until_healed(ctx, until, idle):
    chain = ctx.chain
    drop = ctx.arm(DroppedTransaction(count=None, block_time=1.0))
    drop.inject()
    for i in range(1, 4):
        send_signed(chain, ctx.hot_wallet, {"to": ctx.cold_wallet, "value": 1, "gas": 21_000}, nonce=0, tip=i * 10**9)
        until(lambda n=i: len(drop.dropped) == n, 5, f"drop number {i}")
    drop.heal()
    h, _ = send_signed(chain, ctx.hot_wallet, {"to": ctx.cold_wallet, "value": 1, "gas": 21_000})
    assert wait_receipt(chain, h, timeout=5) is not None


def test_nonce_collision_takes_the_next_nonce_with_the_agents_key(ctx):
    chain = ctx.chain
    hot = ctx.hot_wallet
    nonce = chain.nonce(hot.address, "pending")
    col = ctx.arm(NonceCollision())
    col.inject()
    (taken, tx_hash), = col.taken
    assert taken == nonce
    tx = chain.rpc("eth_getTransactionByHash", tx_hash)
    assert tx["from"].lower() == hot.address.lower() and int(tx["nonce"], 16) == nonce
    assert chain.nonce(hot.address) == nonce + 1
    # The agent's transaction built with the nonce it expected is refused.
    with pytest.raises(RpcError, match="(?i)nonce"):
        send_signed(chain, hot, {"to": ctx.cold_wallet, "value": 1, "gas": 21_000}, nonce=nonce)
    assert [e.data["tx_hash"] for e in ctx.timeline.events("attacker.tx")] == [tx_hash]


def test_nonce_collision_can_take_several_nonces(ctx, until):
    col = ctx.arm(NonceCollision(count=3, every=0.2))
    col.inject()
    until(lambda: len(col.taken) == 3, 5, "three nonces taken")
    assert [n for n, _ in col.taken] == [0, 1, 2]


@pytest.mark.parametrize("cls,kw", [
    (DroppedTransaction, {"count": 0}), (DroppedTransaction, {"poll": 3.0, "block_time": 2.0}),
    (NonceCollision, {"count": 0}), (NonceCollision, {"every": -1}),
])
def test_transaction_faults_reject_bad_parameters(cls, kw):
    with pytest.raises(ConfigError):
        cls(**kw)
