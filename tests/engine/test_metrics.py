"""MTTD, time to contain and MTTR from a timeline."""

from __future__ import annotations

from harness.checks.metrics import compute, incidents, without_probe_alerts
from harness.observe.timeline import Event


def ev(t: float, kind: str, /, **data: object) -> Event:
    return Event(t=t, wall=t, kind=kind, source="test", data=data)


def alert(t: float, inc: str, kind: str, severity: str, status: str) -> Event:
    return ev(t, "alert", incident_id=inc, kind=kind, severity=severity, status=status)


TIMELINE = [
    alert(5.0, "INC-2026-01-01-001", "rpc_failure", "SEV-3", "detected"),  # before t0: not a detection
    ev(10.0, "fault.inject", family="network"),
    alert(10.5, "INC-2026-01-01-002", "latency_degraded", "SEV-3", "detected"),  # other kind
    alert(11.0, "INC-2026-01-01-003", "rpc_failure", "SEV-3", "detected"),  # too low for SEV-2
    alert(12.5, "INC-2026-01-01-003", "rpc_failure", "SEV-2", "investigating"),
    ev(14.0, "drill.contained"),
    alert(20.0, "INC-2026-01-01-003", "rpc_failure", "SEV-2", "resolved"),
    ev(21.25, "drill.recovered"),
]


def test_metrics_from_the_timeline() -> None:
    m = compute(TIMELINE, kind="rpc_failure", min_severity="SEV-2")
    assert (m.t0, m.mttd, m.time_to_contain, m.mttr) == (10.0, 2.5, 4.0, 11.25)
    assert m.incident_id == "INC-2026-01-01-003" and m.detected_severity == "SEV-2"


def test_lower_severity_counts_when_it_is_enough() -> None:
    assert compute(TIMELINE, kind="rpc_failure", min_severity="SEV-3").mttd == 1.0


def test_no_detection_no_numbers() -> None:
    m = compute(TIMELINE, kind="wallet_compromise")
    assert m.mttd is None and m.t0 == 10.0 and m.mttr == 11.25


def test_nothing_injected() -> None:
    assert compute(TIMELINE[:1]).t0 is None


def test_incidents_grouped_with_highest_severity_and_last_status() -> None:
    incs = {i.incident_id: i for i in incidents(TIMELINE)}
    inc = incs["INC-2026-01-01-003"]
    assert (inc.severity, inc.status, inc.open, len(inc.events)) == ("SEV-2", "resolved", False, 3)
    assert incs["INC-2026-01-01-002"].open


def test_the_end_of_drill_probe_is_no_detection() -> None:
    # A drill that expects no incident (the operator's halt) must not get the harness's own probe
    # as its MTTD.
    tl = [ev(10.0, "drill.inject"), ev(24.0, "drill.probe", ok=True, incident_id="INC-2026-01-01-009", sent=24.0),
          alert(24.1, "INC-2026-01-01-009", "manual", "SEV-4", "detected")]
    assert compute(tl).mttd == 14.1
    assert compute(without_probe_alerts(tl)).mttd is None
    kept = without_probe_alerts([*tl, alert(30.0, "INC-2026-01-01-010", "manual", "SEV-4", "detected")])
    assert [e.data.get("incident_id") for e in kept if e.kind == "alert"] == ["INC-2026-01-01-010"]
