"""Misuse of the drill options and marker gets an error that says what to fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DRILLS = Path(__file__).with_name("minimal_drills.py")
AGENT = ROOT / "tests" / "minimal_agent" / "agent.py"


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pytest", "-p", "harness.drill.pytest_plugin", str(DRILLS), "-q",
           "--basetemp", str(tmp_path / "inner"), "-o", "drill_agent_cmd=", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "COLUMNS": "300"})


def test_bad_agent_env_names_the_value(tmp_path: Path) -> None:
    proc = run(tmp_path, "-k", "steady_state_holds", "--agent-cmd", f"{{python}} {AGENT}", "--agent-env", "NOEQUALS")
    assert "UsageError: --agent-env 'NOEQUALS' is not KEY=VALUE" in proc.stdout, proc.stdout
    assert proc.returncode == 1


def test_missing_agent_command_says_how_to_give_one(tmp_path: Path) -> None:
    proc = run(tmp_path, "-k", "steady_state_holds")
    assert "no agent to drill: pass --agent-cmd" in proc.stdout, proc.stdout


def test_unparsable_agent_command(tmp_path: Path) -> None:
    proc = run(tmp_path, "-k", "steady_state_holds", "--agent-cmd", "python 'unclosed")
    assert "cannot be split into arguments" in proc.stdout, proc.stdout


def test_misspelt_incident_kind_gets_a_suggestion(tmp_path: Path) -> None:
    proc = run(tmp_path, "-k", "misspelt", "--agent-cmd", f"{{python}} {AGENT}")
    assert "unknown incident kind 'rpc_failur'; did you mean 'rpc_failure'?" in proc.stdout, proc.stdout


def test_bad_budget_scale(tmp_path: Path) -> None:
    proc = run(tmp_path, "-k", "steady_state_holds", "--agent-cmd", f"{{python}} {AGENT}", "--drill-budget-scale", "0")
    assert "--drill-budget-scale must be a number > 0, got 0.0" in proc.stdout, proc.stdout
