"""Execution without a block (eth_call, eth_estimateGas), contracts, logs, filters and fee history
on the pyevm chain."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3

from harness.chain.pyevm import dev_keys
from harness.chain.pyevm.testing import (
    LOGGER_CODE,
    REVERTER_CODE,
    STORE_CODE,
    RawRpc,
    Served,
    initcode,
    revert_payload,
    serving,
)

GWEI = 10**9
LOGGER = "0x" + "10" * 20
REVERTER = "0x" + "20" * 20
STORE = "0x" + "30" * 20
TOPIC_A = "0x" + "aa" * 32
TOPIC_B = "0x" + "bb" * 32


@pytest.fixture
def chain() -> Iterator[Served]:
    with serving() as served:
        rpc = served.rpc
        rpc("anvil_setCode", LOGGER, "0x" + LOGGER_CODE.hex())
        rpc("anvil_setCode", REVERTER, "0x" + REVERTER_CODE.hex())
        rpc("anvil_setCode", STORE, "0x" + STORE_CODE.hex())
        yield served


def sender(i: int = 0) -> Any:
    return Account.from_key(dev_keys()[i])


def transact(
    rpc: RawRpc, to: str | None, data: str, i: int = 0, gas: int = 200_000
) -> dict[str, Any]:
    account = sender(i)
    nonce = int(rpc("eth_getTransactionCount", account.address, "pending"), 16)
    tx = {
        "value": 0,
        "gas": gas,
        "chainId": 31337,
        "nonce": nonce,
        "data": data,
        "maxFeePerGas": 50 * GWEI,
        "maxPriorityFeePerGas": GWEI,
    }
    if to is not None:
        tx["to"] = to
    tx_hash = rpc(
        "eth_sendRawTransaction",
        account.sign_transaction(tx).raw_transaction.to_0x_hex(),
    )
    receipt: dict[str, Any] = rpc("eth_getTransactionReceipt", tx_hash)
    return receipt


def log_data(topic: str, word: int) -> str:
    return topic + word.to_bytes(32, "big").hex()


def test_call_returns_revert_reason_as_geth_does(chain: Served) -> None:
    rpc = chain.rpc
    err = rpc.error("eth_call", {"to": REVERTER, "data": "0x"}, "latest")
    assert err == {
        "code": 3,
        "message": "execution reverted: nope",
        "data": "0x" + revert_payload("nope").hex(),
    }
    err = rpc.error("eth_estimateGas", {"from": sender().address, "to": REVERTER})
    assert err["code"] == 3 and err["message"] == "execution reverted: nope"


def test_web3_raises_contract_logic_error_with_reason(chain: Served) -> None:
    from web3.exceptions import ContractLogicError

    w3 = Web3(Web3.HTTPProvider(chain.url))
    with pytest.raises(ContractLogicError, match="nope"):
        w3.eth.call({"to": Web3.to_checksum_address(REVERTER), "data": "0x"})


def test_call_sees_state_and_block_tags(chain: Served) -> None:
    rpc = chain.rpc
    # a contract that returns its own storage slot 0: SLOAD(0) MSTORE(0) RETURN(0, 32)
    reader = "0x" + "40" * 20
    rpc("anvil_setCode", reader, "0x60005460005260206000f3")
    rpc("anvil_setStorageAt", reader, "0x0", "0x" + "00" * 31 + "07")
    rpc("evm_mine")
    rpc("anvil_setStorageAt", reader, "0x0", "0x" + "00" * 31 + "09")
    rpc("evm_mine")
    assert rpc("eth_call", {"to": reader}, "latest") == "0x" + "00" * 31 + "09"
    assert rpc("eth_call", {"to": reader}, "pending") == "0x" + "00" * 31 + "09"
    assert rpc("eth_call", {"to": reader}, "0x1") == "0x" + "00" * 31 + "07"
    assert (
        rpc("eth_call", {"to": reader}, {"blockNumber": "0x0"}) == "0x"
    )  # no code at genesis
    assert (
        rpc.error("eth_call", {"to": reader}, "0x77")["message"] == "header not found"
    )


def test_estimate_gas_is_enough_and_tight(chain: Served) -> None:
    rpc = chain.rpc
    plain = rpc(
        "eth_estimateGas",
        {"from": sender().address, "to": "0x" + "99" * 20, "value": "0x1"},
    )
    assert plain == hex(21_000)
    data = "0x" + (5).to_bytes(32, "big").hex()
    estimate = int(
        rpc("eth_estimateGas", {"from": sender().address, "to": STORE, "data": data}),
        16,
    )
    assert 40_000 < estimate < 50_000
    short = transact(rpc, STORE, data, gas=estimate * 80 // 100)
    assert short["status"] == "0x0"  # out of gas with less than the estimate
    ok = transact(rpc, STORE, data, gas=estimate)
    assert ok["status"] == "0x1"
    assert (
        rpc("eth_getStorageAt", STORE, "0x0", "latest")
        == "0x" + (5).to_bytes(32, "big").hex()
    )
    err = rpc.error(
        "eth_estimateGas",
        {"from": sender().address, "to": STORE, "data": data, "gas": "0x5300"},
    )
    assert err == {"code": -32000, "message": "gas required exceeds allowance (21248)"}


def test_contract_creation_receipt_has_the_address(chain: Served) -> None:
    rpc = chain.rpc
    receipt = transact(rpc, None, "0x" + initcode(LOGGER_CODE).hex())
    assert receipt["status"] == "0x1" and receipt["to"] is None
    created = receipt["contractAddress"]
    expected = Web3.to_checksum_address(
        Web3.keccak(
            bytes.fromhex("d694") + bytes.fromhex(sender().address[2:]) + b"\x80"
        )[12:]
    ).lower()
    assert created == expected
    assert rpc("eth_getCode", created, "latest") == "0x" + LOGGER_CODE.hex()


def test_receipt_logs_and_get_logs_filters(chain: Served) -> None:
    rpc = chain.rpc
    r1 = transact(rpc, LOGGER, log_data(TOPIC_A, 1), i=0)
    r2 = transact(rpc, LOGGER, log_data(TOPIC_B, 2), i=1)
    r3 = transact(rpc, LOGGER, log_data(TOPIC_A, 3), i=1)
    log1 = r1["logs"][0]
    assert log1["address"] == LOGGER and log1["topics"][0] == TOPIC_A
    assert log1["topics"][1] == "0x" + "00" * 12 + sender(0).address[2:].lower()
    assert log1["data"] == "0x" + (1).to_bytes(32, "big").hex()
    assert log1["blockNumber"] == r1["blockNumber"] and log1["removed"] is False
    assert int(r1["logsBloom"], 16) != 0

    def logs(**flt: Any) -> list[int]:
        found = rpc("eth_getLogs", {"fromBlock": "0x0", **flt})
        return [int(entry["data"], 16) for entry in found]

    assert logs() == [1, 2, 3]
    assert logs(address=LOGGER) == [1, 2, 3]
    assert logs(address=[STORE]) == []
    assert logs(topics=[TOPIC_A]) == [1, 3]
    assert logs(topics=[[TOPIC_A, TOPIC_B]]) == [1, 2, 3]
    caller1 = "0x" + "00" * 12 + sender(1).address[2:].lower()
    assert logs(topics=[None, caller1]) == [2, 3]
    assert logs(topics=[TOPIC_A, caller1]) == [3]
    assert logs(topics=[None, None, TOPIC_A]) == []
    assert logs(fromBlock=r2["blockNumber"], toBlock=r2["blockNumber"]) == [2]
    assert (
        rpc("eth_getLogs", {"blockHash": r3["blockHash"]})[0]["transactionHash"]
        == r3["transactionHash"]
    )
    assert (
        rpc("eth_getLogs", {})[0]["data"] == r3["logs"][0]["data"]
    )  # default: latest block only
    err = rpc.error("eth_getLogs", {"blockHash": r3["blockHash"], "fromBlock": "0x1"})
    assert err["code"] == -32602


def test_log_and_block_filters_return_only_what_is_new(chain: Served) -> None:
    rpc = chain.rpc
    transact(rpc, LOGGER, log_data(TOPIC_A, 1))
    log_filter = rpc("eth_newFilter", {"address": LOGGER, "topics": [TOPIC_A]})
    block_filter = rpc("eth_newBlockFilter")
    pending_filter = rpc("eth_newPendingTransactionFilter")
    assert rpc("eth_getFilterChanges", log_filter) == []
    r2 = transact(rpc, LOGGER, log_data(TOPIC_A, 2))
    transact(rpc, LOGGER, log_data(TOPIC_B, 3))
    changes = rpc("eth_getFilterChanges", log_filter)
    assert [int(c["data"], 16) for c in changes] == [2]
    assert rpc("eth_getFilterChanges", log_filter) == []
    blocks = rpc("eth_getFilterChanges", block_filter)
    assert len(blocks) == 2 and blocks[0] == r2["blockHash"]
    assert len(rpc("eth_getFilterChanges", pending_filter)) == 2
    assert (
        rpc("eth_getFilterLogs", log_filter) == []
    )  # "latest" (the default) holds only the TOPIC_B log
    since_genesis = rpc("eth_newFilter", {"fromBlock": "0x0", "topics": [TOPIC_A]})
    assert [int(c["data"], 16) for c in rpc("eth_getFilterLogs", since_genesis)] == [
        1,
        2,
    ]
    assert rpc("eth_uninstallFilter", log_filter) is True
    assert rpc("eth_uninstallFilter", log_filter) is False
    assert rpc.error("eth_getFilterChanges", log_filter) == {
        "code": -32000,
        "message": "filter not found",
    }


def test_web3_event_style_filter(chain: Served) -> None:
    w3 = Web3(Web3.HTTPProvider(chain.url))
    flt = w3.eth.filter({"address": Web3.to_checksum_address(LOGGER)})
    transact(chain.rpc, LOGGER, log_data(TOPIC_A, 4))
    entries = flt.get_new_entries()
    assert len(entries) == 1 and int.from_bytes(entries[0]["data"], "big") == 4


def test_fee_history(chain: Served) -> None:
    rpc = chain.rpc
    for tip in (1, 2, 3):
        account = sender(tip)
        tx = {
            "to": LOGGER,
            "gas": 100_000,
            "chainId": 31337,
            "nonce": 0,
            "data": log_data(TOPIC_A, tip),
            "maxFeePerGas": 50 * GWEI,
            "maxPriorityFeePerGas": tip * GWEI,
        }
        rpc(
            "eth_sendRawTransaction",
            account.sign_transaction(tx).raw_transaction.to_0x_hex(),
        )
    history = rpc("eth_feeHistory", "0x3", "latest", [25, 75])
    assert history["oldestBlock"] == "0x1"
    assert len(history["baseFeePerGas"]) == 4
    fees = [
        int(b["baseFeePerGas"], 16)
        for b in (rpc("eth_getBlockByNumber", hex(n), False) for n in (1, 2, 3))
    ]
    assert [int(f, 16) for f in history["baseFeePerGas"][:3]] == fees
    assert int(history["baseFeePerGas"][3], 16) == int(
        rpc("eth_getBlockByNumber", "pending", False)["baseFeePerGas"], 16
    )
    assert all(0 < ratio < 0.01 for ratio in history["gasUsedRatio"])
    assert [[int(x, 16) for x in row] for row in history["reward"]] == [
        [GWEI, GWEI],
        [2 * GWEI, 2 * GWEI],
        [3 * GWEI, 3 * GWEI],
    ]
    assert "reward" not in rpc("eth_feeHistory", "0x2", "latest")
    clipped = rpc("eth_feeHistory", "0x64", "0x1", [])
    assert clipped["oldestBlock"] == "0x0" and len(clipped["baseFeePerGas"]) == 3
    assert rpc.error("eth_feeHistory", "0x0", "latest", [])["code"] == -32602
    assert rpc.error("eth_feeHistory", "0x1", "latest", [50, 10])["code"] == -32602


def test_fee_history_shows_the_override_as_next_base_fee(chain: Served) -> None:
    rpc = chain.rpc
    rpc("anvil_setNextBlockBaseFeePerGas", hex(77 * GWEI))
    history = rpc("eth_feeHistory", "0x1", "latest", [])
    assert history["baseFeePerGas"][-1] == hex(77 * GWEI)
    assert int(rpc("eth_gasPrice"), 16) == 78 * GWEI
