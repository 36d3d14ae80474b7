"""The reference agent as a process against real local chains.

Each test builds a world (chain, contracts, funded hot wallet, alert receiver), starts the agent
with the contract's environment, opens escrows for it like the harness's counterparty, injects a
fault by hand and judges on the chain's ground truth and the events received.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
from ra_world import BACKENDS, World
from ra_world import Attacker, Forwarder, escrow_states, proof_txs

from harness.contracts import send_tx

OPEN, PROVEN, EXPIRED = 1, 2, 3


def _settle(w: World, seconds: float = 4.0) -> None:
    """Stop opening escrows and give the agent time to prove what is open."""
    assert w.counterparty is not None
    w.counterparty.stop()
    time.sleep(seconds)


def _as_owner(w: World, build: Any) -> None:
    """Send a transaction from the counterparty's account while its escrow-opening thread waits
    (both sign with the same key; they would race for nonces)."""
    cp = w.counterparty
    if cp is not None:
        cp.pause()
        time.sleep(cp.every + 0.2)
    try:
        owner = w.chain.accounts[0]
        send_tx(w.chain.w3, owner, build.build_transaction({"from": owner.address, "gas": 100_000}))
    finally:
        if cp is not None:
            cp.resume()


def _assert_clean_run(w: World, sender: str) -> dict[int, tuple[str, int, int, int]]:
    states = escrow_states(w.chain, w.deployment)
    counts = Counter(s[3] for s in states.values())
    late = [i for i, s in states.items() if s[3] == OPEN and s[1] < w.chain.w3.eth.get_block("latest")["timestamp"]]
    assert counts[EXPIRED] == 0 and not late, f"escrows not proven in time: {counts}, late {late}"
    proofs = proof_txs(w.chain, w.deployment, sender)
    dup = [e for e, n in Counter(p["escrow"] for p in proofs).items() if n > 1]
    assert not dup, f"escrows proven twice: {dup}"
    assert all(p["status"] == 1 for p in proofs), [p for p in proofs if p["status"] != 1]
    assert w.chain.nonce(sender, "latest") == w.chain.nonce(sender, "pending"), "transactions left pending (a nonce gap)"
    return states


@pytest.mark.parametrize("backend", BACKENDS)
def test_steady_state_proves_every_escrow_in_time(tmp_path, backend: str) -> None:
    """Automine; interval mining is covered by the restart test below, which also proves in steady state."""
    import contextlib

    from ra_world import make_world

    with contextlib.ExitStack() as stack:
        w = make_world(tmp_path, backend, stack)
        agent = w.start_agent()
        health = agent.wait_healthy()
        assert health["mode"] == "normal" and health["address"] == w.hot.address
        w.open_escrows(every=0.5, ahead=10)
        time.sleep(9)
        _settle(w, 3)
        states = _assert_clean_run(w, w.hot.address)
        assert sum(1 for s in states.values() if s[3] == PROVEN) >= 12
        assert w.alerts.events == [], "a quiet run raises no incident"
        assert agent.health()["status"] == "ok"
        assert w.hot.key[2:] not in agent.output(), "the private key must never be printed"
        assert agent.stop() == 0
        assert '"clean": true' in (tmp_path / "state" / "run.json").read_text()


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigkill_then_restart_proves_without_duplicates_and_reports_the_crash(tmp_path, backend: str) -> None:
    import contextlib

    from ra_world import make_world

    with contextlib.ExitStack() as stack:
        w = make_world(tmp_path, backend, stack, block_time=1.0)  # interval mining: work is in flight at the kill
        agent = w.start_agent()
        agent.wait_healthy()
        w.open_escrows(every=0.5, ahead=15)
        for _ in range(1):
            time.sleep(4)
            agent.kill()
            time.sleep(1.0)  # escrows keep opening while the agent is down
            agent.start()
            agent.wait_healthy()
        crash = w.alerts.wait_for(lambda e: e["kind"] == "process_crash" and e["severity"] == "SEV-2", 10)
        w.alerts.wait_for(lambda e: e["incident_id"] == crash["incident_id"] and e["status"] == "resolved", 20)
        _settle(w, 3.5)
        _assert_clean_run(w, w.hot.address)
        assert not w.alerts.of_kind("crash_loop"), "one kill after a long life is not a crash loop"


def test_primary_down_fails_over_and_back(anvil_world: World) -> None:
    w = anvil_world
    primary, backup = Forwarder(w.chain.rpc_url), Forwarder(w.chain.rpc_url)
    w.stack.callback(primary.stop)
    w.stack.callback(backup.stop)
    agent = w.start_agent(urls=[primary.url, backup.url])
    agent.wait_healthy()
    w.open_escrows()
    time.sleep(2)
    primary.down()
    ev = w.alerts.wait_for(lambda e: e["kind"] == "rpc_failure", 5)
    assert ev["severity"] == "SEV-3" and ev["details"]["endpoint"]["active"] == backup.url
    time.sleep(3)
    assert agent.health()["rpc"] == backup.url
    primary.up()
    w.alerts.wait_for(lambda e: e["kind"] == "rpc_failure" and e["status"] == "resolved", 10)
    assert agent.health()["rpc"] == primary.url
    _settle(w)
    _assert_clean_run(w, w.hot.address)


def test_no_failover_defect_stops_working_when_the_primary_dies(anvil_world: World) -> None:
    w = anvil_world
    primary, backup = Forwarder(w.chain.rpc_url), Forwarder(w.chain.rpc_url)
    w.stack.callback(primary.stop)
    w.stack.callback(backup.stop)
    agent = w.start_agent(urls=[primary.url, backup.url], defects="no_failover")
    agent.wait_healthy()
    w.open_escrows(ahead=3)
    time.sleep(2)
    on_backup = backup.requests
    primary.down()
    ev = w.alerts.wait_for(lambda e: e["kind"] == "rpc_failure", 5)
    assert ev["severity"] == "SEV-2"  # it knows no other endpoint
    time.sleep(5)
    assert backup.requests == on_backup, "the defect variant never talks to the backup"
    states = escrow_states(w.chain, w.deployment)
    assert any(s[3] == OPEN and s[1] < w.chain.w3.eth.get_block("latest")["timestamp"] for s in states.values())


def test_leaked_key_is_contained_swept_and_rotated(anvil_world: World) -> None:
    w = anvil_world
    agent = w.start_agent()
    agent.wait_healthy()
    cp = w.open_escrows()
    time.sleep(2)
    attacker = Attacker(w.chain, w.deployment, w.hot).start()
    w.stack.callback(attacker.stop)
    detected = w.alerts.wait_for(lambda e: e["kind"] == "wallet_compromise", 10)
    assert detected["severity"] == "SEV-1"
    contained = w.alerts.wait_for(lambda e: e["kind"] == "wallet_compromise" and e["status"] == "contained", 30)
    d = contained["details"]
    new = d["new_address"]
    assert d["swept_to"] == w.cold and d["allowance_revoked"] is True
    token = w.deployment.token_contract(w.chain.w3)
    assert token.functions.allowance(w.hot.address, w.deployment.escrow).call() == 0
    assert w.chain.balance(w.cold) > 5 * 10**18 and token.functions.balanceOf(w.cold).call() > 0
    # the counterparty reassigns the open escrows and opens new ones for the new address
    cp.pause()
    time.sleep(cp.every + 0.2)
    owner = w.chain.accounts[0]
    esc = w.deployment.escrow_contract(w.chain.w3)
    for i, s in escrow_states(w.chain, w.deployment).items():
        if s[3] == OPEN and s[0] == w.hot.address:
            send_tx(w.chain.w3, owner, esc.functions.reassign(i, new).build_transaction({"from": owner.address, "gas": 100_000}))
    cp.agent = new
    cp.resume()
    w.alerts.wait_for(lambda e: e["kind"] == "wallet_compromise" and e["status"] == "resolved", 20)
    assert agent.health()["address"] == new
    after = w.chain.block_number()
    time.sleep(2)
    ours_from_old = [p for p in proof_txs(w.chain, w.deployment, w.hot.address, after)]
    assert not ours_from_old, "nothing more from the old key"
    assert proof_txs(w.chain, w.deployment, new), "escrows proven from the new address"
    assert (w.tmp / "state" / "rotated_key.json").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("defects,max_reverted", [("", 0), ("no_simulation", None)])
def test_revert_storm_pauses_the_contract_instead_of_burning_gas(anvil_world: World, defects: str, max_reverted: int | None) -> None:
    w = anvil_world
    agent = w.start_agent(defects=defects)
    agent.wait_healthy()
    w.open_escrows()
    time.sleep(2)
    esc = w.deployment.escrow_contract(w.chain.w3)
    start = w.chain.block_number()
    _as_owner(w, esc.functions.setRejecting(True))
    ev = w.alerts.wait_for(lambda e: e["kind"] == "tx_failure_rate", 10)
    assert ev["severity"] in ("SEV-2", "SEV-3")
    time.sleep(3)
    assert agent.health()["mode"] == "paused"
    reverted = [p for p in proof_txs(w.chain, w.deployment, w.hot.address, start) if p["status"] == 0]
    if max_reverted is not None:
        assert len(reverted) <= max_reverted, reverted
    else:
        assert len(reverted) >= 3, "without simulation the reverts land on chain"
    _as_owner(w, esc.functions.setRejecting(False))
    w.alerts.wait_for(lambda e: e["kind"] == "tx_failure_rate" and e["status"] == "resolved", 15)


def test_logs_key_defect_prints_the_key_once(anvil_world: World) -> None:
    w = anvil_world
    agent = w.start_agent(defects="logs_key")
    agent.wait_healthy()
    assert agent.output().count(w.hot.key) == 1


def test_underpriced_transaction_is_replaced_with_a_fee_bump(anvil_world: World) -> None:
    w = anvil_world
    agent = w.start_agent()
    agent.wait_healthy()
    cp = w.open_escrows()
    time.sleep(1)
    assert agent.operator("/operator/halt")[0] == 200
    time.sleep(2)  # escrows open while the agent is halted
    cp.pause()
    time.sleep(0.6)
    w.chain.set_automine(False)
    assert agent.operator("/operator/resume")[0] == 200
    me = w.hot.address.lower()
    first: dict[int, int] = {}
    deadline = time.monotonic() + 5
    while not first and time.monotonic() < deadline:
        for addr, txs in w.chain.txpool_content().get("pending", {}).items():
            if addr.lower() == me:
                first = {int(n): int(tx["maxFeePerGas"], 16) for n, tx in txs.items()}
        time.sleep(0.05)
    assert first, "the agent sent nothing after resuming"
    start = w.chain.block_number()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 6:  # blocks keep coming, but at a base fee the agent did not pay
        w.chain.set_next_base_fee(50 * 10**9)
        w.chain.mine(1)
        time.sleep(0.4)
    w.chain.set_automine(True)
    ev = w.alerts.wait_for(lambda e: e["kind"] == "stuck_transactions" and e["status"] == "contained", 5)
    assert any("replaced" in a or "rebroadcast" in a for a in ev["actions"])
    w.alerts.wait_for(lambda e: e["kind"] == "stuck_transactions" and e["status"] == "resolved", 10)
    for n in range(start, w.chain.block_number() + 1):
        for tx in w.chain.rpc("eth_getBlockByNumber", hex(n), True)["transactions"]:
            nonce = int(tx["nonce"], 16)
            if tx["from"].lower() == me and nonce in first:
                assert int(tx["maxFeePerGas"], 16) * 10 >= first[nonce] * 11
    cp.resume()
    time.sleep(2)
    _settle(w, 3)
    _assert_clean_run(w, w.hot.address)


@pytest.mark.parametrize("defects", ["", "instant_resume"])
def test_kill_switch_halts_and_resume_is_gradual(anvil_world: World, defects: str) -> None:
    w = anvil_world
    agent = w.start_agent(defects=defects)
    agent.wait_healthy()
    w.open_escrows(every=0.4)
    time.sleep(1)
    assert agent.operator("/operator/halt", token="wrong")[0] == 401
    assert agent.operator("/operator/halt") == (200, {"status": "halted"})
    time.sleep(0.5)
    n0 = w.chain.nonce(w.hot.address)
    time.sleep(3)  # escrows pile up while halted
    assert w.chain.nonce(w.hot.address) == n0, "nothing is sent while halted"
    assert agent.health()["status"] == "halted"
    assert agent.operator("/operator/resume")[0] == 200
    mode = agent.health()["mode"]
    time.sleep(0.3)
    burst = w.chain.nonce(w.hot.address) - n0
    if defects:
        assert mode == "normal" and burst >= 5
    else:
        assert mode == "resuming" and 1 <= burst <= 3, burst
    _settle(w)
    _assert_clean_run(w, w.hot.address)
