"""A broken agent cannot outlive, flood or hang its drill (tests/hostile/agent.py).

The hostile agent leaves a double-forked, setsid, SIGTERM-ignoring escapee, floods the alert sink
(2000 malformed events and a 5 MB body), prints 48 MB and calls every loopback port it sees
listening that its contract did not give it (the chain's own among them). The drill must end in its
usual time with its verdict on the agent's duties, record each of these as a contract violation,
keep the output and the report small, and leave nothing running, whether the drill passes, fails or
is interrupted.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.runtime.netbridge import isolation_unavailable
from harness.runtime.supervisor import pidns_available

ROOT = Path(__file__).resolve().parents[2]
AGENT = ROOT / "tests" / "hostile" / "agent.py"
DRILLS = Path(__file__).with_name("minimal_drills.py")


def with_token(token: str) -> list[int]:
    """Live processes whose command line carries ``token`` (the hostile agent's escapees)."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            if token.encode() in (d / "cmdline").read_bytes() and (d / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                found.append(int(d.name))
        except (OSError, IndexError):
            continue
    return found


def gone(token: str, timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    left = with_token(token)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)  # the kernel tears a namespace down asynchronously
        left = with_token(token)
    return left


def start_drills(tmp_path: Path, select: str, token: str, *agent: str, **env: str) -> subprocess.Popen[str]:
    """The minimal drills ``select`` against the hostile agent (``agent``: the options naming it; its process by default)."""
    agent = agent or ("--agent-cmd", f"{{python}} {AGENT}")
    cmd = [sys.executable, "-m", "pytest", "-p", "harness.drill.pytest_plugin", str(DRILLS), "-q", "-rA", "-k", select,
           *agent, "--basetemp", str(tmp_path / "inner"), "--chain", "pyevm",
           "--drill-jsonl", str(tmp_path / "results.jsonl"), "--drill-report-dir", str(tmp_path / "reports")]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "HOSTILE_TOKEN": token, "COLUMNS": "300", **env}, start_new_session=True)


def peak_rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@pytest.mark.slow
def test_hostile_agent_is_drilled_bounded_and_reclaimed(tmp_path: Path) -> None:
    token = f"hostile-{secrets.token_hex(6)}"
    t0 = time.monotonic()
    proc = start_drills(tmp_path, "killed_agent", token, HOSTILE_OUTPUT_MB="48")
    peak = 0
    while proc.poll() is None and time.monotonic() - t0 < 240:
        peak = max(peak, peak_rss_kib(proc.pid))
        time.sleep(0.1)
    out, _ = proc.communicate(timeout=30)
    took = time.monotonic() - t0
    print(f"\nhostile drill: {took:.1f} s, harness peak RSS {peak / 1024:.0f} MiB")
    assert "PASSED tests/engine/minimal_drills.py::test_killed_agent_reports_crash_after_restart" in out, out[-3000:]
    assert len(out) < 20_000, "the agent's flood reached pytest's output"
    assert peak < 500 * 1024, f"the harness's peak RSS was {peak / 1024:.0f} MiB"
    (result,) = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert result["duration_s"] < 60, result["duration_s"]
    timeline = result["timeline"]
    whats = {e["data"].get("what") for e in timeline if e["kind"] == "contract.violation"}
    assert {"oversized event", "events over the rate", "malformed event", "alert sink totals"} <= whats, whats
    totals = next(e["data"]["totals"] for e in timeline if e["data"].get("what") == "alert sink totals")
    # counted, not kept: how many of the 2000 the agent gets out before the drill ends depends on the
    # machine (1195 to 1900 seen), so the floor only proves the flood was counted past the rate limit
    assert sum(totals.values()) >= 200 and totals.get("events over the rate", 0) >= 100, totals
    starts = [e["data"] for e in timeline if e["kind"] == "agent.start"]
    assert starts and all(s["limits"]["files"] == 4096 for s in starts)
    if pidns_available():
        assert starts[0]["boundary"] == "pidns"
        escaped = [e["data"] for e in timeline if e["data"].get("what") == "processes outside the agent's session"]
        assert escaped and escaped[0]["count"] >= 1 and token in json.dumps(escaped[0]["examples"])
    else:
        assert starts[0]["boundary"] == "group"
    if isolation_unavailable() is None:
        # in its own network namespace the chain's port is a trap: the call is reset and recorded
        assert {s["network"] for s in starts} == {"isolated"}
        direct = [e["data"] for e in timeline if e["data"].get("what") == "direct connection to the chain's own port"]
        assert direct and direct[0]["port"] > 0, whats
    log = tmp_path / "inner" / "test_killed_agent_reports_crascurrent" / "drill" / "agent-output.log"
    if log.exists():
        assert log.stat().st_size < 2 * 1024 * 1024
    size = sum(f.stat().st_size for f in (tmp_path / "reports").rglob("*") if f.is_file())
    assert size < 20 * 1024 * 1024, f"the report takes {size} bytes"
    if pidns_available():
        assert not gone(token), "the escapee outlived the drill"


@pytest.mark.slow
@pytest.mark.skipif(pidns_available() is None, reason="needs a PID namespace (root and unshare); "
                    "under a process group an escapee is out of reach, as docs/sandbox.md says")
@pytest.mark.parametrize("outcome", ["pass", "fail", "sigint", "sigterm"])
def test_escapee_is_reclaimed_whatever_the_outcome(tmp_path: Path, outcome: str) -> None:
    token = f"escapee-{secrets.token_hex(6)}"
    select = {"pass": "steady_state_holds", "fail": "moves_traffic_to_backup"}.get(outcome, "waits_until_interrupted")
    info = tmp_path / "info.json"
    proc = start_drills(tmp_path, select, token, HOSTILE_ALERTS="0", HOSTILE_OUTPUT_MB="0", DRILL_INTERRUPT_INFO=str(info))
    try:
        if outcome in ("sigint", "sigterm"):
            deadline = time.monotonic() + 120
            while not info.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            assert info.exists(), proc.communicate(timeout=30)[0]
            assert with_token(token), "the escapee never started"
            if outcome == "sigint":
                os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C
            else:
                proc.send_signal(signal.SIGTERM)  # a CI runner cancelling the job
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    expected = {"pass": 0, "fail": 1}.get(outcome)
    assert expected is None or proc.returncode == expected, out[-3000:]
    assert not gone(token), f"the escapee outlived the drill ({outcome})"


def hostile_image() -> str:
    """The hostile agent in an image: the reference agent's (built now, a few seconds) with tests/hostile/agent.py
    added, running the reference agent after its misdeeds (the minimal agent needs web3, which that image lacks)."""
    import io
    import tarfile

    from harness.image import REFERENCE_IMAGE, build_reference_image
    from harness.runtime.docker import DockerUnavailable, docker_client

    try:
        client = docker_client(timeout=30)
    except DockerUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Docker runtime's tests, but {exc}")
        pytest.skip(f"{exc} (with CI set, this fails instead of skipping)")
    build_reference_image(client=client)
    dockerfile = (f"FROM {REFERENCE_IMAGE}\nCOPY agent.py /hostile/agent.py\nENV HOSTILE_INNER_MODULE=reference_agent\n"
                  'CMD ["python3", "/hostile/agent.py"]\n').encode()
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in (("Dockerfile", dockerfile), ("agent.py", AGENT.read_bytes())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    tag = "agent-drills/hostile-agent:test"
    client.images.build(fileobj=context, custom_context=True, tag=tag, pull=False, rm=True, forcerm=True)
    return tag


@pytest.mark.slow
def test_hostile_image_is_drilled_isolated_and_reclaimed(tmp_path: Path) -> None:
    """Under the Docker runtime: the container's network holds only the contract's endpoints (the chain's port a
    trap, recorded), the floods are bounded as for a process, and nothing of the run is left, escapee included."""
    from harness.runtime.docker import LABEL_RUN, docker_client

    image = hostile_image()
    token = f"hostile-{secrets.token_hex(6)}"
    run_id = f"hostile-docker-{secrets.token_hex(4)}"
    t0 = time.monotonic()
    proc = start_drills(tmp_path, "killed_agent", token, "--agent-image", image, "--drill-run-id", run_id,
                        "--agent-env", f"HOSTILE_TOKEN={token}", "--agent-env", "HOSTILE_OUTPUT_MB=8")
    seen: set[int] = set()  # the escapee's host pids, while the drill runs (its output stays small: no deadlock)
    try:
        while proc.poll() is None and time.monotonic() - t0 < 240:
            seen.update(with_token(token))
            time.sleep(0.1)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    print(f"\nhostile drill under Docker: {time.monotonic() - t0:.1f} s")
    assert seen, "the escapee never ran (nothing to reclaim was tested)"
    assert "PASSED tests/engine/minimal_drills.py::test_killed_agent_reports_crash_after_restart" in out, out[-3000:]
    assert len(out) < 20_000, "the agent's flood reached pytest's output"
    (result,) = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    timeline = result["timeline"]
    starts = [e["data"] for e in timeline if e["kind"] == "agent.start"]
    assert starts and {(s["boundary"], s["network"]) for s in starts} == {("container", "isolated")}, starts
    whats = {e["data"].get("what") for e in timeline if e["kind"] == "contract.violation"}
    assert {"direct connection to the chain's own port", "oversized event", "malformed event"} <= whats, whats
    (summary,) = [json.loads(p.read_text()) for p in (tmp_path / "reports").rglob("summary.json")]
    (record,) = summary["drills"]
    assert record["violations"].get("direct connection to the chain's own port", 0) >= 1, record["violations"]
    assert docker_client().containers.list(all=True, filters={"label": f"{LABEL_RUN}={run_id}"}) == []
    assert not gone(token), "the escapee outlived its container"
