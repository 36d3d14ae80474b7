"""The agent's launcher: applies the resource limits, then runs the agent as PID 2 of its namespace.

Run by path with ``python -I`` (standard library only, nothing of the harness is imported):

    python -I _init.py --status FILE [--limit NAME=N ...] [--max-procs N] --pidns -- AGENT ARGV...
    python -I _init.py --status FILE [--limit NAME=N ...] -- AGENT ARGV...

With ``--pidns`` it is started by ``unshare --pid --fork --kill-child`` and is PID 1 of a fresh PID
namespace. It forks the agent (PID 2, in a session of its own), forwards the termination signals it
receives to the agent's process group, reaps every orphan the agent leaves behind, and when the agent
exits it writes one JSON line to ``--status`` (the agent's wait status and the processes still in the
namespace) and exits itself. The kernel then kills every process left in the namespace: nothing the
agent started, however it detached itself, outlives it. With ``--max-procs`` it also counts the
namespace's processes and ends the agent, recording why, when there are more.

Without ``--pidns`` it applies the limits and replaces itself with the agent (the process group is
then the only boundary).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time

LIMITS = {"as": resource.RLIMIT_AS, "nofile": resource.RLIMIT_NOFILE, "nproc": resource.RLIMIT_NPROC}
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
AGENT_NSPID = 2  # the first child of a namespace's PID 1
EXAMPLES = 5


def _write(path: str, record: dict) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def _apply_limits(pairs: list[str]) -> None:
    """Set each limit, soft and hard, to the value given (never above the hard limit already in force)."""
    for pair in pairs:
        name, _, value = pair.partition("=")
        _, hard = resource.getrlimit(LIMITS[name])
        want = int(value) if hard == resource.RLIM_INFINITY else min(int(value), hard)
        resource.setrlimit(LIMITS[name], (want, want))


def _my_ns() -> str:
    return os.readlink("/proc/self/ns/pid")


def _status_field(pid: str, field: str) -> str | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return line.split()[-1]  # the innermost namespace's number
    except OSError:
        return None
    return None


def namespace_members() -> list[dict]:
    """Every process of this PID namespace but PID 1 itself: pid and session in the namespace, command."""
    ns = _my_ns()
    me = os.getpid()
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/pid") != ns:
                continue
            with open(f"/proc/{entry}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue  # already dead, waiting to be reaped
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read(300).replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        pid, sid = _status_field(entry, "NSpid"), _status_field(entry, "NSsid")
        if pid is None or pid == "1":
            continue
        out.append({"pid": int(pid), "sid": int(sid) if sid else None, "cmd": cmd[:200]})
    return out


def _exec_agent(argv: list[str]) -> None:
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        sys.stderr.write(f"agent-drills: could not start {argv[0]!r}: {exc}\n")
        os._exit(127)


def _run_as_init(argv: list[str], status: str, max_procs: int | None) -> int:
    for sig in FORWARDED:
        signal.signal(sig, signal.SIG_IGN)  # until the agent exists; blocked below meanwhile
    pid = os.fork()
    if pid == 0:
        for sig in FORWARDED:
            signal.signal(sig, signal.SIG_DFL)
        os.setsid()  # the agent leads its own session and process group, as under systemd
        _exec_agent(argv)

    def forward(signum: int, _frame: object) -> None:
        try:
            os.killpg(pid, signum)
        except OSError:
            pass

    for sig in FORWARDED:
        signal.signal(sig, forward)
    agent_status: int | None = None
    reason = None
    last_count = 0.0
    while agent_status is None:
        try:
            done, st = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if done == pid:
            agent_status = st
            break
        if done:
            continue  # an orphan reaped
        now = time.monotonic()
        if max_procs is not None and now - last_count >= 0.5:
            last_count = now
            members = namespace_members()
            if len(members) > max_procs:
                reason = f"more than {max_procs} processes ({len(members)})"
                _write(status, {"event": "limit", "limit": "processes", "max": max_procs, "count": len(members),
                                "examples": members[:EXAMPLES]})
                os.killpg(pid, signal.SIGKILL)
                continue
        time.sleep(0.02)
    left = namespace_members()
    _write(status, {"event": "exit", "status": agent_status, "reason": reason, "left": len(left),
                    "escaped": [m for m in left if m["sid"] != AGENT_NSPID][:EXAMPLES],
                    "escaped_count": sum(1 for m in left if m["sid"] != AGENT_NSPID),
                    "examples": left[:EXAMPLES]})
    if agent_status is None:
        return 1
    if os.WIFEXITED(agent_status):
        return os.WEXITSTATUS(agent_status)
    return 128 + os.WTERMSIG(agent_status)


def main(args: list[str]) -> int:
    status, limits, pidns, max_procs = "", [], False, None
    while args and args[0] != "--":
        opt = args.pop(0)
        if opt == "--status":
            status = args.pop(0)
        elif opt == "--limit":
            limits.append(args.pop(0))
        elif opt == "--max-procs":
            max_procs = int(args.pop(0))
        elif opt == "--pidns":
            pidns = True
        else:
            sys.stderr.write(f"agent-drills launcher: unknown option {opt!r}\n")
            return 2
    argv = args[1:]
    if not argv:
        sys.stderr.write("agent-drills launcher: no agent command after --\n")
        return 2
    _apply_limits(limits)
    if not pidns:
        _exec_agent(argv)
    return _run_as_init(argv, status, max_procs)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
