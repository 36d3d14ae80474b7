"""`drill init`: the starter drills.toml and example drill, and never overwriting without --force."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from harness.checks.budgets import Budget, parse_config
from harness.cli import main
from harness.init import config_text


def test_init_writes_both_files_and_prints_the_next_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init", "--agent-cmd", 'python -m my_agent --name "a b"']) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["wrote drills.toml", "wrote drills/test_my_drill.py"]
    assert out[-1] == "    pytest -m drill"
    table = tomllib.loads((tmp_path / "drills.toml").read_text())
    assert table == {"agent_cmd": 'python -m my_agent --name "a b"'}  # all else is commented out
    assert "def test_my_agent_keeps_proving_through_a_primary_rpc_outage(drill):" in (
        tmp_path / "drills" / "test_my_drill.py").read_text()


def test_the_commented_budgets_are_every_key_with_its_default() -> None:
    text = config_text(None)
    budget_lines = re.findall(r"^# (\w+ = \S+) +# ", text, re.M)  # "# detect = 5.0   # seconds ..."
    table = tomllib.loads("\n".join(budget_lines))
    assert set(table) == {f.name for f in fields(Budget)} - {"scale"}
    del table["value_at_risk_eth"]  # no default (the share applies); shown with an example value
    assert parse_config(table).defaults == Budget()
    assert '# agent_cmd = "python -m my_agent"' in text and "--agent-image IMAGE" in text and '# chain = "pyevm"' in text


def test_existing_files_are_refused_and_nothing_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "drills.toml").write_text("detect = 7\n")
    assert main(["init"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"drill init: drills.toml already exists in {tmp_path.resolve()}; nothing was written. "
                   "Move it away, or run `drill init --force` to overwrite")
    assert (tmp_path / "drills.toml").read_text() == "detect = 7\n"
    assert not (tmp_path / "drills").exists()
    assert main(["init", "--force"]) == 0
    assert "# detect = 5.0" in (tmp_path / "drills.toml").read_text()


def test_an_unsplittable_agent_command_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init", "--agent-cmd", '"python']) == 2
    assert "--agent-cmd '\"python' is not a command: No closing quotation" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_the_example_drill_collects_with_the_starter(tmp_path: Path) -> None:
    """The files as written: pytest collects the example drill, selectable by its playbook marker."""
    assert subprocess.run([sys.executable, "-m", "harness.cli", "init", "--agent-cmd", "python -m my_agent"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60).returncode == 0
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "-m", "drill and my_playbook"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "300"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[0] == "drills/test_my_drill.py::test_my_agent_keeps_proving_through_a_primary_rpc_outage"
    assert "1/" in proc.stdout.splitlines()[-1]  # one selected of the built-in drills and the example
