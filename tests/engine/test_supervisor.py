"""The agent runtime with real processes: restarts with backoff, exits by code and by signal, reclamation."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.observe.timeline import Timeline
from harness.runtime.base import RestartPolicy
from harness.runtime.supervisor import AgentRuntime

FAST = RestartPolicy(initial_backoff=0.05, max_backoff=0.2, healthy_after=60, max_restarts=3)


def runtime(tmp_path: Path, code: str, policy: RestartPolicy = FAST, boundary: str = "auto") -> AgentRuntime:
    return AgentRuntime([sys.executable, "-c", code], env=dict(os.environ), timeline=Timeline(),
                        output_path=tmp_path / "out.log", policy=policy, boundary=boundary)


def proc_state(pid: int) -> str:
    """The process's state letter from /proc, "gone" if it does not exist."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "gone"


def settles(pid: int, states: set[str], timeout: float = 5.0) -> str:
    """Poll until the process is in one of ``states`` (signals are delivered asynchronously)."""
    deadline = time.monotonic() + timeout
    state = proc_state(pid)
    while state not in states and time.monotonic() < deadline:
        time.sleep(0.02)
        state = proc_state(pid)
    return state


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_exiting_agent_is_restarted_until_max_restarts(tmp_path: Path) -> None:
    rt = runtime(tmp_path, "print('hello', flush=True); raise SystemExit(3)")
    rt.start()
    try:
        assert rt.timeline.wait_for(lambda e: e.kind == "agent.gave_up", timeout=20) is not None
    finally:
        rt.stop()
    exits = rt.timeline.events("agent.exit")
    assert [e.data["code"] for e in exits] == [3, 3, 3, 3]
    backoffs = [e.data["backoff"] for e in rt.timeline.events("agent.restart")]
    assert backoffs == [0.05, 0.1, 0.2]  # doubling, capped
    assert rt.restarts == 3 and rt.starts == 4
    assert rt.output_text().count("hello") == 4


def test_kill_is_recorded_with_the_signal_and_the_agent_comes_back(tmp_path: Path) -> None:
    rt = runtime(tmp_path, "import time; time.sleep(60)")
    rt.start()
    try:
        first = rt.pid
        assert first is not None and rt.kill(signal.SIGKILL)
        assert rt.timeline.wait_for(lambda e: e.kind == "agent.start" and e.data["start"] == 2, timeout=10)
        (exit_ev,) = rt.timeline.events("agent.exit")
        assert exit_ev.data["signal"] == "SIGKILL" and exit_ev.data["code"] is None
        assert rt.pid not in (None, first)
    finally:
        rt.stop()


def test_hold_keeps_the_agent_down_once_then_the_policy_applies_again(tmp_path: Path) -> None:
    rt = runtime(tmp_path, "import time; time.sleep(60)")
    rt.start()
    try:
        rt.hold_next_restart(0.6)
        assert rt.kill(signal.SIGKILL)
        assert rt.timeline.wait_for(lambda e: e.kind == "agent.start" and e.data["start"] == 2, timeout=10)
        assert rt.kill(signal.SIGKILL)
        assert rt.timeline.wait_for(lambda e: e.kind == "agent.start" and e.data["start"] == 3, timeout=10)
    finally:
        rt.stop()
    exits, starts = rt.timeline.events("agent.exit"), rt.timeline.events("agent.start")
    assert [e.data["backoff"] for e in rt.timeline.events("agent.restart")] == [0.6, 0.1]
    assert starts[1].t - exits[0].t >= 0.6  # really down that long
    with pytest.raises(UsageError, match="seconds >= 0"):
        rt.hold_next_restart(-1)


def test_start_hook_runs_after_every_start(tmp_path: Path) -> None:
    rt = runtime(tmp_path, "import time; time.sleep(60)")
    calls: list[int] = []

    def hook(r: AgentRuntime) -> None:
        calls.append(r.starts)
        if r.starts < 3:
            r.kill(signal.SIGKILL)  # what a crash-loop fault does

    rt.set_start_hook(hook)
    rt.start()
    try:
        assert rt.wait_started(3, timeout=10)
    finally:
        rt.stop()
    assert calls[:3] == [1, 2, 3]


def test_freeze_and_thaw(tmp_path: Path) -> None:
    rt = runtime(tmp_path, "import time; time.sleep(60)")
    rt.start()
    try:
        pid = rt.pid
        assert pid and rt.freeze()
        assert settles(pid, {"T"}) == "T"
        assert rt.thaw()
    finally:
        rt.stop()  # a frozen agent would also be stopped: stop sends SIGCONT first


def test_stop_reclaims_the_whole_process_group(tmp_path: Path) -> None:
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    rt = runtime(tmp_path, code, boundary="group")  # the child prints its pid as the host numbers it
    rt.start()
    try:
        assert rt.timeline.wait_for(lambda e: False, timeout=0.05) is None
        for _ in range(100):
            if rt.output_text().strip():
                break
            rt.timeline.wait_for(lambda e: False, timeout=0.05)
        child = int(rt.output_text().split()[0])
        leader = rt.pid
        assert leader and alive(child)
    finally:
        rt.stop(grace=1.0)
    assert not alive(leader)
    # the grandchild went with its group; it may linger as a zombie until init reaps it
    assert settles(child, {"gone", "Z"}) in {"gone", "Z"}
    assert not rt.timeline.events("agent.restart")  # a stop is not a crash


def test_empty_command_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--agent-cmd"):
        AgentRuntime([], env={}, timeline=Timeline(), output_path=tmp_path / "x")


def test_policy_validates() -> None:
    with pytest.raises(UsageError, match="initial_backoff"):
        RestartPolicy(initial_backoff=3, max_backoff=1)
    assert RestartPolicy().delay(10) == 2.0
