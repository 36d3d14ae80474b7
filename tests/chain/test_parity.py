"""The same cases against both chain backends.

A drill is written once and runs on either backend, so every cheat and every node behaviour the
harness relies on is checked here on both. Where the backends legitimately differ the test says so
explicitly (``differs`` cases) instead of passing in silence.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from eth_account import Account
from eth_utils import keccak
from web3 import Web3

from harness.accounts import DEV_BALANCE_WEI, dev_accounts, new_key
from harness.chain.base import BACKENDS, Chain, start_chain
from harness.contracts import deploy_contracts, send_tx
from harness.errors import RpcError

GWEI = 10**9


@pytest.fixture(scope="module", params=BACKENDS)
def chain(request: pytest.FixtureRequest) -> Iterator[Chain]:
    c = start_chain(backend=request.param)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def fresh(chain: Chain) -> Iterator[Chain]:
    """Each case starts from the same state and leaves automine on."""
    snap = chain.snapshot()
    try:
        yield chain
    finally:
        chain.set_interval_mining(0)
        chain.set_automine(True)
        assert chain.revert(snap)


def signed_transfer(chain: Chain, sender, *, nonce: int, to: str | None = None, value: int = 1,
                    max_fee: int = 10 * GWEI, tip: int = GWEI, gas: int = 21_000) -> tuple[str, str]:
    tx = {"chainId": chain.chain_id, "nonce": nonce, "to": to or chain.accounts[9].address, "value": value,
          "gas": gas, "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip, "type": 2}
    signed = Account.sign_transaction(tx, sender.key)
    return signed.raw_transaction.to_0x_hex(), signed.hash.to_0x_hex()


def send_raw(chain: Chain, raw: str) -> str:
    return chain.rpc("eth_sendRawTransaction", raw)


def wait_until(pred, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# -- identity and accounts ---------------------------------------------------------------------------

def test_chain_id_and_dev_accounts(chain: Chain) -> None:
    assert int(chain.rpc("eth_chainId"), 16) == 31337
    assert chain.rpc("net_version") == "31337"
    for acct in dev_accounts()[1:4]:
        assert chain.balance(acct.address) == DEV_BALANCE_WEI
    assert [a.lower() for a in chain.rpc("eth_accounts")][:10] == [a.address.lower() for a in dev_accounts()]


def test_automine_mines_each_transaction(fresh: Chain) -> None:
    sender = fresh.accounts[1]
    before = fresh.block_number()
    raw, h = signed_transfer(fresh, sender, nonce=fresh.nonce(sender.address))
    assert send_raw(fresh, raw) == h
    receipt = fresh.rpc("eth_getTransactionReceipt", h)
    assert receipt is not None and receipt["status"] == "0x1"
    assert fresh.block_number() == before + 1


# -- the pool --------------------------------------------------------------------------------------

def test_pending_nonce_counts_pool_transactions(fresh: Chain) -> None:
    fresh.set_automine(False)
    sender = fresh.accounts[1]
    n = fresh.nonce(sender.address)
    hashes = [send_raw(fresh, signed_transfer(fresh, sender, nonce=n + i)[0]) for i in range(3)]
    assert fresh.nonce(sender.address, "pending") == n + 3
    assert fresh.nonce(sender.address, "latest") == n
    assert fresh.txpool_status()["pending"] == 3
    content = fresh.txpool_content()["pending"]
    sender_key = next(k for k in content if k.lower() == sender.address.lower())
    assert sorted(int(k) for k in content[sender_key]) == [n, n + 1, n + 2]
    assert fresh.rpc("eth_getTransactionReceipt", hashes[0]) is None
    pending_tx = fresh.rpc("eth_getTransactionByHash", hashes[0])
    assert pending_tx is not None and pending_tx["blockNumber"] is None
    fresh.mine(1)
    assert all(fresh.rpc("eth_getTransactionReceipt", h) for h in hashes)
    assert fresh.nonce(sender.address) == n + 3


def test_future_nonce_is_queued_until_the_gap_fills(fresh: Chain) -> None:
    fresh.set_automine(False)
    sender = fresh.accounts[2]
    n = fresh.nonce(sender.address)
    send_raw(fresh, signed_transfer(fresh, sender, nonce=n + 1)[0])
    status = fresh.txpool_status()
    assert (status["pending"], status["queued"]) == (0, 1)
    fresh.mine(1)
    assert fresh.nonce(sender.address) == n  # nothing mined over the gap
    send_raw(fresh, signed_transfer(fresh, sender, nonce=n)[0])
    assert fresh.txpool_status()["pending"] == 2
    fresh.mine(1)
    assert fresh.nonce(sender.address) == n + 2


def test_replacement_with_ten_percent_bump_is_accepted(fresh: Chain) -> None:
    fresh.set_automine(False)
    sender = fresh.accounts[3]
    n = fresh.nonce(sender.address)
    send_raw(fresh, signed_transfer(fresh, sender, nonce=n, max_fee=10 * GWEI, tip=GWEI)[0])
    raw, h = signed_transfer(fresh, sender, nonce=n, max_fee=11 * GWEI, tip=GWEI * 11 // 10, value=2)
    assert send_raw(fresh, raw) == h
    assert fresh.txpool_status()["pending"] == 1
    fresh.mine(1)
    assert fresh.rpc("eth_getTransactionReceipt", h)["status"] == "0x1"


def test_replacement_by_one_wei_differs_between_backends(fresh: Chain) -> None:
    """geth's rule (pyevm): +10% on cap and tip or `replacement transaction underpriced`.
    anvil accepts any higher fee, which is why the harness checks an agent's bump ratio itself."""
    fresh.set_automine(False)
    sender = fresh.accounts[3]
    n = fresh.nonce(sender.address)
    send_raw(fresh, signed_transfer(fresh, sender, nonce=n, max_fee=10 * GWEI, tip=GWEI)[0])
    raw, _ = signed_transfer(fresh, sender, nonce=n, max_fee=10 * GWEI + 1, tip=GWEI + 1, value=2)
    if fresh.backend == "pyevm":
        with pytest.raises(RpcError, match="replacement transaction underpriced"):
            send_raw(fresh, raw)
    else:
        send_raw(fresh, raw)  # anvil: accepted
        assert fresh.txpool_status()["pending"] == 1


def test_nonce_too_low(fresh: Chain) -> None:
    sender = fresh.accounts[4]
    send_raw(fresh, signed_transfer(fresh, sender, nonce=fresh.nonce(sender.address))[0])
    raw, _ = signed_transfer(fresh, sender, nonce=0, value=5)
    with pytest.raises(RpcError, match="nonce too low") as info:
        send_raw(fresh, raw)
    assert info.value.code == -32000 or fresh.backend == "anvil"


def test_insufficient_funds(fresh: Chain) -> None:
    poor = new_key()
    raw, _ = signed_transfer(fresh, poor, nonce=0)
    with pytest.raises(RpcError, match="(?i)insufficient funds"):
        send_raw(fresh, raw)


def test_max_fee_below_base_fee_is_refused(fresh: Chain) -> None:
    fresh.set_next_base_fee(50 * GWEI)
    fresh.mine(1)
    base = fresh.base_fee()
    assert base >= 40 * GWEI
    sender = fresh.accounts[5]
    raw, _ = signed_transfer(fresh, sender, nonce=fresh.nonce(sender.address), max_fee=GWEI, tip=GWEI // 2)
    with pytest.raises(RpcError, match="max fee per gas less than block base fee"):
        send_raw(fresh, raw)


# -- mining and fees -------------------------------------------------------------------------------

def test_interval_mining_produces_blocks_without_transactions(fresh: Chain) -> None:
    fresh.set_automine(False)
    start = fresh.block_number()
    fresh.set_interval_mining(1)
    wait_until(lambda: fresh.block_number() >= start + 2, timeout=8, what="two interval blocks")
    fresh.set_interval_mining(0)


def test_mine_cheat_mines_n_blocks(fresh: Chain) -> None:
    start = fresh.block_number()
    fresh.mine(5)
    assert fresh.block_number() == start + 5


def test_next_base_fee_override(fresh: Chain) -> None:
    """Both backends put the override into the next block. pyevm holds it for every later block while
    set (so a drill's spike lasts without re-arming it before each block); anvil applies it once and
    then lets it decay by the EIP-1559 rule, so the harness re-arms it before every block on anvil."""
    fresh.set_next_base_fee(100 * GWEI)
    fresh.mine(1)
    assert fresh.base_fee() == 100 * GWEI
    fresh.mine(1)
    second = fresh.base_fee()
    if fresh.backend == "pyevm":
        assert second == 100 * GWEI
    else:
        assert second < 100 * GWEI


def test_block_gas_limit_can_be_squeezed(fresh: Chain) -> None:
    fresh.set_block_gas_limit(100_000)
    fresh.mine(1)
    assert int(fresh.rpc("eth_getBlockByNumber", "latest", False)["gasLimit"], 16) == 100_000


def test_fee_history_shape(fresh: Chain) -> None:
    fresh.mine(3)
    hist = fresh.rpc("eth_feeHistory", "0x3", "latest", [25, 75])
    assert len(hist["baseFeePerGas"]) == 4  # three blocks and the next one
    assert len(hist["gasUsedRatio"]) == 3
    assert len(hist["reward"]) == 3 and all(len(r) == 2 for r in hist["reward"])
    assert int(fresh.rpc("eth_maxPriorityFeePerGas"), 16) >= 0
    assert int(fresh.rpc("eth_gasPrice"), 16) > 0


# -- cheats ----------------------------------------------------------------------------------------

def test_drop_transaction_removes_it_from_the_pool(fresh: Chain) -> None:
    fresh.set_automine(False)
    sender = fresh.accounts[6]
    raw, h = signed_transfer(fresh, sender, nonce=fresh.nonce(sender.address))
    send_raw(fresh, raw)
    fresh.drop_transaction(h)
    assert fresh.txpool_status()["pending"] == 0
    fresh.mine(1)
    assert fresh.rpc("eth_getTransactionReceipt", h) is None


def test_snapshot_and_revert_restore_state(chain: Chain) -> None:
    who = new_key().address
    snap = chain.snapshot()
    height = chain.block_number()
    chain.set_balance(who, 123)
    assert chain.balance(who) == 123
    chain.mine(2)
    assert chain.revert(snap)
    assert chain.balance(who) == 0
    assert chain.block_number() == height


def test_set_balance(fresh: Chain) -> None:
    who = fresh.accounts[7].address
    fresh.set_balance(who, 42)
    assert fresh.balance(who) == 42


# -- contracts, logs, calls ------------------------------------------------------------------------

def test_logs_filters_and_revert_reasons(fresh: Chain) -> None:
    owner = fresh.accounts[0]
    dep = deploy_contracts(fresh.w3, owner)
    escrow = dep.escrow_contract(fresh.w3)
    agent = fresh.accounts[8]
    now = fresh.w3.eth.get_block("latest")["timestamp"]
    for _ in range(2):
        send_tx(fresh.w3, owner, escrow.functions.open(agent.address, now + 600).build_transaction({"from": owner.address, "value": 1}))
    topic0 = "0x" + keccak(text="EscrowOpened(uint256,address,uint64,uint256)").hex()
    agent_topic = "0x" + "00" * 12 + agent.address[2:].lower()
    logs = fresh.rpc("eth_getLogs", {"address": dep.escrow, "fromBlock": "0x0", "toBlock": "latest",
                                     "topics": [topic0, None, agent_topic]})
    assert [int(l["topics"][1], 16) for l in logs] == [1, 2]
    none = fresh.rpc("eth_getLogs", {"address": dep.escrow, "fromBlock": "0x0", "topics": [topic0, None, "0x" + "00" * 32]})
    assert none == []
    with pytest.raises(RpcError) as info:
        fresh.rpc("eth_call", {"from": agent.address, "to": dep.escrow,
                               "data": escrow.encode_abi("submitProof", [1, b"\0" * 32])}, "latest")
    assert info.value.code == 3
    assert "execution reverted" in info.value.message and "wrong proof" in info.value.message


def test_unknown_method_is_a_json_rpc_error(chain: Chain) -> None:
    with pytest.raises(RpcError) as info:
        chain.rpc("eth_noSuchMethod")
    assert info.value.code == -32601 or chain.backend == "anvil"
    assert Web3.is_address(chain.accounts[0].address)


def test_chain_clock_does_not_run_ahead_of_the_wall_clock(fresh: Chain) -> None:
    """Escrow deadlines are compared with block.timestamp: twenty blocks mined at once must not
    push the chain's clock twenty seconds ahead (both backends let a second's blocks share it)."""
    fresh.mine(20)
    head = int(fresh.rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16)
    assert head <= time.time() + 2
