"""The Docker runtime against a real daemon: the reference agent's image drilled, its defects caught,
Ctrl-C leaving nothing behind, and the errors a user meets when something is missing.

These tests need a running Docker daemon. In CI (environment variable ``CI`` set) a missing daemon
fails them: `.ci/run` starts one. Elsewhere they are skipped with the command that starts one.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.errors import AgentStartError
from harness.image import REFERENCE_IMAGE
from harness.observe.timeline import Timeline
from harness.runtime.docker import (
    LABEL_OWNER,
    LABEL_ROLE,
    LABEL_RUN,
    DockerRuntime,
    DockerUnavailable,
    ImageMissing,
    docker_client,
    owner_id,
    remove_leftovers,
)
from harness.runtime.base import RestartPolicy
from harness.runtime.limits import AgentLimits
from harness.runtime.netbridge import BridgePlan

ROOT = Path(__file__).resolve().parents[2]
SLEEPER = ["python3", "-c", "import time\nprint('up', flush=True)\nwhile True: time.sleep(1)"]


@pytest.fixture(scope="module")
def client() -> Any:
    try:
        return docker_client(timeout=30)
    except DockerUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Docker runtime's tests, but {exc}")
        pytest.skip(f"{exc} (with CI set, this fails instead of skipping)")


@pytest.fixture(scope="module")
def image(client: Any) -> str:
    """The reference agent's image, built now from this checkout by `drill image reference` (a few seconds)."""
    done = subprocess.run([sys.executable, "-m", "harness.cli", "image", "reference"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"image       {REFERENCE_IMAGE}  (sha256:" in done.stdout, done.stdout
    assert f"drill it:   pytest -m drill --agent-image {REFERENCE_IMAGE}" in done.stdout
    client.images.get(REFERENCE_IMAGE)
    return REFERENCE_IMAGE


@pytest.fixture
def runtime_factory(tmp_path: Path, client: Any) -> Iterator[Any]:
    made: list[DockerRuntime] = []

    def make(image: str, command: list[str] | None = None, **kw: Any) -> DockerRuntime:
        state = tmp_path / "state"
        secrets = tmp_path / "secrets"
        state.mkdir(exist_ok=True)
        secrets.mkdir(mode=0o700, exist_ok=True)
        key = secrets / "hot.key"
        key.write_text("0x" + "ab" * 32)
        key.chmod(0o600)
        rt = DockerRuntime(image, command=command, env={"AGENT_KEY_FILE": str(key), "AGENT_STATE_DIR": str(state)},
                           timeline=Timeline(), output_path=tmp_path / "agent-output.log", client=client,
                           read_only=[secrets], read_write=[state], labels={LABEL_RUN: "test-" + tmp_path.name},
                           watch=["ab" * 32], **kw)
        made.append(rt)
        return rt

    yield make
    for rt in made:
        rt.stop(grace=0)


def _ours(client: Any, **labels: str) -> list[Any]:
    filters = [f"{k}={v}" for k, v in labels.items()] or [LABEL_OWNER]
    return client.containers.list(all=True, filters={"label": filters})


def _agents(client: Any, **labels: str) -> list[Any]:
    """The agent's own containers among ``_ours`` (not the one holding an isolated agent's network)."""
    return [c for c in _ours(client, **labels) if LABEL_ROLE not in c.labels]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _call(port: int) -> str:
    """What a connection to 127.0.0.1:port of this (the host's) namespace gets: its first line, or the error."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
            return s.recv(100).decode().strip()
    except OSError as exc:
        return type(exc).__name__


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _wait_for(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)  # polling another process (the daemon)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# -- the container's shape, freeze/kill/stop -------------------------------------------------------
def test_container_gets_host_network_mounts_limits_labels_and_no_docker_restart(runtime_factory: Any, image: str,
                                                                                client: Any, tmp_path: Path) -> None:
    rt = runtime_factory(image, SLEEPER, limits=AgentLimits(memory=512 * 1024**2, files=1024, processes=64, cpus=0.5))
    rt.start()
    (c,) = _ours(client, **{LABEL_RUN: "test-" + tmp_path.name})
    host = c.attrs["HostConfig"]
    assert host["NetworkMode"] == "host"
    assert host["RestartPolicy"]["Name"] in ("no", "")
    assert host["Init"] is True
    assert (host["Memory"], host["PidsLimit"], host["NanoCpus"]) == (512 * 1024**2, 64, 500_000_000)
    assert host["Ulimits"][0]["Soft"] == 1024
    mounts = {m["Destination"]: m["RW"] for m in c.attrs["Mounts"]}
    assert mounts == {str(tmp_path / "secrets"): False, str(tmp_path / "state"): True}
    assert c.labels[LABEL_OWNER] == owner_id()
    key = str(tmp_path / "secrets" / "hot.key")
    check = c.exec_run(["python3", "-c", f"import os,stat;p={key!r};print(oct(stat.S_IMODE(os.stat(p).st_mode)));"
                        "open(p,'a')"], user=f"{os.getuid()}:{os.getgid()}")
    assert check.output.decode().startswith("0o600"), check.output
    assert b"Read-only file system" in check.output, check.output  # the key is mounted read-only
    _wait_for(lambda: "up" in rt.output_text(), 10, "the agent's first output line")
    rt.stop(grace=1)
    assert _ours(client, **{LABEL_RUN: "test-" + tmp_path.name}) == []


def test_isolated_container_reaches_only_the_contracts_ports_across_restarts(runtime_factory: Any, image: str,
                                                                           client: Any, tmp_path: Path) -> None:
    outbound, inbound, trap, other = (_free_port() for _ in range(4))
    listeners = []
    for port, greeting in ((outbound, b"proxy\n"), (other, b"something else on the machine\n")):
        srv = socket.create_server(("127.0.0.1", port))
        listeners.append(srv)

        def serve(srv: socket.socket = srv, greeting: bytes = greeting) -> None:
            while True:
                try:
                    conn, _ = srv.accept()
                except OSError:
                    return
                with conn:
                    conn.sendall(greeting)

        threading.Thread(target=serve, daemon=True).start()
    # the agent: what it gets from each port, printed; then it serves its own port (its control API)
    agent = ["python3", "-c", f"""
import socket
def call(p):
    try:
        with socket.create_connection(('127.0.0.1', p), timeout=3) as s:
            return s.recv(100).decode().strip()
    except OSError as exc:
        return type(exc).__name__
print('outbound', call({outbound}), '| trap', call({trap}), '| other', call({other}), flush=True)
srv = socket.create_server(('127.0.0.1', {inbound}))
while True:
    conn, _ = srv.accept()
    conn.sendall(b'agent\\n')
    conn.close()
"""]
    plan = BridgePlan(outbound=(outbound,), inbound=(inbound,), traps={trap: "the chain's own port"})
    rt = runtime_factory(image, agent, network="auto", bridge=plan, policy=RestartPolicy(initial_backoff=0.1))
    try:
        rt.start()
        assert rt.network == "isolated"
        line = "outbound proxy | trap ConnectionResetError | other ConnectionRefusedError"
        _wait_for(lambda: line in rt.output_text(), 10, "the agent's calls from inside")
        _wait_for(lambda: _call(inbound) == "agent", 10, "the agent's own port, from the host")
        (agent_c,) = _agents(client, **{LABEL_RUN: "test-" + tmp_path.name})
        (holder,) = [c for c in _ours(client, **{LABEL_RUN: "test-" + tmp_path.name}) if c.labels.get(LABEL_ROLE) == "network"]
        assert holder.attrs["HostConfig"]["NetworkMode"] == "none"
        assert agent_c.attrs["HostConfig"]["NetworkMode"] == f"container:{holder.id}"
        assert rt.kill()
        _wait_for(lambda: rt.starts == 2 and rt.output_text().count(line) == 2, 20, "the restarted agent's calls")
        _wait_for(lambda: _call(inbound) == "agent", 10, "the restarted agent's own port, from the host")
        (again,) = _agents(client, **{LABEL_RUN: "test-" + tmp_path.name})
        assert again.id != agent_c.id and again.attrs["HostConfig"]["NetworkMode"] == f"container:{holder.id}"
        assert rt.violations == {"direct connection to the chain's own port": 2}
        starts = [e.data for e in rt.timeline.events("agent.start")]
        assert [s["network"] for s in starts] == ["isolated", "isolated"]
        trapped = [e.data for e in rt.timeline.events("contract.violation")]
        assert [(t["what"], t["port"]) for t in trapped] == [("direct connection to the chain's own port", trap)] * 2
    finally:
        rt.stop(grace=0)
        for srv in listeners:
            srv.close()
    assert _ours(client, **{LABEL_RUN: "test-" + tmp_path.name}) == [], "a container (or the network's holder) is left"
    assert _call(inbound) == "ConnectionRefusedError", "the bridge still listens after the stop"


def test_freeze_pauses_kill_while_frozen_restarts_and_stop_removes(runtime_factory: Any, image: str,
                                                                   client: Any, tmp_path: Path) -> None:
    rt = runtime_factory(image, SLEEPER, policy=RestartPolicy(initial_backoff=0.1))
    rt.start()
    first = rt.pid
    assert rt.freeze()
    (c,) = _ours(client, **{LABEL_RUN: "test-" + tmp_path.name})
    c.reload()
    assert c.attrs["State"]["Paused"] is True
    assert rt.thaw()
    assert rt.freeze()
    assert rt.kill(signal.SIGKILL)  # as the state faults do: frozen, then killed
    assert rt.wait_started(2, timeout=20)
    assert rt.pid not in (None, first) and not _alive(first)
    kinds = [e.kind for e in rt.timeline.events()]
    assert kinds.count("agent.start") == 2 and "agent.restart" in kinds
    exit_ev = next(e for e in rt.timeline.events() if e.kind == "agent.exit")
    assert exit_ev.data["signal"] == "SIGKILL"
    rt.stop(grace=2)
    assert _ours(client, **{LABEL_RUN: "test-" + tmp_path.name}) == []
    assert not _alive(first)


def test_stop_is_sigterm_then_sigkill_with_a_warning(runtime_factory: Any, image: str) -> None:
    polite = runtime_factory(image, SLEEPER)
    polite.start()
    polite.stop(grace=5)
    (stop,) = [e for e in polite.timeline.events() if e.kind == "agent.stop"]
    assert stop.data["signal"] == "SIGTERM"
    stubborn = runtime_factory(image, ["python3", "-c", "import signal, time\nsignal.signal(signal.SIGTERM, "
                                       "signal.SIG_IGN)\nwhile True: time.sleep(1)"])
    stubborn.start()
    with pytest.warns(UserWarning, match=r"ignored SIGTERM for 1s; sending SIGKILL"):
        stubborn.stop(grace=1)
    (stop,) = [e for e in stubborn.timeline.events() if e.kind == "agent.stop"]
    assert stop.data["signal"] == "SIGKILL"


# -- the three errors a user meets ------------------------------------------------------------------
def test_no_daemon_says_how_to_start_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-daemon.sock")
    with pytest.raises(DockerUnavailable, match=r"no Docker daemon answers at unix://.*no-daemon\.sock .*dockerd "
                                                r"--bridge=none --iptables=false.*--agent-cmd"):
        docker_client(timeout=5)


def test_missing_image_says_how_to_build_it(runtime_factory: Any, client: Any) -> None:
    rt = runtime_factory("agent-drills/no-such-agent:0")
    with pytest.raises(ImageMissing, match=r"'agent-drills/no-such-agent:0' is not on this machine's Docker daemon "
                                           r"\(the harness never pulls\); build it first: `drill image reference`"):
        rt.start()


def test_container_exiting_at_once_is_a_start_error_with_its_output_scrubbed(runtime_factory: Any, image: str,
                                                                             client: Any, tmp_path: Path) -> None:
    crash = ["python3", "-c", "import sys; print('config broken, key ' + 'ab' * 32); sys.exit(3)"]
    rt = runtime_factory(image, crash)
    with pytest.raises(AgentStartError) as err:
        rt.start()
    text = str(err.value)
    assert "exited at once (code 3)" in text and "config broken, key [REDACTED]" in text, text
    assert "ab" * 32 not in text
    assert _ours(client, **{LABEL_RUN: "test-" + tmp_path.name}) == []


def test_leftovers_of_a_dead_run_are_removed_and_live_runs_kept(client: Any, image: str) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_owner = f"{owner_id().split(':')[0]}:{dead.stdout.strip()}:1"
    leftover = client.containers.create(image, SLEEPER, labels={LABEL_OWNER: dead_owner, LABEL_RUN: "crashed-run"})
    live = client.containers.create(image, SLEEPER, labels={LABEL_OWNER: owner_id(), LABEL_RUN: "this-run"})
    try:
        removed = remove_leftovers(client)
        assert leftover.id[:12] in removed and live.id[:12] not in removed
        assert _ours(client, **{LABEL_RUN: "crashed-run"}) == []
        assert len(_ours(client, **{LABEL_RUN: "this-run"})) == 1
    finally:
        for c in (leftover, live):
            try:
                c.remove(force=True, v=True)
            except Exception:
                pass


# -- drills under the Docker runtime ------------------------------------------------------------------
def _drills(tmp_path: Path, image: str, select: str, *extra: str, timeout: float = 600) -> list[dict[str, Any]]:
    jsonl = tmp_path / "results.jsonl"
    cmd = [sys.executable, "-m", "pytest", "-m", "drill", "scenarios", "-q", "-k", select, "--agent-image", image,
           "--drill-jsonl", str(jsonl), "--drill-report-dir", str(tmp_path / "reports"),
           "--basetemp", str(tmp_path / "inner"), *extra]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert jsonl.exists(), done.stdout[-3000:] + done.stderr[-2000:]
    results = [json.loads(line) for line in jsonl.read_text().splitlines()]
    for r in results:
        assert r["agent_runtime"] == {"kind": "docker", "image": image}
    return results


CATALOGUE_SAMPLE = {
    "test_process_killed_restarts_without_duplicate_or_lost_work": "process",
    "test_crash_loop_enters_safe_mode": "process",
    "test_primary_rpc_down_fails_over_to_backup": "network",
    "test_leaked_key_swept_to_cold_wallet_and_allowance_revoked": "key",
    "test_state_corrupted_rebuilds_from_chain_without_duplicate_proof": "state",
}


@pytest.mark.slow
def test_reference_image_passes_process_network_key_and_state_drills(tmp_path: Path, image: str, client: Any) -> None:
    # a container of a run that was killed before its cleanup: the next run removes it at its first drill
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = client.containers.create(image, SLEEPER, labels={
        LABEL_OWNER: f"{owner_id().split(':')[0]}:{gone.stdout.strip()}:1", LABEL_RUN: f"killed-{tmp_path.name}"})
    results = _drills(tmp_path, image, " or ".join(CATALOGUE_SAMPLE))
    assert _ours(client, **{LABEL_RUN: f"killed-{tmp_path.name}"}) == []
    swept = [e["data"] for r in results for e in r["timeline"] if e["kind"] == "runtime.leftovers_removed"]
    assert any(leftover.id[:12] in d["containers"] for d in swept), swept
    by_name = {r["scenario"]: r for r in results}
    assert set(by_name) == set(CATALOGUE_SAMPLE), sorted(by_name)
    failed = {n: f"{r['status']}: {r['message']}" for n, r in by_name.items() if r["status"] != "passed"}
    assert not failed, failed
    assert {by_name[n]["family"] for n in CATALOGUE_SAMPLE} == set(CATALOGUE_SAMPLE.values())
    assert by_name["test_crash_loop_enters_safe_mode"]["restarts"] >= 3
    starts = [e for r in results for e in r["timeline"] if e["kind"] == "agent.start"]
    assert starts and all(e["data"]["boundary"] == "container" and e["data"]["image"] == image for e in starts)
    assert _ours(client, **{LABEL_OWNER: owner_id()}) == []


@pytest.mark.slow
@pytest.mark.parametrize("defect, drill", [
    ("no_crash_report", "test_process_killed_reports_process_crash"),
    ("no_safe_mode", "test_crash_loop_enters_safe_mode"),
])
def test_process_defects_are_caught_under_docker(tmp_path: Path, image: str, defect: str, drill: str) -> None:
    (result,) = _drills(tmp_path, image, drill, "--agent-env", f"AGENT_DEFECTS={defect}")
    assert result["status"] == "failed", (result["status"], result["message"])
    assert result["category"] in ("missed_detection", "late_containment", "no_recovery", "invariant_broken"), result


@pytest.mark.slow
def test_ctrl_c_mid_docker_drill_leaves_no_container_volume_or_process(tmp_path: Path, image: str, client: Any) -> None:
    run_id = f"ctrl-c-{os.getpid()}-{tmp_path.name}"
    volumes_before = {v.id for v in client.volumes.list()}
    cmd = [sys.executable, "-m", "pytest", "-m", "drill", "scenarios", "-q", "-k", "test_crash_loop_enters_safe_mode",
           "--agent-image", image, "--drill-run-id", run_id, "--drill-report-dir", str(tmp_path / "reports"),
           "--basetemp", str(tmp_path / "inner")]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    pids: set[int] = set()
    try:
        def restarted() -> bool:  # mid-drill: the crash loop has killed the first container already
            for c in _agents(client, **{LABEL_RUN: run_id}):
                c.reload()
                if c.attrs["State"]["Pid"]:
                    pids.add(c.attrs["State"]["Pid"])
            return len(pids) >= 2 or proc.poll() is not None

        _wait_for(restarted, 120, "the drill's second container")
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "KeyboardInterrupt" in out, out[-3000:]
    assert _ours(client, **{LABEL_RUN: run_id}) == [], "a container of the interrupted run is left"
    assert {v.id for v in client.volumes.list()} <= volumes_before, "the interrupted run left a volume"
    assert not [p for p in pids if _alive(p)], "a process of the agent's containers survived"
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # nothing left of the inner pytest's process group


# -- the same mistakes, caught once at the start of a pytest run ------------------------------------
def _pytest_start(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pytest", "-m", "drill", "scenarios/test_smoke.py", "-q",
           "--drill-report-dir", str(tmp_path / "reports"), "--basetemp", str(tmp_path / "inner"), *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("args, env, message", [
    (["--agent-runtime", "docker"], {}, "--agent-runtime docker needs --agent-image IMAGE"),
    (["--agent-image", "x:1", "--agent-runtime", "process"], {}, "runs the agent under Docker, but --agent-runtime process"),
    (["--agent-limit", "cpus=1"], {}, "--agent-limit cpus=... needs the Docker runtime"),
    (["--agent-image", "x:1"], {"DOCKER_HOST": "unix:///nonexistent/docker.sock"},
     "drill(s) selected but no Docker daemon answers at unix:///nonexistent/docker.sock"),
])
def test_runtime_mistakes_stop_pytest_at_start(tmp_path: Path, args: list[str], env: dict[str, str], message: str) -> None:
    done = _pytest_start(tmp_path, *args, env=env)
    assert done.returncode == 4, done.stdout + done.stderr
    assert message in done.stderr, done.stderr


def test_missing_image_stops_pytest_at_start(tmp_path: Path, client: Any) -> None:
    done = _pytest_start(tmp_path, "--agent-image", "agent-drills/no-such-agent:0")
    assert done.returncode == 4, done.stdout + done.stderr
    assert "1 drill(s) selected but the agent image 'agent-drills/no-such-agent:0' is not on this machine's" in done.stderr
