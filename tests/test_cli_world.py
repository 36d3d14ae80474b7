"""``drill world``: a drill's world without the drill, and an agent started by hand against it.

The reference agent plays the developer's agent: started from the printed environment alone (the
file ``--env-file`` writes, sourced as a shell would), it proves the escrows the counterparty opens,
and the world follows it on the terminal; Ctrl-C then stops everything the world started.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

DRILL = [sys.executable, "-m", "harness.cli"]


def _exports(path: Path) -> dict[str, str]:
    """The variables of an env file of ``export K=V`` lines, read as a shell reads them."""
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        out[key] = shlex.split(value)[0]
    return out


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_for(proc: subprocess.Popen[str], lines: list[str], text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if any(text in line for line in lines):
            return True
        time.sleep(0.1)
    return any(text in line for line in lines)


def test_an_agent_started_by_hand_works_against_the_world_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    env_file = tmp_path / "world.env"
    world = subprocess.Popen([*DRILL, "world", "--dir", str(tmp_path / "world"), "--env-file", str(env_file)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(world.stdout or []), daemon=True)
    reader.start()
    agent = None
    try:
        assert _wait_for(world, lines, "Ctrl-C stops the world", 90), "".join(lines)
        env = _exports(env_file)
        assert set(env) >= {"AGENT_RPC_URLS", "AGENT_CHAIN_ID", "AGENT_KEY_FILE", "AGENT_COLD_WALLET", "AGENT_CONTRACTS",
                            "AGENT_ALERT_URL", "AGENT_CONTROL_ADDR", "AGENT_OPERATOR_TOKEN", "AGENT_STATE_DIR"}, env
        key_file = Path(env["AGENT_KEY_FILE"])
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert key_file.read_text().strip() not in "".join(lines)  # the key is in its file, nowhere else
        agent = subprocess.Popen([sys.executable, "-m", "reference_agent"], env={**os.environ, **env},
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        assert _wait_for(world, lines, "/health: status=ok", 60), "".join(lines)
        assert _wait_for(world, lines, " proven by ", 30), "".join(lines)
        ports = [int(u.rsplit(":", 1)[1]) for u in env["AGENT_RPC_URLS"].split(",")]
        assert all(_listening(p) for p in ports)
        os.killpg(world.pid, signal.SIGINT)
        assert world.wait(timeout=30) == 0, "".join(lines)
    finally:
        for proc in (agent, world):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    reader.join(timeout=5)
    assert lines[-1].strip() == "Stopping the world.", "".join(lines[-5:])
    assert not any(_listening(p) for p in ports), "the world's endpoints still answer after Ctrl-C"


def test_a_directory_that_is_not_empty_is_refused(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("mine")
    out = subprocess.run([*DRILL, "world", "--dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert f"--dir {tmp_path} is not empty; give a new or empty directory" in out.stderr
    assert (tmp_path / "something").read_text() == "mine"  # nothing lost
