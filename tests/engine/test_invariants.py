"""Failures that must fail and checks that must say what they did not check, on a real chain.

No agent process: the test holds the drill's hot key and the drill is driven phase by phase. Each
test breaks one expectation (a checker that cannot judge, a reconciliation that cannot be made, a
funds read that fails, a compressed profile) and reads the verdict and the words the drill records.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chainctx import Marker, chain_ctx

from harness.checks import invariants as inv
from harness.checks.budgets import Budget
from harness.drill.api import Drill
from harness.drill.context import DrillContext
from harness.errors import ContainmentFailed, InvariantBroken
from harness.record.build import record_from_result
from harness.report.markdown import render_postmortem, render_readme
from harness.record.model import RunRecord, validate_summary


@pytest.fixture
def ctx(drill_chain: Any, tmp_path: Path) -> Iterator[DrillContext]:
    with chain_ctx(drill_chain, tmp_path) as c:
        yield c


def drill_for(ctx: DrillContext, monkeypatch: pytest.MonkeyPatch) -> Drill:
    """A drill past its injection whose monitoring probe is answered (no agent here to answer it)."""
    d = Drill(ctx, name="scenarios/test_x.py::test_x", scenario="test_x", budget=Budget())
    d.inject(Marker())
    monkeypatch.delitem(inv.INVARIANTS, "monitoring_alive")  # judged by its own tests, with an agent
    monkeypatch.setattr(d, "probe_monitoring", lambda timeout=5.0: True)
    return d


def _verdicts(results: Any) -> dict[str, str]:
    return {r["name"] if isinstance(r, dict) else r.name: r["verdict"] if isinstance(r, dict) else r.verdict for r in results}


# -- 1. unknown fails the drill -------------------------------------------------------------------------
def test_an_invariant_that_could_not_be_checked_fails_the_drill_with_the_checkers_error(
        ctx: DrillContext, monkeypatch: pytest.MonkeyPatch) -> None:
    def lost_track(c: DrillContext, run: inv.RunInfo) -> inv.InvariantResult:
        raise RuntimeError("the watcher lost block 12")

    monkeypatch.setitem(inv.INVARIANTS, "escrow_ledger", lost_track)
    d = drill_for(ctx, monkeypatch)
    with pytest.raises(InvariantBroken) as err:
        d.verify()
    assert str(err.value) == ("escrow_ledger could not be checked (unknown): "
                              "checker crashed: RuntimeError('the watcher lost block 12')")
    (verified,) = ctx.timeline.events("drill.verified")
    assert verified.data["verdict"] == "unknown" and verified.data["unknown"] == ["escrow_ledger"]
    result = d.result(err.value)
    assert (result.status, result.category) == ("failed", "invariant_broken")
    assert "escrow_ledger could not be checked (unknown)" in (result.message or "")
    assert _verdicts(result.invariants)["escrow_ledger"] == "unknown"  # recorded as unknown, not as failed
    assert record_from_result(result).phases[-1].outcome == "failed"


def test_the_invariants_of_a_clean_drill_pass_verify(ctx: DrillContext, monkeypatch: pytest.MonkeyPatch) -> None:
    d = drill_for(ctx, monkeypatch)
    results = d.verify()
    assert {r.verdict for r in results} == {inv.PASSED}, results


# -- 2. a skipped check says skipped ---------------------------------------------------------------------
def test_balance_reconciliation_after_a_balance_fault_is_skipped_and_says_why(
        ctx: DrillContext, monkeypatch: pytest.MonkeyPatch) -> None:
    d = drill_for(ctx, monkeypatch)
    ctx.timeline.record("fault.inject", "fault:drain", family="balance")
    ctx.chain.set_balance(ctx.hot_address, 10**15)  # what a balance fault does: no transaction to see
    ctx.chain.mine(1)
    ctx.watcher.poll_once()
    results = d.verify()  # skipped does not fail the drill ...
    by_name = {r.name: r for r in results}
    rec = by_name["balances reconcile with the recorded history"]
    assert rec.verdict == inv.SKIPPED  # ... and is not a pass either
    assert rec.message == ("balance reconciliation skipped: a balance fault changes balances or blocks "
                           "outside any transaction the watcher sees")
    assert by_name["funds accounted for"].verdict == inv.PASSED  # the part that was checked still is
    assert ctx.timeline.events("drill.verified")[-1].data["verdict"] == "skipped"
    record = record_from_result(d.result(None))
    assert record.status == "passed"
    assert [i.verdict for i in record.invariants if i.name.startswith("balances")] == ["skipped"]
    validate_summary(RunRecord(run_id="r", started_at=record.started_at, ended_at=record.started_at + 1,
                               drills=(record,)).to_json())
    readme = render_readme(RunRecord(run_id="r", started_at=record.started_at, ended_at=record.started_at + 1, drills=(record,)))
    assert "| balances reconcile with the recorded history | ⏭️ skipped | balance reconciliation skipped:" in readme


def test_balance_reconciliation_after_a_reorg_is_skipped(ctx: DrillContext) -> None:
    ctx.timeline.record("chain.reorg", "chainwatch", depth=2)
    res = inv.balances_reconcile(ctx, inv.RunInfo(t_start=0, t0=None))
    assert res.verdict == inv.SKIPPED and res.message == "balance reconciliation skipped: 1 reorg(s) rewrote the recorded history"


def test_a_balance_the_history_cannot_explain_fails_reconciliation(ctx: DrillContext, monkeypatch: pytest.MonkeyPatch) -> None:
    d = drill_for(ctx, monkeypatch)
    ctx.chain.set_balance(ctx.hot_address, 10**15)  # no fault says so: the history must explain it, and cannot
    ctx.chain.mine(1)  # balances are read at the head
    ctx.watcher.poll_once()
    with pytest.raises(InvariantBroken) as err:
        d.verify()
    assert str(err.value).startswith(f"balances reconcile with the recorded history: {ctx.hot_address} holds 0.001 ETH "
                                     "but its recorded history says 5 ETH"), str(err.value)


def test_verdicts_compose_worst_last() -> None:
    assert inv.worst([inv.PASSED, inv.SKIPPED]) == inv.SKIPPED
    assert inv.worst([inv.SKIPPED, inv.UNKNOWN]) == inv.UNKNOWN
    assert inv.worst([inv.UNKNOWN, inv.FAILED, inv.SKIPPED]) == inv.FAILED
    with pytest.raises(ValueError, match="verdict must be one of"):
        inv.InvariantResult("x", "green", "")


# -- 3. a failed funds read fails the drill ----------------------------------------------------------------
def test_a_failed_funds_read_makes_a_passing_drill_a_harness_error_with_funds_unknown(
        ctx: DrillContext, monkeypatch: pytest.MonkeyPatch) -> None:
    d = drill_for(ctx, monkeypatch)
    d.verify()

    def broken(c: DrillContext) -> inv.Money:
        raise RuntimeError(f"watcher state torn {c.hot_wallet.key}")

    monkeypatch.setattr(inv, "money", broken)
    result = d.result(None)
    assert (result.status, result.category) == ("error", "harness_error")
    assert result.message is not None and result.message.startswith("funds unknown: the funds read failed: RuntimeError: watcher state torn")
    assert ctx.hot_wallet.key[2:].lower() not in result.message.lower()
    assert set(result.funds) == {"at_risk_wei"} and result.funds_error and result.gas_spent_wei is None  # unknown, not 0
    record = record_from_result(result)
    assert not record.funds.known and record.funds.lost_wei is None
    text = render_postmortem(record.with_(incidents=()))
    assert "funds unknown (the funds read failed: RuntimeError" in text and "0 ETH lost" not in text
    validate_summary(RunRecord(run_id="r", started_at=record.started_at, ended_at=record.started_at + 1,
                               drills=(record,)).to_json())


def test_a_failed_funds_read_keeps_an_earlier_failure_and_adds_to_its_message(
        ctx: DrillContext, monkeypatch: pytest.MonkeyPatch) -> None:
    d = drill_for(ctx, monkeypatch)
    monkeypatch.setattr(inv, "money", lambda c: (_ for _ in ()).throw(RuntimeError("gone")))
    result = d.result(ContainmentFailed("no sweep to the cold wallet within 1.0 s"))
    assert (result.status, result.category) == ("failed", "late_containment")
    assert result.message == "no sweep to the cold wallet within 1.0 s; funds unknown: the funds read failed: RuntimeError: gone"


# -- 4. policy targets are judged only in real time ------------------------------------------------------
@pytest.mark.parametrize("profile, shown", [
    ("drill", "not evaluated (compressed profile: `drill`)"),
    ("production", "✅ met"),
])
def test_the_agent_profile_is_recorded_and_decides_whether_policy_targets_are_evaluated(
        ctx: DrillContext, monkeypatch: pytest.MonkeyPatch, profile: str, shown: str) -> None:
    ctx.agent_env["AGENT_PROFILE"] = profile
    d = drill_for(ctx, monkeypatch)
    ctx.timeline.record("alert", "alert-sink", incident_id="INC-1", kind="rpc_failure", severity="SEV-3",
                        status="detected", summary="s", actions=[], details={})
    d.incident = "rpc_failure"
    d.verify()
    result = d.result(None)
    assert result.agent_profile == profile and result.real_time is (profile == "production")
    record = record_from_result(result)
    readme = render_readme(RunRecord(run_id="r", started_at=record.started_at, ended_at=record.started_at + 1, drills=(record,)))
    mttd_row = next(line for line in readme.splitlines() if line.startswith("| Mean time to detect (MTTD) |"))
    assert mttd_row.endswith(f"| < 5 min | {shown} |"), mttd_row
    assert f"| Agent profile | `{profile}` |" in readme


def test_fee_bumps_of_stuck_transactions_are_not_a_resumption_burst() -> None:
    # gradual_resumption on a stand-in of the watcher's records: six transactions sent over 6 s, stuck, then
    # all bumped within half a second after a 3 s pause; six new transactions that way fail it
    from types import SimpleNamespace

    from harness.observe.chainwatch import Replacement, Send, TxRecord

    agent = "0xAgent"

    def tx(h: str, nonce: int, sent: float) -> TxRecord:
        return TxRecord(hash=h, sender=agent, nonce=nonce, to=None, value=0, gas_used=21_000, effective_gas_price=1,
                        status=1, selector=None, method=None, arg0=None, arg_address=None, arg_amount=None,
                        block=1, t=sent + 5, sent_t=sent)

    def ctx(replaced: bool) -> SimpleNamespace:
        mined = [tx(f"0xnew{n}", n, 10.0 + n * 0.05) for n in range(6)]  # sent 3 s after the last one before
        sends = [Send(hash=f"0xold{n}", sender=agent, to="", t=1.0 + n, mined=False) for n in range(6)]
        reps = [Replacement(sender=agent, nonce=n, old_hash=f"0xold{n}", new_hash=f"0xnew{n}", cap_ratio=1.2,
                            tip_ratio=1.2, t=10.0 + n * 0.05) for n in range(6)] if replaced else []
        watcher = SimpleNamespace(agent_txs=lambda: mined, sends=lambda since=None: sends if replaced else [],
                                  replacements=reps, reorged=set())
        return SimpleNamespace(watcher=watcher, harness_txs=set())

    run = inv.RunInfo(t_start=0.0, t0=7.0)
    assert inv.gradual_resumption(ctx(replaced=True), run).verdict == inv.PASSED  # type: ignore[arg-type]
    new_work = inv.gradual_resumption(ctx(replaced=False), run)  # type: ignore[arg-type]
    assert new_work.verdict == inv.FAILED and "6 transactions within 1 s after a 3.0 s pause" in new_work.message
