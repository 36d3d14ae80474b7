"""The record of a run: what ``summary.json`` holds, as frozen dataclasses.

``RunRecord`` is the whole run, ``DrillRecord`` one drill. Every record converts to plain JSON with
``to_json()`` and back with ``from_json()``; the JSON is described by ``schema/summary.schema.json``
(``validate_summary`` checks a document against it). The report renders these records and never
recomputes a verdict; the only numbers computed here are the run's aggregate incident metrics.

Times: ``*_at`` and ``t0`` are unix seconds (wall clock, for people); ``rel_s`` values are seconds
relative to the drill's ``t0`` (the first injection), or to the drill's start when nothing was injected;
durations end in ``_s``. Amounts of ether are integers in wei.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from typing import Any

from harness.errors import HarnessError
from harness.vocabulary import DRILL_STATUSES, REAL_TIME_PROFILE, REPORT_CATEGORIES, SEVERITIES, VERDICTS

__all__ = [
    "SCHEMA_VERSION", "REAL_TIME_PROFILE", "STATUSES", "CATEGORIES", "SEVERITIES", "VERDICTS", "PHASE_OUTCOMES",
    "RecordError", "FaultRecord", "ExpectedIncident", "Budgets", "Policy", "IncidentEvent", "Incident",
    "InvariantRecord", "Funds", "Escrows", "Phase", "TimelineEntry", "Regression", "DrillRecord",
    "PostmortemCompletion", "RunMetrics", "GateSettings", "RunRecord", "load_schema", "validate_summary",
    "severity_rank",
]

SCHEMA_VERSION = 1
STATUSES = DRILL_STATUSES
#: why a drill did not pass: the engine's categories plus "regression" (the history gate)
CATEGORIES = REPORT_CATEGORIES
PHASE_OUTCOMES = ("passed", "failed", "error", "skipped")
GATE_MODES = ("off", "regression")


class RecordError(HarnessError):
    """A report record that does not fit the summary schema (a bug in whoever built it)."""


def severity_rank(severity: str | None) -> int:
    """1 for SEV-1 (the most severe) .. 4 for SEV-4; 99 for None or anything else."""
    return SEVERITIES.index(severity) + 1 if severity in SEVERITIES else 99


def _check_choice(what: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise RecordError(f"{what} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _need(data: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(data, Mapping):
        raise RecordError(f"{where} must be a JSON object, got {type(data).__name__}")
    try:
        return data[key]
    except KeyError:
        raise RecordError(f"{where} lacks the field {key!r}") from None


@dataclass(frozen=True, kw_only=True)
class FaultRecord:
    """One fault the drill injected: its class name and the parameters it was built with."""

    type: str
    params: Mapping[str, Any] = field(default_factory=dict)
    injected_rel_s: float | None = None
    healed_rel_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "params": dict(self.params), "injected_rel_s": self.injected_rel_s,
                "healed_rel_s": self.healed_rel_s}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "FaultRecord":
        return cls(type=_need(d, "type", "fault"), params=dict(d.get("params") or {}),
                   injected_rel_s=_opt_float(d.get("injected_rel_s")), healed_rel_s=_opt_float(d.get("healed_rel_s")))


@dataclass(frozen=True, kw_only=True)
class ExpectedIncident:
    kind: str
    min_severity: str | None = None  # None: any severity counts

    def __post_init__(self) -> None:
        if self.min_severity is not None:
            _check_choice("expected_incident.min_severity", self.min_severity, SEVERITIES)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "min_severity": self.min_severity}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "ExpectedIncident":
        return cls(kind=_need(d, "kind", "expected_incident"), min_severity=d.get("min_severity"))


@dataclass(frozen=True, kw_only=True)
class Budgets:
    """The seconds this drill was held to (None: the drill made no such expectation)."""

    detect_s: float | None = None
    contain_s: float | None = None
    recover_s: float | None = None
    deadline_misses: int | None = None
    scale: float = 1.0

    def to_json(self) -> dict[str, Any]:
        return {"detect_s": self.detect_s, "contain_s": self.contain_s, "recover_s": self.recover_s,
                "deadline_misses": self.deadline_misses, "scale": self.scale}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Budgets":
        return cls(detect_s=_opt_float(d.get("detect_s")), contain_s=_opt_float(d.get("contain_s")),
                   recover_s=_opt_float(d.get("recover_s")), deadline_misses=d.get("deadline_misses"),
                   scale=float(d.get("scale", 1.0)))


@dataclass(frozen=True, kw_only=True)
class Policy:
    """The incident-response policy's targets, in seconds."""

    mttd_s: float = 300.0
    mttr_s: float = 1800.0
    response_s: Mapping[str, float] = field(
        default_factory=lambda: {"SEV-1": 300.0, "SEV-2": 1800.0, "SEV-3": 7200.0, "SEV-4": 86400.0}
    )

    def to_json(self) -> dict[str, Any]:
        return {"mttd_s": self.mttd_s, "mttr_s": self.mttr_s, "response_s": dict(self.response_s)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Policy":
        return cls(mttd_s=float(_need(d, "mttd_s", "policy")), mttr_s=float(_need(d, "mttr_s", "policy")),
                   response_s={k: float(v) for k, v in _need(d, "response_s", "policy").items()})


@dataclass(frozen=True, kw_only=True)
class IncidentEvent:
    """One event the agent POSTed, as the harness received it (``received_at``: the harness's clock)."""

    status: str
    severity: str
    summary: str
    actions: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)
    received_at: float
    rel_s: float | None = None

    def __post_init__(self) -> None:
        _check_choice("incident event severity", self.severity, SEVERITIES)

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "severity": self.severity, "summary": self.summary,
                "actions": list(self.actions), "details": dict(self.details), "received_at": self.received_at,
                "rel_s": self.rel_s}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "IncidentEvent":
        return cls(status=_need(d, "status", "incident event"), severity=_need(d, "severity", "incident event"),
                   summary=d.get("summary", ""), actions=tuple(d.get("actions") or ()), details=dict(d.get("details") or {}),
                   received_at=float(_need(d, "received_at", "incident event")), rel_s=_opt_float(d.get("rel_s")))


@dataclass(frozen=True, kw_only=True)
class Incident:
    """An incident the agent raised: its events in arrival order; ``severity`` is the highest it reached."""

    incident_id: str
    kind: str
    severity: str
    events: tuple[IncidentEvent, ...] = ()

    def __post_init__(self) -> None:
        _check_choice(f"severity of {self.incident_id}", self.severity, SEVERITIES)

    @property
    def status(self) -> str:
        return self.events[-1].status if self.events else "detected"

    @property
    def resolved(self) -> bool:
        return any(e.status == "resolved" for e in self.events)

    def to_json(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "kind": self.kind, "severity": self.severity,
                "events": [e.to_json() for e in self.events]}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Incident":
        return cls(incident_id=_need(d, "incident_id", "incident"), kind=_need(d, "kind", "incident"),
                   severity=_need(d, "severity", "incident"),
                   events=tuple(IncidentEvent.from_json(e) for e in d.get("events") or ()))


@dataclass(frozen=True, kw_only=True)
class InvariantRecord:
    name: str
    verdict: str
    message: str = ""

    def __post_init__(self) -> None:
        _check_choice(f"verdict of invariant {self.name!r}", self.verdict, VERDICTS)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "verdict": self.verdict, "message": self.message}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "InvariantRecord":
        return cls(name=_need(d, "name", "invariant"), verdict=_need(d, "verdict", "invariant"), message=d.get("message", ""))


@dataclass(frozen=True, kw_only=True)
class Funds:
    """Wei: exposed at injection, lost (stolen or burnt beyond gas), swept to cold, taken by attackers, gas paid.

    ``error`` says why the funds are unknown (the engine's read failed); the amounts other than
    ``at_risk_wei`` are then None, never zero: an unread loss is not "0 ETH lost".
    """

    at_risk_wei: int = 0
    lost_wei: int | None = 0
    swept_wei: int | None = 0
    attacker_wei: int | None = 0
    gas_wei: int | None = 0
    error: str | None = None

    @property
    def known(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        return {"at_risk_wei": self.at_risk_wei, "lost_wei": self.lost_wei, "swept_wei": self.swept_wei,
                "attacker_wei": self.attacker_wei, "gas_wei": self.gas_wei, "error": self.error}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Funds":
        def amount(key: str) -> int | None:
            value = d.get(key, 0)
            return None if value is None else int(value)

        return cls(at_risk_wei=int(d.get("at_risk_wei", 0)), lost_wei=amount("lost_wei"), swept_wei=amount("swept_wei"),
                   attacker_wei=amount("attacker_wei"), gas_wei=amount("gas_wei"), error=d.get("error"))


@dataclass(frozen=True, kw_only=True)
class Escrows:
    """Escrows of the counterparty during the drill, as the chain says."""

    opened: int = 0
    proven: int = 0
    expired: int = 0
    missed_deadlines: int = 0
    reassigned: int = 0

    @property
    def touched(self) -> bool:
        """Whether counterparties were affected (an escrow missed, expired or moved to another address)."""
        return bool(self.expired or self.missed_deadlines or self.reassigned)

    def to_json(self) -> dict[str, Any]:
        return {"opened": self.opened, "proven": self.proven, "expired": self.expired,
                "missed_deadlines": self.missed_deadlines, "reassigned": self.reassigned}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Escrows":
        return cls(**{k: int(d.get(k, 0)) for k in ("opened", "proven", "expired", "missed_deadlines", "reassigned")})


@dataclass(frozen=True, kw_only=True)
class Phase:
    """A phase of the drill (set up, steady state, inject, detect, contain, heal, recover, verify)."""

    name: str
    start_rel_s: float
    end_rel_s: float | None = None
    outcome: str = "passed"
    message: str = ""

    def __post_init__(self) -> None:
        _check_choice(f"outcome of phase {self.name!r}", self.outcome, PHASE_OUTCOMES)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "start_rel_s": self.start_rel_s, "end_rel_s": self.end_rel_s,
                "outcome": self.outcome, "message": self.message}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Phase":
        return cls(name=_need(d, "name", "phase"), start_rel_s=float(_need(d, "start_rel_s", "phase")),
                   end_rel_s=_opt_float(d.get("end_rel_s")), outcome=d.get("outcome", "passed"), message=d.get("message", ""))


@dataclass(frozen=True, kw_only=True)
class TimelineEntry:
    rel_s: float
    kind: str
    source: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"rel_s": self.rel_s, "kind": self.kind, "source": self.source, "data": dict(self.data)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "TimelineEntry":
        return cls(rel_s=float(_need(d, "rel_s", "timeline entry")), kind=_need(d, "kind", "timeline entry"),
                   source=d.get("source", ""), data=dict(d.get("data") or {}))


@dataclass(frozen=True, kw_only=True)
class ScheduleStep:
    """One step of a fault schedule the drill carried out: planned and actual offsets, and its detection.

    Offsets are seconds after steady state (the schedule's origin); ``detected_s`` seconds after the
    step's injection (0 when an incident of its kind was already open), None when not detected or
    not judged (``judged`` False: the fault did nothing an agent could detect).
    """

    fault: str
    params: Mapping[str, Any] = field(default_factory=dict)
    at_s: float
    hold_s: float
    injected_s: float | None = None
    healed_s: float | None = None
    incident: str | None = None
    detected_s: float | None = None
    already_open: bool = False
    judged: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"fault": self.fault, "params": dict(self.params), "at_s": self.at_s, "hold_s": self.hold_s,
                "injected_s": self.injected_s, "healed_s": self.healed_s, "incident": self.incident,
                "detected_s": self.detected_s, "already_open": self.already_open, "judged": self.judged}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "ScheduleStep":
        return cls(fault=_need(d, "fault", "schedule step"), params=dict(d.get("params") or {}),
                   at_s=float(_need(d, "at_s", "schedule step")), hold_s=float(_need(d, "hold_s", "schedule step")),
                   injected_s=_opt_float(d.get("injected_s")), healed_s=_opt_float(d.get("healed_s")),
                   incident=d.get("incident"), detected_s=_opt_float(d.get("detected_s")),
                   already_open=bool(d.get("already_open", False)), judged=bool(d.get("judged", True)))


@dataclass(frozen=True, kw_only=True)
class Regression:
    """The regression gate's look at one drill: its numbers against its history's medians."""

    factor: float
    history_runs: int
    median_mttd_s: float | None
    median_mttr_s: float | None
    regressed: bool
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"factor": self.factor, "history_runs": self.history_runs, "median_mttd_s": self.median_mttd_s,
                "median_mttr_s": self.median_mttr_s, "regressed": self.regressed, "message": self.message}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Regression":
        return cls(factor=float(_need(d, "factor", "regression")), history_runs=int(_need(d, "history_runs", "regression")),
                   median_mttd_s=_opt_float(d.get("median_mttd_s")), median_mttr_s=_opt_float(d.get("median_mttr_s")),
                   regressed=bool(_need(d, "regressed", "regression")), message=d.get("message", ""))


@dataclass(frozen=True, kw_only=True)
class DrillRecord:
    """One drill: what was injected and expected, what the agent did, what the chain says, the verdict."""

    name: str  # the pytest node id
    scenario: str = ""  # the test function's name (budgets and history are keyed by it); "" -> from name
    playbook: str | None = None
    family: str | None = None
    faults: tuple[FaultRecord, ...] = ()
    expected_incident: ExpectedIncident | None = None
    status: str
    failure_category: str | None = None
    failure_message: str | None = None
    started_at: float  # unix seconds
    duration_s: float = 0.0
    t0: float | None = None  # unix seconds of the first injection
    mttd_s: float | None = None
    contain_s: float | None = None
    mttr_s: float | None = None
    budgets: Budgets = field(default_factory=Budgets)
    policy: Policy = field(default_factory=Policy)
    incidents: tuple[Incident, ...] = ()
    invariants: tuple[InvariantRecord, ...] = ()
    funds: Funds = field(default_factory=Funds)
    escrows: Escrows = field(default_factory=Escrows)
    harness_overhead_s: float | None = None
    phases: tuple[Phase, ...] = ()
    timeline: tuple[TimelineEntry, ...] = ()
    agent_log: str | None = None  # path of the scrubbed agent log, relative to the run's directory
    restarts: int = 0
    alert_duplicates: int = 0
    contract_violations: int = 0
    rerun: str = ""  # the command that re-runs just this drill
    regression: Regression | None = None
    agent_profile: str | None = None  # AGENT_PROFILE the agent ran with; None: not recorded
    #: the first containment action the harness saw (seconds from t0); None: none seen or not measured
    respond_s: float | None = None
    respond_action: str | None = None
    #: the agent's own account of its incident: status -> first arrival, seconds from t0
    claims: Mapping[str, float] = field(default_factory=dict)
    #: what the engine noted beside the verdict (a claim ahead of the evidence, ...)
    findings: tuple[str, ...] = ()
    #: contract violations by what was done ("alert sink", "output over the cap", "direct connection to
    #: the chain's own port", ...); they add up to contract_violations
    violations: Mapping[str, int] = field(default_factory=dict)
    #: the fault schedule the drill carried out (harness/schedule), step by step; () for a drill of its own faults
    schedule: tuple[ScheduleStep, ...] = ()
    #: the drill's place in its run's collection (before a shard split or a reordering for workers): a run,
    #: and shards merged into one, list their drills in it; None: not known (a record of an older version)
    position: int | None = None
    #: the test item's wall seconds, setup to teardown, as pytest ran it: for a drill, its world and
    #: the drill; for a schedule search, every example (its record is of the last one only); None: not
    #: measured (a record of an older version). ``--drill-shard`` and the workers' order weigh by it
    item_wall_s: float | None = None

    def __post_init__(self) -> None:
        if not self.scenario:
            object.__setattr__(self, "scenario", self.name.rsplit("::", 1)[-1].split("[", 1)[0])
        _check_choice(f"status of {self.name}", self.status, STATUSES)
        if self.failure_category is not None:
            _check_choice(f"failure_category of {self.name}", self.failure_category, CATEGORIES)
        if self.status == "passed" and self.failure_category is not None:
            raise RecordError(f"{self.name} passed but has failure_category {self.failure_category!r}")

    @property
    def severity(self) -> str | None:
        """The most severe of the incidents raised, else the expected minimum, else None."""
        raised = [i.severity for i in self.incidents]
        if raised:
            return min(raised, key=severity_rank)
        return self.expected_incident.min_severity if self.expected_incident else None

    @property
    def needs_postmortem(self) -> bool:
        return severity_rank(self.severity) <= 2

    @property
    def real_time(self) -> bool:
        """The agent ran its production intervals, so the policy's minute-scale targets can be judged."""
        return self.agent_profile == REAL_TIME_PROFILE

    @property
    def recovery_asserted(self) -> bool:
        """The drill waited for recovery: it recorded ``drill.recovered``, or failed waiting for it.

        Only then does an unresolved incident say something about the agent; a drill that ends
        before recovery by design (or stopped earlier) did not observe the end of its incident.
        """
        return self.failure_category == "no_recovery" or any(e.kind == "drill.recovered" for e in self.timeline)

    @property
    def postmortem_complete(self) -> bool:
        """Every SEV-1/SEV-2 incident reached ``resolved``, so the draft has an end to its timeline.

        Meaningful only where ``recovery_asserted``; elsewhere completion was not observed.
        """
        grave = [i for i in self.incidents if severity_rank(i.severity) <= 2]
        return bool(grave) and all(i.resolved for i in grave)

    def with_(self, **changes: Any) -> "DrillRecord":
        """A copy with ``changes`` applied (validated again)."""
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "scenario": self.scenario, "playbook": self.playbook, "family": self.family,
            "faults": [f.to_json() for f in self.faults],
            "expected_incident": self.expected_incident.to_json() if self.expected_incident else None,
            "status": self.status, "failure_category": self.failure_category, "failure_message": self.failure_message,
            "started_at": self.started_at, "duration_s": self.duration_s, "t0": self.t0,
            "mttd_s": self.mttd_s, "contain_s": self.contain_s, "mttr_s": self.mttr_s,
            "budgets": self.budgets.to_json(), "policy": self.policy.to_json(),
            "incidents": [i.to_json() for i in self.incidents],
            "invariants": [i.to_json() for i in self.invariants],
            "funds": self.funds.to_json(), "escrows": self.escrows.to_json(),
            "harness_overhead_s": self.harness_overhead_s,
            "phases": [p.to_json() for p in self.phases],
            "timeline": [e.to_json() for e in self.timeline],
            "agent_log": self.agent_log, "restarts": self.restarts, "alert_duplicates": self.alert_duplicates,
            "contract_violations": self.contract_violations, "rerun": self.rerun,
            "regression": self.regression.to_json() if self.regression else None,
            "agent_profile": self.agent_profile,
            "respond_s": self.respond_s, "respond_action": self.respond_action,
            "claims": dict(self.claims), "findings": list(self.findings), "violations": dict(self.violations),
            "schedule": [s.to_json() for s in self.schedule],
            "position": self.position,
            "item_wall_s": self.item_wall_s,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "DrillRecord":
        exp = d.get("expected_incident")
        reg = d.get("regression")
        return cls(
            name=_need(d, "name", "drill"), scenario=d.get("scenario", ""), playbook=d.get("playbook"), family=d.get("family"),
            faults=tuple(FaultRecord.from_json(f) for f in d.get("faults") or ()),
            expected_incident=ExpectedIncident.from_json(exp) if exp else None,
            status=_need(d, "status", "drill"), failure_category=d.get("failure_category"),
            failure_message=d.get("failure_message"), started_at=float(_need(d, "started_at", "drill")),
            duration_s=float(d.get("duration_s", 0.0)), t0=_opt_float(d.get("t0")),
            mttd_s=_opt_float(d.get("mttd_s")), contain_s=_opt_float(d.get("contain_s")), mttr_s=_opt_float(d.get("mttr_s")),
            budgets=Budgets.from_json(d.get("budgets") or {}),
            policy=Policy.from_json(d["policy"]) if d.get("policy") else Policy(),
            incidents=tuple(Incident.from_json(i) for i in d.get("incidents") or ()),
            invariants=tuple(InvariantRecord.from_json(i) for i in d.get("invariants") or ()),
            funds=Funds.from_json(d.get("funds") or {}), escrows=Escrows.from_json(d.get("escrows") or {}),
            harness_overhead_s=_opt_float(d.get("harness_overhead_s")),
            phases=tuple(Phase.from_json(p) for p in d.get("phases") or ()),
            timeline=tuple(TimelineEntry.from_json(e) for e in d.get("timeline") or ()),
            agent_log=d.get("agent_log"), restarts=int(d.get("restarts", 0)),
            alert_duplicates=int(d.get("alert_duplicates", 0)), contract_violations=int(d.get("contract_violations", 0)),
            rerun=d.get("rerun", ""), regression=Regression.from_json(reg) if reg else None,
            agent_profile=d.get("agent_profile"),
            respond_s=_opt_float(d.get("respond_s")), respond_action=d.get("respond_action"),
            claims={str(k): float(v) for k, v in (d.get("claims") or {}).items()},
            violations={str(k): int(v) for k, v in (d.get("violations") or {}).items()},
            findings=tuple(str(f) for f in d.get("findings") or ()),
            schedule=tuple(ScheduleStep.from_json(s) for s in d.get("schedule") or ()),
            position=None if d.get("position") is None else int(d["position"]),
            item_wall_s=_opt_float(d.get("item_wall_s")),
        )


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.fmean(present), 6) if present else None


@dataclass(frozen=True, kw_only=True)
class PostmortemCompletion:
    """SEV-1/SEV-2 drills that asserted recovery (``required``), how many of them have a complete
    post-mortem draft, and how many SEV-1/SEV-2 drills ended before recovery (``not_observed``:
    their completion was not observed, so it counts neither for nor against the ratio)."""

    required: int = 0
    complete: int = 0
    not_observed: int = 0

    @property
    def ratio(self) -> float | None:
        return round(self.complete / self.required, 6) if self.required else None

    def to_json(self) -> dict[str, Any]:
        return {"required": self.required, "complete": self.complete, "ratio": self.ratio, "not_observed": self.not_observed}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "PostmortemCompletion":
        return cls(required=int(d.get("required", 0)), complete=int(d.get("complete", 0)),
                   not_observed=int(d.get("not_observed", 0)))


@dataclass(frozen=True, kw_only=True)
class RunMetrics:
    """The incident metrics of the run, computed from its drills."""

    drills: int = 0
    passed: int = 0
    failed: int = 0
    aborted: int = 0
    error: int = 0
    mean_mttd_s: float | None = None
    mean_mttr_s: float | None = None
    incidents_by_severity: Mapping[str, int] = field(default_factory=lambda: {s: 0 for s in SEVERITIES})
    repeat_incidents: int = 0  # incidents of a kind already raised earlier in the same drill
    postmortems: PostmortemCompletion = field(default_factory=PostmortemCompletion)

    @classmethod
    def compute(cls, drills: Sequence[DrillRecord]) -> "RunMetrics":
        by_sev = {s: 0 for s in SEVERITIES}
        repeats = 0
        for d in drills:
            seen: set[str] = set()
            for inc in d.incidents:
                by_sev[inc.severity] += 1
                if inc.kind in seen:
                    repeats += 1
                seen.add(inc.kind)
        grave = [d for d in drills if d.needs_postmortem and d.recovery_asserted]
        unobserved = sum(1 for d in drills if d.needs_postmortem and not d.recovery_asserted)
        return cls(
            drills=len(drills), **{s: sum(d.status == s for d in drills) for s in STATUSES},
            mean_mttd_s=_mean(d.mttd_s for d in drills), mean_mttr_s=_mean(d.mttr_s for d in drills),
            incidents_by_severity=by_sev, repeat_incidents=repeats,
            postmortems=PostmortemCompletion(required=len(grave), complete=sum(d.postmortem_complete for d in grave),
                                             not_observed=unobserved),
        )

    def to_json(self) -> dict[str, Any]:
        return {"drills": self.drills, "passed": self.passed, "failed": self.failed, "aborted": self.aborted,
                "error": self.error, "mean_mttd_s": self.mean_mttd_s, "mean_mttr_s": self.mean_mttr_s,
                "incidents_by_severity": dict(self.incidents_by_severity), "repeat_incidents": self.repeat_incidents,
                "postmortems": self.postmortems.to_json()}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "RunMetrics":
        return cls(drills=int(d.get("drills", 0)), passed=int(d.get("passed", 0)), failed=int(d.get("failed", 0)),
                   aborted=int(d.get("aborted", 0)), error=int(d.get("error", 0)),
                   mean_mttd_s=_opt_float(d.get("mean_mttd_s")), mean_mttr_s=_opt_float(d.get("mean_mttr_s")),
                   incidents_by_severity={k: int(v) for k, v in (d.get("incidents_by_severity") or {}).items()},
                   repeat_incidents=int(d.get("repeat_incidents", 0)),
                   postmortems=PostmortemCompletion.from_json(d.get("postmortems") or {}))


@dataclass(frozen=True, kw_only=True)
class GateSettings:
    mode: str = "off"
    factor: float = 1.5
    min_history: int = 3

    def __post_init__(self) -> None:
        _check_choice("gate mode", self.mode, GATE_MODES)

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "factor": self.factor, "min_history": self.min_history}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "GateSettings":
        return cls(mode=d.get("mode", "off"), factor=float(d.get("factor", 1.5)), min_history=int(d.get("min_history", 3)))


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """A whole run: where and how it ran, its drills and its incident metrics."""

    run_id: str
    started_at: float
    ended_at: float
    chain_backend: str | None = None
    agent_command: tuple[str, ...] = ()
    versions: Mapping[str, str] = field(default_factory=dict)
    budget_scale: float = 1.0
    gate: GateSettings = field(default_factory=GateSettings)
    #: how the agent ran: {"kind": "process", "image": None} or {"kind": "docker", "image": "repo:tag"}
    agent_runtime: Mapping[str, Any] = field(default_factory=lambda: {"kind": "process", "image": None})
    drills: tuple[DrillRecord, ...] = ()
    metrics: RunMetrics | None = None  # computed from drills when left out
    #: who owns the run: a game day's plan owner (its post-mortem drafts name them); None: not known
    owner: str | None = None

    def __post_init__(self) -> None:
        if self.metrics is None:
            object.__setattr__(self, "metrics", RunMetrics.compute(self.drills))

    def to_json(self) -> dict[str, Any]:
        assert self.metrics is not None
        return {
            "schema_version": SCHEMA_VERSION, "run_id": self.run_id, "started_at": self.started_at,
            "ended_at": self.ended_at, "chain_backend": self.chain_backend, "agent_command": list(self.agent_command),
            "agent_runtime": dict(self.agent_runtime), "versions": dict(self.versions), "budget_scale": self.budget_scale, "gate": self.gate.to_json(),
            "metrics": self.metrics.to_json(), "drills": [d.to_json() for d in self.drills], "owner": self.owner,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=False, default=str) + "\n"

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "RunRecord":
        version = d.get("schema_version")
        if version != SCHEMA_VERSION:
            raise RecordError(f"summary schema_version {version!r} is not supported (this version reads {SCHEMA_VERSION})")
        return cls(
            run_id=_need(d, "run_id", "run"), started_at=float(_need(d, "started_at", "run")),
            ended_at=float(_need(d, "ended_at", "run")), chain_backend=d.get("chain_backend"),
            agent_command=tuple(d.get("agent_command") or ()), versions=dict(d.get("versions") or {}),
            agent_runtime=dict(d.get("agent_runtime") or {"kind": "process", "image": None}),
            budget_scale=float(d.get("budget_scale", 1.0)), gate=GateSettings.from_json(d.get("gate") or {}),
            drills=tuple(DrillRecord.from_json(x) for x in d.get("drills") or ()),
            metrics=RunMetrics.from_json(d["metrics"]) if d.get("metrics") else None,
            owner=d.get("owner") or None,
        )


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    """The JSON Schema of ``summary.json`` shipped in ``harness/record/schema/``."""
    text = resources.files("harness.record").joinpath("schema/summary.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def validate_summary(document: Mapping[str, Any]) -> None:
    """Raise ``RecordError`` listing every place where ``document`` breaks the summary schema."""
    import jsonschema

    schema = load_schema()
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    problems = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    if problems:
        lines = [f"  at /{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in problems[:20]]
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise RecordError("summary.json does not match its schema:\n" + "\n".join(lines) + more)
