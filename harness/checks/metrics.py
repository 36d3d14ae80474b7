"""MTTD, time to contain and MTTR, computed from the timeline alone.

t0 is the first ``drill.inject`` (recorded just before a fault acts), else the first ``fault.inject``; detection is the first ``alert`` of the expected kind at or above
the expected severity arriving at or after t0 (the harness's arrival stamp, never the agent's
``ts``); containment and recovery are the ``drill.contained`` and ``drill.recovered`` events the
drill records when their ground-truth conditions first held.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from harness.observe.alerts import severity_rank
from harness.observe.timeline import Event, Timeline

__all__ = ["IncidentView", "Metrics", "first_alert", "incidents", "compute", "without_probe_alerts"]


@dataclass(frozen=True, kw_only=True)
class IncidentView:
    incident_id: str
    kind: str
    severity: str  # the highest severity it reached
    status: str  # the last status
    first_t: float
    events: tuple[dict[str, Any], ...]

    @property
    def open(self) -> bool:
        return self.status != "resolved"

    def to_json(self, t0: float | None = None) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id, "kind": self.kind, "severity": self.severity, "status": self.status,
            "events": [dict(e, rel=round(e["t"] - t0, 3) if t0 is not None else None) for e in self.events],
        }


@dataclass(frozen=True, kw_only=True)
class Metrics:
    t0: float | None = None
    mttd: float | None = None
    time_to_contain: float | None = None
    mttr: float | None = None
    incident_id: str | None = None
    detected_severity: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "t0": self.t0, "mttd": self.mttd, "time_to_contain": self.time_to_contain, "mttr": self.mttr,
            "incident_id": self.incident_id, "detected_severity": self.detected_severity,
        }


def _matches(e: Event, kind: str | None, min_severity: str) -> bool:
    return e.kind == "alert" and (kind is None or e.data.get("kind") == kind) and severity_rank(
        str(e.data.get("severity"))
    ) <= severity_rank(min_severity)


def first_alert(events: Iterable[Event], kind: str | None, min_severity: str = "SEV-4", *, after: float | None = None) -> Event | None:
    for e in events:
        if (after is None or e.t >= after) and _matches(e, kind, min_severity):
            return e
    return None


def incidents(events: Iterable[Event]) -> list[IncidentView]:
    """The incidents the agent reported, each with its events in arrival order."""
    grouped: dict[str, list[Event]] = {}
    for e in events:
        if e.kind == "alert":
            grouped.setdefault(str(e.data.get("incident_id")), []).append(e)
    out = []
    for inc_id, evs in grouped.items():
        top = min((str(e.data.get("severity")) for e in evs), key=severity_rank)
        out.append(
            IncidentView(
                incident_id=inc_id, kind=str(evs[0].data.get("kind")), severity=top,
                status=str(evs[-1].data.get("status")), first_t=evs[0].t,
                events=tuple({"t": e.t, "status": e.data.get("status"), "severity": e.data.get("severity"),
                              "summary": e.data.get("summary"), "actions": e.data.get("actions"),
                              "details": e.data.get("details")} for e in evs),
            )
        )
    return sorted(out, key=lambda i: i.first_t)


def without_probe_alerts(events: Iterable[Event]) -> list[Event]:
    """The events without the alerts of the end-of-drill probe's manual incident: the harness asked
    for that one, so it is no detection (a drill that expects no incident would otherwise get the
    probe's arrival as its MTTD)."""
    events = list(events)
    probes = {e.data.get("incident_id") for e in events if e.kind == "drill.probe" and e.data.get("incident_id")}
    return [e for e in events if not (e.kind == "alert" and e.data.get("incident_id") in probes)]


def _recovered(ev: Event | None, t0: float) -> float | None:
    """The recovery time the engine measured on chain (older records: when the wait ended)."""
    if ev is None:
        return None
    return float(ev.data["mttr"]) if ev.data.get("mttr") is not None else round(ev.t - t0, 3)


def compute(timeline: Timeline | Iterable[Event], *, kind: str | None = None, min_severity: str = "SEV-4") -> Metrics:
    events = list(timeline.events() if isinstance(timeline, Timeline) else timeline)
    inject = next((e for e in events if e.kind == "drill.inject"), None) or next(
        (e for e in events if e.kind == "fault.inject"), None
    )
    if inject is None:
        return Metrics()
    t0 = inject.t
    # The engine records the values its checks judged (drill.detected, drill.contained,
    # drill.recovered); those win over a reading of the alerts, so the report shows what was checked
    # (not an earlier alert of a lower severity) and containment dated to the evidence that proved it.
    checked = next((e for e in events if e.kind == "drill.detected" and e.t >= t0), None)
    det = first_alert(events, kind, min_severity, after=t0)
    contained = next((e for e in events if e.kind == "drill.contained" and e.t >= t0), None)
    recovered = next((e for e in events if e.kind == "drill.recovered" and e.t >= t0), None)
    if checked is not None and checked.data.get("mttd") is not None:
        mttd: float | None = float(checked.data["mttd"])
        incident_id, severity = checked.data.get("incident_id"), checked.data.get("severity")
    else:
        mttd = round(det.t - t0, 3) if det else None
        incident_id = det.data.get("incident_id") if det else None
        severity = det.data.get("severity") if det else None
    ttc: float | None = None
    if contained is not None:
        ttc = float(contained.data.get("time_to_contain", round(contained.t - t0, 3)))
    return Metrics(
        t0=t0,
        mttd=mttd,
        time_to_contain=ttc,
        mttr=_recovered(recovered, t0),
        incident_id=str(incident_id) if incident_id is not None else None,
        detected_severity=str(severity) if severity is not None else None,
    )
