"""The game day's journal: ``journal.jsonl``, one JSON object a line, every event in the order it happened.

Each line holds ``ts`` (unix seconds), ``event`` and the event's own fields. The runner writes it;
``drill incident`` and the running item append to it from other processes while the game day runs.
Every line is one ``write`` on a file opened with ``O_APPEND``, so lines from all of them never
interleave.

Events: ``gameday.start`` (the plan, the items), ``item.start``, ``approval`` (asked, answer, by
whom), ``status.update`` / ``notice.written`` (appended by the running item's pytest,
``harness.gameday.live``), ``item.end`` (verdict and measured times), ``item.skipped``, ``pause`` /
``resume``, ``lever`` (what pulled it, journaled before the running item is stopped),
``incident.reported`` (a person's report), ``gameday.end`` (the reason: ``completed``, ``lever
file``, ``SIGINT``, ``SIGTERM``, ``stop condition: ...``).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness import clock

__all__ = ["Journal", "append_event", "read_journal"]


def append_event(path: Path, event: str, **fields: Any) -> dict[str, Any]:
    """Append one event to the journal at ``path`` (one atomic write) and return it."""
    entry = {"ts": round(clock.wall(), 3), "event": event, **fields}
    line = (json.dumps(entry, default=str, sort_keys=False) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return entry


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Every event of the journal at ``path``; a line that is not JSON (a torn last line) is left out."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


class Journal:
    """The runner's handle on ``journal.jsonl``; closed once, with the reason the game day ended."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.closed_with: str | None = None

    def write(self, event: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            if self.closed_with is not None:
                raise RuntimeError(f"the journal was closed ({self.closed_with}); {event} came after")
            return append_event(self.path, event, **fields)

    def close(self, reason: str, **fields: Any) -> None:
        with self._lock:
            if self.closed_with is None:
                append_event(self.path, "gameday.end", reason=reason, **fields)
                self.closed_with = reason

    def events(self) -> Iterator[dict[str, Any]]:
        yield from read_journal(self.path)
