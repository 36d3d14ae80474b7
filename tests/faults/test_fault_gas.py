"""GasSpike raises the base fee block after block, strands under-priced transactions, and heals."""

from __future__ import annotations

import time

import pytest

from harness.errors import ConfigError, HarnessError
from harness.faults._chainops import GWEI, MiningState, send_signed, wait_receipt
from harness.faults.gas import GasSpike


def test_gas_spike_sets_the_base_fee_of_every_block_and_heal_restores(ctx, until):
    chain = ctx.chain
    before = MiningState.capture(chain)
    normal = chain.base_fee()
    spike = ctx.arm(GasSpike(base_fee_gwei=80, block_time=0.3))
    spike.inject()
    start = chain.block_number()
    until(lambda: chain.block_number() >= start + 4, 10, "four spiked blocks")
    for n in range(start + 1, start + 4):
        blk = chain.rpc("eth_getBlockByNumber", hex(n), False)
        assert int(blk["baseFeePerGas"], 16) == 80 * GWEI, n
    spike.heal()
    assert MiningState.capture(chain) == before
    # With automine back, one transaction makes one block at the old fee.
    tx_hash, _ = send_signed(chain, chain.accounts[3], {"to": ctx.cold_wallet, "value": 1, "gas": 21_000}, fee_headroom=200)
    receipt = wait_receipt(chain, tx_hash, timeout=5)
    assert receipt is not None
    assert chain.base_fee(receipt["blockNumber"]) == normal


def test_gas_spike_strands_a_transaction_priced_for_the_old_fee(ctx, until):
    chain = ctx.chain
    spike = ctx.arm(GasSpike(base_fee_gwei=50, block_time=0.5))
    spike.inject()
    # Sent inside the first block time, priced for the old fee: it cannot be mined in the spike.
    tx_hash, _ = send_signed(chain, ctx.hot_wallet, {"to": ctx.cold_wallet, "value": 1, "gas": 21_000})
    start = chain.block_number()
    until(lambda: chain.block_number() >= start + 3, 10, "three spiked blocks")
    assert chain.rpc("eth_getTransactionReceipt", tx_hash) is None
    assert chain.nonce(ctx.hot_wallet.address, "latest") == 0


def test_gas_spike_can_climb_and_squeeze_the_gas_limit(ctx, until):
    chain = ctx.chain
    old_limit = int(chain.rpc("eth_getBlockByNumber", "latest", False)["gasLimit"], 16)
    spike = ctx.arm(GasSpike(base_fee_gwei=40, start_gwei=5, growth=2.0, block_time=0.3, gas_limit=100_000))
    spike.inject()
    start = chain.block_number()
    until(lambda: chain.block_number() >= start + 5, 10, "five blocks")
    fees = [int(chain.rpc("eth_getBlockByNumber", hex(n), False)["baseFeePerGas"], 16) // GWEI for n in range(start + 1, start + 6)]
    assert fees == [5, 10, 20, 40, 40]
    assert int(chain.rpc("eth_getBlockByNumber", "latest", False)["gasLimit"], 16) == 100_000
    spike.heal()
    chain.mine(1)
    assert int(chain.rpc("eth_getBlockByNumber", "latest", False)["gasLimit"], 16) == old_limit


@pytest.mark.parametrize("kw", [{"base_fee_gwei": 0}, {"block_time": 0}, {"growth": 1.0}, {"gas_limit": 1000}])
def test_gas_spike_rejects_bad_parameters(kw):
    with pytest.raises(ConfigError):
        GasSpike(**kw)


def test_a_paced_spike_mines_its_blocks_time_scale_times_slower(ctx, until):
    # A real-time drill (--drill-time-scale) stretches the fault's own clock: at scale 3 a spike of
    # 0.2 s blocks mines one every 0.6 s, measured on the blocks' arrival, and it cannot be paced twice.
    chain = ctx.chain
    spike = ctx.arm(GasSpike(base_fee_gwei=40, block_time=0.2)).pace(3.0)
    assert spike.block_time == pytest.approx(0.6)
    spike.inject()
    start = chain.block_number()
    seen: dict[int, float] = {}

    def three_blocks() -> bool:
        seen.setdefault(chain.block_number(), time.monotonic())
        return chain.block_number() >= start + 3

    until(three_blocks, 10, "three spiked blocks")
    gaps = [seen[n + 1] - seen[n] for n in range(start + 1, start + 3) if n in seen and n + 1 in seen]
    assert gaps and min(gaps) >= 0.45, f"blocks came every {gaps} s, not every 0.6 s"
    with pytest.raises(HarnessError, match="paced after it was injected"):
        spike.pace(2.0)
