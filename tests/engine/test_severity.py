"""Severity triage on the engine's side: exact by default, ``at_least=True`` for a range, escalation.

A real chain context and a real alert sink over HTTP; the test posts the agent's events itself, so
each classification (right, over, under, raised later, escalated or not) is produced on purpose
and the verdict and its message read back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from chainctx import Marker, chain_ctx

from harness.checks.budgets import Budget
from harness.drill.api import Drill
from harness.drill.context import DrillContext
from harness.errors import DetectionMissed, UsageError, WrongSeverity
from harness.observe.alerts import AlertSink


@pytest.fixture
def ctx(drill_chain: Any, tmp_path: Path) -> Iterator[DrillContext]:
    with chain_ctx(drill_chain, tmp_path) as c:
        sink = AlertSink(c.timeline)
        sink.start()
        c.alerts = sink
        c.cleanup.callback(sink.stop)
        yield c


def drill_for(ctx: DrillContext, **budget: Any) -> Drill:
    d = Drill(ctx, name="t", scenario="t", budget=Budget(**budget))
    d.inject(Marker())
    return d


def post(ctx: DrillContext, severity: str, *, status: str = "detected", kind: str = "rpc_failure", n: int = 1) -> None:
    assert ctx.alerts is not None
    body = {"incident_id": f"INC-2026-12-03-{n:03d}", "kind": kind, "severity": severity, "status": status,
            "summary": "s", "ts": 1.0, "actions": [], "details": {}}
    assert requests.post(ctx.alerts.url, json=body, timeout=5).status_code == 200


def test_the_expected_severity_passes(ctx: DrillContext) -> None:
    d = drill_for(ctx)
    post(ctx, "SEV-3")
    assert d.expect_detection("rpc_failure", "SEV-3", within=2)["severity"] == "SEV-3"
    assert ctx.timeline.events("drill.detected")[0].data["at_least"] is False


def test_an_over_classification_fails_at_once_naming_both_severities(ctx: DrillContext) -> None:
    d = drill_for(ctx)
    post(ctx, "SEV-1")
    with pytest.raises(WrongSeverity) as err:
        d.expect_detection("rpc_failure", "SEV-3", within=30)
    assert str(err.value).startswith(
        "rpc_failure over-classified: the agent reported it at SEV-1, the drill expects exactly SEV-3 "
        "(incident INC-2026-12-03-001 at +")
    assert err.value.category == "wrong_severity"


def test_an_under_classification_fails_at_the_budget_naming_both(ctx: DrillContext) -> None:
    d = drill_for(ctx)
    post(ctx, "SEV-4")
    with pytest.raises(WrongSeverity, match=r"rpc_failure under-classified: the agent reported it at SEV-4, "
                                            r"the drill expects exactly SEV-2 \(within 0\.5 s"):
        d.expect_detection("rpc_failure", "SEV-2", within=0.5)


def test_a_lower_severity_raised_to_the_expected_one_passes(ctx: DrillContext) -> None:
    d = drill_for(ctx)
    post(ctx, "SEV-3")
    post(ctx, "SEV-2")
    assert d.expect_detection("rpc_failure", "SEV-2", within=2)["severity"] == "SEV-2"


def test_at_least_accepts_a_more_severe_one(ctx: DrillContext) -> None:
    d = drill_for(ctx)
    post(ctx, "SEV-1")
    assert d.expect_detection("rpc_failure", "SEV-3", at_least=True, within=2)["severity"] == "SEV-1"


def test_no_alert_at_all_is_a_missed_detection(ctx: DrillContext) -> None:
    d = drill_for(ctx)
    with pytest.raises(DetectionMissed, match="no rpc_failure alert at exactly SEV-3 within 0.3 s of injection"):
        d.expect_detection("rpc_failure", "SEV-3", within=0.3)


def test_an_escalation_on_time_passes_and_one_that_never_comes_fails(ctx: DrillContext) -> None:
    d = drill_for(ctx)
    post(ctx, "SEV-3")
    d.expect_detection("rpc_failure", "SEV-3", within=2)
    with pytest.raises(WrongSeverity, match=r"incident INC-2026-12-03-001 was never escalated: still SEV-3 and unresolved "
                                            r"past its escalation time of 0\.4 s, the drill expects it raised to SEV-2"):
        d.expect_escalation("SEV-2", after=0.4, within=0.3)
    post(ctx, "SEV-2")
    assert d.expect_escalation("SEV-2", after=0.4, within=0.3) > 0.2


def test_resolved_while_the_fault_is_held_is_the_agents_failure_and_after_a_heal_the_drills(ctx: DrillContext) -> None:
    d = drill_for(ctx)
    post(ctx, "SEV-3")
    d.expect_detection("rpc_failure", "SEV-3", within=2)
    post(ctx, "SEV-3", status="resolved")  # the fault (the Marker) is still injected: a false all-clear
    with pytest.raises(WrongSeverity, match=r"the agent called it resolved at \+[0-9.]+ s while the fault was still held"):
        d.expect_escalation("SEV-2", after=0.3, within=0.2)
    d.heal()  # now the drill let go of the fault before the escalation time: the drill's mistake
    with pytest.raises(UsageError, match="after the drill healed its fault and before its escalation time"):
        d.expect_escalation("SEV-2", after=5.0, within=0.2)


def test_a_raise_at_once_is_a_classification_not_an_escalation(ctx: DrillContext) -> None:
    d = drill_for(ctx)
    post(ctx, "SEV-3")
    d.expect_detection("rpc_failure", "SEV-3", within=2)
    post(ctx, "SEV-2")
    with pytest.raises(WrongSeverity, match="long before its escalation time of 30.0 s"):
        d.expect_escalation("SEV-2", after=30.0)


def test_escalation_needs_a_detection_and_a_higher_severity(ctx: DrillContext) -> None:
    d = drill_for(ctx)
    with pytest.raises(UsageError, match="call drill.expect_detection"):
        d.expect_escalation("SEV-2", after=1.0)
    post(ctx, "SEV-2")
    d.expect_detection("rpc_failure", "SEV-2", within=2)
    with pytest.raises(UsageError, match="must name a higher severity than the detected SEV-2"):
        d.expect_escalation("SEV-3", after=1.0)
