"""What both runtimes of the agent share: the harness's own restart policy and its bookkeeping.

The process runtime (``supervisor.AgentRuntime``) and the Docker one (``docker.DockerRuntime``)
differ in how they start, stop and watch one run of the agent; what happens between runs is the
same, so that a kill, a freeze or a crash loop means the same drill under either: after an exit the
supervisor waits the policy's backoff (longer if a fault asked to hold the agent down), counts the
restart, starts the next run and calls the start hook, or gives up after ``max_restarts``.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import clock
from harness.errors import UsageError
from harness.observe.timeline import Timeline
from harness.runtime.limits import CappedOutput

__all__ = ["RestartPolicy", "Supervised"]


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


class Supervised:
    """The part of a runtime that outlives one run of the agent. Subclasses provide ``_spawn()``."""

    def __init__(self, *, timeline: Timeline, output_path: Path, policy: RestartPolicy | None, name: str) -> None:
        self.timeline = timeline
        self.output_path = Path(output_path)
        self.policy = policy or RestartPolicy()
        self.name = name
        self.restarts = 0
        self.starts = 0
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_hook: Callable[[Any], None] | None = None
        self._gave_up = False
        self._hold = 0.0  # the next restart waits at least this long (hold_next_restart)
        self._output: CappedOutput | None = None

    def _spawn(self) -> Any:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        """The running agent's pid (None when it is not running)."""
        raise NotImplementedError

    def kill(self, sig: int = signal.SIGKILL) -> bool:
        """Send ``sig`` to the agent; False when it was not running."""
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self.pid is not None

    def freeze(self) -> bool:
        """Stop the agent where it is (SIGSTOP, or the container's freezer): it stays, and does nothing."""
        return self.kill(signal.SIGSTOP)

    def thaw(self) -> bool:
        return self.kill(signal.SIGCONT)

    @property
    def gave_up(self) -> bool:
        return self._gave_up

    @property
    def output(self) -> CappedOutput | None:
        return self._output

    def set_start_hook(self, fn: Callable[[Any], None] | None) -> None:
        """Call ``fn(runtime)`` right after every (re)start; None removes the hook."""
        self._start_hook = fn

    def hold_next_restart(self, seconds: float) -> None:
        """Keep the agent down for at least ``seconds`` after its next exit (then the policy resumes).

        Models an agent that stays down for a while (a host rebooting, a deploy in progress) so
        that work piles up on the chain while nothing is there to see it.
        """
        if seconds < 0:
            raise UsageError(f"hold_next_restart needs seconds >= 0, got {seconds}")
        with self._lock:
            self._hold = float(seconds)

    def output_text(self) -> str:
        """What the agent printed so far (every run's stdout and stderr), within the output cap."""
        if self._output is not None:
            return self._output.text()
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

    def _run_start_hook(self) -> None:
        """Called outside the lock, so a slow hook never blocks kill(), pid or stop()."""
        hook = self._start_hook
        if hook is not None:
            try:
                hook(self)
            except Exception as exc:  # a broken hook must not kill the supervisor
                self.timeline.record("harness.error", "runtime", where="start hook", error=repr(exc))

    def _restart_after(self, ran: float, streak: int) -> int | None:
        """After a run of ``ran`` seconds ended (its exit recorded): back off, start the next run.

        Returns the failing streak to carry on with, or None when supervision ends (stopping, gave
        up, or the restart itself failed).
        """
        if ran >= self.policy.healthy_after:
            streak = 0
        if self.restarts >= self.policy.max_restarts:
            self._gave_up = True
            self.timeline.record("agent.gave_up", "runtime", restarts=self.restarts)
            return None
        delay = self.policy.delay(streak)
        with self._lock:
            delay, self._hold = max(delay, self._hold), 0.0
        if self._stopping.wait(delay):
            return None
        with self._lock:
            if self._stopping.is_set():
                return None
            self.restarts += 1
            self.timeline.record("agent.restart", "runtime", restart=self.restarts, backoff=round(delay, 3))
            try:
                self._spawn()
            except Exception as exc:  # the image gone, the program removed: recorded, supervision ends
                self.timeline.record("harness.error", "runtime", where="restart", error=repr(exc)[:300])
                self._gave_up = True
                return None
        self._run_start_hook()
        return streak + 1
