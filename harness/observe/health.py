"""Polls the agent's ``GET /health`` and records what changes.

A ``health`` event is recorded when status, mode or rpc change (not on every poll), and
``health.unreachable`` when the endpoint stops answering (once per outage).
"""

from __future__ import annotations

import threading
from typing import Any

from harness import clock
from harness.observe.control import control_request
from harness.observe.timeline import Timeline

__all__ = ["HealthPoller"]


class HealthPoller:
    def __init__(self, control_url: str, timeline: Timeline, *, interval: float = 0.2, timeout: float = 1.0) -> None:
        self.control_url = control_url.rstrip("/")
        self.timeline = timeline
        self.interval = interval
        self.timeout = timeout
        #: the last answer (None until the first one, or while unreachable)
        self.last: dict[str, Any] | None = None
        self.last_t: float | None = None
        self.reachable = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="health-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 2)

    def poll_once(self) -> dict[str, Any] | None:
        try:
            status, body = control_request(self.control_url, "/health", token=None, method="GET", timeout=self.timeout)
            if status != 200 or not isinstance(body, dict):
                raise ValueError(f"HTTP {status}")
        except (OSError, ValueError) as exc:
            if self.reachable or self.last_t is None:
                self.timeline.record("health.unreachable", "health", error=type(exc).__name__)
            self.reachable = False
            self.last = None
            self.last_t = clock.now()
            return None
        prev = self.last
        self.last = body
        self.last_t = clock.now()
        changed = prev is None or any(prev.get(k) != body.get(k) for k in ("status", "mode", "rpc"))
        self.reachable = True
        if changed:
            # The whole answer but the fields that change on every poll; agents may add their own.
            data = {k: v for k, v in body.items() if k not in ("ts", "last_block")}
            data.setdefault("status", None)
            data.setdefault("mode", None)
            data.setdefault("rpc", None)
            self.timeline.record("health", "health", **data)
        return body

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(self.interval)
