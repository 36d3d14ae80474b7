"""README.md, status updates, post-mortems and notices, rendered from drill records."""

from __future__ import annotations

import re

import pytest
from drilldata import NEW, rpc_down, wallet_compromise

from harness.observe.timeline import Event
from harness.record.build import incidents_so_far, record_from_result
from harness.report.markdown import (
    impact_text, render_notice, render_postmortem, render_readme, render_status_update, status_update_text,
)
from harness.record.model import RunRecord

STATUS_FIELDS = ["Incident ID", "Severity", "Status", "Started", "Summary", "Impact", "Actions taken", "Next steps", "ETA"]
POSTMORTEM_SECTIONS = ["Summary", "Timeline", "Root Cause", "Impact", "What Went Well", "What Went Wrong",
                       "Action Items", "Lessons Learned"]


def _readme(*results) -> str:
    drills = tuple(record_from_result(r) for r in results)
    run = RunRecord(run_id="r1", started_at=drills[0].started_at, ended_at=drills[0].started_at + 60,
                    chain_backend="anvil", agent_command=("python", "-m", "agent"), drills=drills)
    return render_readme(run)


def test_every_incident_gets_a_status_update_with_all_fields() -> None:
    d = record_from_result(wallet_compromise())
    text = render_status_update(d, d.incidents[0])
    for field in STATUS_FIELDS:
        assert re.search(rf"^- \*\*{field}:\*\* \S", text, re.M), field
    assert "- **Incident ID:** INC-2026-11-28-001" in text
    assert "- **Severity:** SEV-1 (policy response target 5 min)" in text
    assert "- **Status:** resolved" in text
    assert "swept ETH to cold wallet (t0+3.00 s)" in text
    assert "- **ETA:** resolved at" in text


def test_an_unresolved_incident_says_so_in_next_steps_and_eta() -> None:
    d = record_from_result(wallet_compromise(late=True))
    text = render_status_update(d, d.incidents[0])
    assert "- **Status:** contained" in text
    assert "Incident still contained when the drill ended; The damage was not contained in time" in text
    assert "- **ETA:** unknown: not resolved" in text


def test_a_status_update_while_the_drill_runs_has_the_layout_of_the_report() -> None:
    """The game day's live status update and the report's are one layout, fed the incident so far."""
    result = wallet_compromise()
    d = record_from_result(result)
    events = [Event(t=e["t"], wall=e["wall"], kind=e["kind"], source=e["source"], data=e["data"]) for e in result.timeline]
    alerts = [e for e in events if e.kind == "alert"]
    # the incident as a live feed sees it once the last alert arrived is the record's incident
    assert incidents_so_far(events, result.t0) == d.incidents
    # and before it was resolved: open, with the caller's words for what comes next
    so_far = incidents_so_far([e for e in events if e.t <= alerts[1].t], result.t0)
    live = status_update_text(so_far[0], base="t0", impact=impact_text(funds=None, escrows=d.escrows, restarts=0),
                              response_target_s=300.0, next_steps_open="Keep watching.", eta_open="open")
    ended = render_status_update(d, d.incidents[0])
    field = re.compile(r"^- \*\*(.+?):\*\* (.*)$", re.M)
    assert [k for k, _ in field.findall(live)] == [k for k, _ in field.findall(ended)] == STATUS_FIELDS
    assert "- **Status:** contained" in live and "- **ETA:** open" in live and "- **Next steps:** Keep watching." in live
    assert "- **Impact:** funds not read yet (the harness reads them on chain when the drill ends); 1 of 3 escrows" in live
    same = [line for line in live.splitlines() if line.startswith(("- **Incident ID", "- **Severity", "- **Started"))]
    assert same and all(line in ended for line in same)


def test_the_postmortem_follows_the_template_and_turns_failed_checks_into_action_items() -> None:
    d = record_from_result(wallet_compromise(late=True))
    text = render_postmortem(d)
    headings = re.findall(r"^#### (.+)$", text, re.M)
    assert headings == POSTMORTEM_SECTIONS
    items = re.findall(r"^- \[ \] (.+)$", text, re.M)
    assert any(i.startswith("Contain sooner: no sweep to the cold wallet within 10.0 s") for i in items), items
    assert any(i.startswith("Fix: deadlines missed within allowance: 1 missed") for i in items), items
    assert "fault injected (key_leak)" in text and "Injected by the drill: `key_leak` (drain_every=0.5)" in text
    # the drill stopped at containment: it never waited for the incident to be resolved
    assert "draft completion not observed: the drill did not wait for recovery" in text
    assert "draft incomplete" not in text


@pytest.mark.parametrize(("category", "message", "item"), [
    ("wrong_severity", "rpc_failure over-classified: the agent reported it at SEV-1, the drill expects exactly SEV-3",
     "Classify `rpc_failure` at the severity the guide gives it"),
    ("over_reaction", "over-reaction to rpc_outage: traffic moved to backup-1",
     "Ride out a minor fault (SEV-4 at most, no failover, pause or halt): over-reaction to rpc_outage"),
])
def test_a_severity_or_over_reaction_failure_is_an_action_item_not_a_clean_bill(category: str, message: str, item: str) -> None:
    d = record_from_result(rpc_down()).with_(status="failed", failure_category=category, failure_message=message)
    items = re.findall(r"^- \[ \] (.+)$", render_postmortem(d), re.M)
    assert any(i.startswith(item) for i in items), items
    assert not any(i.startswith("Review this draft; the drill met every check") for i in items), items


def test_the_readme_shows_metrics_drills_and_by_how_much_a_budget_was_missed() -> None:
    slow = rpc_down(mttd=7.25)  # detected, but 2.25 s after the 5 s budget
    text = _readme(wallet_compromise(late=True), rpc_down(missed=True), slow)
    assert "## Incident metrics" in text and "| Mean time to detect (MTTD) |" in text and "< 5 min" in text
    # the only SEV-1 drill stopped before recovery: its completion was not observed, not missed
    assert "| Post-mortems complete (SEV-1/SEV-2 drills that waited for recovery) | 1 not observed (drill ended before recovery) | all | — |" in text
    rows = [line for line in text.splitlines() if line.startswith("| [test_")]
    assert len(rows) == 3
    assert "❌ failed" in rows[0] and "none / 10.0 s" in rows[0] and "The damage was not contained in time" in rows[0]
    assert "The agent did not raise the expected incident in time: no rpc_failure alert at SEV-3" in rows[1]
    assert "7.25 s / 5.00 s (**2.25 s over**)" in rows[2]
    assert text.count("#### Status update: ") == 2
    assert "### Post-mortem (draft): test_leaked_key_is_swept" in text
    assert "pytest scenarios/test_wallet.py::test_leaked_key_is_swept" in text


def test_a_drill_that_touched_escrows_gets_an_external_notice() -> None:
    d = record_from_result(wallet_compromise())
    notice = render_notice(d)
    assert notice is not None
    assert "1 escrow deadline(s) were missed; 1 escrow(s) expired" in notice
    assert f"1 open escrow(s) were reassigned to {NEW}" in notice
    assert render_notice(record_from_result(rpc_down())) is None
