"""The report says what it did not measure: skipped and unknown checks, unknown funds, policy targets
of a compressed run, post-mortems of drills that ended before recovery, containment on the agent's word."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from drilldata import rpc_down, wallet_compromise

from harness.record.build import record_from_result
from harness.report.markdown import render_postmortem, render_readme
from harness.record.model import DrillRecord, Funds, InvariantRecord, RecordError, RunRecord, TimelineEntry, validate_summary


def _run(*drills: DrillRecord) -> RunRecord:
    return RunRecord(run_id="r1", started_at=drills[0].started_at, ended_at=drills[0].started_at + 60, drills=drills)


def _row(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(start))


def test_postmortem_completion_counts_only_drills_that_waited_for_recovery() -> None:
    recovered, stopped_early = record_from_result(wallet_compromise()), record_from_result(wallet_compromise(late=True))
    assert recovered.recovery_asserted and not stopped_early.recovery_asserted
    pm = _run(recovered, stopped_early).metrics.postmortems  # type: ignore[union-attr]
    assert (pm.required, pm.complete, pm.not_observed, pm.ratio) == (1, 1, 1, 1.0)
    row = _row(render_readme(_run(recovered, stopped_early)), "| Post-mortems complete")
    assert row == ("| Post-mortems complete (SEV-1/SEV-2 drills that waited for recovery) | "
                   "1 of 1 (100%); 1 not observed (drill ended before recovery) | all | ✅ |")


def test_a_drill_that_failed_waiting_for_recovery_counts_against_completion() -> None:
    failed = record_from_result(wallet_compromise(late=True)).with_(failure_category="no_recovery")
    assert failed.recovery_asserted
    pm = _run(failed).metrics.postmortems  # type: ignore[union-attr]
    assert (pm.required, pm.complete, pm.not_observed) == (1, 0, 0)
    assert "draft incomplete: an incident was not resolved" in render_postmortem(failed)
    assert _row(render_readme(_run(failed)), "| Post-mortems complete").endswith("| 0 of 1 (0%) | all | ❌ |")


def test_policy_targets_of_a_compressed_or_unrecorded_profile_are_not_evaluated() -> None:
    d = record_from_result(rpc_down())
    for profile, words in ((None, "`not recorded`"), ("drill", "`drill`")):
        text = render_readme(_run(d.with_(agent_profile=profile)))
        for metric in ("| Mean time to detect (MTTD) |", "| Mean time to recover (MTTR) |"):
            assert _row(text, metric).endswith(f"| not evaluated (compressed profile: {words}) |"), _row(text, metric)
        assert _row(text, "| Time to detect (MTTD) |").endswith(f"| < 5 min: not evaluated (compressed profile: {words}) |")
        assert "✅ met" not in text
    real = render_readme(_run(d.with_(agent_profile="production")))
    assert _row(real, "| Mean time to detect (MTTD) |").endswith("| < 5 min | ✅ met |")
    assert _row(real, "| Time to recover (MTTR) |").endswith("| < 30 min: ✅ met |")
    # one compressed drill is enough to withhold the run's verdict on the means
    mixed = render_readme(_run(d.with_(agent_profile="production"), d.with_(agent_profile="drill")))
    assert _row(mixed, "| Mean time to detect (MTTD) |").endswith("| not evaluated (compressed profile: `drill`) |")


def test_skipped_and_unknown_invariants_are_not_rendered_as_passes() -> None:
    d = record_from_result(wallet_compromise()).with_(invariants=(
        InvariantRecord(name="funds accounted for", verdict="passed", message="gas 0.001 ETH"),
        InvariantRecord(name="balances reconcile with the recorded history", verdict="skipped",
                        message="balance reconciliation skipped: 1 reorg(s) rewrote the recorded history"),
        InvariantRecord(name="escrow ledger", verdict="unknown", message="checker crashed: RuntimeError('x')"),
    ))
    readme = render_readme(_run(d))
    assert "| balances reconcile with the recorded history | ⏭️ skipped | balance reconciliation skipped:" in readme
    assert "| escrow ledger | ❓ unknown | checker crashed" in readme
    pm = render_postmortem(d)
    well = pm.split("#### What Went Well")[1].split("#### What Went Wrong")[0]
    wrong = pm.split("#### What Went Wrong")[1].split("#### Action Items")[0]
    assert "balances reconcile" not in well and "balances reconcile" not in wrong
    assert "Not checked in this drill: balances reconcile with the recorded history: balance reconciliation skipped" in pm
    assert "escrow ledger (unknown): checker crashed" in wrong
    validate_summary(json.loads(_run(d).dumps()))


def test_an_unknown_verdict_fails_the_verify_phase() -> None:
    raw = rpc_down()
    timeline = tuple({**e, "data": {**e["data"], "verdict": "unknown"}} if e["kind"] == "drill.verified" else e
                     for e in raw.timeline)
    d = record_from_result(replace(raw, timeline=timeline, status="failed", category="invariant_broken",
                                   message="x could not be checked (unknown): checker crashed"))
    (verify,) = [p for p in d.phases if p.name == "verify"]
    assert verify.outcome == "failed" and "could not be checked" in verify.message


def test_unknown_funds_are_unknown_in_the_record_and_the_report() -> None:
    raw = replace(wallet_compromise(), status="error", category="harness_error", funds={"at_risk_wei": 5 * 10**18},
                  funds_error="the funds read failed: RuntimeError: gone", gas_spent_wei=None,
                  message="funds unknown: the funds read failed: RuntimeError: gone")
    d = record_from_result(raw)
    assert d.funds == Funds(at_risk_wei=5 * 10**18, lost_wei=None, swept_wei=None, attacker_wei=None, gas_wei=None,
                            error="the funds read failed: RuntimeError: gone")
    document = json.loads(_run(d).dumps())
    validate_summary(document)
    assert RunRecord.from_json(document).drills[0].funds == d.funds
    readme = render_readme(_run(d))
    assert "**funds unknown**: the funds read failed: RuntimeError: gone" in readme
    assert "lost 0 ETH" not in readme and "0 ETH lost" not in readme


def test_the_schema_refuses_a_verdict_it_does_not_know() -> None:
    document = json.loads(_run(record_from_result(rpc_down())).dumps())
    document["drills"][0]["invariants"][0]["verdict"] = "green"
    with pytest.raises(RecordError, match=r"at /drills/0/invariants/0/verdict: 'green' is not one of"):
        validate_summary(document)


@pytest.mark.parametrize("data, words", [
    ({"evidence": ["funds swept to the cold wallet"], "claims": []}, "containment confirmed on ground truth (funds swept to the cold wallet)"),
    ({"evidence": [], "claims": ["agent reports mode paused"]},
     "containment as the agent reported it, not confirmed by the harness (agent reports mode paused)"),
])
def test_the_postmortem_says_what_containment_rested_on(data: dict, words: str) -> None:
    d = record_from_result(wallet_compromise())
    timeline = tuple(replace(e, data={**e.data, **data}) if e.kind == "drill.contained" else e for e in d.timeline)
    text = render_postmortem(d.with_(timeline=timeline))
    assert words in text and "containment confirmed on chain" not in text
    assert isinstance(timeline[0], TimelineEntry)
