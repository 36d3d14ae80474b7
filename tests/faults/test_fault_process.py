"""Process and state faults against a real supervised process (a stand-in agent that keeps a state file)."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.faults.process import CrashLoop, Freeze, ProcessKill
from harness.faults.state import StateCorruption, StateLoss
from harness.observe.timeline import Timeline
from harness.runtime.base import RestartPolicy
from harness.runtime.supervisor import AgentRuntime

# Counts its starts in state/starts and writes a heartbeat every 50 ms.
_AGENT = textwrap.dedent("""
    import os, sys, time
    state = sys.argv[1]
    path = os.path.join(state, "starts")
    try:
        n = int(open(path).read())
    except (FileNotFoundError, ValueError):
        n = 0
    open(path, "w").write(str(n + 1))
    print("start", n + 1, "found", sorted(os.listdir(state)), flush=True)
    while True:
        open(os.path.join(state, "beat"), "w").write(str(time.time()))
        time.sleep(0.05)
""")


class _Ctx:
    """The part of the drill context that process faults use: the runtime, the state directory, the timeline."""

    def __init__(self, agent: AgentRuntime, state_dir: Path, timeline: Timeline) -> None:
        self.agent = agent
        self.runtime = agent
        self.state_dir = state_dir
        self.timeline = timeline


@pytest.fixture
def pctx(tmp_path: Path) -> Iterator[_Ctx]:
    state = tmp_path / "state"
    state.mkdir()
    script = tmp_path / "agent.py"
    script.write_text(_AGENT)
    tl = Timeline()
    rt = AgentRuntime([sys.executable, str(script), str(state)], env={"PATH": "/usr/bin:/bin"}, timeline=tl,
                      output_path=tmp_path / "agent.log", policy=RestartPolicy(initial_backoff=0.1, max_backoff=0.4))
    rt.start()
    try:
        yield _Ctx(rt, state, tl)
    finally:
        rt.stop()


def _proc_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]


def test_process_kill_kills_the_group_and_the_supervisor_restarts_it(pctx, until):
    pid = pctx.agent.pid
    kill = ProcessKill().bind(pctx)
    kill.inject()
    until(lambda: pctx.agent.restarts >= 1 and pctx.agent.pid not in (None, pid), 10, "a restart")
    (exit_ev,) = pctx.timeline.events("agent.exit")
    assert exit_ev.data["signal"] == "SIGKILL" and exit_ev.data["pid"] == pid
    assert kill.describe()["pid"] == pid
    assert kill.heal() is not None and kill.heal() is None


def test_freeze_stops_the_process_and_heal_thaws_it(pctx, until):
    pid = pctx.agent.pid
    freeze = Freeze().bind(pctx)
    freeze.inject()
    until(lambda: _proc_state(pid) == "T", 5, "the process stopped")
    freeze.heal()
    until(lambda: _proc_state(pid) in ("S", "R"), 5, "the process running again")
    assert pctx.agent.restarts == 0


def test_crash_loop_kills_each_start_then_lets_it_live(pctx, until, idle):
    loop = CrashLoop(starts=3, after=0.2).bind(pctx)
    loop.inject()
    until(lambda: loop.done, 15, "three lives cut short")
    until(lambda: pctx.agent.restarts >= 3 and pctx.agent.running, 10, "the fourth start")
    idle(0.6)  # longer than `after`: this start is spared
    assert pctx.agent.running and pctx.agent.restarts == 3
    assert [e.data["kill"] for e in pctx.timeline.events("fault.crash_loop_kill")] == [1, 2, 3]
    loop.heal()


def test_crash_loop_until_healed_stops_killing_after_heal(pctx, until, idle):
    loop = CrashLoop(starts=None, after=0.1).bind(pctx)
    loop.inject()
    until(lambda: loop.kills >= 2, 10, "two kills")
    loop.heal()
    kills = loop.kills
    starts = pctx.agent.starts
    until(lambda: pctx.agent.starts > starts, 10, "a start after heal")
    idle(0.5)  # several times `after`: a live hook would have killed it
    assert loop.kills == kills and pctx.agent.running
    assert len(pctx.timeline.events("fault.crash_loop_kill")) == kills


def test_state_corruption_garbles_files_while_down_and_the_agent_restarts_on_them(pctx, until):
    until(lambda: (pctx.state_dir / "beat").exists(), 5, "the agent's first heartbeat")
    corrupt = StateCorruption().bind(pctx)
    corrupt.inject()
    assert sorted(f.split(" ")[0] for f in corrupt.touched) == ["beat", "starts"]
    until(lambda: pctx.agent.restarts >= 1, 10, "the restart")
    # The garbled counter made the restarted agent start again from 1.
    until(lambda: "start 1 found" in pctx.agent.output_text().split("\n", 1)[-1], 5, "the restart reading garbage")


def test_state_loss_empties_the_dir(pctx, until):
    until(lambda: (pctx.state_dir / "starts").exists(), 5, "the state file")
    (pctx.state_dir / "sub").mkdir()
    (pctx.state_dir / "sub" / "x").write_text("x")
    loss = StateLoss().bind(pctx)
    loss.inject()
    assert sorted(loss.touched) == ["beat", "starts", "sub"]
    until(lambda: pctx.agent.restarts >= 1, 10, "the restart")
    until(lambda: pctx.agent.output_text().count("start 1 found ['starts']") == 2,
          5, "the restart finding an empty state dir")


@pytest.mark.parametrize("cls,kw", [(ProcessKill, {"sig": "SIGFOO"}), (CrashLoop, {"starts": 0}),
                                    (CrashLoop, {"after": -1}), (StateCorruption, {"mode": "shred"})])
def test_process_faults_reject_bad_parameters(cls, kw):
    with pytest.raises(ConfigError):
        cls(**kw)


def test_process_kill_in_flight_waits_for_a_pending_tx_of_the_agent(pctx, ctx, until):
    """With in_flight=True the kill lands while an agent transaction waits in the pool."""
    import threading

    from harness.faults._chainops import MiningState, send_signed

    pctx.chain = ctx.chain
    pctx.agent_addresses = ctx.agent_addresses
    before = MiningState.capture(ctx.chain)
    pid = pctx.agent.pid

    def agent_sends() -> None:
        threading.Event().wait(0.5)
        send_signed(ctx.chain, ctx.hot_wallet, {"to": ctx.cold_wallet, "value": 1, "gas": 21_000})

    t = threading.Thread(target=agent_sends)
    t.start()
    kill = ProcessKill(in_flight=True, block_time=5.0).bind(pctx)
    kill.inject()
    t.join()
    assert kill.pending_tx is not None and kill.killed_pid == pid
    assert ctx.chain.rpc("eth_getTransactionReceipt", kill.pending_tx) is None  # still in flight at the kill
    until(lambda: pctx.agent.restarts >= 1, 10, "the restart")
    kill.heal()
    assert MiningState.capture(ctx.chain) == before


def test_process_kill_can_move_the_chain_on_while_the_agent_is_down(pctx, ctx):
    pctx.chain = ctx.chain
    head = ctx.chain.block_number()
    ProcessKill(blocks_while_down=6).bind(pctx).inject()
    assert ctx.chain.block_number() == head + 6
