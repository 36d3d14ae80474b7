"""What one agent may use: memory, open files, processes, and how much of its output is kept.

``AgentLimits`` is given to ``AgentRuntime``; the pytest option ``--agent-limit NAME=VALUE``
(repeatable) overrides one default at a time. ``CappedOutput`` is where the agent's stdout and
stderr go: the first ``head`` bytes and the last ``tail`` bytes are kept, with one marker line where
the middle was cut, so a flood costs neither memory nor disk beyond the cap.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from harness.errors import UsageError

if TYPE_CHECKING:
    from harness.observe.timeline import Timeline

__all__ = ["AgentLimits", "parse_limits", "CappedOutput"]

_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_SIZE = re.compile(r"^(\d+)\s*([kmg]?)i?b?$", re.IGNORECASE)


def _size(text: str, what: str) -> int:
    m = _SIZE.match(text.strip())
    if not m:
        raise UsageError(f"--agent-limit {what}={text!r} is not a size; write e.g. {what}=4G, {what}=512M or {what}=65536")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


@dataclass(frozen=True, kw_only=True)
class AgentLimits:
    """Per-agent bounds. ``memory``: address space in bytes (RLIMIT_AS); ``files``: open files
    (RLIMIT_NOFILE); ``processes``: processes and threads (RLIMIT_NPROC, and a count of the agent's
    PID namespace when it has one); ``output_head`` / ``output_tail``: bytes of output kept from the
    start and from the end; ``cpus``: CPUs the agent may use (a CPU quota, Docker runtime only).
    0 turns a limit off. Under the Docker runtime ``memory`` bounds the container's memory (cgroup),
    not its address space."""

    memory: int = 4 * 1024**3
    files: int = 4096
    processes: int = 512
    output_head: int = 1024**2
    output_tail: int = 256 * 1024
    cpus: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.cpus, bool) or not isinstance(self.cpus, (int, float)) or not 0 <= self.cpus <= 1024:
            raise UsageError(f"AgentLimits.cpus must be a number of CPUs >= 0 (e.g. 1.5), got {self.cpus!r}")
        for name, value in asdict(self).items():
            if name == "cpus":
                continue
            if not isinstance(value, int) or value < 0:
                raise UsageError(f"AgentLimits.{name} must be an integer >= 0, got {value!r}")
        if self.files and self.files < 64:
            raise UsageError(f"AgentLimits.files={self.files} is too few for any agent to start; give at least 64 (or 0 for no limit)")
        if self.memory and self.memory < 64 * 1024**2:
            raise UsageError(f"AgentLimits.memory={self.memory} is below 64 MiB, too little to start an interpreter; give more (or 0 for no limit)")

    def rlimits(self) -> dict[str, int]:
        """The launcher's ``--limit`` pairs (names of harness/runtime/_init.py)."""
        pairs = {"as": self.memory, "nofile": self.files, "nproc": self.processes}
        return {k: v for k, v in pairs.items() if v}

    def to_json(self) -> dict[str, int]:
        return asdict(self)


_NAMES = {"memory": "memory", "files": "files", "processes": "processes", "output": "output", "cpus": "cpus"}


def parse_limits(lines: Iterable[str], base: AgentLimits | None = None) -> AgentLimits:
    """``memory=2G``, ``files=1024``, ``processes=256``, ``output=4M`` (head; the tail is a quarter of it),
    ``cpus=1.5`` (Docker runtime only)."""
    values: dict[str, Any] = asdict(base or AgentLimits())
    for line in lines:
        name, sep, value = str(line).partition("=")
        name = name.strip().lower()
        if not sep or name not in _NAMES:
            raise UsageError(f"--agent-limit {line!r}: write NAME=VALUE with NAME one of memory, files, processes, "
                             "output, cpus (e.g. --agent-limit memory=2G)")
        if name == "memory":
            values["memory"] = _size(value, name)
        elif name == "cpus":
            try:
                values["cpus"] = float(value)
            except ValueError:
                raise UsageError(f"--agent-limit cpus={value!r} is not a number of CPUs (e.g. cpus=1.5)") from None
        elif name == "output":
            head = _size(value, name)
            values["output_head"], values["output_tail"] = head, head // 4
        else:
            try:
                values[name] = int(value)
            except ValueError:
                raise UsageError(f"--agent-limit {name}={value!r} is not a whole number") from None
    return AgentLimits(**values)


class CappedOutput:
    """The agent's output file, bounded: head kept as written, tail kept in memory, middle counted.

    ``watch`` holds strings (e.g. the drill's private keys, in any case) that must stay visible to the
    checks even when they fall in the cut middle: each occurrence there is kept as a short excerpt
    after the marker, so "no key in the output" still sees a key printed in the middle of a flood.
    """

    EXCERPTS = 20

    def __init__(self, path: Path, *, head: int, tail: int, watch: Iterable[str] = ()) -> None:
        self.path = Path(path)
        self.head = head
        self.tail = tail
        self.total = 0
        self.cut = 0
        self.cut_recorded = False  # record_cut() has recorded the cut on the timeline
        self._watch = [w.lower().encode() for w in watch if w]
        self._overlap = max((len(w) for w in self._watch), default=1) - 1
        self._carry = b""
        self._tail: deque[bytes] = deque()
        self._tail_len = 0
        self._excerpts: list[bytes] = []
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: BinaryIO | None = open(self.path, "ab", buffering=0)
        self._written = self.path.stat().st_size

    @property
    def truncated(self) -> bool:
        return self.cut > 0

    def feed(self, data: bytes) -> None:
        with self._lock:
            self.total += len(data)
            if self._fh is None:
                return
            room = self.head - self._written if self.head else len(data)
            if room > 0:
                self._fh.write(data[:room])
                self._written += min(room, len(data))
                data = data[room:]
            if not data:
                return
            if not self.tail and self.head:
                self._drop(data)
                return
            self._tail.append(data)
            self._tail_len += len(data)
            while self._tail_len - len(self._tail[0]) >= self.tail:
                old = self._tail.popleft()
                self._tail_len -= len(old)
                self._drop(old)
            if self._tail_len > 2 * self.tail:  # one huge chunk: cut inside it
                first = self._tail.popleft()
                keep = self._tail_len - self.tail
                self._drop(first[:keep])
                self._tail.appendleft(first[keep:])
                self._tail_len -= keep

    def _drop(self, data: bytes) -> None:
        self.cut += len(data)
        if not self._watch:
            return
        low = (self._carry + data).lower()
        for w in self._watch:
            start = 0
            while len(self._excerpts) < self.EXCERPTS and (i := low.find(w, start)) >= 0:
                self._excerpts.append(low[max(0, i - 40): i + len(w) + 40])
                start = i + len(w)
        self._carry = low[-self._overlap:] if self._overlap else b""

    def _marker(self) -> bytes:
        line = f"\n[agent-drills: {self.cut} bytes of output cut here; the first {self.head} and the last " \
               f"{self.tail} bytes are kept]\n"
        if self._excerpts:
            line += "[agent-drills: excerpts of the cut part that hold a watched secret:]\n"
            line += "".join(f"[...{e.decode(errors='replace')}...]\n" for e in self._excerpts)
        return line.encode()

    def text(self) -> str:
        """What is kept: the file so far, then (when something was cut) the marker and the tail."""
        with self._lock:
            try:
                body = self.path.read_bytes()
            except FileNotFoundError:
                body = b""
            if self._fh is not None and (self.cut or self._tail):
                body += (self._marker() if self.cut else b"") + b"".join(self._tail)
        return body.decode(errors="replace")

    def record_cut(self, timeline: Timeline) -> bool:
        """Record, once, that the output was cut (a ``contract.violation``); True the time it is recorded."""
        with self._lock:
            if not self.truncated or self.cut_recorded:
                return False
            self.cut_recorded = True
        timeline.record("contract.violation", "runtime", what="output over the cap", count=1,
                        problems=[f"the agent printed more than {self.head + self.tail} bytes; the middle was cut "
                                  f"(first {self.head} and last {self.tail} bytes kept)"],
                        **self.summary())
        return True

    def close(self) -> None:
        """Write the marker and the tail after the head; later output is counted, not kept."""
        with self._lock:
            if self._fh is None:
                return
            if self.cut:
                self._fh.write(self._marker())
            for chunk in self._tail:
                self._fh.write(chunk)
            self._tail.clear()
            self._tail_len = 0
            self._fh.close()
            self._fh = None

    def summary(self) -> Mapping[str, int]:
        return {"bytes": self.total, "cut": self.cut, "kept_head": self.head, "kept_tail": self.tail}
