"""The record of one drill: everything a report needs, computed once by the engine.

Stored on the pytest item as ``item.stash[DRILL_RESULT]`` (see ``harness.drill.pytest_plugin``),
available from ``pytest_runtest_makereport`` of the teardown phase on. Reports render it; they never
recompute a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.vocabulary import DRILL_STATUSES, ENGINE_CATEGORIES, REAL_TIME_PROFILE

__all__ = ["STATUSES", "CATEGORIES", "REAL_TIME_PROFILE", "DrillResult"]

STATUSES = DRILL_STATUSES
#: why a drill did not pass; None when it passed
CATEGORIES = ENGINE_CATEGORIES


@dataclass(frozen=True, kw_only=True)
class DrillResult:
    name: str  # pytest node id
    scenario: str  # the test function's name (budget overrides are keyed by it)
    playbook: str | None
    family: str | None
    fault: str | None  # description of the (first) fault injected
    faults: tuple[dict[str, Any], ...]
    expected_incident: str | None
    status: str  # passed | failed | aborted | error
    category: str | None
    message: str | None
    t_start: float  # harness clock
    t0: float | None
    mttd: float | None
    time_to_contain: float | None
    mttr: float | None
    incident_id: str | None
    detected_severity: str | None
    budget: dict[str, Any]
    policy: dict[str, Any]
    incidents: tuple[dict[str, Any], ...]
    invariants: tuple[dict[str, str], ...]
    funds: dict[str, int]  # at_risk_wei, gas_wei, swept_wei, lost_wei, ... (see checks.invariants.Money); only at_risk_wei when funds_error
    escrows: dict[str, int]  # opened, proven, expired, missed_deadlines (the agent's deadlines that passed)
    gas_spent_wei: int | None  # None when the funds could not be read
    harness_overhead_s: float  # setup + teardown of the world
    duration_s: float
    timeline: tuple[dict[str, Any], ...]
    agent_output: str | None  # path of the captured stdout/stderr
    agent_cmd: tuple[str, ...]
    restarts: int
    alert_duplicates: int
    contract_violations: int
    chain_backend: str
    budget_scale: float
    rerun: str  # the command that re-runs just this drill
    #: why the funds are unknown (the read failed; the amounts are then absent, never zero); None when read
    funds_error: str | None = None
    #: AGENT_PROFILE the agent was started with ("drill": compressed intervals; "production": real time)
    agent_profile: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: the seconds each stage was held to (detect_s, contain_s, recover_s; None: not asserted), with
    #: deadline_misses and scale; empty in a result made before the engine recorded it
    budgets_applied: dict[str, Any] = field(default_factory=dict)
    #: how the agent ran: {"kind": "process", "image": None} or {"kind": "docker", "image": "repo:tag"}
    agent_runtime: dict[str, Any] = field(default_factory=lambda: {"kind": "process", "image": None})

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"DrillResult.status must be one of {STATUSES}, got {self.status!r}")

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def real_time(self) -> bool:
        """Whether the agent ran with production intervals, so policy targets (minutes) apply."""
        return self.agent_profile == REAL_TIME_PROFILE

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            out[name] = list(value) if isinstance(value, tuple) else value
        return out
