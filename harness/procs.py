"""Child processes the harness starts, and their guaranteed reclamation.

Every process the harness spawns (a chain, an agent, an attacker) goes through ``spawn``: it gets
its own process group, so stopping it also stops anything it forked, and it is registered so that an
interpreter exit (normal, exception, Ctrl-C, SIGTERM turned into SystemExit by the plugin) reclaims
whatever a fixture did not. A harness killed outright (SIGKILL: a CI timeout, the OOM killer) runs
none of that, so on Linux each child is also started under ``setpriv --pdeathsig KILL``: the kernel
kills it when the thread that started it dies. (Started from a supervisor thread, a restarted agent
is thus tied to that thread, which lives as long as the supervision.) setpriv rather than a
``preexec_fn`` calling prctl(), which is not safe in a process with threads.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import signal
import subprocess
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import IO, Any

__all__ = ["spawn", "stop_process", "live_children", "reap_all"]

_live: set[subprocess.Popen[Any]] = set()
_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def _orphan_guard() -> tuple[str, ...]:
    """The prefix that ties a child's life to its parent's (util-linux setpriv), or () where there is none."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return ()
    try:
        ok = subprocess.run([setpriv, "--pdeathsig", "KILL", "--", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return (setpriv, "--pdeathsig", "KILL", "--") if ok else ()


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    stdout: IO[Any] | int | None = None,
    stderr: IO[Any] | int | None = None,
    stdin: IO[Any] | int | None = subprocess.DEVNULL,
) -> subprocess.Popen[Any]:
    """Start ``argv`` (never through a shell) in a new session and register it for reclamation."""
    proc = subprocess.Popen(
        [*_orphan_guard(), *argv], env=dict(env) if env is not None else None, cwd=cwd,
        stdout=stdout, stderr=stderr, stdin=stdin, start_new_session=True,
    )
    with _lock:
        _live.add(proc)
    return proc


def _signal_group(proc: subprocess.Popen[Any], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass


def stop_process(proc: subprocess.Popen[Any], *, grace: float = 3.0, name: str = "process") -> int | None:
    """SIGTERM the process group, wait ``grace`` seconds, then SIGKILL it (with a warning).

    Returns the exit code. Safe to call on a process that already exited.
    """
    try:
        if proc.poll() is None:
            _signal_group(proc, signal.SIGCONT)  # a frozen process cannot act on SIGTERM
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                warnings.warn(f"{name} (pid {proc.pid}) ignored SIGTERM for {grace}s; sending SIGKILL", stacklevel=2)
                _signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=10)
        # Children that outlived their leader still belong to the group.
        _signal_group(proc, signal.SIGKILL)
        return proc.returncode
    finally:
        with _lock:
            _live.discard(proc)


def live_children() -> list[int]:
    with _lock:
        return [p.pid for p in _live if p.poll() is None]


def reap_all(grace: float = 1.0) -> None:
    """Stop every registered process (used at interpreter exit)."""
    with _lock:
        procs = list(_live)
    deadline = time.monotonic() + grace
    for p in procs:
        if p.poll() is None:
            _signal_group(p, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=max(0.05, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        _signal_group(p, signal.SIGKILL)
        with _lock:
            _live.discard(p)


atexit.register(reap_all)
