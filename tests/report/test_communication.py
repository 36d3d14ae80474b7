"""Communication in the guide's formats: status updates per change, partner notices, post-mortem headers.

Records are built here from the report tests' drill data (harness/record), then changed where a case
needs it: the agent's own impact and next steps, an escalation, escrows open when the incident began.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from drilldata import HOT, rpc_down, wallet_compromise

from harness import __version__
from harness.record.build import record_from_result
from harness.record.model import DrillRecord, Escrows, Funds, Incident, RunRecord, TimelineEntry, validate_summary
from harness.report.markdown import (
    agent_words, notice_due, render_notice, render_postmortem, render_readme, render_status_update, render_status_updates,
    root_cause,
)
from harness.report.secrets import SecretRegistry
from harness.report.writer import RunWriter

STATUS_FIELDS = ["Incident ID", "Severity", "Status", "Started", "Summary", "Impact", "Actions taken", "Next steps", "ETA"]
NOTICE_FIELDS = ["To", "Subject", "Impact", "Status", "ETA", "Funds at risk", "Next update"]
FIELD = re.compile(r"^- \*\*(.+?):\*\* (.*)$", re.M)


def _fields(text: str) -> dict[str, str]:
    return dict(FIELD.findall(text))


def _with_details(d: DrillRecord, per_event: list[dict[str, str]]) -> DrillRecord:
    """``d`` whose first incident's events carry ``per_event[k]`` in their details."""
    inc = d.incidents[0]
    events = tuple(replace(ev, details={**ev.details, **extra}) for ev, extra in zip(inc.events, per_event, strict=True))
    return d.with_(incidents=(replace(inc, events=events), *d.incidents[1:]))


# -- status updates ---------------------------------------------------------------------------------

def test_the_agents_impact_and_next_steps_are_shown_as_its_claim_beside_what_the_harness_measured() -> None:
    d = _with_details(record_from_result(wallet_compromise(late=True)), [
        {"impact": "Hot wallet drained", "next_steps": "sweep"},
        {"impact": "Funds swept; key rotated", "next_steps": "", "started": "x"},  # an empty text is no next step
    ])
    assert agent_words(d.incidents[0], "impact") == "Funds swept; key rotated"
    assert agent_words(d.incidents[0], "next_steps") == "sweep"  # the latest event that has one
    f = _fields(render_status_update(d, d.incidents[0]))
    # the harness's measure first, the agent's words after it, marked as its claim
    assert f["Impact"].startswith("5 ETH at risk in the hot wallet; 1 ETH lost;")
    assert f["Impact"].endswith('— the agent\'s own words (its claim, not checked): "Funds swept; key rotated"')
    assert f["Next steps"].startswith("Incident still contained when the drill ended;")
    assert f["Next steps"].endswith('— the agent\'s own words (its claim, not checked): "sweep"')
    # where the agent sent none, the harness's own text alone
    plain = _fields(render_status_update(record_from_result(rpc_down()), record_from_result(rpc_down()).incidents[0]))
    assert "agent's own words" not in plain["Impact"] + plain["Next steps"]


def _escalated() -> DrillRecord:
    """An RPC incident raised SEV-3 -> SEV-2 while detected (a repeat in between), then resolved."""
    d = record_from_result(rpc_down())
    inc = d.incidents[0]
    detected, resolved = inc.events
    repeat = replace(detected, received_at=detected.received_at + 0.5, rel_s=(detected.rel_s or 0) + 0.5, summary="still down")
    raised = replace(detected, severity="SEV-2", received_at=detected.received_at + 2, rel_s=(detected.rel_s or 0) + 2,
                     summary="escalated", actions=("escalated to SEV-2: unresolved past 8 s",),
                     details={"impact": "Proofs are not landing"})
    done = replace(resolved, severity="SEV-2")
    return d.with_(incidents=(Incident(incident_id=inc.incident_id, kind=inc.kind, severity="SEV-2",
                                       events=(detected, repeat, raised, done)),))


def test_the_status_updates_file_has_one_dated_update_per_change_of_status_or_severity(tmp_path: Path) -> None:
    d = _escalated()
    inc = d.incidents[0]
    text = render_status_updates(d, inc)
    # first the update as of the drill's end, then one per change (the repeat is none)
    assert text.startswith(render_status_update(d, inc))
    dated = re.findall(r"^##### Update (\d+): (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC), (\w+) at (SEV-\d)$", text, re.M)
    assert [(n, status, sev) for n, _, status, sev in dated] == [
        ("1", "detected", "SEV-3"), ("2", "detected", "SEV-2"), ("3", "resolved", "SEV-2")]
    entries = re.split(r"^##### ", text, flags=re.M)[1:]
    for entry in entries:
        assert [k for k, _ in FIELD.findall(entry)] == STATUS_FIELDS
    first, raised, done = (_fields(e) for e in entries)
    assert first["Severity"].startswith("SEV-3") and raised["Severity"].startswith("SEV-2 (policy response target 30 min)")
    assert first["Status"] == "detected" and first["ETA"].startswith("open at this update")
    assert "escalated to SEV-2: unresolved past 8 s" in raised["Actions taken"]
    assert "escalated to SEV-2" not in first["Actions taken"]  # each update says what was known then
    assert raised["Impact"].startswith("as the chain showed at this update: ")
    assert raised["Impact"].endswith('"Proofs are not landing"') and "agent's own words" not in first["Impact"]
    assert done["ETA"].startswith("resolved at ")
    # the report writes this file, not only the final state
    writer = RunWriter(tmp_path, "r1", SecretRegistry())
    writer.pictures = False
    out = writer.write_drill(d, None)
    rel = next(f for f in out["files"] if f.startswith("status-updates/"))
    assert (tmp_path / "r1" / rel).read_text() == text


# -- notices ----------------------------------------------------------------------------------------

def _sev1_with_an_open_escrow(**changes: object) -> DrillRecord:
    """The SEV-1 key leak where no escrow was missed or moved, but one of 0.01 ETH was open at the injection."""
    d = record_from_result(wallet_compromise())
    timeline = [e for e in d.timeline if e.kind not in ("escrow.expired", "escrow.reassigned")]
    timeline.append(TimelineEntry(rel_s=-1.0, kind="escrow.opened", source="chainwatch",
                                  data={"id": 7, "agent": HOT, "deadline": 99, "amount": 10**16, "block": 5}))
    timeline.sort(key=lambda e: e.rel_s)
    return d.with_(timeline=tuple(timeline), escrows=Escrows(opened=2, proven=1), **changes)


def test_a_notice_goes_out_for_a_sev1_incident_whose_escrow_funds_were_at_risk_with_every_field() -> None:
    d = _sev1_with_an_open_escrow()
    assert not d.escrows.touched and notice_due(d)  # the old rule (touched escrows only) sent none
    text = render_notice(d)
    assert text is not None
    f = _fields(text)
    assert list(f) == NOTICE_FIELDS
    assert f["To"] == f"the counterparties of our escrows (escrows opened for {HOT})"
    assert f["Subject"] == "[SEV-1] INC-2026-11-28-001 `wallet_compromise`: resolved"
    assert f["Status"] == "INC-2026-11-28-001 resolved" and f["ETA"].startswith("resolved at ")
    assert f["Funds at risk"].startswith("1 escrow(s) holding 0.01 ETH were open to our agent when the incident began; "
                                         "our hot wallet held 5 ETH when the incident began; 1 ETH was lost and 3.9 ETH swept")
    assert f["Funds at risk"].endswith("Read on chain by the drill harness, not estimated.")
    assert f["Next update"].startswith("none planned: the incident is resolved")


def test_an_open_sev1_notice_promises_the_next_update_and_quotes_the_agent() -> None:
    d = _with_details(_sev1_with_an_open_escrow(), [{}, {"impact": "Key leaked; funds swept"}, {}])
    d = d.with_(incidents=(replace(d.incidents[0], events=d.incidents[0].events[:2]),))  # never resolved
    f = _fields(render_notice(d) or "")
    assert f["Next update"] == "within 5 min (our response time for SEV-1), sooner if the status changes; the post-mortem once it is reviewed."
    assert f["ETA"] == "unknown: not resolved when the drill ended"
    assert f["Impact"].endswith('— the agent\'s own words (its claim, not checked): INC-2026-11-28-001: "Key leaked; funds swept"')


def test_a_notice_says_plainly_what_was_not_measured() -> None:
    unknown = _sev1_with_an_open_escrow(funds=Funds(at_risk_wei=5 * 10**18, lost_wei=None, swept_wei=None, attacker_wei=None,
                                                    gas_wei=None, error="the RPC did not answer"))
    assert "our own wallet's losses were not measured (the RPC did not answer)" in _fields(render_notice(unknown) or "")["Funds at risk"]
    d = _sev1_with_an_open_escrow()
    unread = d.with_(timeline=tuple(e for e in d.timeline if e.kind != "chain.balances"))
    assert "our hot wallet's balance when the incident began was not measured" in _fields(render_notice(unread) or "")["Funds at risk"]
    # escrows missed, but the record has no escrow events to sum: the amounts are not known
    counts_only = record_from_result(wallet_compromise())
    counts_only = counts_only.with_(timeline=tuple(e for e in counts_only.timeline if not e.kind.startswith("escrow.")))
    assert _fields(render_notice(counts_only) or "")["Funds at risk"].startswith("escrow funds at risk were not measured")


def test_no_notice_below_sev2_or_when_the_partners_were_not_affected() -> None:
    sev3 = record_from_result(rpc_down()).with_(escrows=Escrows(opened=4, proven=3, expired=1, missed_deadlines=1))
    assert sev3.escrows.touched and render_notice(sev3) is None  # a SEV-3 incident: no notice, even with an escrow missed
    d = _sev1_with_an_open_escrow()
    untouched = d.with_(timeline=tuple(e for e in d.timeline if e.kind != "escrow.opened"), escrows=Escrows())
    assert render_notice(untouched) is None  # SEV-1, but no escrow of theirs was open, missed or moved


# -- post-mortems -----------------------------------------------------------------------------------

def test_the_postmortem_header_carries_date_severity_duration_and_author() -> None:
    d = record_from_result(wallet_compromise())
    text = render_postmortem(d)
    header = text.split("#### Summary")[0]
    assert list(_fields(header)) == ["Date", "Severity", "Duration", "Author"]
    f = _fields(header)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", f["Date"])
    assert f["Severity"] == "SEV-1 (the highest the agent raised)"
    assert f["Duration"] == "9.00 s, from the injection to recovery confirmed by the harness (MTTR)"
    assert f["Author"] == f"agent-drills {__version__}, draft for review"
    assert _fields(render_postmortem(d, author="alice (game day owner)"))["Author"] == "alice (game day owner)"
    late = _fields(render_postmortem(record_from_result(wallet_compromise(late=True))).split("#### Summary")[0])
    assert late["Duration"].startswith("not measured to its end: not confirmed recovered; the drill ended ")


def test_a_game_days_owner_is_the_author_of_its_drafts(tmp_path: Path) -> None:
    d = record_from_result(wallet_compromise())
    run = RunRecord(run_id="r1", started_at=d.started_at, ended_at=d.started_at + 60, drills=(d,), owner="alice")
    document = run.to_json()
    validate_summary(document)
    assert document["owner"] == "alice" and RunRecord.from_json(document).owner == "alice"
    by_owner = f"alice (the game day's owner); drafted by agent-drills {__version__} for review"
    assert f"- **Author:** {by_owner}" in render_readme(run)
    writer = RunWriter(tmp_path, "r1", SecretRegistry())
    writer.pictures, writer.owner = False, "alice"
    writer.write_drill(d, None)
    assert _fields((tmp_path / "r1" / "postmortems" / "test_wallet-test_leaked_key_is_swept.md").read_text())["Author"] == by_owner
    # a run that does not know its owner: the harness
    plain = RunRecord(run_id="r2", started_at=d.started_at, ended_at=d.started_at + 60, drills=(d,))
    assert plain.to_json()["owner"] is None
    assert f"- **Author:** agent-drills {__version__}, draft for review" in render_readme(plain)


def test_the_root_cause_line_comes_from_the_failed_checks_or_the_injected_fault() -> None:
    passed = record_from_result(wallet_compromise())
    assert root_cause(passed).startswith("the injected fault: `key_leak` (drain_every=0.5) (known: the harness injected it")
    assert f"**Root cause:** {root_cause(passed)}." in render_postmortem(passed)
    failed = record_from_result(wallet_compromise(late=True))
    line = re.search(r"^\*\*Root cause:\*\* (.+)$", render_postmortem(failed), re.M)
    assert line is not None
    assert line.group(1).startswith("The damage was not contained in time: no sweep to the cold wallet within 10.0 s")
    assert "failed invariant(s): `deadlines missed within allowance` failed: 1 missed (1 expired, 0 overdue), allowance 0" in line.group(1)
    assert line.group(1).endswith("(after the injected fault: `key_leak` (drain_every=0.5)).")
