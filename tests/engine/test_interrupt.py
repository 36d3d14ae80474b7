"""Ctrl-C in the middle of a drill leaves no process, proxy or port behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
AGENT = ROOT / "tests" / "minimal_agent" / "agent.py"
DRILLS = Path(__file__).with_name("minimal_drills.py")


def listening(url: str) -> bool:
    parts = urlsplit(url)
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((parts.hostname or "127.0.0.1", parts.port or 80)) == 0


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


@pytest.mark.slow
def test_ctrl_c_mid_drill_reclaims_everything(tmp_path: Path, chain_backend: str) -> None:
    info = tmp_path / "info.json"
    cmd = [sys.executable, "-m", "pytest", "-p", "harness.drill.pytest_plugin", str(DRILLS), "-q",
           "-k", "waits_until_interrupted", "--agent-cmd", f"{{python}} {AGENT}", "--basetemp", str(tmp_path / "inner"), "--chain", chain_backend]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "DRILL_INTERRUPT_INFO": str(info)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not info.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)  # polling another process's progress
        assert info.exists(), proc.communicate(timeout=30)[0] if proc.poll() is not None else "no info file"
        time.sleep(0.3)  # let the writer close the file
        where = json.loads(info.read_text())
        assert alive(where["agent_pid"]) and listening(where["control_url"])
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "KeyboardInterrupt" in out, out
    assert not alive(where["agent_pid"]), "the agent survived Ctrl-C"
    assert not alive(where.get("chain_pid")), "the chain survived Ctrl-C"
    urls = [where["control_url"], where["alert_url"], where["chain_url"], *where["rpc_urls"]]
    if where.get("proxy"):
        urls.append(where["proxy"])
    left = [u for u in urls if listening(u)]
    assert not left, f"still listening after Ctrl-C: {left}"
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # nothing left in the inner pytest's process group
