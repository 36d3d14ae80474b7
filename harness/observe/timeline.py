"""The drill's history: one ordered list of timestamped events.

Everything seen or done during a drill is appended here (fault injected and healed, alert
received, health changes, agent exits and restarts, chain facts). Checks read it; nothing edits it.
Times are ``harness.clock.now()`` (monotonic); ``wall`` is kept for display.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness import clock

__all__ = ["Event", "Timeline"]


@dataclass(frozen=True)
class Event:
    t: float  # harness monotonic seconds
    wall: float  # unix seconds, for people
    kind: str  # dotted: "fault.inject", "fault.heal", "alert", "health", "agent.exit", "phase", ...
    source: str  # who recorded it: "fault:rpc_outage", "alert-sink", "runtime", ...
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self, t0: float | None = None) -> dict[str, Any]:
        out = {"t": self.t, "wall": self.wall, "kind": self.kind, "source": self.source, "data": dict(self.data)}
        if t0 is not None:
            out["rel"] = round(self.t - t0, 6)
        return out


class Timeline:
    """Thread-safe, append-only list of events, with waiters woken on every append."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._cond = threading.Condition()

    def record(self, kind: str, source: str, /, **data: Any) -> Event:
        ev = Event(t=clock.now(), wall=clock.wall(), kind=kind, source=source, data=data)
        with self._cond:
            self._events.append(ev)
            self._cond.notify_all()
        return ev

    def events(self, kind: str | None = None, *, prefix: str | None = None) -> list[Event]:
        with self._cond:
            evs = list(self._events)
        if kind is not None:
            evs = [e for e in evs if e.kind == kind]
        if prefix is not None:
            evs = [e for e in evs if e.kind.startswith(prefix)]
        return evs

    def first(self, pred: Callable[[Event], bool], *, after: float | None = None) -> Event | None:
        for e in self.events():
            if (after is None or e.t >= after) and pred(e):
                return e
        return None

    def wait_for(self, pred: Callable[[Event], bool], timeout: float, *, after: float | None = None) -> Event | None:
        """Block until an event matching ``pred`` (at or after ``after``) exists, or ``timeout`` passes."""
        deadline = clock.now() + timeout
        with self._cond:
            while True:
                for e in self._events:
                    if (after is None or e.t >= after) and pred(e):
                        return e
                left = deadline - clock.now()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 0.25))

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events())

    def __len__(self) -> int:
        with self._cond:
            return len(self._events)
