"""summary.json: every record the report builds validates against the shipped JSON Schema."""

from __future__ import annotations

import json

import jsonschema
import pytest
from drilldata import rpc_down, wallet_compromise

from harness.record.build import record_from_result
from harness.record.model import (
    DrillRecord, RecordError, RunRecord, load_schema, validate_summary,
)


def _run(*results) -> RunRecord:
    drills = tuple(record_from_result(r) for r in results)
    return RunRecord(run_id="20261128-070000-abcd", started_at=drills[0].started_at - 5, ended_at=drills[-1].started_at + 60,
                     chain_backend="anvil", agent_command=("python", "-m", "reference_agent"),
                     versions={"python": "3.11"}, budget_scale=1.0, drills=drills)


def test_the_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(load_schema())


def test_records_of_passed_failed_and_missed_drills_validate_and_round_trip() -> None:
    run = _run(wallet_compromise(), wallet_compromise(late=True, scenario="test_late"), rpc_down(missed=True))
    document = json.loads(run.dumps())
    validate_summary(document)
    assert RunRecord.from_json(document) == run


def test_the_adapter_carries_the_engine_measurements() -> None:
    passed = record_from_result(wallet_compromise())
    assert passed.status == "passed" and passed.failure_category is None
    assert (passed.mttd_s, passed.contain_s, passed.mttr_s) == (1.2, 4.0, 9.0)
    assert passed.budgets.detect_s == 5.0 and passed.budgets.recover_s == 30.0
    assert passed.faults[0].type == "key_leak" and passed.faults[0].params == {"drain_every": 0.5}
    assert passed.faults[0].injected_rel_s == 0.0 and passed.faults[0].healed_rel_s == 5.0
    inc = passed.incidents[0]
    assert (inc.incident_id, inc.kind, inc.severity) == ("INC-2026-11-28-001", "wallet_compromise", "SEV-1")
    assert [e.status for e in inc.events] == ["detected", "contained", "resolved"]
    assert inc.events[0].rel_s == 1.2 and abs(inc.events[0].received_at - (passed.t0 + 1.2)) < 0.01
    assert passed.funds.at_risk_wei == 5 * 10**18 and passed.funds.attacker_wei == 10**18
    assert passed.escrows.reassigned == 1 and passed.escrows.missed_deadlines == 1
    assert [p.name for p in passed.phases][:3] == ["set up", "steady state", "inject key_leak"]

    late = record_from_result(wallet_compromise(late=True))
    assert (late.status, late.failure_category, late.contain_s) == ("failed", "late_containment", None)
    assert late.budgets.contain_s == 10.0 and late.budgets.recover_s is None  # recovery was never asserted
    assert [p for p in late.phases if p.name == "contain"][0].outcome == "failed"


def test_run_metrics_follow_the_drills() -> None:
    m = _run(wallet_compromise(), rpc_down(), rpc_down(missed=True)).metrics
    assert (m.drills, m.passed, m.failed) == (3, 2, 1)
    assert m.mean_mttd_s == pytest.approx((1.2 + 1.5) / 2)
    assert m.incidents_by_severity == {"SEV-1": 1, "SEV-2": 0, "SEV-3": 1, "SEV-4": 0}
    assert (m.postmortems.required, m.postmortems.complete, m.postmortems.ratio) == (1, 1, 1.0)


@pytest.mark.parametrize("path, value, complaint", [
    (("drills", 0, "status"), "ok", "'ok' is not one of"),
    (("drills", 0, "failure_category"), "slow", "'slow' is not one of"),
    (("drills", 0, "funds", "lost_wei"), -1, "less than the minimum"),
    (("drills", 0, "incidents", 0, "severity"), "SEV-9", "is not one of"),
    (("metrics", "incidents_by_severity", "SEV-1"), "one", "is not of type 'integer'"),
])
def test_a_summary_that_breaks_the_schema_is_refused_with_the_place(path, value, complaint) -> None:
    document = json.loads(_run(wallet_compromise()).dumps())
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(RecordError) as info:
        validate_summary(document)
    assert "/" + "/".join(map(str, path)) in str(info.value) and complaint in str(info.value)


def test_a_passed_drill_cannot_carry_a_failure_category() -> None:
    with pytest.raises(RecordError, match="passed but has failure_category"):
        DrillRecord(name="t.py::test_x", status="passed", failure_category="regression", started_at=1.0)
    document = json.loads(_run(wallet_compromise()).dumps())
    document["drills"][0]["failure_category"] = "missed_detection"
    with pytest.raises(RecordError):
        validate_summary(document)
