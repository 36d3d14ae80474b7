"""`drill incident` refuses what it cannot use, and journals a person's report even when the agent cannot take it.

Its success against a live agent is in test_gameday_run.py (the lever test reports to the reference agent).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from harness.gameday.journal import append_event, read_journal


def _incident(*args: str, token: str | None = "t0ken", cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "AGENT_OPERATOR_TOKEN"}
    if token is not None:
        env["AGENT_OPERATOR_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "harness.cli", "incident", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=60)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_without_control_or_a_running_game_day_it_says_what_to_give(tmp_path: Path) -> None:
    out = _incident("stuck", cwd=tmp_path)
    assert out.returncode == 2
    assert "drill incident: --control is missing: give the agent's control API URL, or --gameday DIR" in out.stderr


def test_a_remote_control_url_needs_allow_remote(tmp_path: Path) -> None:
    out = _incident("stuck", "--control", "http://192.0.2.7:8080", cwd=tmp_path)
    assert out.returncode == 2 and "is not a loopback address" in out.stderr and "--allow-remote" in out.stderr


def test_no_token_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    out = _incident("stuck", "--control", f"http://127.0.0.1:{_closed_port()}", token=None, cwd=tmp_path)
    assert out.returncode == 2 and "no operator token: set AGENT_OPERATOR_TOKEN or pass --token-file FILE" in out.stderr


def test_a_report_the_agent_cannot_take_is_still_journaled_and_the_token_is_never_written(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    append_event(journal, "gameday.start")
    port = _closed_port()
    out = _incident("dashboard frozen", "--severity", "SEV-1", "--control", f"http://127.0.0.1:{port}",
                    "--gameday", str(tmp_path), token="s3cret-operator-token", cwd=tmp_path)
    assert out.returncode == 1
    assert f"the agent did not answer at http://127.0.0.1:{port} (ConnectionRefusedError" in out.stderr
    assert "recorded in the journal" in out.stderr
    event = read_journal(journal)[-1]
    assert {k: event[k] for k in ("event", "summary", "severity", "http_status", "incident_id")} == {
        "event": "incident.reported", "summary": "dashboard frozen", "severity": "SEV-1", "http_status": None,
        "incident_id": None}
    assert "did not answer" in event["problem"]
    assert "s3cret" not in journal.read_text() + out.stdout + out.stderr


def test_with_gameday_the_running_drills_agent_is_used(tmp_path: Path) -> None:
    append_event(tmp_path / "journal.jsonl", "gameday.start")
    port = _closed_port()
    (tmp_path / "agent.json").write_text(json.dumps({"control": f"http://127.0.0.1:{port}"}))
    (tmp_path / "agent.token").write_text("from-the-drill")
    out = _incident("rpc red", "--gameday", str(tmp_path), token=None, cwd=tmp_path)
    assert out.returncode == 1 and f"http://127.0.0.1:{port}" in out.stderr  # it tried that agent, with that token
    assert read_journal(tmp_path / "journal.jsonl")[-1]["control"] == f"http://127.0.0.1:{port}"
