"""From the engine's ``DrillResult`` to the report's ``DrillRecord``.

The engine measures on the harness's monotonic clock; reports show wall time and times relative to
the injection. The offset between the two clocks is read from the timeline (every event carries
both). Fault parameters, phases and reassigned escrows are read from the timeline too; the budgets
each stage was held to, the missed deadlines and the value at risk are the engine's own fields
(``budgets_applied``, ``escrows["missed_deadlines"]``, ``funds["at_risk_wei"]``). Nothing here
judges the drill or computes a figure again; it only rearranges what the engine recorded. A result
recorded before a field existed gets a plain default (noted at each place), never a re-derivation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness import clock
from harness.record.model import (
    CATEGORIES, Budgets, DrillRecord, Escrows, ExpectedIncident, FaultRecord, Funds, Incident, IncidentEvent,
    InvariantRecord, Phase, Policy, ScheduleStep, TimelineEntry,
)

__all__ = ["record_from_result", "incidents_so_far"]

_PHASE_OF_CATEGORY = {
    "not_steady": "steady state", "missed_detection": "detect", "wrong_severity": "detect", "late_containment": "contain",
    "over_reaction": "contain",
    "no_recovery": "recover", "invariant_broken": "verify",
}


def _respond(timeline: Sequence[Mapping[str, Any]]) -> tuple[float | None, str | None]:
    """The time to respond the engine recorded with containment (it reads, never re-derives)."""
    ev = next((e for e in timeline if e.get("kind") == "drill.contained"), None)
    if ev is None:
        return None, None
    data = ev.get("data") or {}
    value = data.get("time_to_respond")
    return (float(value) if value is not None else None), data.get("respond_action")


def _clock_offset(timeline: Sequence[Mapping[str, Any]]) -> float:
    """wall - monotonic, from the timeline's own stamps (or from the clocks now when it is empty)."""
    for e in timeline:
        if isinstance(e.get("t"), (int, float)) and isinstance(e.get("wall"), (int, float)):
            return float(e["wall"]) - float(e["t"])
    return clock.wall() - clock.now()


def _r(x: float) -> float:
    return round(x, 3)


def _faults(timeline: Sequence[Mapping[str, Any]], origin: float) -> tuple[FaultRecord, ...]:
    out: list[FaultRecord] = []
    for i, e in enumerate(timeline):
        if e.get("kind") != "fault.inject":
            continue
        source = str(e.get("source", ""))
        data = dict(e.get("data") or {})
        heal = next((h for h in timeline[i + 1:] if h.get("kind") == "fault.heal" and h.get("source") == source), None)
        name = source.removeprefix("fault:") or "fault"
        params = {k: v for k, v in data.items() if k != "family"}
        out.append(FaultRecord(
            type=name, params=params, injected_rel_s=_r(float(e["t"]) - origin),
            healed_rel_s=_r(float(heal["t"]) - origin) if heal else None,
        ))
    return tuple(out)


def _incidents(raw: Sequence[Mapping[str, Any]], offset: float, origin: float) -> tuple[Incident, ...]:
    out = []
    for inc in raw:
        events = tuple(
            IncidentEvent(
                status=str(ev.get("status")), severity=str(ev.get("severity")), summary=str(ev.get("summary") or ""),
                actions=tuple(str(a) for a in ev.get("actions") or ()), details=dict(ev.get("details") or {}),
                received_at=round(float(ev["t"]) + offset, 3), rel_s=_r(float(ev["t"]) - origin),
            )
            for ev in inc.get("events") or ()
        )
        out.append(Incident(incident_id=str(inc["incident_id"]), kind=str(inc["kind"]), severity=str(inc["severity"]),
                            events=events))
    return tuple(out)


def incidents_so_far(events: Sequence[Any], origin: float) -> tuple[Incident, ...]:
    """The incidents of a drill still running, as its record will hold them, from the timeline's events so far.

    For a game day's live status updates (``harness.gameday.live``). ``events`` are the timeline's
    ``Event`` objects; ``origin`` is the monotonic time event times count from (the injection, or the
    drill's start before it). The harness's own monitoring probe is left out, as in the record.
    """
    from harness.checks.metrics import incidents, without_probe_alerts

    raw = [i.to_json() for i in incidents(without_probe_alerts(events))]
    return _incidents(raw, _clock_offset([e.to_json() for e in events[:1]]), origin)


def _phases(timeline: Sequence[Mapping[str, Any]], origin: float, start: float, end: float,
            category: str | None, message: str | None) -> tuple[Phase, ...]:
    def first(kind: str) -> float | None:
        e = next((e for e in timeline if e.get("kind") == kind), None)
        return _r(float(e["t"]) - origin) if e else None

    start_rel, end_rel = _r(start - origin), _r(end - origin)
    failed_phase = _PHASE_OF_CATEGORY.get(category or "")
    phases: list[Phase] = []
    ready = first("world.ready")
    setup_start = min([start_rel] + [_r(float(e["t"]) - origin) for e in timeline[:1]])
    phases.append(Phase(name="set up", start_rel_s=setup_start, end_rel_s=ready if ready is not None else start_rel))
    cursor = ready if ready is not None else start_rel
    steady = first("drill.steady")
    if steady is not None:
        phases.append(Phase(name="steady state", start_rel_s=cursor, end_rel_s=steady))
        cursor = steady
    inject_rel = first("fault.inject")
    for e in timeline:
        if e.get("kind") in ("fault.inject", "fault.heal"):
            rel = _r(float(e["t"]) - origin)
            verb = "inject" if e["kind"] == "fault.inject" else "heal"
            phases.append(Phase(name=f"{verb} {str(e.get('source', '')).removeprefix('fault:')}", start_rel_s=rel, end_rel_s=rel))
    base = inject_rel if inject_rel is not None else cursor
    for name, kind in (("detect", "drill.detected"), ("contain", "drill.contained"), ("recover", "drill.recovered"),
                       ("verify", "drill.verified")):
        at = first(kind)
        # Shown one after the other (each budget still counts from t0).
        phase_start = base if name != "verify" else max(p.end_rel_s or p.start_rel_s for p in phases)
        if at is not None:
            base = max(base, at)
            outcome = "passed"
            if name == "verify":
                ev = next(e for e in timeline if e.get("kind") == kind)
                # an invariant that could not be judged fails the drill as a broken one does
                outcome = "failed" if (ev.get("data") or {}).get("verdict") in ("failed", "unknown") else "passed"
            phases.append(Phase(name=name, start_rel_s=min(phase_start, at), end_rel_s=at, outcome=outcome,
                                message=(message or "") if outcome == "failed" else ""))
        elif failed_phase == name:
            phases.append(Phase(name=name, start_rel_s=phase_start, end_rel_s=end_rel, outcome="failed", message=message or ""))
    if failed_phase == "steady state" and steady is None:
        phases.append(Phase(name="steady state", start_rel_s=cursor, end_rel_s=end_rel, outcome="error", message=message or ""))
    if category in ("failed", "aborted", "harness_error", "regression") and category is not None:
        outcome = "error" if category == "harness_error" else "failed"
        phases.append(Phase(name={"failed": "scenario check", "aborted": "stop condition",
                                  "harness_error": "harness", "regression": "regression gate"}[category],
                            start_rel_s=end_rel, end_rel_s=end_rel, outcome=outcome, message=message or ""))
    return tuple(sorted(phases, key=lambda p: p.start_rel_s))


_STAGE_EVENTS = (("detect", "drill.detected"), ("contain", "drill.contained"), ("recover", "drill.recovered"))


def _budgets(result: Any, timeline: Sequence[Mapping[str, Any]], category: str | None) -> Budgets:
    """The budget each stage was held to, as the engine recorded it (``DrillResult.budgets_applied``).

    A result recorded before that field existed: the ``within`` of each stage's phase event, else
    the configured budget for a stage that held or failed, None for one never asserted; with the
    configured allowance and scale.
    """
    applied = dict(getattr(result, "budgets_applied", None) or {})
    if applied:
        return Budgets(detect_s=applied.get("detect_s"), contain_s=applied.get("contain_s"),
                       recover_s=applied.get("recover_s"), deadline_misses=applied.get("deadline_misses"),
                       scale=float(applied.get("scale", 1.0)))
    configured = dict(result.budget or {})
    values: dict[str, float | None] = {}
    for stage, kind in _STAGE_EVENTS:
        ev = next((e for e in timeline if e.get("kind") == kind), None)
        within = (ev.get("data") or {}).get("within") if ev is not None else None
        if not isinstance(within, (int, float)) and (ev is not None or _PHASE_OF_CATEGORY.get(category or "") == stage):
            within = configured.get(stage)
        values[f"{stage}_s"] = float(within) if isinstance(within, (int, float)) else None
    return Budgets(**values, deadline_misses=configured.get("deadline_misses"), scale=float(configured.get("scale", 1.0)))


def _probe_ids(timeline: Sequence[Mapping[str, Any]]) -> set[str]:
    """Incidents the harness itself had the agent open (the end-of-drill monitoring probe)."""
    return {str(e["data"]["incident_id"]) for e in timeline
            if e.get("kind") == "drill.probe" and (e.get("data") or {}).get("incident_id")}


def _funds(result: Any, money: Mapping[str, Any]) -> Funds:
    at_risk = int(money.get("at_risk_wei", 0))  # recorded by the engine (0 in a result made before it was)
    error = getattr(result, "funds_error", None)
    if error:  # unknown, not zero
        return Funds(at_risk_wei=at_risk, lost_wei=None, swept_wei=None, attacker_wei=None, gas_wei=None, error=str(error))
    return Funds(at_risk_wei=at_risk, lost_wei=int(money.get("lost_wei", 0)) + int(money.get("unexplained_wei", 0)),
                 swept_wei=int(money.get("swept_wei", 0)), attacker_wei=int(money.get("lost_wei", 0)),
                 gas_wei=int(result.gas_spent_wei or money.get("gas_wei", 0)))


def record_from_result(result: Any, *, agent_log: str | None = None, expected_severity: str | None = None) -> DrillRecord:
    """The report's record of one drill, from ``harness.drill.result.DrillResult`` (duck-typed)."""
    timeline: list[Mapping[str, Any]] = list(result.timeline)
    offset = _clock_offset(timeline)
    t_start = float(result.t_start)
    origin = float(result.t0) if result.t0 is not None else t_start
    end = t_start + float(result.duration_s or 0.0)
    category = result.category if result.status != "passed" else None
    if category is not None and category not in CATEGORIES:
        category = "failed"
    extra = dict(getattr(result, "extra", {}) or {})
    severity = expected_severity or extra.get("expected_severity")
    budget = _budgets(result, timeline, category)
    money = dict(result.funds or {})
    escrows = dict(result.escrows or {})
    # recorded by the engine; a result made before it was: the expired escrows, the deadlines known to have passed
    missed = escrows.get("missed_deadlines", escrows.get("expired", 0))
    reassigned = sum(1 for e in timeline if e.get("kind") == "escrow.reassigned")
    policy = dict(result.policy or {})
    return DrillRecord(
        name=result.name, scenario=getattr(result, "scenario", "") or "", playbook=result.playbook, family=result.family,
        faults=_faults(timeline, origin),
        expected_incident=ExpectedIncident(kind=result.expected_incident, min_severity=severity) if result.expected_incident else None,
        status=result.status, failure_category=category, failure_message=result.message if result.status != "passed" else None,
        started_at=round(t_start + offset, 3), duration_s=float(result.duration_s or 0.0),
        t0=round(float(result.t0) + offset, 3) if result.t0 is not None else None,
        mttd_s=result.mttd, contain_s=result.time_to_contain, mttr_s=result.mttr,
        budgets=budget,
        policy=Policy(mttd_s=float(policy.get("mttd", 300)), mttr_s=float(policy.get("mttr", 1800)),
                      response_s={k: float(v) for k, v in (policy.get("response") or Policy().response_s).items()}),
        incidents=_incidents([i for i in result.incidents if i.get("incident_id") not in _probe_ids(timeline)], offset, origin),
        invariants=tuple(InvariantRecord(name=str(i["name"]), verdict=str(i["verdict"]), message=str(i.get("message", "")))
                         for i in result.invariants),
        funds=_funds(result, money),
        escrows=Escrows(opened=int(escrows.get("opened", 0)), proven=int(escrows.get("proven", 0)),
                        expired=int(escrows.get("expired", 0)), missed_deadlines=int(missed), reassigned=reassigned),
        harness_overhead_s=result.harness_overhead_s,
        phases=_phases(timeline, origin, t_start, end, category, result.message),
        timeline=tuple(TimelineEntry(rel_s=_r(float(e["t"]) - origin), kind=str(e["kind"]), source=str(e.get("source", "")),
                                     data=dict(e.get("data") or {})) for e in timeline),
        agent_log=agent_log, restarts=int(result.restarts or 0), alert_duplicates=int(result.alert_duplicates or 0),
        contract_violations=int(result.contract_violations or 0), rerun=result.rerun or "",
        agent_profile=getattr(result, "agent_profile", None),
        respond_s=_respond(timeline)[0], respond_action=_respond(timeline)[1],
        claims={str(k): float(v) for k, v in (extra.get("claims") or {}).items()},
        violations={str(k): int(v) for k, v in (extra.get("violations") or {}).items()},
        findings=tuple(str(f.get("message", f.get("finding", ""))) for f in extra.get("findings") or ()),
        schedule=_schedule(timeline),
    )


def _schedule(timeline: Sequence[Mapping[str, Any]]) -> tuple[ScheduleStep, ...]:
    """The schedule a drill carried out, from the runner's events (``schedule.start``, ``.step``, ``.detected``)."""
    start = next((e for e in timeline if e.get("kind") == "schedule.start"), None)
    if start is None:
        return ()
    planned = ((start.get("data") or {}).get("schedule") or {}).get("steps") or []
    steps = [dict(fault=str(p["fault"]), params=dict(p.get("params") or {}), at_s=float(p["at"]), hold_s=float(p["hold"]))
             for p in planned]
    for e in timeline:
        data = e.get("data") or {}
        i = data.get("step")
        if not isinstance(i, int) or not 0 <= i < len(steps):
            continue
        if e.get("kind") == "schedule.step":
            steps[i]["injected_s" if data.get("action") == "inject" else "healed_s"] = float(data["actual"])
        elif e.get("kind") == "schedule.detected":
            steps[i].update(incident=data.get("kind"), detected_s=float(data.get("mttd") or 0.0),
                            already_open=bool(data.get("already_open")))
        elif e.get("kind") == "schedule.not_judged":
            steps[i]["judged"] = False
    return tuple(ScheduleStep(**s) for s in steps)
