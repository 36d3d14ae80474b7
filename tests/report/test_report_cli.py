"""`drill report` prints the last runs per drill, with regressions marked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main

NAME = "scenarios/test_network.py::test_primary_rpc_down_fails_over"


def _write_history(path: Path, mttds: list[float | None]) -> None:
    lines = []
    for i, mttd in enumerate(mttds):
        lines.append({"run_id": f"run-{i}", "ts": 1000.0 + i, "name": NAME, "scenario": "test_primary_rpc_down_fails_over",
                      "chain_backend": "anvil", "status": "passed" if mttd is not None else "failed",
                      "failure_category": None if mttd is not None else "missed_detection",
                      "mttd_s": mttd, "contain_s": None, "mttr_s": None, "budgets": {}, "regressed": False})
    path.write_text("".join(json.dumps(e) + "\n" for e in lines))


def test_drill_report_prints_a_table_and_marks_the_regression(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_history(tmp_path / "history.jsonl", [1.0, 1.1, 0.9, None, 3.0])
    assert main(["report", "--report-dir", str(tmp_path), "--last", "3"]) == 0
    out = capsys.readouterr().out
    assert "Last 3 run(s) per drill" in out
    for run_id in ("run-2", "run-3", "run-4"):
        assert run_id in out
    assert "run-1" not in out
    assert "missed_detection" in out
    assert "REGRESSION" in out and "3.00 s" in out


def test_drill_report_without_history_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--report-dir", str(tmp_path)]) == 1
    assert "run `pytest -m drill` first" in capsys.readouterr().out


def test_drill_report_allure_without_results_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_history(tmp_path / "history.jsonl", [1.0])
    assert main(["report", "--report-dir", str(tmp_path), "--allure", str(tmp_path / "nothing")]) == 2
    assert "holds no Allure results" in capsys.readouterr().err


@pytest.mark.parametrize("last", ["0", "-3"])
def test_drill_report_last_below_one_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], last: str) -> None:
    _write_history(tmp_path / "history.jsonl", [1.0])
    assert main(["report", "--report-dir", str(tmp_path), "--last", last]) == 2
    assert capsys.readouterr().err.strip() == f"drill report: --last must be at least 1, got {int(last)}"


def test_drill_report_marks_runs_the_gate_could_not_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_history(tmp_path / "history.jsonl", [1.0, 1.1, 0.9, 1.0])
    assert main(["report", "--report-dir", str(tmp_path), "--last", "4"]) == 0
    out = capsys.readouterr().out
    for n in range(3):
        assert f"not gated ({n} past passing run(s), need 3)" in out, out
    assert "(3 past passing run(s)" not in out and "REGRESSION" not in out
