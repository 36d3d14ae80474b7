"""Mining modes and anvil-named cheats on the pyevm chain, over HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eth_account import Account

from harness.chain.pyevm import dev_keys
from harness.chain.pyevm.testing import RawRpc, Served, serving

GWEI = 10**9
TO = "0x" + "42" * 20


@pytest.fixture
def chain() -> Iterator[Served]:
    with serving() as served:
        yield served


def raw(i: int = 0, **fields: Any) -> str:
    tx = {
        "to": TO,
        "value": 1,
        "gas": 21_000,
        "chainId": 31337,
        "nonce": 0,
        "maxFeePerGas": 50 * GWEI,
        "maxPriorityFeePerGas": GWEI,
    }
    tx.update(fields)
    return (
        Account.from_key(dev_keys()[i]).sign_transaction(tx).raw_transaction.to_0x_hex()
    )


def head(rpc: RawRpc) -> int:
    return int(rpc("eth_blockNumber"), 16)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout} s: {what}")


def base_fee(rpc: RawRpc, tag: str = "latest") -> int:
    return int(rpc("eth_getBlockByNumber", tag, False)["baseFeePerGas"], 16)


def test_automine_is_on_by_default_and_can_be_switched(chain: Served) -> None:
    rpc = chain.rpc
    assert rpc("anvil_getAutomine") is True
    rpc("eth_sendRawTransaction", raw(nonce=0))
    assert head(rpc) == 1
    assert rpc("evm_setAutomine", False) is None
    assert rpc("anvil_getAutomine") is False
    rpc("eth_sendRawTransaction", raw(nonce=1))
    assert head(rpc) == 1
    rpc("evm_setAutomine", True)  # turning it back on mines what is waiting
    assert head(rpc) == 2
    assert rpc("txpool_status")["pending"] == "0x0"


def test_anvil_mine_with_count_and_interval(chain: Served) -> None:
    rpc = chain.rpc
    assert rpc("anvil_mine") is None
    assert head(rpc) == 1
    rpc("anvil_mine", "0x3", "0x64")
    assert head(rpc) == 4
    stamps = [
        int(rpc("eth_getBlockByNumber", hex(n), False)["timestamp"], 16)
        for n in (2, 3, 4)
    ]
    assert stamps[1] - stamps[0] == 100 and stamps[2] - stamps[1] == 100
    rpc("anvil_mine")
    assert (
        int(rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16) >= stamps[2]
    )


def test_evm_mine_and_timestamps(chain: Served) -> None:
    rpc = chain.rpc
    assert rpc("evm_mine") == "0x0"
    first = int(rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16)
    target = first + 1000
    assert rpc("evm_mine", target) == "0x0"
    assert int(rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16) == target
    rpc("evm_mine")
    after = int(rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16)
    assert target <= after < target + 30  # time goes on from the jump (same second: same stamp, as anvil)
    offset = rpc("evm_increaseTime", 3600)
    assert isinstance(offset, int) and offset >= 3600
    rpc("evm_mine")
    assert (
        int(rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16)
        >= target + 3600
    )
    assert rpc("evm_setNextBlockTimestamp", hex(after + 10**6)) is None
    rpc("evm_mine")
    assert (
        int(rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16)
        == after + 10**6
    )
    err = rpc.error("evm_setNextBlockTimestamp", 5)
    assert (
        err["code"] == -32000
        and "lower than or equal to previous block's timestamp" in err["message"]
    )


def test_interval_mining_from_the_start() -> None:
    with serving(block_time=0.2) as served:
        rpc = served.rpc
        assert rpc("anvil_getAutomine") is False
        rpc("eth_sendRawTransaction", raw(nonce=0))
        assert rpc("txpool_status")["pending"] == "0x1"
        wait_for(
            lambda: rpc("txpool_status")["pending"] == "0x0",
            "the timer mined the pending transaction",
        )
        wait_for(lambda: head(rpc) >= 3, "empty blocks keep coming")


def test_interval_mining_switched_on_and_off(chain: Served) -> None:
    rpc = chain.rpc
    rpc("evm_setIntervalMining", 0.1)
    wait_for(lambda: head(rpc) >= 2, "interval mining started")
    rpc("evm_setIntervalMining", 0)
    stopped_at = head(rpc)
    time.sleep(0.4)  # several intervals: nothing may be mined now
    assert head(rpc) == stopped_at
    rpc("eth_sendRawTransaction", raw(nonce=0))
    assert head(rpc) == stopped_at  # automine stays off too


def test_base_fee_override_holds_then_decays(chain: Served) -> None:
    rpc = chain.rpc
    rpc("evm_setAutomine", False)
    spike = 100 * GWEI
    assert rpc("anvil_setNextBlockBaseFeePerGas", hex(spike)) is None
    assert base_fee(rpc, "pending") == spike
    rpc("anvil_mine", "0x3")
    assert [
        int(rpc("eth_getBlockByNumber", hex(n), False)["baseFeePerGas"], 16)
        for n in (1, 2, 3)
    ] == [spike] * 3
    rpc("anvil_setNextBlockBaseFeePerGas", "0x0")
    rpc("anvil_mine", "0x3")
    fees = [
        int(rpc("eth_getBlockByNumber", hex(n), False)["baseFeePerGas"], 16)
        for n in (4, 5, 6)
    ]
    assert fees == [
        spike * 7 // 8,
        spike * 7 // 8 * 7 // 8,
        spike * 7 // 8 * 7 // 8 * 7 // 8,
    ]


def test_set_block_gas_limit_applies_to_following_blocks(chain: Served) -> None:
    rpc = chain.rpc
    rpc("evm_setBlockGasLimit", hex(10_000_000))
    rpc("anvil_mine", "0x2")
    assert rpc("eth_getBlockByNumber", "latest", False)["gasLimit"] == hex(10_000_000)
    assert rpc.error("evm_setBlockGasLimit", "0x10")["code"] == -32602


def test_snapshot_and_revert_restore_chain_state_and_pool(chain: Served) -> None:
    rpc = chain.rpc
    assert rpc("evm_snapshot") == "0x0"
    rpc("eth_sendRawTransaction", raw(nonce=0))
    rpc("evm_setAutomine", False)
    queued = rpc("eth_sendRawTransaction", raw(nonce=1))
    snap = rpc("evm_snapshot")
    assert snap == "0x1"
    sender = Account.from_key(dev_keys()[0]).address
    balance_at_snap = rpc("eth_getBalance", sender, "latest")
    rpc("evm_mine")
    rpc("anvil_setBalance", TO, hex(77))
    rpc("eth_sendRawTransaction", raw(1, nonce=0))
    rpc("anvil_setNextBlockBaseFeePerGas", hex(40 * GWEI))
    rpc("evm_setBlockGasLimit", hex(1_000_000))
    assert head(rpc) == 2 and rpc("txpool_status")["pending"] == "0x1"
    assert rpc("evm_revert", snap) is True
    assert head(rpc) == 1
    pending = rpc("eth_getBlockByNumber", "pending", False)
    assert int(pending["baseFeePerGas"], 16) < GWEI and pending["gasLimit"] == hex(
        30_000_000
    )
    assert (
        rpc("anvil_getAutomine") is False
    )  # the mining mode is a setting, not chain state
    assert rpc("eth_getBalance", sender, "latest") == balance_at_snap
    assert rpc("eth_getBalance", TO, "latest") == "0x1"
    assert rpc("txpool_status") == {"pending": "0x1", "queued": "0x0"}
    assert rpc("eth_getTransactionByHash", queued)["blockNumber"] is None
    assert rpc("eth_getBlockByNumber", "0x2", False) is None
    assert rpc("evm_revert", snap) is False  # a snapshot is used up by reverting to it
    rpc("evm_mine")  # the chain goes on from the reverted head
    assert rpc("eth_getTransactionReceipt", queued)["blockNumber"] == "0x2"
    assert rpc("evm_revert", "0x0") is True
    assert head(rpc) == 0 and rpc("eth_getTransactionReceipt", queued) is None
    assert rpc("eth_getBalance", TO, "latest") == "0x0"
    assert rpc("evm_snapshot") == "0x2"


def test_state_cheats_show_at_latest_at_once(chain: Served) -> None:
    rpc = chain.rpc
    target = "0x" + "77" * 20
    assert rpc("anvil_setBalance", target, hex(123)) is None
    assert rpc("eth_getBalance", target, "latest") == hex(123)
    rpc("anvil_setNonce", target, "0x9")
    assert rpc("eth_getTransactionCount", target, "latest") == "0x9"
    assert rpc("eth_getTransactionCount", target, "pending") == "0x9"
    rpc("anvil_setCode", target, "0x600160005500")
    assert rpc("eth_getCode", target, "latest") == "0x600160005500"
    assert rpc("anvil_setStorageAt", target, "0x5", "0x" + "00" * 31 + "2a") is True
    assert rpc("eth_getStorageAt", target, "0x5", "latest") == "0x" + "00" * 31 + "2a"
    assert head(rpc) == 0
    rpc("evm_mine")
    assert rpc("eth_getBalance", target, "0x1") == hex(
        123
    )  # carried into the next block
    assert rpc("eth_getBalance", target, "0x0") == "0x0"


def test_set_nonce_makes_pool_transactions_stale(chain: Served) -> None:
    rpc = chain.rpc
    rpc("evm_setAutomine", False)
    rpc("eth_sendRawTransaction", raw(nonce=0))
    sender = Account.from_key(dev_keys()[0]).address
    rpc("anvil_setNonce", sender, "0x5")
    assert rpc("txpool_status") == {"pending": "0x0", "queued": "0x0"}
    assert (
        rpc.error("eth_sendRawTransaction", raw(nonce=1))["message"]
        == "nonce too low: next nonce 5, tx nonce 1"
    )


def test_reorg_replaces_the_last_blocks(chain: Served) -> None:
    rpc = chain.rpc
    gone = rpc("eth_sendRawTransaction", raw(nonce=0))
    rpc("anvil_mine", "0x2")
    old_top = rpc("eth_getBlockByNumber", "0x3", False)["hash"]
    replacement = raw(1, nonce=0, value=9)
    assert rpc("anvil_reorg", 2, [[replacement, 1]]) is None
    assert head(rpc) == 3
    assert rpc("eth_getBlockByNumber", "0x3", False)["hash"] != old_top
    assert (
        rpc("eth_getTransactionReceipt", gone)["blockNumber"] == "0x1"
    )  # below the reorg depth
    new_block = rpc("eth_getBlockByNumber", "0x3", True)
    assert [t["value"] for t in new_block["transactions"]] == ["0x9"]
    assert rpc("eth_getBlockByNumber", "0x2", False)["transactions"] == []


def test_a_refused_reorg_leaves_the_chain_alone(chain: Served) -> None:
    rpc = chain.rpc
    rpc("anvil_mine", "0x3")
    top = rpc("eth_getBlockByNumber", "latest", False)["hash"]
    bad = raw(0, nonce=0, gas=20_000)  # under the intrinsic gas
    err = rpc.error("anvil_reorg", 2, [[bad, 0]])
    assert err["message"].startswith("intrinsic gas too low")
    assert rpc("eth_getBlockByNumber", "latest", False)["hash"] == top
    assert rpc.error("anvil_reorg", 9, [])["code"] == -32000
    rpc(
        "eth_sendRawTransaction", raw(0, nonce=0)
    )  # and the chain goes on from where it was
    assert head(rpc) == 4
    assert rpc("eth_getBlockByNumber", "0x4", False)["parentHash"] == top


def test_anvil_mine_refuses_an_absurd_count(chain: Served) -> None:
    err = chain.rpc.error("anvil_mine", "0xffffffff")
    assert err["code"] == -32602 and "at most 10000 blocks per call" in err["message"]
    assert head(chain.rpc) == 0
    assert chain.rpc.error("evm_mine", {"blocks": 10**6})["code"] == -32602
    assert chain.rpc("evm_mine", {"blocks": 3}) == "0x0"
    assert head(chain.rpc) == 3
