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


def test_containment_is_dated_to_the_start_of_the_evidence_not_the_end_of_the_wait() -> None:
    from harness.drill.api import contained_at
    from harness.drill.predicates import Seen

    # a quiet window that began 2 s after the injection and was seen to hold 4 s later
    assert contained_at(100.0, 106.0, [Seen(True, "quiet", since=102.0), Seen(True, "swept", since=101.0)]) == 102.0
    # one result without a date holds "now": the containment is dated to when the wait saw it
    assert contained_at(100.0, 106.0, [Seen(True, "quiet", since=102.0), Seen(True, "health")]) == 106.0
    # evidence older than the injection (a window that began before the fault) dates to t0
    assert contained_at(100.0, 106.0, [Seen(True, "quiet", since=95.0)]) == 100.0


def test_the_report_takes_the_checked_detection_and_the_dated_containment() -> None:
    from harness.checks.metrics import compute
    from harness.observe.timeline import Event

    def ev(t: float, what: str, /, **data: object) -> Event:
        return Event(t=100.0 + t, wall=1_700_000_000.0 + t, kind=what, source="test", data=data)

    events = [
        ev(0.0, "drill.inject", fault="x"),
        # an earlier, lower-severity alert must not become the MTTD of a drill that checked SEV-2
        ev(0.5, "alert", incident_id="INC-1", kind="rpc_failure", severity="SEV-3", status="detected"),
        ev(1.5, "alert", incident_id="INC-1", kind="rpc_failure", severity="SEV-2", status="detected"),
        ev(1.6, "drill.detected", kind="rpc_failure", severity="SEV-2", incident_id="INC-1", mttd=1.5),
        ev(6.0, "drill.contained", time_to_contain=3.25),
    ]
    m = compute(events, kind="rpc_failure")
    assert m.t0 == 100.0 and m.mttd == 1.5 and m.detected_severity == "SEV-2" and m.time_to_contain == 3.25
    # without the engine's phase events (a stored run of an older version) the alerts are read
    m = compute(events[:3], kind="rpc_failure")
    assert m.mttd == 0.5 and m.detected_severity == "SEV-3" and m.time_to_contain is None
