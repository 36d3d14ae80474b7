"""The alert sink: where the agent POSTs its incident events.

An aiohttp server on a free loopback port, run by its own event loop in a daemon thread. Each event
is stamped with the harness's clock on arrival (MTTD and MTTR are measured from these stamps, never
from the agent's ``ts``), checked against the contract, de-duplicated on
(incident_id, status, severity) since delivery is at least once, and recorded as an ``alert`` event.
A malformed event is answered 400 and recorded as ``contract.violation``.

The sink is bounded against an agent that floods it (``SinkLimits``): a body over ``max_body`` bytes
is answered 413, events beyond ``rate`` per second (with a burst of ``burst``) or beyond
``max_events`` in all are answered 429 and dropped, and a client that takes longer than
``body_timeout`` to send its body is answered 408; idle keep-alive connections are closed after
``idle_timeout``. Each of these is a contract violation: the first few of each sort are recorded
with an example, the rest counted, and ``summarize()`` records the totals.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from harness import clock
from harness.errors import EnvironmentProblem, UsageError
from harness.observe.timeline import Timeline
from harness.vocabulary import INCIDENT_KINDS, INCIDENT_STATUSES, SEVERITIES

__all__ = ["KINDS", "SEVERITIES", "STATUSES", "INCIDENT_ID_RE", "validate_event", "AlertSink", "SinkLimits",
           "severity_rank"]

KINDS = INCIDENT_KINDS
STATUSES = frozenset(INCIDENT_STATUSES)
INCIDENT_ID_RE = re.compile(r"^INC-\d{4}-\d{2}-\d{2}-\d{3,}$")
ALERT_PATH = "/alerts"


@dataclass(frozen=True, kw_only=True)
class SinkLimits:
    """How much the alert sink takes from an agent (see the module docstring)."""

    max_body: int = 16 * 1024  # bytes; an honest incident event is well under 1 KiB
    rate: float = 20.0  # events per second, sustained
    burst: int = 50  # events accepted at once above the rate
    max_events: int = 1000  # in one drill
    body_timeout: float = 5.0  # seconds to send a body
    idle_timeout: float = 10.0  # seconds a keep-alive connection may sit idle
    examples: int = 5  # violations of one sort recorded in full, then only counted

    def __post_init__(self) -> None:
        if self.max_body < 1024 or self.rate <= 0 or self.burst < 1 or self.max_events < 1:
            raise UsageError(f"SinkLimits needs max_body >= 1024, rate > 0, burst >= 1, max_events >= 1; got {self!r}")


def severity_rank(severity: str) -> int:
    """1 for SEV-1 (most severe) .. 4 for SEV-4; 99 for anything else."""
    return SEVERITIES.index(severity) + 1 if severity in SEVERITIES else 99


def validate_event(body: Any) -> tuple[dict[str, Any] | None, list[str]]:
    """Check an incident event against the contract; return (normalised event, problems)."""
    if not isinstance(body, dict):
        return None, [f"the body must be a JSON object, got {type(body).__name__}"]
    problems: list[str] = []
    required: dict[str, type | tuple[type, ...]] = {
        "incident_id": str, "kind": str, "severity": str, "status": str, "summary": str, "ts": (int, float),
    }
    for key, typ in required.items():
        if key not in body:
            problems.append(f"missing field {key!r}")
        elif not isinstance(body[key], typ) or isinstance(body[key], bool):
            problems.append(f"field {key!r} has type {type(body[key]).__name__}")
    if isinstance(body.get("incident_id"), str) and not INCIDENT_ID_RE.match(body["incident_id"]):
        problems.append(f"incident_id {body['incident_id']!r} is not of the form INC-YYYY-MM-DD-NNN")
    if isinstance(body.get("kind"), str) and body["kind"] not in KINDS:
        problems.append(f"kind {body['kind']!r} is not one of {', '.join(sorted(KINDS))}")
    if isinstance(body.get("severity"), str) and body["severity"] not in SEVERITIES:
        problems.append(f"severity {body['severity']!r} is not one of {', '.join(SEVERITIES)}")
    if isinstance(body.get("status"), str) and body["status"] not in STATUSES:
        problems.append(f"status {body['status']!r} is not one of {', '.join(sorted(STATUSES))}")
    actions = body.get("actions", [])
    if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
        problems.append("field 'actions' must be a list of strings")
    details = body.get("details", {})
    if not isinstance(details, dict):
        problems.append("field 'details' must be an object")
    if problems:
        return None, problems
    event = {k: body[k] for k in required}
    event["actions"] = list(actions)
    event["details"] = dict(details)
    return event, []


class AlertSink:
    """HTTP receiver of incident events; ``start()`` returns the URL to give the agent."""

    def __init__(self, timeline: Timeline, *, host: str = "127.0.0.1", port: int = 0,
                 limits: SinkLimits | None = None) -> None:
        self.timeline = timeline
        self.limits = limits or SinkLimits()
        self.accepted = 0
        self.dropped: dict[str, int] = {}  # violation sort -> count
        self._tokens = float(self.limits.burst)
        self._refilled = clock.now()
        self.host = host
        self.port = port
        self.url = ""
        self.duplicates = 0
        self.violations = 0
        self._seen: set[tuple[str, str, str]] = set()
        self._listeners: list[Callable[[Mapping[str, Any]], None]] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def add_listener(self, fn: Callable[[Mapping[str, Any]], None]) -> None:
        """Call ``fn(event)`` for every new (non-duplicate) valid event, from the sink's thread."""
        self._listeners.append(fn)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> str:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # reported to start() below
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._runner.cleanup() if self._runner else asyncio.sleep(0))
                loop.close()

        self._thread = threading.Thread(target=run, name="alert-sink", daemon=True)
        self._thread.start()
        if not ready.wait(timeout) or failure:
            raise EnvironmentProblem(f"the alert sink did not start on {self.host}:{self.port}: {failure[:1]}")
        return self.url

    async def _serve(self) -> None:
        app = web.Application(client_max_size=self.limits.max_body)
        app.router.add_post(ALERT_PATH, self._handle)
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app, access_log=None, keepalive_timeout=self.limits.idle_timeout)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        self.port = sock.getsockname()[1]
        self.url = f"http://{self.host}:{self.port}{ALERT_PATH}"

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._loop = None

    # -- handling -------------------------------------------------------------------------------
    def _take_token(self) -> bool:
        now = clock.now()
        self._tokens = min(float(self.limits.burst), self._tokens + (now - self._refilled) * self.limits.rate)
        self._refilled = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    async def _handle(self, request: web.Request) -> web.Response:
        lim = self.limits
        if request.content_length is not None and request.content_length > lim.max_body:
            return self._drop("oversized event", 413, f"the body is {request.content_length} bytes, over the "
                              f"sink's limit of {lim.max_body}")
        if self.accepted >= lim.max_events:
            return self._drop("too many events", 429, f"the drill already took {lim.max_events} events")
        if not self._take_token():
            return self._drop("events over the rate", 429, f"more than {lim.rate:g} events/s (burst {lim.burst})")
        try:
            raw = await asyncio.wait_for(request.read(), timeout=lim.body_timeout)
        except web.HTTPRequestEntityTooLarge:
            return self._drop("oversized event", 413, f"the body is over the sink's limit of {lim.max_body} bytes")
        except asyncio.TimeoutError:
            return self._drop("slow client", 408, f"the body took longer than {lim.body_timeout:g} s to arrive")
        self.accepted += 1
        try:
            body = json.loads(raw)
        except ValueError as exc:
            return self._reject([f"the body is not JSON: {exc}"], raw[:200].decode(errors="replace"))
        event, problems = validate_event(body)
        if event is None:
            return self._reject(problems, body)
        key = (event["incident_id"], event["status"], event["severity"])
        with self._lock:
            duplicate = key in self._seen
            if duplicate:
                self.duplicates += 1
            else:
                self._seen.add(key)
        if duplicate:
            return web.json_response({"ok": True, "duplicate": True})
        self.timeline.record("alert", "alert-sink", **event)
        for fn in list(self._listeners):
            try:
                fn(event)
            except Exception as exc:  # a listener's bug is the harness's, not the agent's
                self.timeline.record("harness.error", "alert-sink", where="listener", error=repr(exc))
        return web.json_response({"ok": True})

    def _reject(self, problems: list[str], body: Any) -> web.Response:
        with self._lock:
            self.violations += 1
            n = self.dropped["malformed event"] = self.dropped.get("malformed event", 0) + 1
        if n <= self.limits.examples:
            text = body if isinstance(body, str) else json.dumps(body, default=str)
            shown: Any = body if len(text) <= 2000 else text[:2000] + f"... ({len(text)} characters)"
            self.timeline.record("contract.violation", "alert-sink", what="malformed event", count=n,
                                 problems=problems, body=shown)
        return web.json_response({"error": "; ".join(problems)}, status=400)

    def _drop(self, what: str, status: int, why: str) -> web.Response:
        """Refuse an event unread (too big, too many, too slow): counted, the first few recorded."""
        with self._lock:
            self.violations += 1
            n = self.dropped[what] = self.dropped.get(what, 0) + 1
        if n <= self.limits.examples:
            self.timeline.record("contract.violation", "alert-sink", what=what, count=n, problems=[why])
        headers = {"Retry-After": "1"} if status == 429 else None
        return web.json_response({"error": f"{what}: {why}"}, status=status, headers=headers)

    def summarize(self) -> dict[str, int]:
        """Record the totals of every sort of violation seen (one ``contract.violation``, ``what="alert sink totals"``)."""
        with self._lock:
            totals = dict(self.dropped)
        if totals:
            self.timeline.record("contract.violation", "alert-sink", what="alert sink totals", count=sum(totals.values()),
                                 totals=totals, accepted=self.accepted,
                                 problems=[", ".join(f"{n} {what}" for what, n in sorted(totals.items()))])
        return totals
