"""The drill contracts: committed artifacts match the sources, and the escrow's rules hold on chain."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from eth_utils import keccak
from web3 import Web3
from web3.logs import DISCARD

from harness.accounts import new_key
from harness.contracts import artifact, send_tx
from harness.errors import HarnessError, RpcError

ROOT = Path(__file__).resolve().parents[2]


def test_committed_artifacts_match_the_sources(tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node, "node is needed to rebuild the contracts (the README's setup installs it)"
    subprocess.run([node, str(ROOT / "scripts" / "build_contracts.mjs"), str(tmp_path)], check=True, cwd=ROOT,
                   capture_output=True, timeout=300)
    for name in ("DrillToken", "DrillEscrow"):
        fresh = json.loads((tmp_path / f"{name}.json").read_text())
        committed = json.loads((ROOT / "fixtures" / "contracts" / "build" / f"{name}.json").read_text())
        assert fresh == committed, f"{name}.json is stale: run `node scripts/build_contracts.mjs` and commit"


def test_escrow_abi_is_the_contract_interface() -> None:
    abi = artifact("DrillEscrow").abi
    functions = {f["name"]: [i["type"] for i in f["inputs"]] for f in abi if f["type"] == "function"}
    assert functions["open"] == ["address", "uint64"]
    assert functions["submitProof"] == ["uint256", "bytes32"]
    assert functions["expire"] == ["uint256"]
    assert functions["reassign"] == ["uint256", "address"]
    assert functions["setRejecting"] == ["bool"]
    assert functions["fee"] == []
    escrows = next(f for f in abi if f.get("name") == "escrows")
    assert [o["type"] for o in escrows["outputs"]] == ["address", "uint64", "uint256", "uint8"]
    events = {e["name"]: [(i["type"], i["indexed"]) for i in e["inputs"]] for e in abi if e["type"] == "event"}
    assert events["EscrowOpened"] == [("uint256", True), ("address", True), ("uint64", False), ("uint256", False)]
    assert events["ProofSubmitted"] == [("uint256", True), ("address", True)]
    assert events["EscrowExpired"] == [("uint256", True)]
    assert events["EscrowReassigned"] == [("uint256", True), ("address", True), ("address", True)]


# -- rules on a real chain -------------------------------------------------------------------------

def proof_for(escrow_id: int, agent: str) -> bytes:
    return keccak(escrow_id.to_bytes(32, "big") + bytes.fromhex(agent[2:]))


@pytest.fixture
def world(drill_chain):
    """A fresh agent key with ETH and tokens, an allowance to the escrow, on the snapshotted chain."""
    drill_chain.reset()
    chain, dep = drill_chain.chain, drill_chain.deployment
    w3 = chain.w3
    owner = chain.accounts[0]
    agent = new_key()
    send_tx(w3, owner, {"to": agent.address, "value": 10**18})
    token = dep.token_contract(w3)
    escrow = dep.escrow_contract(w3)
    send_tx(w3, owner, token.functions.mint(agent.address, 10 * 10**18).build_transaction({"from": owner.address}))
    send_tx(w3, agent, token.functions.approve(dep.escrow, 2**256 - 1).build_transaction({"from": agent.address}))
    return chain, dep, owner, agent, token, escrow


def open_escrow(chain, escrow, owner, agent_addr, *, ahead: int = 60, value: int = 10**15) -> int:
    now = chain.w3.eth.get_block("latest")["timestamp"]
    tx = escrow.functions.open(agent_addr, now + ahead).build_transaction({"from": owner.address, "value": value})
    receipt = send_tx(chain.w3, owner, tx)
    (ev,) = escrow.events.EscrowOpened().process_receipt(receipt)
    return ev["args"]["id"]


def revert_reason(fn) -> str:
    with pytest.raises((RpcError, HarnessError, Exception)) as info:
        fn()
    return str(info.value)


def call_proof(escrow, sender, escrow_id, proof):
    return lambda: escrow.functions.submitProof(escrow_id, proof).call({"from": sender})


def test_proof_pays_agent_and_pulls_fee(world) -> None:
    chain, dep, owner, agent, token, escrow = world
    eid = open_escrow(chain, escrow, owner, agent.address, value=5 * 10**15)
    assert escrow.functions.escrows(eid).call()[3] == 1
    before_tokens = token.functions.balanceOf(agent.address).call()
    owner_tokens = token.functions.balanceOf(owner.address).call()
    receipt = send_tx(chain.w3, agent, escrow.functions.submitProof(eid, proof_for(eid, agent.address)).build_transaction({"from": agent.address}))
    assert escrow.events.ProofSubmitted().process_receipt(receipt, errors=DISCARD)[0]["args"]["id"] == eid
    assert escrow.functions.escrows(eid).call()[3] == 2
    assert token.functions.balanceOf(agent.address).call() == before_tokens - dep.fee
    assert token.functions.balanceOf(owner.address).call() == owner_tokens + dep.fee


def test_wrong_proof_is_rejected(world) -> None:
    chain, dep, owner, agent, token, escrow = world
    eid = open_escrow(chain, escrow, owner, agent.address)
    assert "wrong proof" in revert_reason(call_proof(escrow, agent.address, eid, proof_for(eid + 1, agent.address)))


def test_wrong_sender_is_rejected(world) -> None:
    chain, dep, owner, agent, token, escrow = world
    eid = open_escrow(chain, escrow, owner, agent.address)
    other = chain.accounts[3].address
    assert "not the escrow's agent" in revert_reason(call_proof(escrow, other, eid, proof_for(eid, other)))


def test_proof_after_deadline_reverts_and_expire_refunds_opener(world) -> None:
    chain, dep, owner, agent, token, escrow = world
    eid = open_escrow(chain, escrow, owner, agent.address, ahead=5)
    assert "deadline not passed" in revert_reason(lambda: escrow.functions.expire(eid).call({"from": agent.address}))
    chain.rpc("evm_increaseTime", 30)
    chain.mine(1)
    assert "deadline passed" in revert_reason(call_proof(escrow, agent.address, eid, proof_for(eid, agent.address)))
    stranger = chain.accounts[5]
    receipt = send_tx(chain.w3, stranger, escrow.functions.expire(eid).build_transaction({"from": stranger.address}))
    assert escrow.events.EscrowExpired().process_receipt(receipt)[0]["args"]["id"] == eid
    assert escrow.functions.escrows(eid).call()[3] == 3
    assert "not open" in revert_reason(lambda: escrow.functions.expire(eid).call({"from": stranger.address}))


def test_rejecting_escrow_reverts_proofs_until_turned_off(world) -> None:
    chain, dep, owner, agent, token, escrow = world
    eid = open_escrow(chain, escrow, owner, agent.address)
    assert "not the owner" in revert_reason(lambda: escrow.functions.setRejecting(True).call({"from": agent.address}))
    send_tx(chain.w3, owner, escrow.functions.setRejecting(True).build_transaction({"from": owner.address}))
    assert "rejecting" in revert_reason(call_proof(escrow, agent.address, eid, proof_for(eid, agent.address)))
    send_tx(chain.w3, owner, escrow.functions.setRejecting(False).build_transaction({"from": owner.address}))
    escrow.functions.submitProof(eid, proof_for(eid, agent.address)).call({"from": agent.address})


def test_proof_without_fee_allowance_reverts(world) -> None:
    chain, dep, owner, agent, token, escrow = world
    eid = open_escrow(chain, escrow, owner, agent.address)
    send_tx(chain.w3, agent, token.functions.approve(dep.escrow, 0).build_transaction({"from": agent.address}))
    reason = revert_reason(call_proof(escrow, agent.address, eid, proof_for(eid, agent.address)))
    # OpenZeppelin's ERC20InsufficientAllowance(address,uint256,uint256) custom error
    selector = keccak(text="ERC20InsufficientAllowance(address,uint256,uint256)")[:4].hex()
    assert selector in reason


def test_reassign_is_owner_only_and_moves_the_escrow(world) -> None:
    chain, dep, owner, agent, token, escrow = world
    eid = open_escrow(chain, escrow, owner, agent.address)
    newcomer = new_key()
    assert "not the owner" in revert_reason(lambda: escrow.functions.reassign(eid, newcomer.address).call({"from": agent.address}))
    receipt = send_tx(chain.w3, owner, escrow.functions.reassign(eid, newcomer.address).build_transaction({"from": owner.address}))
    args = escrow.events.EscrowReassigned().process_receipt(receipt)[0]["args"]
    assert (args["id"], args["from"], args["to"]) == (eid, agent.address, newcomer.address)
    assert escrow.functions.escrows(eid).call()[0] == newcomer.address
    # the old agent can no longer prove it; the new one can (it proves for its own address)
    assert "not the escrow's agent" in revert_reason(call_proof(escrow, agent.address, eid, proof_for(eid, agent.address)))
    assert Web3.is_checksum_address(newcomer.address)


def test_escrow_cannot_be_proven_twice(world) -> None:
    chain, dep, owner, agent, token, escrow = world
    eid = open_escrow(chain, escrow, owner, agent.address)
    send_tx(chain.w3, agent, escrow.functions.submitProof(eid, proof_for(eid, agent.address)).build_transaction({"from": agent.address}))
    assert "not open" in revert_reason(call_proof(escrow, agent.address, eid, proof_for(eid, agent.address)))
