"""ChainStall stops the head and heals; Reorg replaces recent blocks and undoes the agent's transactions."""

from __future__ import annotations

import pytest

from harness.errors import ConfigError
from harness.faults._chainops import MiningState, send_signed, wait_receipt
from harness.faults.chainfaults import BlockTime, ChainStall, Reorg


def test_chain_stall_freezes_the_head_until_healed(ctx, idle):
    chain = ctx.chain
    before = MiningState.capture(chain)
    stall = ctx.arm(ChainStall())
    stall.inject()
    head = chain.block_number()
    h, _ = send_signed(chain, chain.accounts[4], {"to": ctx.cold_wallet, "value": 1, "gas": 21_000})
    idle(0.5)
    assert chain.block_number() == head
    assert chain.rpc("eth_getTransactionReceipt", h) is None
    stall.heal()
    assert wait_receipt(chain, h, timeout=5) is not None
    assert MiningState.capture(chain) == before


def test_block_time_mines_sub_second_blocks_and_transactions_sent_together_share_one(ctx, idle):
    """Half-second blocks on either backend (anvil's own interval mining takes whole seconds only)."""
    chain = ctx.chain
    before = MiningState.capture(chain)
    fault = ctx.arm(BlockTime(0.5))
    fault.inject()
    start = chain.block_number()
    a, _ = send_signed(chain, chain.accounts[4], {"to": ctx.cold_wallet, "value": 1, "gas": 21_000})
    b, _ = send_signed(chain, chain.accounts[5], {"to": ctx.cold_wallet, "value": 1, "gas": 21_000})
    ra, rb = wait_receipt(chain, a, timeout=5), wait_receipt(chain, b, timeout=5)
    assert ra is not None and rb is not None
    assert ra["blockNumber"] == rb["blockNumber"], "two transactions sent together landed in different blocks"
    idle(2.0)
    mined = chain.block_number() - start
    assert 3 <= mined <= 6, f"{mined} blocks in about 2.5 s with 0.5 s blocks"
    fault.heal()
    assert MiningState.capture(chain) == before
    head = chain.block_number()
    idle(1.0)
    assert chain.block_number() == head, "blocks kept coming after the heal"


@pytest.mark.parametrize("mode", ["auto", "snapshot"])
def test_reorg_orphans_the_agents_transactions_and_replays_the_others(ctx, mode):
    chain = ctx.chain
    hot = ctx.hot_wallet
    fork = chain.block_number()
    if mode == "snapshot":
        # The snapshot mode orphans what happens during its window; have it happen from a thread.
        import threading

        def activity() -> None:
            threading.Event().wait(0.3)
            for sender in (hot, chain.accounts[4], hot):
                h, _ = send_signed(chain, sender, {"to": ctx.cold_wallet, "value": 1, "gas": 21_000})
                wait_receipt(chain, h, timeout=5)

        t = threading.Thread(target=activity)
        t.start()
        reorg = ctx.arm(Reorg(mode="snapshot", window=2.0))
        reorg.inject()
        t.join()
    else:
        for sender in (hot, chain.accounts[4], hot):
            h, _ = send_signed(chain, sender, {"to": ctx.cold_wallet, "value": 1, "gas": 21_000})
            wait_receipt(chain, h, timeout=5)
        reorg = ctx.arm(Reorg(depth=3))
        reorg.inject()
    assert len(reorg.orphaned) == 3 and len(reorg.orphaned_agent_txs) == 2
    assert reorg.new_head[0] > reorg.old_head[0]
    assert chain.rpc("eth_getBlockByNumber", hex(reorg.old_head[0]), False)["hash"] != reorg.old_head[1]
    assert chain.nonce(hot.address) == 0  # the agent's transactions are gone
    for h in reorg.orphaned_agent_txs:
        assert chain.rpc("eth_getTransactionReceipt", h) is None
    (replayed,) = reorg.replayed
    assert chain.rpc("eth_getTransactionReceipt", replayed) is not None
    assert chain.block_number() > fork
    (ev,) = ctx.timeline.events("fault.reorg")
    assert ev.data["orphaned_agent_txs"] == reorg.orphaned_agent_txs


@pytest.mark.parametrize("kw", [{"depth": 0}, {"replay": "some"}, {"mode": "magic"}, {"window": 0}])
def test_reorg_rejects_bad_parameters(kw):
    with pytest.raises(ConfigError):
        Reorg(**kw)


def test_raw_transaction_rebuilt_from_fields_matches_the_signed_bytes(ctx):
    """The rebuild used where the node has no eth_getRawTransactionByHash gives the same hash."""
    from eth_utils import keccak

    from harness.faults.chainfaults import raw_transaction

    chain = ctx.chain
    legacy, _ = send_signed(chain, chain.accounts[5], {"to": ctx.cold_wallet, "value": 3, "gas": 21_000,
                                                        "gasPrice": 3 * chain.base_fee() + 1})
    wait_receipt(chain, legacy, timeout=5)
    dynamic, _ = send_signed(chain, chain.accounts[5], {"to": ctx.cold_wallet, "value": 3, "gas": 30_000, "data": "0x1234"})
    for h in (legacy, dynamic):
        assert wait_receipt(chain, h, timeout=5) is not None, h
        tx = chain.rpc("eth_getTransactionByHash", h)
        assert tx is not None, h

        class NoRaw:
            def rpc(self, method, *params):
                from harness.errors import RpcError

                raise RpcError(-32601, "no such method", method=method)

        raw = raw_transaction(NoRaw(), tx)
        assert "0x" + keccak(hexstr=raw).hex() == h
