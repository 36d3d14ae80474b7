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

The network (recorded as ``network`` on every ``agent.start``): ``isolated`` runs the agent, through
``nsenter``, in a network namespace holding only loopback that ``netbridge.NetBridge`` bridges to the
ports of a ``BridgePlan`` (the contract's endpoints); the namespace lives from ``start`` to ``stop``,
across restarts. ``host`` leaves the agent on the machine's network.
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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from harness import clock, procs
from harness.errors import AgentStartError, HarnessError, UsageError
from harness.observe.timeline import Timeline
from harness.runtime.base import RestartPolicy, Supervised
from harness.runtime.limits import AgentLimits, CappedOutput
from harness.runtime.netbridge import BridgePlan, NetBridge, choose_network, isolation_unavailable

__all__ = ["AgentRuntime", "BOUNDARIES", "pidns_available"]

BOUNDARIES = ("auto", "pidns", "group")
_LAUNCHER = str(Path(__file__).with_name("_init.py"))
_AGENT_NSPID = 2  # the agent is the first child of its namespace's init
_EXAMPLES = 5


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


class AgentRuntime(Supervised):
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
        network: str = "auto",
        bridge: BridgePlan | None = None,
    ) -> None:
        if boundary not in BOUNDARIES:
            raise UsageError(f"AgentRuntime boundary must be one of {', '.join(BOUNDARIES)}, got {boundary!r}")
        if not argv:
            raise UsageError("the agent command is empty; pass --agent-cmd \"python -m my_agent\" or set drill_agent_cmd")
        super().__init__(timeline=timeline, output_path=output_path, policy=policy, name=name)
        self.argv = list(argv)
        self.env = dict(env)
        self.cwd = cwd
        self._proc: subprocess.Popen[Any] | None = None
        self.limits = limits or AgentLimits()
        self._watch = tuple(watch)
        prefix = pidns_available() if boundary in ("auto", "pidns") else None
        if boundary == "pidns" and prefix is None:
            raise UsageError("the pidns boundary needs root and util-linux unshare; use boundary='auto' to fall back "
                             "to a process group")
        self._unshare = prefix
        self.boundary = "pidns" if prefix is not None else "group"
        self.network = choose_network(network, bridge, isolation_unavailable)
        self._plan = bridge
        self._bridge: NetBridge | None = None
        self._status_dir: str | None = None
        self._agent_pid: int | None = None  # the agent's own pid (under pidns: not the unshare wrapper's)
        self._init_pid: int | None = None
        self.reclaimed = 0  # processes the boundary reclaimed after the agent exited
        self._violations: dict[str, int] = {}  # what -> count, as recorded on the timeline

    # -- public ----------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                return None
            return self._agent_pid if self._agent_pid is not None else self._proc.pid

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
        if self.network == "isolated":
            assert self._plan is not None
            self._bridge = NetBridge(self._plan, timeline=self.timeline, name=self.name)
            try:
                self._bridge.start()
            except BaseException:
                self._output.close()
                raise
        try:
            self._spawn()
        except OSError as exc:
            self._output.close()
            if self._bridge is not None:
                self._bridge.stop()
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
        if self._bridge is not None:
            self._bridge.record_totals()
            self._bridge.stop()
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
                self._note_violation("processes outside the agent's session", len(escaped), most=True)
                self.timeline.record("contract.violation", "runtime", what="processes outside the agent's session",
                                     count=len(escaped), examples=escaped[:_EXAMPLES],
                                     problems=[f"{len(escaped)} process(es) left the agent's session (setsid); "
                                               "reclaimed with the agent's PID namespace when it stops"])
        self._record_output_cut()
        if self._bridge is not None:
            self._bridge.record_totals()
        return out

    @property
    def violations(self) -> dict[str, int]:
        """Contract violations the runtime and the network bridge saw, by what was done (for the record)."""
        out = dict(self._violations)
        if self._bridge is not None:
            out.update(self._bridge.violations)
        return out

    def _note_violation(self, what: str, count: int, *, most: bool = False) -> None:
        """Count a violation: added up, or (``most``) the largest count seen, for one that is re-counted
        (the same escaped processes are seen by the census and again when the agent exits)."""
        before = self._violations.get(what, 0)
        self._violations[what] = max(before, count) if most else before + count

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

    # -- supervisor ----------------------------------------------------------------------------
    def _launch_argv(self, status: str) -> list[str]:
        argv = [sys.executable, "-I", _LAUNCHER, "--status", status]
        for name, value in self.limits.rlimits().items():
            argv += ["--limit", f"{name}={value}"]
        if self._unshare is not None:
            argv = [*self._unshare, *argv, "--pidns"]
            if self.limits.processes:
                argv += ["--max-procs", str(self.limits.processes)]
        if self._bridge is not None:
            argv = [shutil.which("nsenter") or "nsenter", f"--net={self._bridge.netns_path}", *argv]
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
                             boundary=self.boundary, network=self.network, limits=self.limits.to_json())

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
                if self._output.truncated and not self._output.cut_recorded:
                    self._record_output_cut()
        except (OSError, ValueError):
            pass
        finally:
            stream.close()

    def _record_output_cut(self) -> None:
        if self._output is not None and self._output.record_cut(self.timeline):
            self._note_violation("output over the cap", 1, most=True)

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
            self._note_violation("process limit", 1)
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
            self._note_violation("processes outside the agent's session", escaped, most=True)
            self.timeline.record("contract.violation", "runtime", what="processes outside the agent's session",
                                 count=escaped, examples=report.get("escaped", []),
                                 problems=[f"{escaped} process(es) had left the agent's session and outlived it "
                                           f"at its {when}; the PID namespace reclaimed them"])

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
            next_streak = self._restart_after(ran, streak)
            if next_streak is None:
                return
            streak = next_streak
