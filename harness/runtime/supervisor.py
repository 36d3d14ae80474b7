"""The agent under test as a supervised process: started from a command, restarted when it exits.

The harness plays the part systemd or Docker play in production: it starts the agent with the
contract's environment in its own process group, captures what it prints, and restarts it after
every exit with an exponential backoff (``Restart=always``). Starts, exits and restarts go on the
timeline, so a drill can tell a crash from a kill and count restarts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from harness import clock, procs
from harness.errors import AgentStartError, HarnessError, UsageError
from harness.observe.timeline import Timeline

__all__ = ["RestartPolicy", "AgentRuntime"]


@dataclass(frozen=True, kw_only=True)
class RestartPolicy:
    """When and how fast the supervisor restarts an agent that exited."""

    initial_backoff: float = 0.2  # seconds before the first restart
    max_backoff: float = 2.0  # the backoff doubles up to this
    healthy_after: float = 60.0  # a run this long resets the backoff
    max_restarts: int = 100  # then the supervisor gives up (recorded as agent.gave_up)

    def __post_init__(self) -> None:
        if self.initial_backoff < 0 or self.max_backoff < self.initial_backoff:
            raise UsageError(
                f"RestartPolicy needs 0 <= initial_backoff <= max_backoff, got "
                f"initial_backoff={self.initial_backoff}, max_backoff={self.max_backoff}"
            )
        if self.max_restarts < 0:
            raise UsageError(f"RestartPolicy.max_restarts must be >= 0, got {self.max_restarts}")

    def delay(self, consecutive: int) -> float:
        """Backoff before restart number ``consecutive`` (0-based) of a failing streak."""
        return min(self.initial_backoff * (2**consecutive), self.max_backoff)


def _describe_exit(code: int) -> dict[str, Any]:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return {"code": None, "signal": name}
    return {"code": code, "signal": None}


class AgentRuntime:
    """One agent process under a supervisor thread (see the module docstring)."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        timeline: Timeline,
        output_path: Path,
        policy: RestartPolicy | None = None,
        cwd: str | None = None,
        name: str = "agent",
    ) -> None:
        if not argv:
            raise UsageError("the agent command is empty; pass --agent-cmd \"python -m my_agent\" or set drill_agent_cmd")
        self.argv = list(argv)
        self.env = dict(env)
        self.timeline = timeline
        self.output_path = Path(output_path)
        self.policy = policy or RestartPolicy()
        self.cwd = cwd
        self.name = name
        self.restarts = 0
        self.starts = 0
        self._proc: subprocess.Popen[Any] | None = None
        self._out: IO[bytes] | None = None
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_hook: Callable[[AgentRuntime], None] | None = None
        self._gave_up = False
        self._hold = 0.0  # the next restart waits at least this long (hold_next_restart)

    # -- public ----------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        with self._lock:
            return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    @property
    def gave_up(self) -> bool:
        return self._gave_up

    def set_start_hook(self, fn: Callable[[AgentRuntime], None] | None) -> None:
        """Call ``fn(runtime)`` right after every (re)start; None removes the hook."""
        self._start_hook = fn

    def start(self) -> None:
        """Start the agent and its supervisor thread; returns once the first process is spawned."""
        if self._thread is not None:
            raise HarnessError(f"{self.name} runtime started twice")
        self.output_path.parent.mkdir(parents=True, exist_ok=True)
        self._out = open(self.output_path, "ab", buffering=0)
        self._stopping.clear()
        try:
            self._spawn()
        except OSError as exc:
            self._out.close()
            raise AgentStartError(
                f"could not start the agent command {self.argv!r}: {exc}; check --agent-cmd (is the program installed?)"
            ) from exc
        self._run_start_hook()
        self._thread = threading.Thread(target=self._supervise, name=f"supervisor:{self.name}", daemon=True)
        self._thread.start()

    def stop(self, grace: float = 3.0) -> None:
        """Stop supervising and stop the process group (SIGTERM, grace, SIGKILL). Idempotent."""
        self._stopping.set()
        with self._lock:
            proc = self._proc
        if proc is not None:
            running = proc.poll() is None
            code = procs.stop_process(proc, grace=grace, name=self.name)
            if running:
                self.timeline.record("agent.stop", "runtime", pid=proc.pid, **_describe_exit(code if code is not None else 0))
        if self._thread is not None:
            self._thread.join(timeout=grace + 5)
        if self._out is not None and not self._out.closed:
            self._out.close()

    def kill(self, sig: int = signal.SIGKILL) -> bool:
        """Send ``sig`` to the agent's whole process group; False if no process was running."""
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                return False
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return False
        return True

    def hold_next_restart(self, seconds: float) -> None:
        """Keep the agent down for at least ``seconds`` after its next exit (then the policy resumes).

        Models a process that stays down for a while (a host rebooting, a deploy in progress) so
        that work piles up on the chain while nothing is there to see it.
        """
        if seconds < 0:
            raise UsageError(f"hold_next_restart needs seconds >= 0, got {seconds}")
        with self._lock:
            self._hold = float(seconds)

    def freeze(self) -> bool:
        return self.kill(signal.SIGSTOP)

    def thaw(self) -> bool:
        return self.kill(signal.SIGCONT)

    def output_text(self) -> str:
        """Everything the agent printed so far (stdout and stderr of every run)."""
        try:
            return self.output_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_started(self, count: int, timeout: float) -> bool:
        """Wait until the agent has been started ``count`` times in total."""
        deadline = clock.now() + timeout
        while clock.now() < deadline:
            if self.starts >= count:
                return True
            self._stopping.wait(0.05)
        return self.starts >= count

    # -- supervisor ----------------------------------------------------------------------------
    def _spawn(self) -> None:
        assert self._out is not None
        proc = procs.spawn(self.argv, env=self.env, cwd=self.cwd, stdout=self._out, stderr=subprocess.STDOUT)
        with self._lock:
            self._proc = proc
            self.starts += 1
            self._started_at = clock.now()
        self.timeline.record("agent.start", "runtime", pid=proc.pid, start=self.starts)

    def _run_start_hook(self) -> None:
        """Called outside the lock, so a slow hook never blocks kill(), pid or stop()."""
        hook = self._start_hook
        if hook is not None:
            try:
                hook(self)
            except Exception as exc:  # a broken hook must not kill the supervisor
                self.timeline.record("harness.error", "runtime", where="start hook", error=repr(exc))

    def _supervise(self) -> None:
        streak = 0
        while True:
            with self._lock:
                proc = self._proc
            assert proc is not None
            while proc.poll() is None:
                if self._stopping.wait(0.05):
                    return
            if self._stopping.is_set():
                return
            ran = clock.now() - self._started_at
            self.timeline.record("agent.exit", "runtime", pid=proc.pid, ran=round(ran, 3), **_describe_exit(proc.returncode))
            if ran >= self.policy.healthy_after:
                streak = 0
            if self.restarts >= self.policy.max_restarts:
                self._gave_up = True
                self.timeline.record("agent.gave_up", "runtime", restarts=self.restarts)
                return
            delay = self.policy.delay(streak)
            streak += 1
            with self._lock:
                delay, self._hold = max(delay, self._hold), 0.0
            if self._stopping.wait(delay):
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                self.restarts += 1
                self.timeline.record("agent.restart", "runtime", restart=self.restarts, backoff=round(delay, 3))
                try:
                    self._spawn()
                except OSError as exc:
                    self.timeline.record("harness.error", "runtime", where="restart", error=repr(exc))
                    self._gave_up = True
                    return
            self._run_start_hook()
