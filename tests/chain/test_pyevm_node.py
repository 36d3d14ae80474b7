"""The embedded pyevm chain answers the basic eth_* methods as a node does, over real HTTP."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator

import pytest
from eth_account import Account
from web3 import Web3

from harness.accounts import dev_accounts
from harness.chain.pyevm import dev_keys
from harness.chain.pyevm.testing import Served, serving

GWEI = 10**9
ANVIL_FIRST = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


@pytest.fixture
def chain() -> Iterator[Served]:
    with serving() as served:
        yield served


@pytest.fixture
def w3(chain: Served) -> Web3:
    return Web3(Web3.HTTPProvider(chain.url))


def _signer(i: int = 0):  # type: ignore[no-untyped-def]
    return Account.from_key(dev_keys()[i])


def test_identity_and_genesis(chain: Served) -> None:
    rpc = chain.rpc
    assert rpc("eth_chainId") == "0x7a69"
    assert rpc("net_version") == "31337"
    assert rpc("web3_clientVersion").startswith("agent-drills-pyevm/")
    assert rpc("eth_blockNumber") == "0x0"
    assert rpc("eth_syncing") is False
    genesis = rpc("eth_getBlockByNumber", "0x0", False)
    assert genesis["baseFeePerGas"] == hex(GWEI)
    assert genesis["gasLimit"] == hex(30_000_000)
    assert abs(int(genesis["timestamp"], 16) - time.time()) < 30
    assert genesis["transactions"] == []
    assert rpc("eth_getBlockByHash", genesis["hash"], True)["hash"] == genesis["hash"]
    assert rpc("eth_getBlockByNumber", "0x5", False) is None


def test_dev_accounts_match_anvil_and_are_funded(chain: Served) -> None:
    rpc = chain.rpc
    expected = [a.address.lower() for a in dev_accounts()]
    assert rpc("eth_accounts") == expected
    assert expected[0] == ANVIL_FIRST.lower()
    for address in expected:
        assert rpc("eth_getBalance", address, "latest") == hex(10_000 * 10**18)
    assert [Account.from_key(k).address for k in dev_keys()] == [
        a.address for a in dev_accounts()
    ]


def test_send_raw_transaction_of_each_type_is_mined_with_its_receipt(
    chain: Served,
) -> None:
    rpc = chain.rpc
    sender, to = _signer(0), _signer(1).address
    base = {"to": to, "value": 7, "gas": 21_000, "chainId": 31337}
    txs = [
        {**base, "nonce": 0, "gasPrice": 2 * GWEI},  # legacy, EIP-155
        {**base, "nonce": 1, "gasPrice": 2 * GWEI, "accessList": [], "type": 1},
        {
            **base,
            "nonce": 2,
            "maxFeePerGas": 3 * GWEI,
            "maxPriorityFeePerGas": GWEI,
            "type": 2,
        },
    ]
    for number, tx in enumerate(txs, start=1):
        raw = sender.sign_transaction(tx).raw_transaction.to_0x_hex()
        tx_hash = rpc("eth_sendRawTransaction", raw)
        receipt = rpc("eth_getTransactionReceipt", tx_hash)
        assert receipt["status"] == "0x1"
        assert receipt["blockNumber"] == hex(number)
        assert receipt["type"] == hex(tx.get("type", 0))
        assert receipt["from"] == sender.address.lower()
        assert receipt["gasUsed"] == hex(21_000)
        mined = rpc("eth_getTransactionByHash", tx_hash)
        assert (
            mined["blockNumber"] == hex(number) and mined["transactionIndex"] == "0x0"
        )
        assert mined["chainId"] == "0x7a69"
        block = rpc("eth_getBlockByNumber", "latest", True)
        assert block["transactions"][0]["hash"] == tx_hash
    assert rpc("eth_getTransactionCount", sender.address, "latest") == "0x3"
    assert rpc("eth_getBalance", to, "latest") == hex(10_000 * 10**18 + 21)
    # history stays readable at older blocks
    assert rpc("eth_getBalance", to, "0x1") == hex(10_000 * 10**18 + 7)


def test_effective_gas_price_and_base_fee_follow_eip1559(chain: Served) -> None:
    rpc = chain.rpc
    sender = _signer(0)
    tx = {
        "to": _signer(1).address,
        "value": 1,
        "gas": 21_000,
        "chainId": 31337,
        "nonce": 0,
        "maxFeePerGas": 5 * GWEI,
        "maxPriorityFeePerGas": 2 * GWEI,
        "type": 2,
    }
    tx_hash = rpc(
        "eth_sendRawTransaction",
        sender.sign_transaction(tx).raw_transaction.to_0x_hex(),
    )
    block = rpc("eth_getBlockByNumber", "0x1", False)
    # an empty genesis block lowers the next base fee by 1/8
    assert int(block["baseFeePerGas"], 16) == GWEI * 7 // 8
    receipt = rpc("eth_getTransactionReceipt", tx_hash)
    assert int(receipt["effectiveGasPrice"], 16) == GWEI * 7 // 8 + 2 * GWEI


def test_wrong_chain_id_and_bad_signature_are_refused(chain: Served) -> None:
    rpc = chain.rpc
    tx = {
        "to": _signer(1).address,
        "value": 1,
        "gas": 21_000,
        "chainId": 1,
        "nonce": 0,
        "maxFeePerGas": 3 * GWEI,
        "maxPriorityFeePerGas": GWEI,
        "type": 2,
    }
    err = rpc.error(
        "eth_sendRawTransaction",
        _signer(0).sign_transaction(tx).raw_transaction.to_0x_hex(),
    )
    assert err["code"] == -32000
    assert (
        err["message"]
        == "invalid sender: invalid chain id for signer: have 1 want 31337"
    )
    err = rpc.error("eth_sendRawTransaction", "0x02deadbeef")
    assert err["code"] == -32000 and err["message"].startswith("rlp: ")


def test_web3_send_transaction_with_unlocked_dev_account(w3: Web3) -> None:
    accounts = w3.eth.accounts
    tx_hash = w3.eth.send_transaction(
        {"from": accounts[0], "to": accounts[2], "value": 12345}
    )
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10)
    assert receipt["status"] == 1
    assert w3.eth.get_balance(accounts[2]) == 10_000 * 10**18 + 12345
    tx = w3.eth.get_transaction(tx_hash)
    assert tx["from"] == accounts[0]
    assert tx["chainId"] == 31337


def test_send_transaction_from_unknown_account_is_refused(chain: Served) -> None:
    err = chain.rpc.error(
        "eth_sendTransaction",
        {"from": "0x" + "11" * 20, "to": "0x" + "22" * 20, "value": "0x1"},
    )
    assert err == {"code": -32000, "message": "unknown account"}


def test_block_tags(chain: Served) -> None:
    rpc = chain.rpc
    rpc("anvil_mine", "0x50")
    assert rpc("eth_getBlockByNumber", "latest", False)["number"] == hex(80)
    assert rpc("eth_getBlockByNumber", "earliest", False)["number"] == "0x0"
    assert rpc("eth_getBlockByNumber", "safe", False)["number"] == hex(80 - 32)
    assert rpc("eth_getBlockByNumber", "finalized", False)["number"] == hex(80 - 64)
    pending = rpc("eth_getBlockByNumber", "pending", False)
    assert pending["number"] == hex(81) and pending["hash"] is None
    assert rpc("eth_getBlockByNumber", {"blockNumber": "0x3"}, False)["number"] == "0x3"
    blocks = [rpc("eth_getBlockByNumber", hex(n), False) for n in range(1, 81)]
    for parent, child in itertools.pairwise(blocks):
        assert child["parentHash"] == parent["hash"]
        # blocks of the same second share its timestamp, as on anvil; time never goes back
        assert int(child["timestamp"], 16) >= int(parent["timestamp"], 16)


def test_code_storage_and_balance_reads_at_tags(chain: Served) -> None:
    rpc = chain.rpc
    address = "0x" + "ab" * 20
    assert rpc("eth_getCode", address, "latest") == "0x"
    assert rpc("eth_getStorageAt", address, "0x0", "latest") == "0x" + "00" * 32
    assert rpc("eth_getBalance", address, "pending") == "0x0"
    err = rpc.error("eth_getBalance", address, "0x99")
    assert err == {"code": -32000, "message": "header not found"}


def test_jsonrpc_protocol_errors(chain: Served) -> None:
    rpc = chain.rpc
    assert rpc.error("eth_nope") == {
        "code": -32601,
        "message": "the method eth_nope does not exist/is not available",
    }
    assert rpc.error("eth_getBalance", "0x1234") == {
        "code": -32602,
        "message": "invalid argument 0: hex string has length 4, want 40 for common.Address",
    }
    assert (
        rpc.error("eth_getBalance")["message"]
        == "missing value for required argument 0"
    )
    assert (
        rpc.error("eth_blockNumber", 1)["message"]
        == "too many arguments, want at most 0"
    )
    assert rpc.error("eth_getBlockByNumber", "lastest", False)["code"] == -32602
    response = rpc.post_raw("{not json")
    assert response.json() == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32700, "message": "parse error"},
    }
    assert rpc.post_raw("[]").json()["error"]["code"] == -32600
    assert rpc.post_raw('"hello"').json()["error"]["code"] == -32600


def test_batch_requests_answer_in_order(chain: Served) -> None:
    raw = (
        _signer(0)
        .sign_transaction(
            {
                "to": _signer(1).address,
                "value": 1,
                "gas": 21_000,
                "chainId": 31337,
                "nonce": 0,
                "maxFeePerGas": 3 * GWEI,
                "maxPriorityFeePerGas": GWEI,
            }
        )
        .raw_transaction.to_0x_hex()
    )
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "eth_sendRawTransaction",
            "params": [raw],
        },
        {"jsonrpc": "2.0", "id": 3, "method": "eth_blockNumber", "params": []},
        {"jsonrpc": "2.0", "id": 4, "method": "no_such"},
    ]
    answers = chain.rpc.post_raw(json.dumps(batch)).json()
    assert [a["id"] for a in answers] == [1, 2, 3, 4]
    assert answers[0]["result"] == "0x7a69"
    assert (
        answers[2]["result"] == "0x1"
    )  # the send earlier in the batch was mined first
    assert answers[3]["error"]["code"] == -32601


def test_no_traceback_ever_reaches_the_client(chain: Served) -> None:
    weird = [
        ("eth_getBalance", [{"a": 1}]),
        ("eth_call", ["0x"]),
        ("eth_getLogs", [{"address": 5}]),
        ("eth_sendRawTransaction", ["0x"]),
        ("eth_feeHistory", ["0x0", "latest", []]),
        ("evm_revert", ["zz"]),
        ("anvil_reorg", [1, [["0x00", 0]]]),
    ]
    for method, params in weird:
        answer = chain.rpc.post_raw(
            json.dumps({"jsonrpc": "2.0", "id": 9, "method": method, "params": params})
        )
        assert answer.status_code == 200
        body = answer.json()
        assert "error" in body, (method, body)
        assert "Traceback" not in body["error"]["message"]
        assert body["error"]["code"] in (-32000, -32602), (method, body)


def test_fee_suggestions(chain: Served) -> None:
    rpc = chain.rpc
    assert rpc("eth_maxPriorityFeePerGas") == hex(GWEI)
    next_base = GWEI * 7 // 8
    assert rpc("eth_gasPrice") == hex(next_base + GWEI)


def test_block_level_lookups(chain: Served) -> None:
    rpc = chain.rpc
    rpc("evm_setAutomine", False)
    hashes = [
        rpc(
            "eth_sendRawTransaction",
            _signer(i)
            .sign_transaction(
                {
                    "to": _signer(9).address,
                    "value": 1,
                    "gas": 21_000,
                    "chainId": 31337,
                    "nonce": 0,
                    "maxFeePerGas": 3 * GWEI,
                    "maxPriorityFeePerGas": GWEI,
                }
            )
            .raw_transaction.to_0x_hex(),
        )
        for i in range(2)
    ]
    rpc("evm_mine")
    block = rpc("eth_getBlockByNumber", "0x1", False)
    assert rpc("eth_getBlockTransactionCountByNumber", "0x1") == "0x2"
    assert rpc("eth_getBlockTransactionCountByHash", block["hash"]) == "0x2"
    assert (
        rpc("eth_getTransactionByBlockNumberAndIndex", "0x1", "0x1")["hash"]
        == block["transactions"][1]
    )
    assert (
        rpc("eth_getTransactionByBlockHashAndIndex", block["hash"], "0x0")["hash"]
        == block["transactions"][0]
    )
    assert rpc("eth_getTransactionByBlockNumberAndIndex", "0x1", "0x5") is None
    receipts = rpc("eth_getBlockReceipts", "0x1")
    assert sorted(r["transactionHash"] for r in receipts) == sorted(hashes)
    assert receipts[1]["cumulativeGasUsed"] == hex(42_000) and receipts[1][
        "gasUsed"
    ] == hex(21_000)
    assert int(block["size"], 16) > 500


def test_call_and_estimate_errors_for_funds_and_creation(chain: Served) -> None:
    rpc = chain.rpc
    poor = "0x" + "55" * 20
    err = rpc.error("eth_call", {"from": poor, "to": "0x" + "66" * 20, "value": "0x10"})
    assert err["code"] == -32000
    assert err["message"].startswith(
        "insufficient funds for gas * price + value: address "
    )
    # creation: initcode that returns one byte of runtime code
    creation = "0x600160005360016000f3"
    assert (
        int(rpc("eth_estimateGas", {"from": _signer().address, "data": creation}), 16)
        > 53_000
    )
    assert (
        rpc("eth_call", {"data": creation}) == "0x01"
    )  # a creation call answers the runtime code


def test_node_info(chain: Served) -> None:
    info = chain.rpc("anvil_nodeInfo")
    assert info["currentBlockNumber"] == "0x0"
    assert info["hardFork"] == "prague"
    assert info["environment"]["chainId"] == 31337


def test_web3_fee_helpers(w3: Web3) -> None:
    w3.provider.make_request("anvil_mine", ["0x3"])  # type: ignore[arg-type]
    history = w3.eth.fee_history(2, "latest", [50])
    assert len(history["baseFeePerGas"]) == 3 and len(history["reward"]) == 2
    assert w3.eth.max_priority_fee == GWEI
    assert w3.eth.gas_price > 0
    tx_hash = w3.eth.send_transaction(
        {"from": w3.eth.accounts[3], "to": w3.eth.accounts[4], "value": 1}
    )
    assert w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10)["status"] == 1


def test_blob_and_set_code_transactions_are_refused_clearly(chain: Served) -> None:
    for type_byte in ("03", "04"):
        err = chain.rpc.error("eth_sendRawTransaction", "0x" + type_byte + "c0")
        assert err == {"code": -32000, "message": "transaction type not supported"}


def test_small_status_methods_and_aliases(chain: Served) -> None:
    rpc = chain.rpc
    assert rpc("net_listening") is True
    assert rpc("net_peerCount") == "0x0"
    assert rpc("eth_mining") is True
    assert rpc("eth_hashrate") == "0x0"
    assert rpc("eth_coinbase") == "0x" + "00" * 20
    assert rpc("eth_blobBaseFee") == "0x1"
    assert (
        rpc("web3_sha3", "0x")
        == "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )
    assert rpc("anvil_getIntervalMining") is None
    rpc("evm_setIntervalMining", 2.5)
    assert rpc("anvil_getIntervalMining") == 2.5
    rpc("anvil_setIntervalMining", 0)
    assert rpc("anvil_getIntervalMining") is None
    target = "0x" + "31" * 20
    assert rpc("hardhat_setBalance", target, "0x5") is None
    assert rpc("eth_getBalance", target, "latest") == "0x5"
    rpc("hardhat_mine", "0x2")
    assert rpc("eth_blockNumber") == "0x2"
    assert rpc("anvil_snapshot") == "0x0" and rpc("anvil_revert", "0x0") is True


def test_send_transaction_builds_each_type_from_the_fields_given(chain: Served) -> None:
    rpc = chain.rpc
    first, to = rpc("eth_accounts")[0], "0x" + "61" * 20
    cases = [
        ({"gasPrice": hex(2 * GWEI)}, "0x0"),
        ({"gasPrice": hex(2 * GWEI), "accessList": []}, "0x1"),
        ({"maxFeePerGas": hex(5 * GWEI), "maxPriorityFeePerGas": hex(GWEI)}, "0x2"),
        ({}, "0x2"),
    ]
    for fields, tx_type in cases:
        tx_hash = rpc(
            "eth_sendTransaction", {"from": first, "to": to, "value": "0x1", **fields}
        )
        receipt = rpc("eth_getTransactionReceipt", tx_hash)
        assert receipt["status"] == "0x1" and receipt["type"] == tx_type
        assert rpc("eth_getTransactionByHash", tx_hash)["chainId"] == "0x7a69"
    assert rpc("eth_getBalance", to, "latest") == "0x4"
