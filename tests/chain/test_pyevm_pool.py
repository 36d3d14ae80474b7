"""The pyevm chain's transaction pool behaves like geth's: admission errors, replacement, queueing,
block order and the txpool_* namespace."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_utils import to_checksum_address

from harness.chain.pyevm import dev_keys
from harness.chain.pyevm.testing import RawRpc, Served, serving

GWEI = 10**9
TO = "0x" + "42" * 20


@pytest.fixture
def chain() -> Iterator[Served]:
    with serving() as served:
        served.rpc("evm_setAutomine", False)
        yield served


def signer(i: int = 0) -> Any:
    return Account.from_key(dev_keys()[i])


def raw(i: int = 0, **fields: Any) -> str:
    tx = {
        "to": TO,
        "value": 1,
        "gas": 21_000,
        "chainId": 31337,
        "nonce": 0,
        "maxFeePerGas": 3 * GWEI,
        "maxPriorityFeePerGas": GWEI,
    }
    tx.update(fields)
    if "gasPrice" in tx:
        tx.pop("maxFeePerGas")
        tx.pop("maxPriorityFeePerGas")
    return signer(i).sign_transaction(tx).raw_transaction.to_0x_hex()


def send(rpc: RawRpc, i: int = 0, **fields: Any) -> str:
    tx_hash: str = rpc("eth_sendRawTransaction", raw(i, **fields))
    return tx_hash


def test_several_pending_per_sender_then_one_block(chain: Served) -> None:
    rpc = chain.rpc
    hashes = [send(rpc, nonce=n) for n in range(3)]
    assert rpc("eth_blockNumber") == "0x0"
    assert rpc("txpool_status") == {"pending": "0x3", "queued": "0x0"}
    address = signer().address
    assert rpc("eth_getTransactionCount", address, "pending") == "0x3"
    assert rpc("eth_getTransactionCount", address, "latest") == "0x0"
    pending = rpc("eth_getTransactionByHash", hashes[1])
    assert (
        pending["blockNumber"] is None
        and pending["blockHash"] is None
        and pending["transactionIndex"] is None
    )
    assert pending["nonce"] == "0x1"
    assert rpc("eth_getTransactionReceipt", hashes[1]) is None
    assert rpc("eth_getBlockByNumber", "pending", False)["transactions"] == hashes
    rpc("evm_mine")
    block = rpc("eth_getBlockByNumber", "latest", False)
    assert block["number"] == "0x1" and block["transactions"] == hashes
    assert rpc("txpool_status") == {"pending": "0x0", "queued": "0x0"}
    assert [
        rpc("eth_getTransactionReceipt", h)["transactionIndex"] for h in hashes
    ] == ["0x0", "0x1", "0x2"]


def test_future_nonce_is_queued_until_the_gap_fills(chain: Served) -> None:
    rpc = chain.rpc
    later = send(rpc, nonce=2)
    assert rpc("txpool_status") == {"pending": "0x0", "queued": "0x1"}
    assert rpc("eth_getTransactionCount", signer().address, "pending") == "0x0"
    rpc("evm_mine")
    assert rpc("eth_getBlockByNumber", "latest", False)["transactions"] == []
    send(rpc, nonce=0)
    assert rpc("txpool_status") == {"pending": "0x1", "queued": "0x1"}
    send(rpc, nonce=1)
    assert rpc("txpool_status") == {"pending": "0x3", "queued": "0x0"}
    rpc("evm_mine")
    assert rpc("eth_getTransactionReceipt", later)["status"] == "0x1"


def test_queued_transactions_wait_under_automine_too(chain: Served) -> None:
    rpc = chain.rpc
    rpc("evm_setAutomine", True)
    send(rpc, nonce=1)
    assert rpc("eth_blockNumber") == "0x0"
    send(rpc, nonce=0)  # fills the gap: both are mined at once
    assert rpc("eth_getTransactionCount", signer().address, "latest") == "0x2"
    assert rpc("txpool_status") == {"pending": "0x0", "queued": "0x0"}


@pytest.mark.parametrize(
    ("fee", "tip", "accepted"),
    [
        (33, 11, True),  # exactly +10% on both
        (40, 10, False),  # tip not bumped
        (32, 20, False),  # fee cap short of +10%
        (34, 12, True),
    ],
)
def test_replacement_needs_ten_percent_more_on_fee_cap_and_tip(
    chain: Served, fee: int, tip: int, accepted: bool
) -> None:
    rpc = chain.rpc
    old = send(
        rpc, nonce=0, maxFeePerGas=30 * GWEI // 10, maxPriorityFeePerGas=10 * GWEI // 10
    )
    new_raw = raw(
        nonce=0,
        value=2,
        maxFeePerGas=fee * GWEI // 10,
        maxPriorityFeePerGas=tip * GWEI // 10,
    )
    if accepted:
        new = rpc("eth_sendRawTransaction", new_raw)
        assert rpc("eth_getTransactionByHash", old) is None
        assert rpc("eth_getTransactionByHash", new)["value"] == "0x2"
        assert rpc("txpool_status")["pending"] == "0x1"
    else:
        assert rpc.error("eth_sendRawTransaction", new_raw) == {
            "code": -32000,
            "message": "replacement transaction underpriced",
        }
        assert rpc("eth_getTransactionByHash", old)["value"] == "0x1"


def test_legacy_replacement_uses_gas_price_for_both(chain: Served) -> None:
    rpc = chain.rpc
    send(rpc, nonce=0, gasPrice=2 * GWEI)
    assert rpc.error(
        "eth_sendRawTransaction", raw(nonce=0, value=5, gasPrice=2 * GWEI + 1)
    )["message"] == ("replacement transaction underpriced")
    send(rpc, nonce=0, value=5, gasPrice=22 * GWEI // 10)


def test_admission_errors_in_geths_words(chain: Served) -> None:
    rpc = chain.rpc
    rpc("evm_setAutomine", True)
    send(rpc, nonce=0)
    first = signer().address

    def error(**fields: Any) -> dict[str, Any]:
        return rpc.error("eth_sendRawTransaction", raw(**fields))

    assert error(nonce=0, value=9) == {
        "code": -32000,
        "message": "nonce too low: next nonce 1, tx nonce 0",
    }
    assert error(nonce=1, gas=20_000) == {
        "code": -32000,
        "message": "intrinsic gas too low: gas 20000, minimum needed 21000",
    }
    assert error(nonce=1, gas=30_000_001) == {
        "code": -32000,
        "message": "exceeds block gas limit",
    }
    base_fee = int(rpc("eth_getBlockByNumber", "pending", False)["baseFeePerGas"], 16)
    assert error(nonce=1, maxFeePerGas=base_fee - 1, maxPriorityFeePerGas=0) == {
        "code": -32000,
        "message": f"max fee per gas less than block base fee: address {first}, "
        f"maxFeePerGas: {base_fee - 1}, baseFee: {base_fee}",
    }
    assert error(nonce=1, maxFeePerGas=GWEI, maxPriorityFeePerGas=2 * GWEI)[
        "message"
    ] == ("max priority fee per gas higher than max fee per gas")
    rpc("anvil_setBalance", first, hex(21_000 * 3 * GWEI))
    message = error(nonce=1, value=1)["message"]
    assert message == (
        f"insufficient funds for gas * price + value: balance {21_000 * 3 * GWEI}, "
        f"tx cost {21_000 * 3 * GWEI + 1}, overshot 1"
    )
    rpc("evm_setAutomine", False)
    again = raw(nonce=1, value=0)
    rpc("eth_sendRawTransaction", again)
    assert rpc.error("eth_sendRawTransaction", again) == {
        "code": -32000,
        "message": "already known",
    }


def test_block_order_is_by_tip_across_senders_and_nonce_within(chain: Served) -> None:
    rpc = chain.rpc
    low = send(rpc, 0, nonce=0, maxPriorityFeePerGas=1 * GWEI)
    low_next = send(
        rpc, 0, nonce=1, maxPriorityFeePerGas=2 * GWEI, maxFeePerGas=4 * GWEI
    )
    high = send(rpc, 1, nonce=0, maxPriorityFeePerGas=2 * GWEI // 1 + 1)
    mid = send(rpc, 2, nonce=0, maxPriorityFeePerGas=15 * GWEI // 10)
    rpc("evm_mine")
    order = rpc("eth_getBlockByNumber", "latest", False)["transactions"]
    assert order == [high, mid, low, low_next]


def test_transactions_under_the_base_fee_stay_pending_until_it_drops(
    chain: Served,
) -> None:
    rpc = chain.rpc
    cheap = send(rpc, 0, nonce=0, maxFeePerGas=GWEI, maxPriorityFeePerGas=GWEI // 2)
    rpc("anvil_setNextBlockBaseFeePerGas", hex(5 * GWEI))
    rich = send(rpc, 1, nonce=0, maxFeePerGas=10 * GWEI, maxPriorityFeePerGas=GWEI)
    rpc("evm_mine")
    assert rpc("eth_getBlockByNumber", "latest", False)["transactions"] == [rich]
    assert rpc("eth_getTransactionByHash", cheap)["blockNumber"] is None
    assert rpc("txpool_status")["pending"] == "0x1"
    rpc(
        "anvil_setNextBlockBaseFeePerGas", "0x0"
    )  # clears the override; the fee decays by 1/8 a block
    for _ in range(40):
        rpc("evm_mine")
        if rpc("eth_getTransactionReceipt", cheap) is not None:
            break
    receipt = rpc("eth_getTransactionReceipt", cheap)
    assert receipt is not None and receipt["status"] == "0x1"
    block = rpc("eth_getBlockByNumber", receipt["blockNumber"], False)
    assert int(block["baseFeePerGas"], 16) <= GWEI


def test_block_gas_limit_leaves_the_rest_in_the_pool(chain: Served) -> None:
    rpc = chain.rpc
    assert rpc("evm_setBlockGasLimit", hex(50_000)) is True
    hashes = [send(rpc, i, nonce=0) for i in range(3)]
    rpc("evm_mine")
    first = rpc("eth_getBlockByNumber", "latest", False)
    assert first["gasLimit"] == hex(50_000)
    assert len(first["transactions"]) == 2 and first["gasUsed"] == hex(42_000)
    assert rpc("txpool_status")["pending"] == "0x1"
    rpc("evm_mine")
    assert len(rpc("eth_getBlockByNumber", "latest", False)["transactions"]) == 1
    assert all(rpc("eth_getTransactionReceipt", h) for h in hashes)
    assert (
        rpc.error("eth_sendRawTransaction", raw(3, gas=50_001))["message"]
        == "exceeds block gas limit"
    )


def test_drop_transaction_and_drop_all(chain: Served) -> None:
    rpc = chain.rpc
    a = send(rpc, 0, nonce=0)
    b = send(rpc, 1, nonce=0)
    send(rpc, 2, nonce=3)
    assert rpc("anvil_dropTransaction", a) == a
    assert rpc("anvil_dropTransaction", a) is None
    assert rpc("eth_getTransactionByHash", a) is None
    assert rpc("txpool_status") == {"pending": "0x1", "queued": "0x1"}
    assert rpc("anvil_dropAllTransactions") is None
    assert rpc("txpool_status") == {"pending": "0x0", "queued": "0x0"}
    assert rpc("eth_getTransactionByHash", b) is None
    rpc("evm_mine")
    assert rpc("eth_getBlockByNumber", "latest", False)["transactions"] == []


def test_txpool_content_and_inspect(chain: Served) -> None:
    rpc = chain.rpc
    p = send(rpc, 0, nonce=0, value=5)
    q = send(rpc, 1, nonce=4)
    content = rpc("txpool_content")
    first, second = (
        to_checksum_address(signer(0).address),
        to_checksum_address(signer(1).address),
    )
    assert content["pending"][first]["0"]["hash"] == p
    assert content["pending"][first]["0"]["blockNumber"] is None
    assert content["queued"][second]["4"]["hash"] == q
    assert content["queued"].get(first) is None
    inspect = rpc("txpool_inspect")
    assert (
        inspect["pending"][first]["0"]
        == f"{to_checksum_address(TO)}: 5 wei + 21000 gas × {3 * GWEI} wei"
    )
