"""Faults on the agent's process: killed once, frozen, or killed at every start.

All three act on the whole process group through the drill's runtime (``ctx.runtime``), which is
the agent's supervisor: after a kill it restarts the agent with its backoff, as systemd's
``Restart=always`` would.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from harness import clock
from harness.errors import ConfigError, HarnessError
from harness.faults._chainops import (
    FaultLoop,
    MiningState,
    check_non_negative,
    check_positive,
    in_addresses,
)
from harness.faults.base import Fault

__all__ = ["CrashLoop", "Freeze", "ProcessKill"]

_SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT, "SIGABRT": signal.SIGABRT}


def _signal_of(fault: str, sig: str) -> signal.Signals:
    try:
        return _SIGNALS[sig]
    except KeyError:
        raise ConfigError(f"{fault}: signal must be one of {', '.join(_SIGNALS)}, not {sig!r}") from None


class ProcessKill(Fault):
    """Kill the agent's process group once (SIGKILL by default); the supervisor restarts it.

    With ``in_flight=True`` the kill waits for the worst moment: blocks come every ``block_time``
    seconds (automine off) and the agent is killed as soon as one of its transactions sits in the
    node's pool, so the restarted agent must pick up a transaction it signed but never saw mined
    (without reusing its nonce or doing the work twice). Heal then restores the node's mining.

    ``blocks_while_down`` mines that many empty blocks right after the kill, so the restarted agent
    finds the escrows opened before it died well behind the chain's head (an agent that resumes
    reading at the head, or a few blocks before it, misses them).

    ``down`` keeps the agent down that many seconds before the supervisor restarts it, so the
    workload opens escrows while nothing watches the chain.
    """

    family = "process"
    name = "process_kill"
    paced = ("block_time",)

    def __init__(self, *, sig: str = "SIGKILL", in_flight: bool = False, block_time: float = 2.0,
                 wait: float = 10.0, blocks_while_down: int = 0, down: float = 0.0) -> None:
        super().__init__()
        if not isinstance(down, (int, float)) or isinstance(down, bool) or down < 0:
            raise ConfigError(f"ProcessKill: down must be a number of seconds >= 0, not {down!r}")
        self.down = float(down)
        if not isinstance(blocks_while_down, int) or blocks_while_down < 0:
            raise ConfigError(f"ProcessKill: blocks_while_down must be an int >= 0, not {blocks_while_down!r}")
        self.blocks_while_down = blocks_while_down
        self.sig = sig
        self._signal = _signal_of("ProcessKill", sig)
        check_positive("ProcessKill", "block_time", block_time)
        check_positive("ProcessKill", "wait", wait)
        self.in_flight = in_flight
        self.block_time = float(block_time)
        self.wait = float(wait)
        self.killed_pid: int | None = None
        self.pending_tx: str | None = None
        self._before: MiningState | None = None
        self._miner: FaultLoop | None = None

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"family": self.family, "signal": self.sig, "pid": self.killed_pid}
        if self.blocks_while_down:
            out["blocks_while_down"] = self.blocks_while_down
        if self.down:
            out["down"] = self.down
        if self.in_flight:
            out.update(in_flight=True, block_time=self.block_time, pending_tx=self.pending_tx)
        return out

    def _inject(self) -> None:
        if self.in_flight:
            self._slow_blocks()
            try:
                self.pending_tx = self._await_agent_tx()
            except Exception:
                self._restore()
                raise
        agent = self.ctx.runtime
        self.killed_pid = agent.pid
        if self.down:
            agent.hold_next_restart(self.down)
        if not agent.kill(self._signal) and self.down:
            agent.hold_next_restart(0)  # nothing was killed: do not delay some later restart
        if self.blocks_while_down:
            # The chain moves on while the agent is down (before the supervisor's first restart):
            # empty blocks, with no time added where the node allows it (anvil_mine's interval 0).
            self.ctx.chain.rpc("anvil_mine", hex(self.blocks_while_down), hex(0))

    def _slow_blocks(self) -> None:
        chain = self.ctx.chain
        self._before = MiningState.capture(chain)
        chain.set_automine(False)
        chain.set_interval_mining(0)
        self._first = True
        self._miner = FaultLoop(f"{self.name}-miner", self.block_time, self._mine, timeline=self.ctx.timeline,
                                source=f"fault:{self.name}").start()

    def _mine(self) -> None:
        if self._first:
            self._first = False
            return
        self.ctx.chain.mine(1)

    def _await_agent_tx(self) -> str:
        chain, ctx = self.ctx.chain, self.ctx
        deadline = clock.now() + self.wait
        while clock.now() < deadline:
            content = chain.txpool_content()
            for section in ("pending", "queued"):
                for sender, by_nonce in (content.get(section) or {}).items():
                    if in_addresses(sender, ctx.agent_addresses) and by_nonce:
                        return str(next(iter(by_nonce.values()))["hash"])
            threading.Event().wait(0.02)
        raise HarnessError(
            f"ProcessKill(in_flight=True): the agent had no transaction in the pool within {self.wait:g}s "
            "(is it working? is the workload opening escrows?)"
        )

    def _restore(self) -> None:
        if self._miner is not None:
            self._miner.stop()
        if self._before is not None:
            self._before.restore(self.ctx.chain)

    def _heal(self) -> None:
        """Restore mining (in_flight); restarting the agent is the supervisor's job."""
        self._restore()


class Freeze(Fault):
    """SIGSTOP the agent's process group; heal sends SIGCONT. The process stays, but does nothing."""

    family = "process"
    name = "freeze"

    def describe(self) -> dict[str, Any]:
        return {"family": self.family}

    def _inject(self) -> None:
        self.ctx.runtime.freeze()

    def _heal(self) -> None:
        self.ctx.runtime.thaw()


class CrashLoop(Fault):
    """Kill the agent ``after`` seconds into each life, ``starts`` lives in all (None: until healed).

    The running instance is killed at once at injection (the first life), each restart by the
    supervisor ``after`` seconds into its life (the next ones). The delay lets each short life leave a trace (the agent can only notice it is crash-looping
    if a start gets far enough to count itself). The running instance is killed at injection too,
    so the loop begins at once.
    """

    family = "process"
    name = "crash_loop"

    def __init__(self, *, starts: int | None = 3, after: float = 0.5, sig: str = "SIGKILL") -> None:
        super().__init__()
        if starts is not None and (not isinstance(starts, int) or starts < 1):
            raise ConfigError(f"CrashLoop: starts must be an int >= 1 or None (until healed), not {starts!r}")
        check_non_negative("CrashLoop", "after", after)
        self.starts = starts
        self.after = float(after)
        self.sig = sig
        self._signal = _signal_of("CrashLoop", sig)
        self.kills = 0
        self._lock = threading.Lock()
        self._timers: list[threading.Timer] = []
        self._armed = False

    @property
    def done(self) -> bool:
        """True once every start it was asked to kill has been killed (the loop has stopped)."""
        return self.starts is not None and self.kills >= self.starts

    def describe(self) -> dict[str, Any]:
        return {"family": self.family, "starts": self.starts, "after": self.after, "signal": self.sig,
                "kills": self.kills}

    def _inject(self) -> None:
        agent = self.ctx.runtime
        self._armed = True
        agent.set_start_hook(self._on_start)
        try:
            self._kill()
        except BaseException:
            self._heal()  # not injected after all: the hook must not outlive the failure
            raise

    def _on_start(self, *_args: Any, **_kw: Any) -> None:
        # Called by the supervisor after each (re)start; must not block it.
        self._schedule_kill()

    def _schedule_kill(self) -> None:
        with self._lock:
            if not self._armed or self.done:
                return
            timer = threading.Timer(self.after, self._kill)
            timer.daemon = True
            self._timers.append(timer)
            timer.start()

    def _kill(self) -> None:
        with self._lock:
            if not self._armed or self.done:
                return
            self.kills += 1
            kill_no = self.kills
        agent = self.ctx.runtime
        pid = agent.pid
        agent.kill(self._signal)
        self.ctx.timeline.record("fault.crash_loop_kill", f"fault:{self.name}", kill=kill_no, pid=pid)

    def _heal(self) -> None:
        with self._lock:
            self._armed = False
            timers, self._timers = self._timers, []
        for t in timers:
            t.cancel()
        self.ctx.runtime.set_start_hook(None)
