"""Nothing a run starts outlives it: pass, fail, error or Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

CHAIN_TEST = textwrap.dedent(
    """
    import os, time
    from pathlib import Path

    def test_holds_a_chain(chain):
        Path(os.environ["MARK_FILE"]).write_text(f"{chain.rpc_url}\\n{chain.backend}")
        go = Path(os.environ["GO_FILE"])  # the outer test has seen the chain's process: now end as told
        deadline = time.monotonic() + 30
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        {body}
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _anvils_on_port(port: int) -> set[int]:
    """anvil processes started for ``port`` (other tests on the machine may run their own anvils)."""
    out = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                argv = (d / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"anvil") and b"--port" in argv:
                i = argv.index(b"--port")
                if i + 1 < len(argv) and argv[i + 1] == str(port).encode():
                    out.add(int(d.name))
    return out


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _port_listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("backend", ["anvil", "pyevm"])
@pytest.mark.parametrize("outcome", ["interrupt", "fail", "error", "killed"])
def test_chain_is_reclaimed(tmp_path: Path, backend: str, outcome: str) -> None:
    body = {
        "interrupt": "time.sleep(120)",
        "killed": "time.sleep(120)",  # SIGKILLed: no cleanup of its own runs, the kernel must reclaim
        "fail": "assert False, 'drill failed on purpose'",
        "error": "raise RuntimeError('harness broke on purpose')",
    }[outcome]
    test_file = tmp_path / "test_inner.py"
    test_file.write_text(CHAIN_TEST.replace("{body}", body))
    mark, go = tmp_path / "mark", tmp_path / "go"
    env = {**os.environ, "MARK_FILE": str(mark), "GO_FILE": str(go)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--chain={backend}", str(test_file)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not mark.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert mark.exists(), f"the inner run never got a chain: {proc.communicate(timeout=30)[0]}"
        url, _ = mark.read_text().split("\n")
        our_anvils = _anvils_on_port(_port_of(url)) if backend == "anvil" else set()
        go.write_text("")
        assert backend != "anvil" or our_anvils, "could not find the inner run's anvil process"
        if outcome == "interrupt":
            proc.send_signal(signal.SIGINT)
        elif outcome == "killed":
            proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    try:
        assert proc.returncode != 0, out
        if outcome == "interrupt":
            assert "KeyboardInterrupt" in out or "Interrupted" in out, out
        time.sleep(0.2)
        assert not _port_listening(_port_of(url)), f"{backend} still listens on {url} after {outcome}"
        assert not [p for p in our_anvils if _alive(p)], f"anvil processes left behind after {outcome}"
    finally:
        for pid in our_anvils:  # a failed check must not leave its own leftover on the machine
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
