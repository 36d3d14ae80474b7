"""history.jsonl and the regression gate: a slower drill fails with the numbers that prove it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from drilldata import rpc_down

from harness.errors import UsageError
from harness.report import history
from harness.record.build import record_from_result
from harness.record.model import RunRecord
from harness.report.secrets import SecretRegistry

NAME = "scenarios/test_network.py::test_primary_rpc_down_fails_over"


def _run(run_id: str, mttd: float) -> RunRecord:
    d = record_from_result(rpc_down(mttd=mttd))
    return RunRecord(run_id=run_id, started_at=d.started_at, ended_at=d.started_at + 20, chain_backend="anvil", drills=(d,))


def test_every_run_appends_one_line_per_drill(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    for i, mttd in enumerate((1.0, 1.2)):
        history.append_run(path, _run(f"run-{i}", mttd), SecretRegistry())
    entries = history.load_history(path)
    assert [(e["run_id"], e["name"], e["mttd_s"]) for e in entries] == [("run-0", NAME, 1.0), ("run-1", NAME, 1.2)]
    assert entries[0]["budgets"] == {"detect_s": 5.0, "contain_s": 10.0, "recover_s": 30.0}


def test_the_gate_fails_a_drill_slower_than_its_median_by_more_than_the_factor(tmp_path: Path) -> None:
    past = [history.history_entry(_run(f"run-{i}", m), _run(f"run-{i}", m).drills[0]) for i, m in enumerate((1.0, 1.5, 2.0))]
    slow = record_from_result(rpc_down(mttd=3.5))
    verdict = history.check_regression(slow, past, factor=1.5, min_history=3)
    assert verdict.regressed
    assert verdict.median_mttd_s == 1.5 and verdict.history_runs == 3
    assert ("MTTD 3.50 s is 2.33x the median 1.50 s of the last 3 passing run(s) (limit 1.5x = 2.25 s)"
            in verdict.message), verdict.message
    # MTTR: 7.5 + 3.5 = 11 s against a median of 7.5 + 1.5 = 9 s is within 1.5x
    assert "MTTR" not in verdict.message


def test_the_gate_passes_within_the_factor_and_without_enough_history() -> None:
    past = [history.history_entry(_run(f"r{i}", 1.5), _run(f"r{i}", 1.5).drills[0]) for i in range(3)]
    ok = history.check_regression(record_from_result(rpc_down(mttd=2.2)), past, factor=1.5, min_history=3)
    assert not ok.regressed and ok.message.startswith("within history: MTTD 2.20 s is 1.47x")
    short = history.check_regression(record_from_result(rpc_down(mttd=9.0)), past[:2], factor=1.5, min_history=3)
    assert not short.regressed
    assert short.message.startswith("2 past run(s), need 3 passing: not gated (MTTD 9.00 s: 2 past value(s), "
                                    "need 3 to compare; MTTR "), short.message


def test_without_history_the_gate_says_it_did_not_gate() -> None:
    verdict = history.check_regression(record_from_result(rpc_down(mttd=9.0)), [], factor=1.5, min_history=3)
    assert not verdict.regressed and verdict.history_runs == 0
    assert verdict.message == ("no history: not gated (no past passing run of this drill on this chain backend; "
                               "the gate compares from 3 on, so keep history.jsonl between runs)")


def test_a_value_missing_from_this_run_is_said_not_gated() -> None:
    past = [history.history_entry(_run(f"r{i}", 1.5), _run(f"r{i}", 1.5).drills[0]) for i in range(3)]
    no_mttd = replace(record_from_result(rpc_down(mttd=1.5)), mttd_s=None)
    verdict = history.check_regression(no_mttd, past, factor=1.5, min_history=3)
    assert not verdict.regressed
    assert verdict.message.startswith("within history: MTTR "), verdict.message
    assert verdict.message.endswith("; MTTD: none in this run (not gated)"), verdict.message
    neither = replace(no_mttd, mttr_s=None)
    assert history.check_regression(neither, past, factor=1.5, min_history=3).message == (
        "not gated: no MTTD or MTTR in this run (nothing to compare)")


def test_only_passing_runs_on_the_same_backend_count() -> None:
    entries = [
        {"name": NAME, "status": "passed", "chain_backend": "anvil", "mttd_s": 1.0, "run_id": "a"},
        {"name": NAME, "status": "failed", "chain_backend": "anvil", "mttd_s": 50.0, "run_id": "b"},
        {"name": NAME, "status": "passed", "chain_backend": "pyevm", "mttd_s": 9.0, "run_id": "c"},
        {"name": "other", "status": "passed", "chain_backend": "anvil", "mttd_s": 9.0, "run_id": "d"},
    ]
    assert [e["run_id"] for e in history.past_entries(entries, NAME, "anvil")] == ["a"]


def test_a_broken_history_line_is_reported_with_its_number(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text(json.dumps({"name": NAME, "status": "passed"}) + "\n{not json\n")
    with pytest.raises(UsageError, match=r"history.jsonl:2 is not a JSON line .*fix or delete that line"):
        history.load_history(path)


def test_the_terminal_summary_says_which_drills_were_not_gated(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from harness.report.pytest_plugin import REPORT, pytest_terminal_summary

    fresh = record_from_result(rpc_down(mttd=2.0))
    fresh = replace(fresh, regression=history.check_regression(fresh, [], factor=1.5, min_history=3))
    quiet = replace(fresh, name="tests/x.py::test_steady", mttd_s=None, mttr_s=None)
    quiet = replace(quiet, regression=history.check_regression(quiet, [], factor=1.5, min_history=3))
    rs = SimpleNamespace(records=[fresh, quiet], root=tmp_path, run_id="r1", problems=[])
    lines: list[str] = []
    tr = SimpleNamespace(section=lambda *a, **k: None, write_line=lambda text, **k: lines.append(text))
    config = SimpleNamespace(stash={REPORT: rs}, invocation_params=SimpleNamespace(dir=tmp_path))
    pytest_terminal_summary(tr, 0, config)  # type: ignore[arg-type]
    assert lines == [f"regression gate: {NAME}: no history: not gated (no past passing run of this drill on this "
                     "chain backend; the gate compares from 3 on, so keep history.jsonl between runs)"]
