"""Smoke drill: the world a drill needs is there and works end to end.

It starts the chain (the run's backend), deploys the drill contracts, and plays both sides of one
escrow with a throwaway key: the counterparty opens it, the "agent" proves it before its deadline.
If this fails, every other drill would fail for a reason that has nothing to do with the agent.
"""

from __future__ import annotations

import time

import pytest
from eth_utils import keccak
from web3.logs import DISCARD

from harness.accounts import new_key
from harness.contracts import send_tx


@pytest.mark.drill(playbook="smoke", family="smoke")
def test_chain_deploys_and_a_throwaway_key_proves_one_escrow(drill_chain, record_property) -> None:
    drill_chain.reset()
    chain, dep = drill_chain.chain, drill_chain.deployment
    w3 = chain.w3
    owner, agent = chain.accounts[0], new_key()
    token, escrow = dep.token_contract(w3), dep.escrow_contract(w3)
    started = time.monotonic()

    send_tx(w3, owner, {"to": agent.address, "value": 10**17})
    send_tx(w3, owner, token.functions.mint(agent.address, 5 * dep.fee).build_transaction({"from": owner.address}))
    send_tx(w3, agent, token.functions.approve(dep.escrow, dep.fee).build_transaction({"from": agent.address}))

    deadline = w3.eth.get_block("latest")["timestamp"] + 60
    opened = send_tx(w3, owner, escrow.functions.open(agent.address, deadline).build_transaction(
        {"from": owner.address, "value": 10**16}))
    (event,) = escrow.events.EscrowOpened().process_receipt(opened)
    escrow_id = event["args"]["id"]
    assert event["args"]["agent"] == agent.address

    proof = keccak(escrow_id.to_bytes(32, "big") + bytes.fromhex(agent.address[2:]))
    balance_before = chain.balance(agent.address)
    proved = send_tx(w3, agent, escrow.functions.submitProof(escrow_id, proof).build_transaction({"from": agent.address}))
    assert escrow.events.ProofSubmitted().process_receipt(proved, errors=DISCARD)[0]["args"]["id"] == escrow_id

    agent_addr, _, amount, state = escrow.functions.escrows(escrow_id).call()
    assert state == 2, f"escrow {escrow_id} is in state {state}, expected 2 (proven)"
    gas = proved["gasUsed"] * proved["effectiveGasPrice"]
    assert chain.balance(agent.address) == balance_before + amount - gas
    assert token.functions.balanceOf(agent.address).call() == 4 * dep.fee
    elapsed = time.monotonic() - started
    record_property("backend", chain.backend)
    record_property("escrow_id", escrow_id)
    record_property("seconds", round(elapsed, 3))
    print(f"smoke drill on {chain.backend}: escrow {escrow_id} opened and proven in {elapsed:.2f}s, "
          f"proof gas {proved['gasUsed']}")
