"""The agent under test as a Docker container, supervised by the harness like a process.

``DockerRuntime`` has the interface of ``AgentRuntime`` (harness/runtime/supervisor.py), so the
engine, the faults and the checks cannot tell the two apart, and a kill, a freeze or a crash loop
means the same under both:

- the harness's own supervisor thread restarts the agent after every exit, with the same
  ``RestartPolicy`` (Docker's restart policy stays ``no``); every start is a new container from the
  image, the state directory being the part that survives (a bind mount);
- ``kill(sig)`` sends ``sig`` through the API (``docker kill``); ``freeze``/``thaw`` are
  ``docker pause``/``unpause`` (the cgroup freezer: the agent stays, and does nothing);
  ``stop(grace)`` sends SIGTERM, waits ``grace`` seconds, then SIGKILL with a warning (as ``docker stop``);
- the container runs Docker's small init (``--init``) as PID 1, so signals reach the agent as they
  would a process, and when the agent dies everything it started dies with its PID namespace;
- its output (stdout and stderr, attached before the start) goes through the same ``CappedOutput``
  as a process's, so the checks that look for keys in it see it, and reports scrub it.

The agent's network is ``isolated`` (as root; ``auto`` picks it then) or ``host``. Isolated, a small
holder container (``harness.image.HOLDER_IMAGE``, Docker's network ``none``: a namespace holding
only loopback) is started first and ``netbridge.NetBridge`` bridges its namespace to the contract's
endpoints; every container of the agent joins that namespace (``network_mode="container:ID"``), so
the endpoints answer from the agent's first instruction on and across its restarts, and nothing
else on the machine is reachable. On the host's network, every address the agent is given is on
loopback and it reaches them as the harness does (and everything else too).

The container gets the contract's environment, the harness's uid:gid (so the key file,
0600, is readable by it and the state files stay the harness's), the key file's directory
read-only, the contracts file read-only and the state directory read-write, each at the same path
as on the host. ``AgentLimits`` map onto the container: ``memory`` is its cgroup memory limit,
``files`` its ``nofile`` ulimit, ``processes`` its pids limit, ``cpus`` its CPU quota.

Every container carries the labels ``agent-drills.run`` (the run id), ``agent-drills.drill`` and
``agent-drills.owner`` (host, pid and start time of the harness process). The first runtime of a
process removes the containers whose owner is dead (leftovers of a run that crashed or was killed);
each runtime removes its own containers when it stops, and a process exit handler removes whatever
this process still owns (a run interrupted before its cleanup ran).
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import threading
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import clock
from harness.errors import AgentStartError, EnvironmentProblem, HarnessError, UsageError
from harness.observe.timeline import Timeline
from harness.runtime.base import RestartPolicy, Supervised
from harness.runtime.limits import AgentLimits, CappedOutput
from harness.runtime.netbridge import BridgePlan, NetBridge, choose_network

__all__ = ["DockerRuntime", "DockerUnavailable", "ImageMissing", "check_image", "docker_client", "remove_leftovers",
           "LABEL_RUN", "LABEL_DRILL", "LABEL_OWNER", "LABEL_ROLE", "owner_id"]

LABEL_RUN = "agent-drills.run"
LABEL_DRILL = "agent-drills.drill"
LABEL_OWNER = "agent-drills.owner"
#: on the container holding an isolated agent's network namespace: "network" (the agent's carry none)
LABEL_ROLE = "agent-drills.role"
_TAIL_LINES = 15


class DockerUnavailable(EnvironmentProblem):
    """No Docker daemon answers (not installed, not running, or its socket is not ours to use)."""


class ImageMissing(EnvironmentProblem):
    """The agent's image is not on the daemon (the harness never pulls)."""


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def owner_id(pid: int | None = None) -> str:
    """``host:pid:starttime`` of a process: what ``agent-drills.owner`` holds (pid reuse cannot fool it)."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_time(pid) or 0}"


def _owner_alive(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname():
        return True  # another machine's daemon client: not ours to judge
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    return _start_time(pid) == start


def docker_client(timeout: float = 60) -> Any:
    """A client of the local daemon, checked with a ping; ``DockerUnavailable`` says how to start one."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError:  # pragma: no cover - a dependency of agent-drills
        raise DockerUnavailable("the `docker` Python package is missing; reinstall agent-drills") from None
    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except DockerException as exc:
        raise DockerUnavailable(
            f"no Docker daemon answers at {where} ({str(exc)[:160]}); start one (as root: "
            "`dockerd --bridge=none --iptables=false >/var/log/dockerd.log 2>&1 &`, or `systemctl start docker`), "
            "point DOCKER_HOST at it, or drill the agent as a process with --agent-cmd"
        ) from None
    return client


def remove_leftovers(client: Any, *, owner: str | None = None) -> list[str]:
    """Remove agent-drills containers whose owner process is gone (or, with ``owner``, that owner's).

    Returns the ids removed. Their anonymous volumes go with them.
    """
    from docker.errors import APIError

    removed = []
    for c in client.containers.list(all=True, filters={"label": LABEL_OWNER}):
        who = c.labels.get(LABEL_OWNER, "")
        if (owner is not None and who == owner) or (owner is None and not _owner_alive(who)):
            try:
                c.remove(force=True, v=True)
                removed.append(c.id[:12])
            except APIError:  # gone meanwhile (NotFound), or the daemon refused: the next sweep tries again
                continue
    return removed


def check_image(image: str, client: Any = None) -> None:
    """Raise ``DockerUnavailable`` or ``ImageMissing`` (each saying what to do) unless ``image`` is ready."""
    from docker.errors import ImageNotFound

    client = docker_client(timeout=30) if client is None else client
    try:
        client.images.get(image)
    except ImageNotFound:
        raise ImageMissing(
            f"the agent image {image!r} is not on this machine's Docker daemon (the harness never pulls); "
            "build it first: `drill image reference` for the reference agent, `docker build -t IMAGE .` or "
            "`docker import` for your own (docs/sandbox.md), then check the name with `docker images`"
        ) from None


_reaped = threading.Lock()
_reaped_once = False


def _reap_once(client: Any, timeline: Timeline) -> None:
    global _reaped_once
    with _reaped:
        if _reaped_once:
            return
        _reaped_once = True
        removed = remove_leftovers(client)
        atexit.register(_remove_own)
    if removed:
        timeline.record("runtime.leftovers_removed", "runtime", count=len(removed), containers=removed)


def _remove_own() -> None:
    """At interpreter exit: whatever containers this process still owns (best effort)."""
    try:
        remove_leftovers(docker_client(timeout=10), owner=owner_id())
    except Exception:
        pass


def _isolation_unavailable() -> str | None:
    """Why an agent's container cannot get a bridged namespace here (None: it can)."""
    if os.geteuid() != 0:
        return "not running as root (the bridge enters the container's network namespace with setns, CAP_SYS_ADMIN)"
    return None


def _describe_exit(code: int | None) -> dict[str, Any]:
    """Docker reports a death by signal N as exit code 128+N (from its init)."""
    if code is None:
        return {"code": None, "signal": None}
    if 128 < code < 128 + 65:
        try:
            return {"code": None, "signal": signal.Signals(code - 128).name}
        except ValueError:
            pass
    return {"code": code, "signal": None}


@dataclass(eq=False)
class _Run:
    """One container: one life of the agent."""

    container: Any
    started_at: float
    pid: int | None
    exited: threading.Event = field(default_factory=threading.Event)
    code: int | None = None
    oom: bool = False
    threads: list[threading.Thread] = field(default_factory=list)


class DockerRuntime(Supervised):
    """The agent as a container under the harness's supervisor (see the module docstring)."""

    boundary = "container"

    def __init__(
        self,
        image: str,
        *,
        env: Mapping[str, str],
        timeline: Timeline,
        output_path: Path,
        command: Sequence[str] | None = None,
        policy: RestartPolicy | None = None,
        name: str = "agent",
        limits: AgentLimits | None = None,
        watch: Sequence[str] = (),
        read_only: Iterable[Path] = (),
        read_write: Iterable[Path] = (),
        labels: Mapping[str, str] | None = None,
        settle: float = 1.0,
        client: Any = None,
        network: str = "auto",
        bridge: BridgePlan | None = None,
    ) -> None:
        if not image or not str(image).strip():
            raise UsageError("the agent image is empty; pass --agent-image IMAGE (e.g. "
                             "agent-drills/reference-agent:<version>, built with `drill image reference`)")
        super().__init__(timeline=timeline, output_path=output_path, policy=policy, name=name)
        self.image = str(image)
        self.argv = list(command) if command else []
        self.env = dict(env)
        self.limits = limits or AgentLimits()
        self.reclaimed = 0
        self.settle = settle
        self._watch = tuple(w for w in watch if w)
        self._ro = [Path(p) for p in read_only]
        self._rw = [Path(p) for p in read_write]
        self._labels = {LABEL_OWNER: owner_id(), **(labels or {})}
        self._client = client
        self._run: _Run | None = None
        self._paused = False
        self._created: list[str] = []  # every container id this runtime made and has not removed
        self.network = choose_network(network, bridge, _isolation_unavailable)
        self._plan = bridge
        self._bridge: NetBridge | None = None
        self._holder: str | None = None  # the id of the container holding the isolated namespace

    # -- what the engine and the faults use --------------------------------------------------
    @property
    def pid(self) -> int | None:
        """The host pid of the running container's init (None when no container runs)."""
        with self._lock:
            run = self._run
            if run is None or run.exited.is_set():
                return None
            return run.pid

    def start(self) -> None:
        """Check the daemon and the image, start the first container and the supervisor.

        Returns once the first container has run ``settle`` seconds; one that exits sooner is an
        ``AgentStartError`` with its last output lines. On any failure nothing is left behind.
        """
        if self._thread is not None:
            raise HarnessError(f"{self.name} runtime started twice")
        if self._client is None:
            self._client = docker_client()
        _reap_once(self._client, self.timeline)
        check_image(self.image, self._client)
        self._output = CappedOutput(self.output_path, head=self.limits.output_head, tail=self.limits.output_tail,
                                    watch=self._watch)
        self._stopping.clear()
        try:
            if self.network == "isolated":
                self._open_network()
            run = self._spawn()
            run.exited.wait(self.settle)
            if run.exited.is_set():
                raise self._exited_at_once(run)
            self._run_start_hook()
            self._thread = threading.Thread(target=self._supervise, name=f"supervisor:{self.name}", daemon=True)
            self._thread.start()
        except BaseException:
            self.stop(grace=0)
            raise

    def stop(self, grace: float = 3.0) -> None:
        """Stop supervising, stop the container (SIGTERM, ``grace``, SIGKILL), remove every container. Idempotent."""
        self._stopping.set()
        with self._lock:
            run = self._run
        if run is not None and not run.exited.is_set():
            self._docker_stop(run, grace)
            run.exited.wait(grace + 10)
            self.timeline.record("agent.stop", "runtime", pid=run.pid, container=run.container.short_id,
                                 **_describe_exit(run.code))
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=grace + 10)
        for r in [run] if run is not None else []:
            for t in r.threads:
                t.join(timeout=2)
        self._remove_all()
        self._close_network()
        if self._output is not None:
            self._output.close()

    def kill(self, sig: int = signal.SIGKILL) -> bool:
        """Send ``sig`` to the agent through the API; SIGSTOP/SIGCONT pause/unpause. False if nothing ran."""
        from docker.errors import APIError, NotFound

        with self._lock:
            run = self._run
            if run is None or run.exited.is_set():
                return False
            c = run.container
            try:
                if sig == signal.SIGSTOP:
                    c.pause()
                    self._paused = True
                elif sig == signal.SIGCONT:
                    if not self._paused:
                        return True
                    c.unpause()
                    self._paused = False
                else:
                    c.kill(signal=int(sig))
                    if self._paused and sig == signal.SIGKILL:
                        # the freezer holds the signal until the cgroup thaws; then it dies at once
                        self._unpause_quietly(c)
                        self._paused = False
            except NotFound:
                return False
            except APIError as exc:
                if exc.status_code == 409:  # not running (any more), or not paused
                    return False
                raise
        return True

    def census(self) -> dict[str, Any]:
        """Count the processes in the running container (``agent.processes``); record an output cut once."""
        out: dict[str, Any] = {"boundary": self.boundary}
        with self._lock:
            run = self._run
        if run is not None and not run.exited.is_set():
            try:
                top = run.container.top(ps_args="-o pid,comm")
                procs = top.get("Processes") or []
                out["count"] = len(procs)
                self.timeline.record("agent.processes", "runtime", **out,
                                     examples=[{"pid": int(p[0]), "cmd": p[1]} for p in procs[:5]])
            except Exception as exc:  # the container may have gone meanwhile
                out["error"] = type(exc).__name__
        self._record_output_cut()
        if self._bridge is not None:
            self._bridge.record_totals()
        return out

    # -- containers -------------------------------------------------------------------------
    def _create_kwargs(self) -> dict[str, Any]:
        from docker.types import LogConfig, Mount, Ulimit

        mounts = [Mount(target=str(p), source=str(p), type="bind", read_only=True) for p in self._ro]
        mounts += [Mount(target=str(p), source=str(p), type="bind", read_only=False) for p in self._rw]
        kw: dict[str, Any] = dict(
            environment=self.env, network_mode=f"container:{self._holder}" if self._holder else "host", mounts=mounts, init=True, detach=True,
            user=f"{os.getuid()}:{os.getgid()}", labels=dict(self._labels), stdin_open=False, tty=False,
            restart_policy={"Name": "no"},
            log_config=LogConfig(type="json-file", config={"max-size": "10m", "max-file": "1"}),
        )
        if self.argv:
            kw["command"] = list(self.argv)
        lim = self.limits
        if lim.memory:
            kw["mem_limit"] = lim.memory
        if lim.files:
            kw["ulimits"] = [Ulimit(name="nofile", soft=lim.files, hard=lim.files)]
        if lim.processes:
            kw["pids_limit"] = lim.processes
        if lim.cpus:
            kw["nano_cpus"] = int(lim.cpus * 1e9)
        return kw

    def _spawn(self) -> _Run:
        from docker.errors import APIError

        try:
            c = self._client.containers.create(self.image, **self._create_kwargs())
        except APIError as exc:
            raise AgentStartError(f"Docker refused to create the agent's container from {self.image!r}: "
                                  f"{exc.explanation or exc}") from None
        self._created.append(c.id)
        stream = c.attach(stdout=True, stderr=True, stream=True, logs=True)
        try:
            c.start()
        except APIError as exc:
            raise AgentStartError(
                f"the agent's container from {self.image!r} did not start: {exc.explanation or exc}; check the "
                "image's command (or --agent-cmd): is the program in the image, on its PATH?"
            ) from None
        c.reload()
        run = _Run(container=c, started_at=clock.now(), pid=c.attrs.get("State", {}).get("Pid") or None)
        pump = threading.Thread(target=self._pump, args=(stream,), name=f"output:{self.name}", daemon=True)
        waiter = threading.Thread(target=self._wait, args=(run,), name=f"wait:{self.name}", daemon=True)
        run.threads += [pump, waiter]
        pump.start()
        waiter.start()
        with self._lock:
            self._run = run
            self._paused = False
            self.starts += 1
        self.timeline.record("agent.start", "runtime", pid=run.pid, start=self.starts, boundary=self.boundary,
                             network=self.network, limits=self.limits.to_json(), container=c.short_id, image=self.image)
        return run

    def _wait(self, run: _Run) -> None:
        try:
            res = run.container.wait()
            run.code = int(res.get("StatusCode", -1))
            try:
                run.container.reload()
                run.oom = bool(run.container.attrs.get("State", {}).get("OOMKilled"))
            except Exception:
                pass
        except Exception:
            run.code = None  # removed under us (stop), or the daemon went away
        finally:
            run.exited.set()

    def _pump(self, stream: Any) -> None:
        try:
            for chunk in stream:
                if self._output is not None:
                    self._output.feed(chunk)
                    if self._output.truncated and not self._output.cut_recorded:
                        self._record_output_cut()
        except Exception:
            pass

    def _docker_stop(self, run: _Run, grace: float) -> None:
        """SIGTERM through the API, ``grace`` seconds, then SIGKILL with a warning (a frozen one is thawed first)."""
        from docker.errors import APIError, NotFound

        c = run.container
        try:
            if self._paused:
                self._unpause_quietly(c)
                self._paused = False
            if grace > 0:
                c.kill(signal=int(signal.SIGTERM))
                if run.exited.wait(grace):
                    return
                warnings.warn(f"{self.name} (container {c.short_id}) ignored SIGTERM for {grace:g}s; sending SIGKILL",
                              stacklevel=3)
            c.kill(signal=int(signal.SIGKILL))
        except (NotFound, APIError):
            pass  # it exited meanwhile

    @staticmethod
    def _unpause_quietly(c: Any) -> None:
        try:
            c.unpause()
        except Exception:
            pass

    def _remove_container(self, cid: str) -> bool:
        """Remove one of this runtime's containers with its anonymous volumes; False if the daemon refused
        (the container is then left to the next run's sweep of dead owners: it carries the owner label)."""
        from docker.errors import APIError, NotFound

        try:
            self._client.api.remove_container(cid, force=True, v=True)
        except NotFound:
            pass
        except APIError:
            return False
        return True

    def _remove_all(self) -> None:
        self._created = [cid for cid in self._created if not self._remove_container(cid)]

    def _open_network(self) -> None:
        """Start the holder container (network ``none``) and bridge its namespace to the plan's ports."""
        from docker.errors import APIError

        from harness.image import holder_image

        assert self._plan is not None
        image = holder_image(self._client)
        try:
            c = self._client.containers.create(
                image, network_mode="none", labels={**self._labels, LABEL_ROLE: "network"}, detach=True, read_only=True,
                user=f"{os.getuid()}:{os.getgid()}", mem_limit=32 * 1024**2, pids_limit=4,
                restart_policy={"Name": "no"}, log_config={"type": "none", "config": {}})
            self._holder = c.id
            c.start()
            c.reload()
        except APIError as exc:
            raise AgentStartError(f"Docker could not start the container holding the agent's network "
                                  f"({image}): {exc.explanation or exc}") from None
        pid = c.attrs.get("State", {}).get("Pid")
        if not pid:
            raise AgentStartError(f"the container holding the agent's network ({c.short_id}) is not running: "
                                  f"{c.attrs.get('State', {}).get('Error') or c.status}")
        self._bridge = NetBridge(self._plan, timeline=self.timeline, netns=f"/proc/{pid}/ns/net", name=self.name)
        self._bridge.start()

    def _close_network(self) -> None:
        """After the agent's containers are gone: the bridge's totals, the bridge, the holder."""
        if self._bridge is not None:
            self._bridge.record_totals()
            self._bridge.stop()
        if self._holder is not None and self._remove_container(self._holder):
            self._holder = None

    def _remove(self, run: _Run) -> None:
        from docker.errors import APIError, NotFound

        for t in run.threads:
            if t is not threading.current_thread():
                t.join(timeout=2)
        try:
            run.container.remove(force=True, v=True)
        except (NotFound, APIError):
            return
        if run.container.id in self._created:
            self._created.remove(run.container.id)

    def _scrub(self, text: str) -> str:
        low = text.lower()
        for w in self._watch:
            while (i := low.find(w.lower())) >= 0:
                text = text[:i] + "[REDACTED]" + text[i + len(w):]
                low = text.lower()
        return text

    def _exited_at_once(self, run: _Run) -> AgentStartError:
        for t in run.threads:
            t.join(timeout=2)
        tail = self._scrub("\n".join(self.output_text().splitlines()[-_TAIL_LINES:])) or "(it printed nothing)"
        how = _describe_exit(run.code)
        status = f"signal {how['signal']}" if how["signal"] else f"code {how['code']}"
        if run.oom:
            status += ", killed for memory (raise --agent-limit memory=...)"
        return AgentStartError(
            f"the agent's container from {self.image!r} exited at once ({status}) within {self.settle:g}s of its "
            f"start; its last output:\n{tail}\nCheck that the image's command starts the agent and that it "
            f"reads the contract's environment (docs/contract.md); the full output is in {self.output_path}"
        )

    def _record_output_cut(self) -> None:
        if self._output is not None:
            self._output.record_cut(self.timeline)

    @property
    def violations(self) -> dict[str, int]:
        """Contract violations the runtime and the network bridge saw, by what was done (for the record)."""
        out = {"output over the cap": 1} if self._output is not None and self._output.cut_recorded else {}
        if self._bridge is not None:
            out.update(self._bridge.violations)
        return out

    # -- supervisor --------------------------------------------------------------------------
    def _supervise(self) -> None:
        streak = 0
        while True:
            with self._lock:
                run = self._run
            assert run is not None
            while not run.exited.wait(0.05):
                if self._stopping.is_set():
                    return
            if self._stopping.is_set():
                return
            ran = clock.now() - run.started_at
            extra = {"oom": True} if run.oom else {}
            self.timeline.record("agent.exit", "runtime", pid=run.pid, ran=round(ran, 3),
                                 container=run.container.short_id, **_describe_exit(run.code), **extra)
            self._remove(run)
            next_streak = self._restart_after(ran, streak)
            if next_streak is None:
                return
            streak = next_streak
