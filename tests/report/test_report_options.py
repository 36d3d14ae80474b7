"""The report plugin's options: bad values are refused with what to do; a session without drills writes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_plain.py").write_text("def test_plain():\n    assert True\n")
    cmd = [sys.executable, "-m", "pytest", "-p", "harness.report.pytest_plugin", "-q", "-p", "no:cacheprovider",
           str(tmp_path / "test_plain.py"), "--rootdir", str(tmp_path), *args]
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, message", [
    (["--drill-gate-factor", "0.9"], "--drill-gate-factor must be > 1 (1.5 = 50% slower than the median fails), got '0.9'"),
    (["--drill-gate-factor", "fast"], "--drill-gate-factor expects a number such as 1.5, got 'fast'"),
    (["--drill-gate", "always"], "invalid choice: 'always'"),
    (["--drill-run-id", "../up"], "--drill-run-id '../up' must be letters, digits"),
])
def test_bad_options_are_refused_with_the_reason(tmp_path: Path, args: list[str], message: str) -> None:
    proc = _pytest(tmp_path, *args)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert message in proc.stderr, proc.stderr


def test_a_session_without_drills_writes_no_report(tmp_path: Path) -> None:
    proc = _pytest(tmp_path, "--drill-report-dir", str(tmp_path / "reports"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (tmp_path / "reports").exists()
    assert "drill report" not in proc.stdout
