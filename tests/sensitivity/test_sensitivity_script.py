"""The sensitivity script's own parts: reading the defect table, reading pytest's JUnit XML, the table."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import sensitivity


def test_aims_are_read_from_the_markdown_defect_table(tmp_path: Path) -> None:
    doc = tmp_path / "agent.md"
    doc.write_text(textwrap.dedent("""
        | Defect | What breaks | Drill that catches it |
        |---|---|---|
        | `no_sweep` | no sweep | `test_leaked_key_is_swept` |
        | `no_failover` | stays on primary | `test_a`, `test_b` |
        | `not_a_defect` | x | `test_c` |
        Some prose with `no_sweep` and test_d outside a table.
    """))
    got = sensitivity.aims_from_doc(doc, ["no_sweep", "no_failover"])
    assert got == {"no_sweep": ("test_leaked_key_is_swept",), "no_failover": ("test_a", "test_b")}
    assert sensitivity.aims_from_doc(tmp_path / "missing.md", ["no_sweep"]) == {}


def test_junit_outcomes_from_a_real_pytest_run(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text(textwrap.dedent("""
        from harness.errors import ContainmentFailed
        def test_caught():
            raise ContainmentFailed("no sweep to the cold wallet within 10.0 s (cold wallet received 0 ETH)")
        def test_ok():
            pass
        def test_plain_error():
            raise RuntimeError("harness broke")
    """))
    junit = tmp_path / "out.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_x.py"),
                    f"--junitxml={junit}", "--rootdir", str(tmp_path)], check=False, capture_output=True, cwd=tmp_path)
    got = sensitivity.parse_junit(junit)
    assert got["test_ok"].status == "passed"
    assert got["test_caught"].names_expectation
    assert "no sweep to the cold wallet" in got["test_caught"].message
    assert got["test_plain_error"].status == "failed" and not got["test_plain_error"].names_expectation


def test_table_marks_caught_missed_and_a_broken_control() -> None:
    good = sensitivity.Row("no_sweep", ("test_leak",), "test_stall", {
        "test_leak": sensitivity.Outcome("test_leak", "failed", "harness.errors.ContainmentFailed: no sweep"),
        "test_stall": sensitivity.Outcome("test_stall", "passed"),
    })
    bad = sensitivity.Row("no_failover", ("test_down",), "test_stall", {
        "test_down": sensitivity.Outcome("test_down", "passed"),
        "test_stall": sensitivity.Outcome("test_stall", "error", "AgentStartError"),
    })
    text = sensitivity.table([good, bad])
    assert "| `no_sweep` | CAUGHT | pass |  | ok |" in text
    assert "| `no_failover` |  | BROKEN (error) | MISSED (passed) | NOT OK |" in text
    assert good.ok and not bad.ok


def test_aims_take_the_test_name_not_the_file_name(tmp_path: Path) -> None:
    doc = tmp_path / "agent.md"
    doc.write_text("| `no_failover` | x | `scenarios/test_network.py::test_primary_rpc_down_fails_over_to_backup` |\n")
    assert sensitivity.aims_from_doc(doc, ["no_failover"]) == {"no_failover": ("test_primary_rpc_down_fails_over_to_backup",)}


def test_the_unrelated_drill_is_neither_aimed_at_nor_touched_by_the_defect() -> None:
    """instant_resume also breaks resumption after a chain stall, so its control is a drill with no pause."""
    touched = sensitivity.TOUCHES["instant_resume"]
    got = sensitivity.control_for("instant_resume", sensitivity.aims()["instant_resume"])
    assert got not in touched and got not in sensitivity.aims()["instant_resume"]
    assert got in sensitivity.CONTROLS
    assert sensitivity.control_for("no_sweep", sensitivity.aims()["no_sweep"]) == sensitivity.CONTROLS[0]
    for defect, drills in sensitivity.TOUCHES.items():
        assert defect in sensitivity.aims() and set(drills) <= set(sensitivity.CONTROLS) | set(drills)


def test_defects_run_side_by_side_keep_their_order(monkeypatch: pytest.MonkeyPatch) -> None:
    # run(workers=3) overlaps the defects' pytest runs (each its own world) and returns the rows in
    # the order the defects were given, whichever run ends first
    import threading
    import time

    live, most = [0], [0]
    lock = threading.Lock()

    def fake(defect, aimed, control, **_kw):  # type: ignore[no-untyped-def]
        with lock:
            live[0] += 1
            most[0] = max(most[0], live[0])
        time.sleep(0.3 if defect == "a" else 0.05)
        with lock:
            live[0] -= 1
        return sensitivity.Row(defect, tuple(aimed), control)

    monkeypatch.setattr(sensitivity, "run_defect", fake)
    rows = sensitivity.run({"a": ["test_x"], "b": ["test_y"], "c": ["test_z"], "d": ["test_w"]}, chain=None, extra=(),
                           timeout=10, echo=False, workers=3)
    assert [r.defect for r in rows] == ["a", "b", "c", "d"]
    assert most[0] == 3
    with pytest.raises(ValueError, match="workers must be 1 or more"):
        sensitivity.run({}, chain=None, extra=(), timeout=10, workers=0)
