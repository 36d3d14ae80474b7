"""The agent under test as a supervised process: started from a command, restarted when it exits.

The harness plays the part systemd or Docker play in production: it starts the agent with the
contract's environment, captures what it prints, and restarts it after every exit with an
exponential backoff (``Restart=always``). Starts, exits and restarts go on the timeline, so a drill
can tell a crash from a kill and count restarts.

The boundary around the agent (recorded as ``boundary`` on every ``agent.start``):

- ``pidns`` (when running as root with ``unshare`` available): the agent runs in a PID namespace of
  its own, under a small init (``_init.py``) that is its PID 1. When the agent exits, the kernel kills
  whatever is left in the namespace, however it detached itself (double fork, ``setsid``, SIGTERM
  ignored). What was left is recorded (``agent.reclaimed``), and a process that had left the agent's
  session is a ``contract.violation``.
- ``group`` otherwise: the agent leads its own process group, which is signalled as a whole; a
  process that leaves the group (``setsid``) is out of reach (docs/sandbox.md).

Under both, the resource limits of ``AgentLimits`` apply (rlimits set by the launcher before the
agent's command runs) and the output goes through ``CappedOutput``.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from harness import clock, procs
from harness.errors import AgentStartError, HarnessError, UsageError
from harness.observe.timeline import Timeline
from harness.runtime.limits import AgentLimits, CappedOutput

__all__ = ["RestartPolicy", "AgentRuntime", "BOUNDARIES", "pidns_available"]

BOUNDARIES = ("auto", "pidns", "group")
_LAUNCHER = str(Path(__file__).with_name("_init.py"))
_AGENT_NSPID = 2  # the agent is the first child of its namespace's init
_EXAMPLES = 5


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


@functools.lru_cache(maxsize=1)
def pidns_available() -> tuple[str, ...] | None:
    """The ``unshare`` prefix that gives the agent a PID namespace here, or None (not root, no unshare)."""
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        return None
    for extra in (["--mount-proc"], []):
        argv = [unshare, "--pid", "--fork", "--kill-child", *extra]
        try:
            done = subprocess.run([*argv, "true"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return tuple(argv)
    return None


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def _ns_field(pid: int, field: str) -> int | None:
    """A ``NSpid``/``NSsid`` value of ``pid`` as its innermost PID namespace numbers it."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[-1])
    except (OSError, ValueError):
        return None
    return None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()[:300].replace(b"\0", b" ").decode(errors="replace").strip()[:200]
    except OSError:
        return ""


def _wait_status(raw: int) -> int:
    """A wait status as a Popen returncode (negative: killed by that signal)."""
    return -os.WTERMSIG(raw) if os.WIFSIGNALED(raw) else os.WEXITSTATUS(raw)


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
        limits: AgentLimits | None = None,
        boundary: str = "auto",
        watch: Sequence[str] = (),
    ) -> None:
        if boundary not in BOUNDARIES:
            raise UsageError(f"AgentRuntime boundary must be one of {', '.join(BOUNDARIES)}, got {boundary!r}")
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
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_hook: Callable[[AgentRuntime], None] | None = None
        self._gave_up = False
        self._hold = 0.0  # the next restart waits at least this long (hold_next_restart)
        self.limits = limits or AgentLimits()
        self._watch = tuple(watch)
        prefix = pidns_available() if boundary in ("auto", "pidns") else None
        if boundary == "pidns" and prefix is None:
            raise UsageError("the pidns boundary needs root and util-linux unshare; use boundary='auto' to fall back "
                             "to a process group")
        self._unshare = prefix
        self.boundary = "pidns" if prefix is not None else "group"
        self._output: CappedOutput | None = None
        self._status_dir: str | None = None
        self._agent_pid: int | None = None  # the agent's own pid (under pidns: not the unshare wrapper's)
        self._init_pid: int | None = None
        self._output_cut_recorded = False
        self.reclaimed = 0  # processes the boundary reclaimed after the agent exited

    # -- public ----------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                return None
            return self._agent_pid if self._agent_pid is not None else self._proc.pid

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
        program = self.argv[0]
        if shutil.which(program, path=self.env.get("PATH", os.defpath)) is None and shutil.which(program) is None:
            raise AgentStartError(
                f"could not start the agent command {self.argv!r}: {program!r} is not an executable program "
                "on the agent's PATH; check --agent-cmd (is the program installed?)"
            )
        self._output = CappedOutput(self.output_path, head=self.limits.output_head, tail=self.limits.output_tail,
                                    watch=self._watch)
        self._status_dir = tempfile.mkdtemp(prefix="agent-drills-runtime-")
        self._stopping.clear()
        try:
            self._spawn()
        except OSError as exc:
            self._output.close()
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
            pid = self.pid or proc.pid
            code = procs.stop_process(proc, grace=grace, name=self.name)
            if running:
                report = self._exit_report()
                if report.get("status") is not None:
                    code = _wait_status(report["status"])
                self.timeline.record("agent.stop", "runtime", pid=pid, **_describe_exit(code if code is not None else 0))
                self._record_leftovers(report, when="stop")
        if self._thread is not None:
            self._thread.join(timeout=grace + 5)
        if self._output is not None:
            self._output.close()
        if self._status_dir is not None:
            shutil.rmtree(self._status_dir, ignore_errors=True)
            self._status_dir = None

    def kill(self, sig: int = signal.SIGKILL) -> bool:
        """Send ``sig`` to the agent's whole process group; False if no process was running.

        Under ``pidns`` that is the agent's own group inside the namespace (the agent, not its init):
        a SIGKILL ends the agent, and its init then ends everything else in the namespace.
        """
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                return False
            target = self._agent_pid if self._agent_pid is not None else proc.pid
            try:
                os.killpg(target, sig)
            except ProcessLookupError:
                return False
        return True

    def census(self) -> dict[str, Any]:
        """Count the processes inside the agent's boundary now and record them (``agent.processes``).

        Under ``pidns``, processes that left the agent's session (they would have escaped a process-group
        kill) are recorded as a ``contract.violation``; they are reclaimed when the agent stops. Also
        records, once, an output cut. Called before a drill's record is taken.
        """
        out: dict[str, Any] = {"boundary": self.boundary}
        with self._lock:
            agent, init = self._agent_pid, self._init_pid
            running = self._proc is not None and self._proc.poll() is None
        if running and self.boundary == "pidns" and agent is not None and init is not None:
            members = self._ns_members(init)
            escaped = [m for m in members if m["sid"] != _AGENT_NSPID]
            out.update(count=len(members), escaped=len(escaped))
            self.timeline.record("agent.processes", "runtime", **out, examples=members[:_EXAMPLES])
            if escaped:
                self.timeline.record("contract.violation", "runtime", what="processes outside the agent's session",
                                     count=len(escaped), examples=escaped[:_EXAMPLES],
                                     problems=[f"{len(escaped)} process(es) left the agent's session (setsid); "
                                               "reclaimed with the agent's PID namespace when it stops"])
        self._record_output_cut()
        return out

    @staticmethod
    def _ns_members(init: int) -> list[dict[str, Any]]:
        try:
            ns = os.readlink(f"/proc/{init}/ns/pid")
        except OSError:
            return []
        members = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == init:
                continue
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") != ns:
                    continue
                if Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
            except (OSError, IndexError):
                continue
            members.append({"pid": int(entry), "sid": _ns_field(int(entry), "NSsid"), "cmd": _cmdline(int(entry))})
        return members

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
        """What the agent printed so far (stdout and stderr of every run), within the output cap."""
        if self._output is not None:
            return self._output.text()
        try:
            return self.output_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def output(self) -> CappedOutput | None:
        return self._output

    def wait_started(self, count: int, timeout: float) -> bool:
        """Wait until the agent has been started ``count`` times in total."""
        deadline = clock.now() + timeout
        while clock.now() < deadline:
            if self.starts >= count:
                return True
            self._stopping.wait(0.05)
        return self.starts >= count

    # -- supervisor ----------------------------------------------------------------------------
    def _launch_argv(self, status: str) -> list[str]:
        argv = [sys.executable, "-I", _LAUNCHER, "--status", status]
        for name, value in self.limits.rlimits().items():
            argv += ["--limit", f"{name}={value}"]
        if self._unshare is not None:
            argv = [*self._unshare, *argv, "--pidns"]
            if self.limits.processes:
                argv += ["--max-procs", str(self.limits.processes)]
        return [*argv, "--", *self.argv]

    def _spawn(self) -> None:
        assert self._output is not None
        status = os.path.join(self._status_dir or tempfile.gettempdir(), f"start-{self.starts + 1}.jsonl")
        proc = procs.spawn(self._launch_argv(status), env=self.env, cwd=self.cwd, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        reader = threading.Thread(target=self._pump, args=(proc.stdout,), name=f"output:{self.name}", daemon=True)
        reader.start()
        init = agent = None
        if self._unshare is not None:
            init, agent = self._find_agent(proc)
        with self._lock:
            self._proc = proc
            self._init_pid, self._agent_pid = init, agent
            self.starts += 1
            self._started_at = clock.now()
        self.timeline.record("agent.start", "runtime", pid=agent or proc.pid, start=self.starts,
                             boundary=self.boundary, limits=self.limits.to_json())

    @staticmethod
    def _find_agent(proc: subprocess.Popen[Any], timeout: float = 5.0) -> tuple[int | None, int | None]:
        """The init's and the agent's pids under the unshare wrapper (None when the agent is already gone)."""
        deadline = clock.now() + timeout
        while clock.now() < deadline and proc.poll() is None:
            for init in _children(proc.pid):
                for child in _children(init):
                    # once it leads its session, its process group can be signalled
                    if _ns_field(child, "NSpid") == _AGENT_NSPID and _ns_field(child, "NSsid") == _AGENT_NSPID:
                        return init, child
            threading.Event().wait(0.005)
        return None, None

    def _pump(self, stream: IO[bytes]) -> None:
        """Copy one run's output into the capped output (until every writer has closed it)."""
        try:
            while chunk := stream.read1(65536):  # type: ignore[attr-defined]
                assert self._output is not None
                self._output.feed(chunk)
                if self._output.truncated and not self._output_cut_recorded:
                    self._record_output_cut()
        except (OSError, ValueError):
            pass
        finally:
            stream.close()

    def _record_output_cut(self) -> None:
        out = self._output
        if out is None or not out.truncated or self._output_cut_recorded:
            return
        self._output_cut_recorded = True
        self.timeline.record("contract.violation", "runtime", what="output over the cap", count=1,
                             problems=[f"the agent printed more than {out.head + out.tail} bytes; the middle was cut "
                                       f"(first {out.head} and last {out.tail} bytes kept)"],
                             **out.summary())

    def _exit_report(self) -> dict[str, Any]:
        """What the init wrote when the agent exited (empty under the group boundary or if it was killed)."""
        if self._status_dir is None:
            return {}
        path = os.path.join(self._status_dir, f"start-{self.starts}.jsonl")
        report: dict[str, Any] = {}
        try:
            lines = Path(path).read_text().splitlines()
        except OSError:
            return {}
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("event") == "exit":
                report.update(rec)
            elif rec.get("event") == "limit":
                report["limit"] = rec
        return report

    def _record_leftovers(self, report: dict[str, Any], *, when: str) -> None:
        limit = report.get("limit")
        if limit:
            self.timeline.record("contract.violation", "runtime", what="process limit", count=limit.get("count"),
                                 examples=limit.get("examples", []),
                                 problems=[f"the agent ran {limit.get('count')} processes, over the limit of "
                                           f"{limit.get('max')}; it was killed"])
        left = int(report.get("left") or 0)
        if not left:
            return
        self.reclaimed += left
        self.timeline.record("agent.reclaimed", "runtime", when=when, count=left, examples=report.get("examples", []))
        escaped = int(report.get("escaped_count") or 0)
        if escaped:
            self.timeline.record("contract.violation", "runtime", what="processes outside the agent's session",
                                 count=escaped, examples=report.get("escaped", []),
                                 problems=[f"{escaped} process(es) had left the agent's session and outlived it "
                                           f"at its {when}; the PID namespace reclaimed them"])

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
            report = self._exit_report()
            code = _wait_status(report["status"]) if report.get("status") is not None else proc.returncode
            self.timeline.record("agent.exit", "runtime", pid=self._agent_pid or proc.pid, ran=round(ran, 3),
                                 **_describe_exit(code))
            self._record_leftovers(report, when="exit")
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
