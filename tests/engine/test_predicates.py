"""Predicates, the chain watcher and the invariants on a real chain, with the test acting as the agent.

No agent process here: the test signs with the drill's hot key itself, so each ground-truth fact
(a sweep, a revoked allowance, a replacement, a gap) is produced on purpose and then judged.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chainctx import Marker, chain_ctx
from eth_account import Account

from harness import accounts
from harness.checks import invariants as inv
from harness.checks.budgets import Budget
from harness.contracts import send_tx
from harness.drill.api import Drill
from harness.drill.context import DrillContext
from harness.drill.predicates import (
    allowance_revoked,
    no_nonce_gap,
    no_outgoing_from,
    pending_queue_drained,
    replaced_with_fee_bump,
    swept_to_cold_wallet,
)
from harness.drill.playbook_predicates import collided_nonce_settled, stuck_nonce_cancelled
from harness.errors import ContainmentFailed, DrillAborted, RpcError

GWEI = 10**9


@pytest.fixture
def ctx(drill_chain: Any, tmp_path: Path) -> Iterator[DrillContext]:
    with chain_ctx(drill_chain, tmp_path, hot_tokens=10 * 10**18) as c:
        yield c


def drill_for(ctx: DrillContext, **budget: Any) -> Drill:
    d = Drill(ctx, name="t", scenario="t", budget=Budget(**budget))
    d.inject(Marker())
    return d


def raw_send(ctx: DrillContext, tx: dict[str, Any]) -> str:
    """Sign with the hot key and send without waiting (automine may be off)."""
    tx = {"chainId": ctx.chain.chain_id, "gas": 60_000, **tx}
    signed = Account.sign_transaction(tx, ctx.hot_wallet.key)
    return ctx.chain.rpc("eth_sendRawTransaction", signed.raw_transaction.to_0x_hex())


def test_sweep_to_cold_wallet_is_seen_and_a_missing_sweep_is_explained(ctx: DrillContext) -> None:
    d = drill_for(ctx)
    with pytest.raises(ContainmentFailed) as err:
        d.expect_containment(swept_to_cold_wallet(), within=0.5)
    assert str(err.value) == "no sweep to the cold wallet within 0.5 s (cold wallet received 0 ETH; hot wallet holds 5 ETH)"
    w3 = ctx.chain.w3
    fee = 2 * w3.eth.get_block("latest")["baseFeePerGas"] + GWEI
    left = ctx.chain.balance(ctx.hot_address) - 21_000 * fee
    send_tx(w3, ctx.hot_wallet, {"to": ctx.cold_wallet, "value": left, "gas": 21_000, "maxFeePerGas": fee, "maxPriorityFeePerGas": GWEI})
    d.expect_containment(swept_to_cold_wallet(), within=5)
    assert ctx.timeline.events("drill.contained")
    ctx.watcher.poll_once()
    assert inv.money(ctx).swept_wei == left


def test_allowance_revoked(ctx: DrillContext) -> None:
    token = ctx.deployment.token_contract(ctx.chain.w3)
    hot = ctx.hot_wallet
    send_tx(ctx.chain.w3, hot, token.functions.approve(ctx.deployment.escrow, 123).build_transaction({"from": hot.address, "gas": 80_000}))
    d = drill_for(ctx)
    with pytest.raises(ContainmentFailed, match="allowance of the hot wallet to the escrow is 123"):
        d.expect_containment(allowance_revoked(), within=0.5)
    send_tx(ctx.chain.w3, hot, token.functions.approve(ctx.deployment.escrow, 0).build_transaction({"from": hot.address, "gas": 80_000}))
    d.expect_containment(allowance_revoked(), within=5)


def test_no_outgoing_needs_a_quiet_window(ctx: DrillContext) -> None:
    d = drill_for(ctx)
    send_tx(ctx.chain.w3, ctx.hot_wallet, {"to": ctx.cold_wallet, "value": 1, "gas": 21_000})
    with pytest.raises(ContainmentFailed, match=r"1 transaction\(s\) from .* since injection"):
        d.expect_containment(no_outgoing_from(quiet=30), within=0.5)
    d.expect_containment(no_outgoing_from(quiet=0.3), within=5)


def test_replacements_gaps_and_fee_bumps(ctx: DrillContext) -> None:
    chain = ctx.chain
    d = drill_for(ctx)
    chain.set_automine(False)
    n = chain.nonce(ctx.hot_address)
    base = chain.base_fee()
    cap, tip = 4 * base + GWEI, GWEI
    raw_send(ctx, {"to": ctx.cold_wallet, "value": 1, "nonce": n, "maxFeePerGas": cap, "maxPriorityFeePerGas": tip})
    raw_send(ctx, {"to": ctx.cold_wallet, "value": 1, "nonce": n + 3, "maxFeePerGas": cap, "maxPriorityFeePerGas": tip})
    with pytest.raises(ContainmentFailed) as err:
        d.expect_containment(pending_queue_drained(), no_nonce_gap(), within=0.5)
    assert "1 pending and 1 queued transaction(s) of the agent in the pool" in str(err.value)
    assert "queued behind a gap" in str(err.value)
    # A 5% bump: anvil takes it (it accepts any higher fee), a geth-like pool (pyevm) refuses it;
    # the harness's own rule catches it either way it could land.
    try:
        raw_send(ctx, {"to": ctx.cold_wallet, "value": 1, "nonce": n, "maxFeePerGas": cap * 105 // 100, "maxPriorityFeePerGas": tip * 105 // 100})
        low_accepted = True
    except RpcError as exc:
        assert "underpriced" in exc.message
        low_accepted = False
    if low_accepted:
        with pytest.raises(ContainmentFailed, match=r"cap x1.050 tip x1.050"):
            d.expect_containment(replaced_with_fee_bump(), within=1)
    raw_send(ctx, {"to": ctx.cold_wallet, "value": 1, "nonce": n, "maxFeePerGas": cap * 13 // 10, "maxPriorityFeePerGas": tip * 13 // 10})
    d.expect_containment(replaced_with_fee_bump(), within=3)
    verdict = inv.fee_bumps(ctx, inv.RunInfo(t_start=0, t0=d.t0))
    if low_accepted:
        assert verdict.verdict == inv.FAILED and "1 of 2 replacement(s) under +10%" in verdict.message
    else:
        assert verdict.verdict == inv.PASSED and "1 replacement(s)" in verdict.message
    # fill the gap and mine: the queue drains
    for k in (1, 2):
        raw_send(ctx, {"to": ctx.cold_wallet, "value": 1, "nonce": n + k, "maxFeePerGas": cap * 2, "maxPriorityFeePerGas": tip * 2})
    chain.set_automine(True)
    chain.mine(1)
    d.expect_containment(pending_queue_drained(), no_nonce_gap(), within=5)


def test_funds_to_unknown_address_break_invariants_but_attacker_takes_do_not(ctx: DrillContext) -> None:
    attacker = accounts.new_key().address
    ctx.attacker_addresses.add(attacker)
    send_tx(ctx.chain.w3, ctx.hot_wallet, {"to": attacker, "value": 10**18, "gas": 21_000})
    ctx.watcher.poll_once()
    run = inv.RunInfo(t_start=0, t0=None)
    assert inv.funds_accounted(ctx, run).verdict == inv.PASSED
    assert inv.money(ctx).lost_wei == 10**18
    stranger = accounts.new_key().address
    send_tx(ctx.chain.w3, ctx.hot_wallet, {"to": stranger, "value": 7, "gas": 21_000})
    ctx.watcher.poll_once()
    funds = inv.funds_accounted(ctx, run)
    assert funds.verdict == inv.FAILED and "7 wei left the agent's addresses to unknown destinations" in funds.message
    foreign = inv.no_foreign_tx(ctx, run)
    assert foreign.verdict == inv.FAILED and stranger in foreign.message


def test_a_crashing_checker_is_unknown_and_never_shows_the_key(ctx: DrillContext) -> None:
    def crash(c: DrillContext, run: inv.RunInfo) -> inv.InvariantResult:
        raise RuntimeError(f"boom {c.hot_wallet.key}")

    (res,) = inv.check_all(ctx, inv.RunInfo(t_start=0, t0=None), {"crash": crash})
    assert res.verdict == inv.UNKNOWN and "boom" in res.message
    assert ctx.hot_wallet.key[2:] not in res.message.lower()
    assert inv.worst([inv.PASSED, inv.UNKNOWN]) == inv.UNKNOWN
    assert inv.worst([inv.UNKNOWN, inv.FAILED, inv.PASSED]) == inv.FAILED


def test_value_at_risk_after_the_injection_fails_containment(ctx: DrillContext) -> None:
    attacker = accounts.new_key().address
    ctx.attacker_addresses.add(attacker)
    d = drill_for(ctx, value_at_risk_eth=0.5)
    send_tx(ctx.chain.w3, ctx.hot_wallet, {"to": attacker, "value": 10**18, "gas": 21_000})
    with pytest.raises(ContainmentFailed, match=r"1 ETH lost, over the value-at-risk limit of 0.5 ETH \(value_at_risk_eth\)"):
        d.expect_containment(swept_to_cold_wallet(), within=10)
    assert ctx.timeline.events("drill.value_at_risk")


def test_hard_time_limit_aborts_the_drill(ctx: DrillContext) -> None:
    d = drill_for(ctx, time_limit=0.3)
    with pytest.raises(DrillAborted, match="hard time limit of 0 s passed"):
        d.expect_containment(swept_to_cold_wallet(), within=10)


def test_a_quiet_window_dates_its_evidence_to_the_last_send(ctx: DrillContext) -> None:
    from harness import clock
    from harness.drill.predicates import Probe

    probe = Probe(ctx=ctx, since=clock.now())
    quiet = no_outgoing_from(quiet=0.3)
    send_tx(ctx.chain.w3, ctx.hot_wallet, {"to": ctx.cold_wallet, "value": 1, "gas": 21_000})
    ctx.watcher.poll_once()
    sent_at = max(tx.t for tx in ctx.watcher.agent_txs(probe.since))
    first = quiet(probe)
    assert not first.ok, first.seen
    assert first.since == sent_at
    time.sleep(0.4)
    held = quiet(probe)
    assert held.ok and held.since == sent_at, held


def test_a_stuck_nonce_counts_as_cancelled_once_a_self_transfer_takes_it_and_the_queue_behind_is_mined(ctx: DrillContext) -> None:
    chain = ctx.chain
    d = drill_for(ctx)
    chain.set_automine(False)
    n = chain.nonce(ctx.hot_address)
    cap, tip = 4 * chain.base_fee() + GWEI, GWEI
    for k in (0, 1):  # the stuck transaction and one behind it
        raw_send(ctx, {"to": ctx.cold_wallet, "value": 1, "nonce": n + k, "maxFeePerGas": cap, "maxPriorityFeePerGas": tip})
    ctx.watcher.poll_once()
    with pytest.raises(ContainmentFailed) as err:
        d.expect_containment(stuck_nonce_cancelled(), within=0.5)
    assert "no stuck transaction cancelled (the duty of contract 1.1, section 2, 'The fee cap'" in str(err.value)
    assert f"0 zero-value self-transfer(s), 0 at a nonce where another transaction had waited; still not mined: nonce {n}, nonce {n + 1}" in str(err.value)
    # the cancel: same nonce, zero value, to itself, higher fees; then a block mines it and the queue behind
    raw_send(ctx, {"to": ctx.hot_address, "value": 0, "gas": 21_000, "nonce": n, "maxFeePerGas": cap * 13 // 10,
                   "maxPriorityFeePerGas": tip * 13 // 10})
    ctx.watcher.poll_once()
    chain.mine(1)
    d.expect_containment(stuck_nonce_cancelled(), within=5)
    seen = stuck_nonce_cancelled()(d._probe())
    assert seen.ok and f"1 at a nonce where another transaction had waited (first: nonce {n}); still not mined: nothing" in seen.seen


def test_a_collided_nonce_is_settled_by_the_agents_next_transaction_past_it(ctx: DrillContext) -> None:
    from types import SimpleNamespace

    chain = ctx.chain
    d = drill_for(ctx)
    n = chain.nonce(ctx.hot_address)
    fee = 2 * chain.base_fee() + GWEI
    theirs = raw_send(ctx, {"to": ctx.hot_address, "value": 0, "gas": 21_000, "nonce": n, "maxFeePerGas": fee, "maxPriorityFeePerGas": GWEI})
    ctx.harness_txs[theirs.lower()] = "nonce_collision"
    collision = SimpleNamespace(taken=[(n, theirs)])
    with pytest.raises(ContainmentFailed) as err:
        d.expect_containment(collided_nonce_settled(collision), within=0.5)
    assert f"nothing settled; not settled: nonce {n}" in str(err.value)
    raw_send(ctx, {"to": ctx.cold_wallet, "value": 1, "nonce": n + 1, "maxFeePerGas": fee, "maxPriorityFeePerGas": GWEI})
    d.expect_containment(collided_nonce_settled(collision), within=5)
    seen = collided_nonce_settled(collision)(d._probe())
    assert seen.ok and f"nonce {n}: taken, the agent's next transaction mined at nonce {n + 1}" in seen.seen


def test_every_predicate_says_whether_it_is_evidence_or_a_claim() -> None:
    import inspect

    from harness.drill import playbook_predicates, predicates

    claims = {"in_mode", "healthy", "using_endpoint", "not_halted", "new_address_announced", "attempts_reported",
              "config_intact"}
    seen = set()
    for module in (predicates, playbook_predicates):
        for name, cls in vars(module).items():
            if not (inspect.isclass(cls) and issubclass(cls, predicates.Predicate)) or cls is predicates.Predicate:
                continue
            if cls.__module__ != module.__name__:
                continue
            seen.add(name)
            assert "evidence" in vars(cls), f"{name} does not declare evidence = True/False"
            assert cls.evidence is (name not in claims), f"{name}: evidence={cls.evidence}, expected {name not in claims}"
    assert claims <= seen


def test_a_claimed_pause_with_sends_on_chain_is_not_silence(ctx: DrillContext) -> None:
    from types import SimpleNamespace

    from harness import clock
    from harness.drill.predicates import Probe, silent_while

    ctx.health = SimpleNamespace(last={"status": "degraded", "mode": "safe"})  # type: ignore[assignment]
    probe = Probe(ctx=ctx, since=clock.now())
    pred = silent_while("safe", quiet=0.3)
    assert pred.evidence
    first = pred(probe)
    assert not first.ok and "mode='safe'" in first.seen  # claims safe, but not yet quiet for 0.3 s
    time.sleep(0.4)
    assert pred(probe).ok  # quiet for 0.3 s since the claim
    send_tx(ctx.chain.w3, ctx.hot_wallet, {"to": ctx.cold_wallet, "value": 1, "gas": 21_000})
    ctx.watcher.poll_once()
    time.sleep(0.4)
    sent = pred(probe)
    assert not sent.ok and "1 sent while it claimed safe" in sent.seen, sent.seen
    # a fresh check: the claim is first seen after the send, so the window starts at the claim
    fresh = silent_while("safe", quiet=0.3)
    assert not fresh(probe).ok
    time.sleep(0.4)
    after = fresh(probe)
    assert after.ok and after.since is not None and after.since > max(tx.t for tx in ctx.watcher.agent_txs(probe.since)), after
    ctx.health = SimpleNamespace(last={"status": "ok", "mode": "normal"})  # type: ignore[assignment]
    assert not silent_while("safe", quiet=0.3)(probe).ok


def test_a_send_held_in_the_pool_of_a_stalled_chain_breaks_a_claimed_pause(ctx: DrillContext) -> None:
    """No block is mined during a stall: silence must be read from the pool as well as the chain."""
    from types import SimpleNamespace

    from harness import clock
    from harness.drill.predicates import Probe, silent_while

    ctx.health = SimpleNamespace(last={"status": "degraded", "mode": "paused"})  # type: ignore[assignment]
    probe = Probe(ctx=ctx, since=clock.now())
    pred = silent_while("paused", quiet=0.3)
    assert not pred(probe).ok
    ctx.chain.set_automine(False)
    base = ctx.chain.base_fee()
    raw_send(ctx, {"to": ctx.cold_wallet, "value": 1, "nonce": ctx.chain.nonce(ctx.hot_address),
                   "maxFeePerGas": 4 * base + GWEI, "maxPriorityFeePerGas": GWEI})
    ctx.watcher.poll_once()
    assert not ctx.watcher.agent_txs(probe.since)  # nothing mined
    time.sleep(0.4)
    held = pred(probe)
    assert not held.ok and "1 sent while it claimed paused" in held.seen, held.seen


def test_sends_through_an_endpoint_need_a_baseline(ctx: DrillContext) -> None:
    from harness import clock
    from harness.drill.predicates import Probe, ProxyCounts, sends_on, traffic_on

    ctx.proxy_api_url = "http://127.0.0.1:9"  # a proxy whose counters cannot be read
    ctx.endpoints["backup-1"] = "rpc-backup-1"
    no_baseline = Probe(ctx=ctx, since=clock.now(), proxy_at_since=None)
    for pred in (sends_on("backup-1"), traffic_on("backup-1")):
        seen = pred(no_baseline)
        assert not seen.ok and "no baseline" in seen.seen, seen.seen
    with_baseline = Probe(ctx=ctx, since=clock.now(), proxy_at_since=ProxyCounts({}, {}))
    seen = sends_on("backup-1")(with_baseline)
    assert not seen.ok and "cannot be read" in seen.seen


def test_backlog_at_least_counts_open_escrows_not_yet_due(ctx: DrillContext) -> None:
    from harness import clock
    from harness.drill.predicates import Probe, backlog_at_least

    probe = Probe(ctx=ctx, since=clock.now())
    assert not backlog_at_least(1)(probe).ok
    escrow = ctx.deployment.escrow_contract(ctx.chain.w3)
    cp = ctx.counterparty
    deadline = ctx.chain.w3.eth.get_block("latest")["timestamp"] + 600
    for _ in range(2):
        send_tx(ctx.chain.w3, cp, escrow.functions.open(ctx.hot_address, deadline).build_transaction(
            {"from": cp.address, "value": 10**15, "gas": 200_000}))
    ctx.watcher.poll_once()
    assert backlog_at_least(2)(probe).ok
    short = backlog_at_least(3)(probe)
    assert not short.ok and short.seen == "2 escrow(s) open and not yet due"


def _open(ctx: DrillContext, seconds: int) -> int:
    escrow = ctx.deployment.escrow_contract(ctx.chain.w3)
    deadline = ctx.chain.w3.eth.get_block("latest")["timestamp"] + seconds
    cp = ctx.counterparty
    send_tx(ctx.chain.w3, cp, escrow.functions.open(ctx.hot_address, deadline).build_transaction(
        {"from": cp.address, "value": 10**15, "gas": 200_000}))
    return int(escrow.functions.escrowCount().call())


def _prove(ctx: DrillContext, esc_id: int, nonce: int) -> str:
    from eth_utils import keccak

    escrow = ctx.deployment.escrow_contract(ctx.chain.w3)
    proof = keccak(esc_id.to_bytes(32, "big") + bytes.fromhex(ctx.hot_address[2:]))
    data = escrow.functions.submitProof(esc_id, proof)._encode_transaction_data()
    base = ctx.chain.base_fee()
    return raw_send(ctx, {"to": ctx.deployment.escrow, "data": data, "nonce": nonce, "gas": 200_000,
                          "maxFeePerGas": 4 * base + GWEI, "maxPriorityFeePerGas": GWEI})


def test_one_proof_at_a_time_fails_on_a_shared_block_and_on_a_less_urgent_proof_first(ctx: DrillContext) -> None:
    from harness import clock
    from harness.drill.predicates import Probe, one_proof_at_a_time

    token, hot = ctx.deployment.token_contract(ctx.chain.w3), ctx.hot_wallet
    send_tx(ctx.chain.w3, hot, token.functions.approve(ctx.deployment.escrow, 10**20).build_transaction({"from": hot.address, "gas": 80_000}))
    probe = Probe(ctx=ctx, since=clock.now())
    ctx.timeline.record("alert", "alerts", kind="balance_low", severity="SEV-2", status="detected", incident_id="INC-1")
    late, urgent, other = _open(ctx, 600), _open(ctx, 300), _open(ctx, 500)
    time.sleep(1.1)  # the urgent escrow has waited past the grace
    ctx.watcher.poll_once()
    ctx.chain.set_automine(False)
    n = ctx.chain.nonce(ctx.hot_address)
    _prove(ctx, late, n)  # the least urgent first
    _prove(ctx, urgent, n + 1)  # and a second proof in the same block
    ctx.chain.mine(1)
    _prove(ctx, other, n + 2)
    ctx.chain.mine(1)
    ctx.watcher.poll_once()
    seen = one_proof_at_a_time(count=3)(probe)
    assert not seen.ok
    assert [(tx.arg0, tx.status) for tx in ctx.watcher.agent_txs(probe.since) if tx.method == "submitProof"] == [
        (late, 1), (urgent, 1), (other, 1)]
    assert "3 of 3 proofs since the agent's first alert" in seen.seen
    assert "1 block(s) with several of its proofs" in seen.seen
    assert f"proof(s) sent before a more urgent one: escrow {late} " in seen.seen, seen.seen
    assert not one_proof_at_a_time(count=4)(probe).ok


def test_an_escrow_passed_over_for_a_less_urgent_one_counts_as_missed_before_its_deadline(ctx: DrillContext) -> None:
    token, hot = ctx.deployment.token_contract(ctx.chain.w3), ctx.hot_wallet
    send_tx(ctx.chain.w3, hot, token.functions.approve(ctx.deployment.escrow, 10**20).build_transaction({"from": hot.address, "gas": 80_000}))
    urgent, later = _open(ctx, 300), _open(ctx, 600)
    run = inv.RunInfo(t_start=0.0, t0=None, deadline_misses_allowed=0)
    ctx.watcher.poll_once()
    assert inv.deadlines_within_allowance(ctx, run).verdict == inv.PASSED  # nothing proven yet: nothing passed over
    time.sleep(inv.LEFT_BEHIND_S + 0.1)
    _prove(ctx, later, ctx.chain.nonce(ctx.hot_address))
    ctx.watcher.poll_once()
    r = inv.deadlines_within_allowance(ctx, run)
    assert r.verdict == inv.FAILED
    assert r.message.startswith("1 missed (0 expired, 0 overdue, 1 left behind), allowance 0")
    assert f"left behind: escrow {urgent} (a later deadline was proven first)" in r.message
    assert inv.deadlines_within_allowance(ctx, inv.RunInfo(t_start=0.0, t0=None, deadline_misses_allowed=1)).verdict == inv.PASSED
