"""The run's Markdown: README.md, one status update per incident, post-mortem drafts, external notices.

Written for a reviewer who does not read code: every number is shown against what it was held to,
a failed expectation says by how much it was missed, and what the agent did is listed from the events
it sent. Everything is rendered from the records; nothing is measured or judged here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from harness import units
from harness.record.model import DrillRecord, Escrows, Funds, Incident, RunRecord, severity_rank

__all__ = [
    "CATEGORY_WORDS", "slug", "fmt_seconds", "fmt_wall", "against_budget", "render_readme", "render_status_update",
    "status_update_text", "impact_text", "render_postmortem", "render_notice", "notice_text", "status_update_name",
    "render_status_updates", "agent_words", "incident_changes", "escrow_exposure", "EscrowExposure", "notice_due",
    "funds_at_risk_text", "root_cause", "harness_author",
]

CATEGORY_WORDS = {
    "missed_detection": "the agent did not raise the expected incident in time",
    "wrong_severity": "the agent classified (or escalated) the incident at the wrong severity",
    "late_containment": "the damage was not contained in time",
    "over_reaction": "the agent over-reacted to a minor fault (failed over, paused, halted or raised it above SEV-4)",
    "no_recovery": "the agent did not recover in time",
    "invariant_broken": "a rule that must hold for the whole drill was broken",
    "regression": "slower than this drill's own history allows",
    "failed": "a check of the scenario failed",
    "not_steady": "the agent was not healthy before the fault, so the drill did not run",
    "aborted": "the drill was stopped before its end (a safety limit, Ctrl-C or a game day's lever)",
    "harness_error": "the harness itself failed (not a verdict on the agent)",
}
STATUS_MARK = {"passed": "✅ passed", "failed": "❌ failed", "aborted": "⛔ aborted", "error": "⚠️ error"}
#: an invariant's verdict as shown; skipped is grey, never a green pass
VERDICT_MARK = {"passed": "✅ passed", "failed": "❌ failed", "skipped": "⏭️ skipped", "unknown": "❓ unknown"}


def not_evaluated(profiles: Iterable[str | None]) -> str:
    """The words for a policy target the run cannot be held to: the agent's intervals were compressed."""
    names = sorted({p or "not recorded" for p in profiles})
    return f"not evaluated (compressed profile: {', '.join(f'`{n}`' for n in names)})"


def slug(name: str) -> str:
    """A file-name-safe form of a node id: ``scenarios/test_x.py::test_y[a]`` -> ``test_x-test_y-a``."""
    text = name.replace(".py::", "-").replace("::", "-").rsplit("/", 1)[-1]
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return text[:120] or "drill"


def status_update_name(drill: DrillRecord, incident: Incident) -> str:
    return f"status-updates/{slug(drill.name)}--{incident.incident_id}.md"


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 3600:
        return f"{value / 3600:.3g} h"
    if value >= 120:
        return f"{value / 60:.3g} min"
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def fmt_eth(wei: int) -> str:
    return units.fmt_eth(wei, digits=6)


def fmt_wall(ts: float | None) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_rel(rel: float | None, base: str = "t0") -> str:
    """``t0+1.20 s``; ``base`` is "start" for a drill without an injection."""
    if rel is None:
        return "—"
    return f"{base}{'+' if rel >= 0 else '−'}{abs(rel):.2f} s"


def _base(d: DrillRecord) -> str:
    return "t0" if d.t0 is not None else "start"


def against_budget(value: float | None, budget: float | None) -> str:
    """``3.20 s / 5.0 s``; ``7.10 s / 5.0 s (2.10 s over)``; ``none / 5.0 s``."""
    if budget is None:
        return fmt_seconds(value) if value is not None else "—"
    if value is None:
        return f"none / {fmt_seconds(budget)}"
    text = f"{fmt_seconds(value)} / {fmt_seconds(budget)}"
    if value > budget:
        text += f" (**{fmt_seconds(value - budget)} over**)"
    return text


def _cell(text: str | None, limit: int = 160) -> str:
    text = (text or "").replace("\n", " ").replace("|", "\\|").strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    head = list(header)
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(_cell(c, 400) for c in row) + " |" for row in rows]
    return out


def _failure_words(d: DrillRecord) -> str:
    if d.status == "passed":
        return ""
    words = CATEGORY_WORDS.get(d.failure_category or "", d.status)
    return f"{words[0].upper()}{words[1:]}: {d.failure_message}" if d.failure_message else words.capitalize()


def _fault_text(d: DrillRecord) -> str:
    if not d.faults:
        return "none injected"
    parts = []
    for f in d.faults:
        params = ", ".join(f"{k}={v}" for k, v in f.params.items())
        parts.append(f"`{f.type}`" + (f" ({params})" if params else ""))
    return "; ".join(parts)


def _expected_text(d: DrillRecord) -> str:
    e = d.expected_incident
    if e is None:
        return "none declared"
    return f"`{e.kind}`" + (f" at {e.min_severity} or above" if e.min_severity else "")


def _amount(wei: int | None) -> str:
    return "unknown" if wei is None else fmt_eth(wei)


def _impact(d: DrillRecord) -> str:
    return impact_text(funds=d.funds, escrows=d.escrows, restarts=d.restarts)


def impact_text(*, funds: Funds | None, escrows: Escrows, restarts: int) -> str:
    """The Impact line of a status update: money, escrows, restarts; ``funds=None``: not read yet (a live update)."""
    f, e = funds, escrows
    if f is None:
        money = ["funds not read yet (the harness reads them on chain when the drill ends)"]
    elif f.known:
        money = [f"{fmt_eth(f.lost_wei or 0)} lost", f"{fmt_eth(f.swept_wei or 0)} swept to the cold wallet"]
    else:
        money = [f"funds unknown ({f.error})"]
    parts = [*money, f"{e.proven} of {e.opened} escrows proven", f"{e.missed_deadlines} deadline(s) missed"]
    if f is not None and f.at_risk_wei:
        parts.insert(0, f"{fmt_eth(f.at_risk_wei)} at risk in the hot wallet")
    if e.reassigned:
        parts.append(f"{e.reassigned} escrow(s) reassigned to a new address")
    if restarts:
        parts.append(f"{restarts} agent restart(s)")
    return "; ".join(parts)


def _response_target(d: DrillRecord, incident: Incident) -> float | None:
    return d.policy.response_s.get(incident.severity)


def render_status_update(d: DrillRecord, incident: Incident) -> str:
    """One incident in the status-update format, as of the drill's end."""
    last = incident.events[-1]
    budget = d.budgets.recover_s
    return status_update_text(
        incident, base=_base(d), impact=_impact(d), response_target_s=_response_target(d, incident),
        next_steps_open=f"Incident still {last.status} when the drill ended; " + (
            _failure_words(d) if d.status != "passed" else "follow up on its resolution."),
        eta_open="unknown: not resolved" + (f" within the drill's {fmt_seconds(budget)} recovery budget" if budget else ""),
    )


def incident_changes(incident: Incident) -> list[int]:
    """Indices of the events that changed the incident's status or severity (the first event always does)."""
    out: list[int] = []
    for k, ev in enumerate(incident.events):
        if k == 0 or (ev.status, ev.severity) != (incident.events[k - 1].status, incident.events[k - 1].severity):
            out.append(k)
    return out


def _incident_until(incident: Incident, k: int) -> Incident:
    """The incident as it stood once its event ``k`` had arrived."""
    events = incident.events[: k + 1]
    return Incident(incident_id=incident.incident_id, kind=incident.kind,
                    severity=min((ev.severity for ev in events), key=severity_rank), events=events)


def _escrows_until(d: DrillRecord, rel: float | None) -> str:
    """What the chain watcher had recorded of the counterparty's escrows by ``rel`` (seconds from the drill's origin)."""
    seen = [e for e in d.timeline if rel is None or e.rel_s <= rel]
    count = {kind: sum(1 for e in seen if e.kind == f"escrow.{kind}") for kind in ("opened", "proven", "expired", "reassigned")}
    return (f"as the chain showed at this update: {count['proven']} of {count['opened']} escrows proven, "
            f"{count['expired']} expired, {count['reassigned']} reassigned; funds and missed deadlines are read on chain "
            "when the drill ends (see the update at the top)")


def render_status_updates(d: DrillRecord, incident: Incident) -> str:
    """The drill's status-updates file of one incident: the update as of the drill's end, then one dated update per change.

    Each change of status or severity the agent sent is an update of its own, in the same layout,
    saying what was known when it arrived: the incident up to that event, the escrows the chain had
    shown by then, the agent's own impact and next steps as they stood then.
    """
    changes = incident_changes(incident)
    parts = [render_status_update(d, incident),
             f"#### Updates as {incident.incident_id} changed ({len(changes)})", "",
             "One update per change of status or severity, oldest first, dated by the harness's clock when the "
             "agent's event arrived.", ""]
    budget = d.budgets.recover_s
    for n, k in enumerate(changes, 1):
        ev = incident.events[k]
        eta = "open at this update"
        if budget and d.t0 is not None:
            eta += f"; the drill's recovery budget is {fmt_seconds(budget)} from the injection (until {fmt_wall(d.t0 + budget)})"
        parts.append(status_update_text(
            _incident_until(incident, k), base=_base(d), impact=_escrows_until(d, ev.rel_s),
            response_target_s=d.policy.response_s.get(ev.severity),
            next_steps_open=f"Incident {ev.status} at this update; the harness followed it until it was resolved "
                            "or the drill ended.",
            eta_open=eta, heading=f"##### Update {n}: {fmt_wall(ev.received_at)}, {ev.status} at {ev.severity}"))
    return "\n".join(parts)


def agent_words(incident: Incident, key: str) -> str | None:
    """What the agent last said under ``details[key]`` (``impact``, ``next_steps``) for ``incident``; None: never said.

    The latest event that carries a non-empty text wins. It is the agent's claim, shown as such,
    never a measurement.
    """
    for ev in reversed(incident.events):
        value = ev.details.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _beside_claim(harness_text: str, claim: str | None) -> str:
    if claim is None:
        return harness_text
    return f'{harness_text} — the agent\'s own words (its claim, not checked): "{_cell(claim, 300)}"'


def status_update_text(incident: Incident, *, base: str, impact: str, response_target_s: float | None,
                       next_steps_open: str, eta_open: str, heading: str | None = None) -> str:
    """The status-update layout: the incident guide's fields in its order, one line each.

    The one layout of a status update: the run's report renders it when a drill has ended
    (``render_status_update``) and a game day while the drill runs (``harness.gameday.live``), so the
    two cannot differ. ``base`` names what event times count from (``t0``, ``start``); the next steps
    and ETA of an incident that is not resolved are the caller's words (what it knows at that moment),
    those of a resolved one are the same for both. ``impact`` is what the harness measured; the
    agent's own ``details.impact`` and ``details.next_steps`` (the latest it sent) follow the
    harness's text as its claim. ``heading`` replaces the default heading (a dated update).
    """
    first, last = incident.events[0], incident.events[-1]
    actions = [f"{a} ({fmt_rel(ev.rel_s, base)})" for ev in incident.events for a in ev.actions]
    resolved_ev = next((ev for ev in incident.events if ev.status == "resolved"), None)
    if resolved_ev is not None:
        next_steps = "Monitor; review the post-mortem draft." if severity_rank(incident.severity) <= 2 else "Monitor."
        eta = f"resolved at {fmt_wall(resolved_ev.received_at)} ({fmt_rel(resolved_ev.rel_s, base)})"
    else:
        next_steps, eta = next_steps_open, eta_open
    impact = _beside_claim(impact, agent_words(incident, "impact"))
    next_steps = _beside_claim(next_steps, agent_words(incident, "next_steps"))
    lines = [
        heading or f"#### Status update: {incident.incident_id}",
        "",
        f"- **Incident ID:** {incident.incident_id}",
        f"- **Severity:** {incident.severity}" + (f" (policy response target {fmt_seconds(response_target_s)})"
                                                  if response_target_s else ""),
        f"- **Status:** {last.status}",
        f"- **Started:** {fmt_wall(first.received_at)} ({fmt_rel(first.rel_s, base)}; kind `{incident.kind}`)",
        f"- **Summary:** {_cell(last.summary or first.summary, 400) or '(no summary sent)'}",
        f"- **Impact:** {impact}",
        f"- **Actions taken:** {'; '.join(actions) if actions else 'none reported'}",
        f"- **Next steps:** {next_steps}",
        f"- **ETA:** {eta}",
        "",
    ]
    return "\n".join(lines)


def _key_events(d: DrillRecord) -> list[tuple[float, str]]:
    keep = {"fault.inject": "fault injected", "fault.heal": "fault healed", "drill.steady": "steady state reached",
            "drill.detected": "detection counted",
            "drill.recovered": "recovery confirmed", "agent.exit": "agent exited", "agent.restart": "agent restarted",
            "drill.aborted": "drill aborted", "escrow.expired": "escrow expired", "escrow.reassigned": "escrow reassigned",
            "agent.new_address": "new hot address announced"}
    out = []
    for e in d.timeline:
        if e.kind == "drill.contained":
            out.append((e.rel_s, _containment_words(e.data)))
        elif e.kind in keep:
            extra = e.source.removeprefix("fault:") if e.kind.startswith("fault.") else ""
            out.append((e.rel_s, keep[e.kind] + (f" ({extra})" if extra else "")))
        elif e.kind == "contract.violation" and e.data.get("what"):
            out.append((e.rel_s, f"contract violation ({e.source}): {e.data.get('what')}, "
                                 f"count {e.data.get('count')}: {_cell('; '.join(map(str, e.data.get('problems') or ())), 160)}"))
        elif e.kind == "alert":
            data = e.data
            out.append((e.rel_s, f"alert {data.get('incident_id')} {data.get('kind')} {data.get('severity')} "
                                 f"{data.get('status')}: {_cell(str(data.get('summary', '')), 100)}"))
    return out


def _containment_words(data: Any) -> str:
    """What the drill's containment rested on: the harness's own evidence, the agent's claims, or both."""
    evidence = [str(x) for x in data.get("evidence") or ()]
    claims = [str(x) for x in data.get("claims") or ()]
    if evidence and not claims:
        return f"containment confirmed on ground truth ({', '.join(evidence)})"
    if claims and not evidence:
        return f"containment as the agent reported it, not confirmed by the harness ({', '.join(claims)})"
    if evidence and claims:
        return f"containment confirmed on ground truth ({', '.join(evidence)}) and as reported by the agent ({', '.join(claims)})"
    return "containment conditions held"


def _checks(d: DrillRecord) -> tuple[list[str], list[str]]:
    """(what went well, what went wrong) as sentences, from the measurements against their budgets."""
    good: list[str] = []
    bad: list[str] = []
    for label, value, budget in (("detected", d.mttd_s, d.budgets.detect_s), ("contained", d.contain_s, d.budgets.contain_s),
                                 ("recovered", d.mttr_s, d.budgets.recover_s)):
        if value is not None and (budget is None or value <= budget):
            good.append(f"{label.capitalize()} in {fmt_seconds(value)}" + (f" (budget {fmt_seconds(budget)})" if budget else ""))
        elif value is not None and budget is not None:
            bad.append(f"{label.capitalize()} in {fmt_seconds(value)}, {fmt_seconds(value - budget)} over the {fmt_seconds(budget)} budget")
        elif d.t0 is not None and budget is not None and _stage_failed(d, label):
            bad.append(f"Not {label} within the {fmt_seconds(budget)} budget")
    for inv in d.invariants:
        if inv.verdict == "passed":
            good.append(f"{inv.name}: {inv.message}")
        elif inv.verdict != "skipped":  # skipped is neither: see _not_checked
            bad.append(f"{inv.name} ({inv.verdict}): {inv.message}")
    if not d.funds.known:
        bad.append(f"Funds unknown: {d.funds.error}")
    if d.status != "passed" and d.failure_message and not bad:
        bad.append(_failure_words(d))
    return good, bad


def _not_checked(d: DrillRecord) -> list[str]:
    return [f"{inv.name}: {inv.message}" for inv in d.invariants if inv.verdict == "skipped"]


def _stage_failed(d: DrillRecord, label: str) -> bool:
    return {"detected": "missed_detection", "contained": "late_containment", "recovered": "no_recovery"}[label] == d.failure_category


def _action_items(d: DrillRecord) -> list[str]:
    items = []
    kind = d.expected_incident.kind if d.expected_incident else "the expected incident"
    if d.failure_category == "missed_detection" or (d.mttd_s and d.budgets.detect_s and d.mttd_s > d.budgets.detect_s):
        items.append(f"Detect `{kind}` faster: took {fmt_seconds(d.mttd_s)}, budget {fmt_seconds(d.budgets.detect_s)}")
    if d.failure_category == "late_containment" or (d.contain_s and d.budgets.contain_s and d.contain_s > d.budgets.contain_s):
        items.append(f"Contain sooner: {_cell(d.failure_message, 300) if d.failure_category == 'late_containment' else fmt_seconds(d.contain_s)}"
                     f" (budget {fmt_seconds(d.budgets.contain_s)})")
    if d.failure_category == "wrong_severity":
        items.append(f"Classify `{kind}` at the severity the guide gives it (and raise it when it outlasts its "
                     f"escalation time): {_cell(d.failure_message, 300)}")
    if d.failure_category == "over_reaction":
        items.append(f"Ride out a minor fault (SEV-4 at most, no failover, pause or halt): {_cell(d.failure_message, 300)}")
    if d.failure_category == "failed":
        items.append(f"Fix the failed check: {_cell(d.failure_message, 300)}")
    if d.failure_category == "no_recovery" or (d.mttr_s and d.budgets.recover_s and d.mttr_s > d.budgets.recover_s):
        items.append(f"Recover within {fmt_seconds(d.budgets.recover_s)}: "
                     f"{_cell(d.failure_message, 300) if d.failure_category == 'no_recovery' else 'took ' + fmt_seconds(d.mttr_s)}")
    for inv in d.invariants:
        if inv.verdict == "failed":
            items.append(f"Fix: {inv.name}: {_cell(inv.message, 300)}")
        elif inv.verdict == "unknown":
            items.append(f"Find out why `{inv.name}` could not be checked: {_cell(inv.message, 200)}")
    if d.regression and d.regression.regressed:
        items.append(f"Investigate the slowdown: {d.regression.message}")
    if d.status in ("error", "aborted") and not items:
        items.append(f"{_failure_words(d)}")
    if d.escrows.missed_deadlines:
        items.append(f"Notify the counterparty about {d.escrows.missed_deadlines} missed deadline(s) (see the external notice)")
    return items or ["Review this draft; the drill met every check, confirm no follow-up is needed"]


def harness_author(owner: str | None = None) -> str:
    """The Author of a post-mortem draft: the run's owner (a game day's plan owner) where known, else this harness."""
    from harness import __version__

    if owner:
        return f"{owner} (the game day's owner); drafted by agent-drills {__version__} for review"
    return f"agent-drills {__version__}, draft for review"


def root_cause(d: DrillRecord) -> str:
    """The root-cause line: what failed, from the record's failure and failed invariants; for a pass, the injected fault.

    A drill's cause is known where the harness injected it; a failed drill's cause is the check that
    failed (the category's words, its message, each failed or unknown invariant) after that fault.
    """
    fault = _fault_text(d)
    if d.status == "passed":
        return f"the injected fault: {fault} (known: the harness injected it; the agent's response met every check)"
    broken = [f"`{i.name}` {i.verdict}: {_cell(i.message, 200)}" for i in d.invariants if i.verdict in ("failed", "unknown")]
    if d.failure_category == "invariant_broken" and broken:
        cause = CATEGORY_WORDS["invariant_broken"][0].upper() + CATEGORY_WORDS["invariant_broken"][1:]
    else:
        cause = _failure_words(d)
    text = cause + (f"; failed invariant(s): {'; '.join(broken)}" if broken else "")
    return f"{text} (after the injected fault: {fault})" if d.faults else text


def _duration(d: DrillRecord) -> str:
    """How long the incident lasted, as the harness measured it."""
    if d.mttr_s is not None:
        return f"{fmt_seconds(d.mttr_s)}, from the injection to recovery confirmed by the harness (MTTR)"
    end = d.started_at + d.duration_s
    if d.t0 is not None:
        return (f"not measured to its end: not confirmed recovered; the drill ended {fmt_seconds(end - d.t0)} "
                "after the injection")
    firsts = [i.events[0].received_at for i in d.incidents if i.events]
    if firsts:
        return f"not measured to its end: the drill ended {fmt_seconds(end - min(firsts))} after the agent's first event"
    return "not measured: no fault was injected and no incident raised"


def _severity_words(d: DrillRecord) -> str:
    raised = [i.severity for i in d.incidents]
    expected = d.expected_incident.min_severity if d.expected_incident else None
    if raised:
        text = f"{min(raised, key=severity_rank)} (the highest the agent raised"
        return text + (f"; the drill expected {expected})" if expected else ")")
    return f"{expected} (expected by the drill; the agent raised no incident)" if expected else "not known"


def render_postmortem(d: DrillRecord, *, author: str | None = None) -> str:
    """A post-mortem draft in the template's sections, filled from the drill's measurements.

    The header carries the template's Date, Severity, Duration and Author; ``author`` defaults to the
    harness (``harness_author()``): a run's record does not know who owns the drill.
    """
    good, bad = _checks(d)
    grave = [i for i in d.incidents if severity_rank(i.severity) <= 2]
    ids = ", ".join(i.incident_id for i in grave) or "no SEV-1/SEV-2 incident was raised by the agent"
    if not d.recovery_asserted:
        complete = "completion not observed: the drill did not wait for recovery"
    else:
        complete = "complete" if d.postmortem_complete else "incomplete: an incident was not resolved"
    skipped = _not_checked(d)
    not_checked = f" Not checked in this drill: {'; '.join(skipped)}." if skipped else ""
    lines = [
        f"### Post-mortem (draft): {d.scenario}",
        "",
        f"_Drill `{d.name}`; incidents: {ids}; draft {complete}._",
        "",
        f"- **Date:** {fmt_wall(d.t0 or d.started_at)}",
        f"- **Severity:** {_severity_words(d)}",
        f"- **Duration:** {_duration(d)}",
        f"- **Author:** {author or harness_author()}",
        "",
        "#### Summary",
        "",
        f"Fault {_fault_text(d)} injected at {fmt_wall(d.t0)}; expected incident {_expected_text(d)}. "
        f"Detected in {fmt_seconds(d.mttd_s)}, contained in {fmt_seconds(d.contain_s)}, recovered in {fmt_seconds(d.mttr_s)}. "
        f"Verdict: {d.status}" + (f" ({_failure_words(d)})" if d.status != "passed" else "") + ".",
        "",
        "#### Timeline",
        "",
        *_table(["When", "Since injection" if d.t0 is not None else "Since start", "What"],
                [(fmt_wall(d.t0 + rel if d.t0 is not None else d.started_at + rel), fmt_rel(rel, _base(d)), what)
                 for rel, what in _key_events(d)]),
        "",
        "#### Root Cause",
        "",
        f"**Root cause:** {root_cause(d).rstrip('.')}.",
        "",
        f"Injected by the drill: {_fault_text(d)} (fault family `{d.family or 'unknown'}`, playbook `{d.playbook or 'unknown'}`).",
        "",
        "#### Impact",
        "",
        _impact(d) + f"; gas spent {_amount(d.funds.gas_wei)}." + not_checked,
        "",
        "#### What Went Well",
        "",
        *([f"- {g}" for g in good] or ["- Nothing measured went well."]),
        "",
        "#### What Went Wrong",
        "",
        *([f"- {b}" for b in bad] or ["- Nothing measured went wrong."]),
        "",
        "#### Action Items",
        "",
        *[f"- [ ] {item}" for item in _action_items(d)],
        "",
        "#### Lessons Learned",
        "",
        ("- The agent met its budgets for this fault; keep the drill in CI to hold the line."
         if not bad else f"- {len(bad)} check(s) failed for this fault; see Action Items."),
        "- _To be completed by the team after review._",
        "",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class EscrowExposure:
    """The counterparty's escrow money in a drill, summed from the chain watcher's escrow events in the record.

    ``measured`` is False when the record has escrow counts but none of the events that carry their
    amounts (a record of an older version): then nothing here is known, and a notice says so.
    """

    measured: bool
    open_at_start: int = 0  # escrows open to the agent (unproven, unexpired) when the incident began
    open_at_start_wei: int = 0
    expired: int = 0
    expired_wei: int = 0  # of those whose opening (and amount) was recorded
    reassigned: int = 0
    reassigned_wei: int = 0
    #: expired or reassigned escrows whose opening the watcher did not record (their amounts are not known)
    unknown_amounts: int = 0
    agents: tuple[str, ...] = ()  # the agent addresses escrows were opened for


def _incident_start(d: DrillRecord) -> float:
    """When the incident began, in the record's relative seconds: the injection, else the agent's first event."""
    if d.t0 is not None:
        return 0.0
    firsts = [i.events[0].rel_s for i in d.incidents if i.events and i.events[0].rel_s is not None]
    return min(firsts) if firsts else 0.0


def escrow_exposure(d: DrillRecord) -> EscrowExposure:
    """What the counterparty had in escrow with the agent, from the escrow events the chain watcher recorded."""
    opened: dict[Any, int] = {}
    agents: set[str] = set()
    closed_before: set[Any] = set()
    expired: set[Any] = set()
    reassigned: set[Any] = set()
    begin = _incident_start(d)
    for e in d.timeline:
        key = e.data.get("id")
        if key is None:
            continue
        if e.kind == "escrow.opened":
            try:
                opened[key] = int(e.data.get("amount") or 0)
            except (TypeError, ValueError):
                opened[key] = 0
            if e.data.get("agent"):
                agents.add(str(e.data["agent"]))
        elif e.kind in ("escrow.proven", "escrow.expired") and e.rel_s <= begin:
            closed_before.add(key)
        if e.kind == "escrow.expired":
            expired.add(key)
        elif e.kind == "escrow.reassigned":
            reassigned.add(key)
    if not opened and d.escrows.opened:
        return EscrowExposure(measured=False)
    open_then = [k for k, e in ((e.data.get("id"), e) for e in d.timeline if e.kind == "escrow.opened")
                 if e.rel_s <= begin and k not in closed_before]
    return EscrowExposure(
        measured=True, open_at_start=len(open_then), open_at_start_wei=sum(opened.get(k, 0) for k in open_then),
        expired=len(expired), expired_wei=sum(opened.get(k, 0) for k in expired),
        reassigned=len(reassigned), reassigned_wei=sum(opened.get(k, 0) for k in reassigned),
        unknown_amounts=len((expired | reassigned) - set(opened)), agents=tuple(sorted(agents)))


def _notice_severity(d: DrillRecord) -> str | None:
    """The graver of what the agent raised and what the drill expected (the harness knows what it injected)."""
    found = [i.severity for i in d.incidents]
    if d.expected_incident is not None and d.expected_incident.min_severity:
        found.append(d.expected_incident.min_severity)
    return min(found, key=severity_rank) if found else None


def notice_due(d: DrillRecord) -> bool:
    """A SEV-1/SEV-2 incident that affected the escrow partners: an escrow missed, expired or moved, or escrow
    funds measured at risk (escrows open to the agent when the incident began)."""
    if severity_rank(_notice_severity(d)) > 2:
        return False
    return d.escrows.touched or escrow_exposure(d).open_at_start > 0


def _balance_measured(d: DrillRecord) -> bool:
    """The engine read the agent's balances on chain before the incident began (its value at risk rests on that)."""
    begin = _incident_start(d)
    return any(e.kind == "chain.balances" and e.rel_s <= begin for e in d.timeline)


def funds_at_risk_text(d: DrillRecord) -> str:
    """The notice's funds-at-risk statement: the escrow and wallet figures the engine read on chain, or plainly not measured."""
    x = escrow_exposure(d)
    parts: list[str] = []
    if not x.measured:
        parts.append("escrow funds at risk were not measured (the record holds the escrow counts but not the amounts "
                     "read from the chain)")
    else:
        parts.append(f"{x.open_at_start} escrow(s) holding {fmt_eth(x.open_at_start_wei)} were open to our agent when the "
                     "incident began" if x.open_at_start else "no escrow of yours was open to our agent when the incident began")
        if x.expired:
            parts.append(f"{x.expired} escrow(s) holding {fmt_eth(x.expired_wei)} expired unproven (the escrow contract "
                         "returns that to you)")
        if x.reassigned:
            parts.append(f"{x.reassigned} escrow(s) holding {fmt_eth(x.reassigned_wei)} were reassigned to our new address")
        if x.unknown_amounts:
            parts.append(f"the amounts of {x.unknown_amounts} of those escrow(s) were not measured (their opening was "
                         "not recorded), so the sums above leave them out")
    f = d.funds
    if not f.known:
        parts.append(f"our own wallet's losses were not measured ({f.error})")
    elif not _balance_measured(d):
        parts.append("our hot wallet's balance when the incident began was not measured")
    else:
        parts.append(f"our hot wallet held {fmt_eth(f.at_risk_wei)} when the incident began; {_amount(f.lost_wei)} was lost "
                     f"and {_amount(f.swept_wei)} swept to our cold wallet")
    return "; ".join(parts) + ". Read on chain by the drill harness, not estimated."


def _next_update(severity: str | None, response_s: Mapping[str, float], resolved: bool) -> str:
    if resolved:
        return "none planned: the incident is resolved; we will share the post-mortem once it is reviewed."
    target = response_s.get(severity or "")
    return ((f"within {fmt_seconds(target)} (our response time for {severity})" if target else "at the next change")
            + ", sooner if the status changes; the post-mortem once it is reviewed.")


def reassigned_to(events: Iterable[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """The addresses the chain shows escrows reassigned to (``escrow.reassigned`` events, ``(kind, data)``
    pairs): what a notice tells the counterparties, from the chain, never from the agent's word."""
    return sorted({str(data["new"]) for kind, data in events if kind == "escrow.reassigned" and data.get("new")})


def render_notice(d: DrillRecord) -> str | None:
    """A notice to the escrow partners for a drill with a SEV-1/SEV-2 incident that affected them (``notice_due``)."""
    if not notice_due(d):
        return None
    e = d.escrows
    new_addresses = reassigned_to((t.kind, t.data) for t in d.timeline)
    end = d.started_at + d.duration_s
    severity = _notice_severity(d)
    grave = [i for i in d.incidents if severity_rank(i.severity) <= 2]
    if grave:
        subject = "; ".join(f"[{i.severity}] {i.incident_id} `{i.kind}`: {i.status}" for i in grave)
        status = "; ".join(f"{i.incident_id} {i.status}" for i in grave)
        resolved = [next(ev for ev in i.events if ev.status == "resolved") for i in grave if i.resolved]
        done = len(resolved) == len(grave)
        eta = (f"resolved at {fmt_wall(max(ev.received_at for ev in resolved))}" if done
               else "unknown: not resolved when the drill ended")
        claims = [f'{i.incident_id}: "{_cell(w, 300)}"' for i in grave if (w := agent_words(i, "impact"))]
    else:
        kind = d.expected_incident.kind if d.expected_incident else "incident"
        subject = f"[{severity}] `{kind}`: not reported by our agent"
        status, eta, done, claims = "no incident reported by the agent", "unknown: no incident was reported", False, []
    impact = _impact(d) + (f" — the agent's own words (its claim, not checked): {'; '.join(claims)}" if claims else "")
    agents = escrow_exposure(d).agents
    return notice_text(
        title=d.scenario, opening=f"between {fmt_wall(d.t0 or d.started_at)} and {fmt_wall(end)} our agent handled an incident",
        incidents=grave or d.incidents, escrows=e, new_addresses=new_addresses,
        to="the counterparties of our escrows" + (f" (escrows opened for {', '.join(agents)})" if agents else ""),
        subject=subject, impact=impact, status=status, eta=eta,
        funds_at_risk=funds_at_risk_text(d), next_update=_next_update(severity, d.policy.response_s, done))


def notice_text(*, title: str, opening: str, incidents: Iterable[Incident], escrows: Escrows,
                new_addresses: Iterable[str], to: str, subject: str, impact: str, status: str, eta: str,
                funds_at_risk: str, next_update: str) -> str:
    """The external-notice layout, shared by the run's report (``render_notice``) and a game day's live notice.

    The guide's fields first (To, Subject, Impact, Status, ETA, Funds at risk, Next update), then a
    letter: ``opening`` says when (``between A and B our agent handled an incident``, or, while it
    runs, ``since A our agent has been handling an incident``); the lines below come from the escrow counts.
    """
    e = escrows
    addresses = sorted(set(new_addresses))
    ids = ", ".join(f"{i.incident_id} {i.severity}" for i in incidents) or "no incident reported"
    lines = [
        f"### External notice: {title}",
        "",
        f"- **To:** {to}",
        f"- **Subject:** {subject}",
        f"- **Impact:** {impact}",
        f"- **Status:** {status}",
        f"- **ETA:** {eta}",
        f"- **Funds at risk:** {funds_at_risk}",
        f"- **Next update:** {next_update}",
        "",
        "To the counterparties of our escrows,",
        "",
        f"{opening} ({ids}).",
        "",
    ]
    if e.missed_deadlines or e.expired:
        lines.append(f"- {e.missed_deadlines} escrow deadline(s) were missed; {e.expired} escrow(s) expired unproven "
                     "and their funds are returned to you by the escrow contract.")
    if e.reassigned:
        target = f" to {', '.join(addresses)}" if addresses else ""
        lines.append(f"- {e.reassigned} open escrow(s) were reassigned{target} after the agent rotated its hot wallet; "
                     "please send new escrows to the new address.")
    lines += ["", "We will share the post-mortem once it is reviewed.", ""]
    return "\n".join(lines)


def _drill_row(d: DrillRecord) -> list[str]:
    return [f"[{d.scenario}](#{slug(d.name).lower()})", STATUS_MARK.get(d.status, d.status),
            against_budget(d.mttd_s, d.budgets.detect_s), against_budget(d.contain_s, d.budgets.contain_s),
            against_budget(d.mttr_s, d.budgets.recover_s), _failure_words(d) or "—"]


def _verdict(value: float | None, budget: float | None, failed_here: bool) -> str:
    if value is None:
        return "❌ not reached within the budget" if failed_here else "— not measured"
    if budget is not None and value > budget:
        return f"❌ {fmt_seconds(value - budget)} over"
    return "✅ within budget" if budget is not None else "—"


def _policy_cell(d: DrillRecord, value: float | None, target: float) -> str:
    """The policy target, judged only when the agent ran real time; a compressed run says so."""
    if not d.real_time:
        return f"< {fmt_seconds(target)}: {not_evaluated([d.agent_profile])}"
    return f"< {fmt_seconds(target)}: " + ("—" if value is None else ("✅ met" if value < target else "❌ missed"))


def _times_lines(d: DrillRecord) -> list[str]:
    """What the harness measured beside what the agent claimed, and the engine's findings."""
    out = []
    if d.respond_s is not None:
        out.append(f"- **Responded:** {fmt_rel(d.respond_s, 't0')} ({_cell(d.respond_action, 120)}), seen by the harness")
    elif d.t0 is not None:
        out.append("- **Responded:** no containment action seen by the harness (a drill contained by silence has none)")
    if d.claims:
        shown = ", ".join(f"{status} {fmt_rel(rel, 't0')}" for status, rel in sorted(d.claims.items(), key=lambda kv: kv[1]))
        out.append(f"- **The agent claimed:** {shown} (claims: recorded, never the measure)")
    for f in d.findings:
        out.append(f"- **Finding:** {_cell(f, 300)}")
    return [*out, ""] if out else []


_BAR = 40  # characters of the schedule's time axis


def _schedule_lines(d: DrillRecord) -> list[str]:
    """The fault schedule as a table and a timeline: each step's bar from its injection to its heal."""
    if not d.schedule:
        return []
    end = max([s.healed_s or s.at_s + s.hold_s for s in d.schedule] + [1.0])
    rows, bars = [], []
    for n, s in enumerate(d.schedule, 1):
        params = ", ".join(f"{k}={v}" for k, v in s.params.items())
        actual = (f"+{s.injected_s:.2f} → +{s.healed_s:.2f} s" if s.injected_s is not None and s.healed_s is not None
                  else "not carried out")
        if not s.judged:
            detected = "not judged (the fault did nothing to detect)"
        elif s.detected_s is None:
            detected = "**not detected**" if s.injected_s is not None else "not evaluated"
        else:
            detected = f"`{s.incident}` " + ("already open" if s.already_open else f"after {s.detected_s:.2f} s")
        rows.append((str(n), f"`{s.fault}`" + (f" ({params})" if params else ""),
                     f"+{s.at_s:g} → +{s.at_s + s.hold_s:g} s", actual, detected))
        a = round((s.injected_s if s.injected_s is not None else s.at_s) / end * _BAR)
        b = max(a + 1, round((s.healed_s if s.healed_s is not None else s.at_s + s.hold_s) / end * _BAR))
        bars.append(f"{n} {s.fault:<14} |{' ' * a}{'█' * (b - a)}{' ' * (_BAR - b)}|")
    return ["#### Fault schedule", "",
            *_table(["#", "Fault", "Planned", "Carried out", "Detected"], rows), "",
            "```", *bars, f"{'':17}0 s{'':{_BAR - 6}}{end:.0f} s", "```",
            "Offsets are seconds after steady state.", ""]


def _drill_section(run: RunRecord, d: DrillRecord, files: dict[str, list[str]]) -> list[str]:
    s = slug(d.name)
    lines = [
        f"<a id=\"{s.lower()}\"></a>",
        f"### {d.scenario}: {STATUS_MARK.get(d.status, d.status)}",
        "",
        f"- **Drill:** `{d.name}` (playbook `{d.playbook or '—'}`, family `{d.family or '—'}`)",
        f"- **Fault:** {_fault_text(d)}",
        f"- **Expected:** incident {_expected_text(d)}",
    ]
    if d.status != "passed":
        lines.append(f"- **What went wrong:** {_failure_words(d)}")
    lines += [
        f"- **Injected at:** {fmt_wall(d.t0)}; drill took {fmt_seconds(d.duration_s)} "
        f"(harness overhead {fmt_seconds(d.harness_overhead_s)})",
        "",
        *_table(["Measure", "Measured", "Drill budget", "Verdict", "Policy target"], [
            ("Time to detect (MTTD)", fmt_seconds(d.mttd_s), fmt_seconds(d.budgets.detect_s),
             _verdict(d.mttd_s, d.budgets.detect_s, d.failure_category == "missed_detection"), _policy_cell(d, d.mttd_s, d.policy.mttd_s)),
            ("Time to contain", fmt_seconds(d.contain_s), fmt_seconds(d.budgets.contain_s),
             _verdict(d.contain_s, d.budgets.contain_s, d.failure_category == "late_containment"), "—"),
            ("Time to recover (MTTR)", fmt_seconds(d.mttr_s), fmt_seconds(d.budgets.recover_s),
             _verdict(d.mttr_s, d.budgets.recover_s, d.failure_category == "no_recovery"), _policy_cell(d, d.mttr_s, d.policy.mttr_s)),
        ]),
        "",
    ]
    lines += _times_lines(d)
    lines += _schedule_lines(d)
    if d.regression is not None:
        lines += [f"- **History:** {d.regression.message}", ""]
    lines += ["#### What the agent did", ""]
    if d.incidents:
        for inc in d.incidents:
            lines.append(f"- **{inc.incident_id}** `{inc.kind}` {inc.severity}, last status {inc.status}:")
            for ev in inc.events:
                acts = f" — actions: {'; '.join(ev.actions)}" if ev.actions else ""
                lines.append(f"  - {fmt_rel(ev.rel_s, _base(d))} {ev.status} {ev.severity}: {_cell(ev.summary, 200)}{acts}")
    else:
        lines.append("- The agent raised no incident.")
    broken = "; ".join(f"{what} {n}" for what, n in d.violations.items())
    lines += [f"- Restarts: {d.restarts}; duplicate events: {d.alert_duplicates}; contract violations: {d.contract_violations}"
              + (f" ({broken})" if broken else ""), ""]
    if d.invariants:
        lines += ["#### Invariants", "", *_table(["Invariant", "Verdict", "Detail"],
                                                 [(i.name, VERDICT_MARK.get(i.verdict, i.verdict), i.message)
                                                  for i in d.invariants]), ""]
    f, e = d.funds, d.escrows
    money = (f"At risk {fmt_eth(f.at_risk_wei)}, lost {_amount(f.lost_wei)} (to the attacker {_amount(f.attacker_wei)}), "
             f"swept {_amount(f.swept_wei)}, gas {_amount(f.gas_wei)}." if f.known else
             f"At risk {fmt_eth(f.at_risk_wei)}; **funds unknown**: {f.error} (what was lost, swept and spent on gas was not read).")
    lines += [
        "#### Funds and escrows", "",
        f"{money} Escrows: {e.opened} opened, {e.proven} proven, "
        f"{e.expired} expired, {e.missed_deadlines} deadline(s) missed, {e.reassigned} reassigned.",
        "",
    ]
    if d.incidents:
        lines += ["#### Status updates", ""]
        for inc in d.incidents:
            lines.append(render_status_update(d, inc))
    if d.needs_postmortem:
        lines.append(render_postmortem(d, author=harness_author(run.owner)))
    notice = render_notice(d)
    if notice:
        lines.append(notice)
    links = files.get(d.name, [])
    if links:
        lines += ["#### Files", "", *[f"- [{p}]({p})" for p in links], ""]
        pngs = [p for p in links if p.endswith(".png") and p.startswith("charts/")]
        if pngs:
            lines += [f"![timeline of {d.scenario}]({pngs[0]})", ""]
    if d.rerun:
        lines += ["Re-run just this drill:", "", "```", d.rerun, "```", ""]
    return lines


def render_readme(run: RunRecord, files: dict[str, list[str]] | None = None) -> str:
    """README.md of a run; ``files`` maps a drill's name to the run-relative paths written for it."""
    m = run.metrics
    assert m is not None
    files = files or {}
    sev = m.incidents_by_severity
    pm = m.postmortems
    policy = run.drills[0].policy if run.drills else None
    mttd_target = policy.mttd_s if policy else 300.0
    mttr_target = policy.mttr_s if policy else 1800.0

    compressed = [d.agent_profile for d in run.drills if not d.real_time]

    def meets(value: float | None, target: float) -> str:
        if compressed:  # minutes-scale targets say nothing about an agent whose intervals were shortened
            return not_evaluated(compressed)
        return "—" if value is None else ("✅ met" if value < target else "❌ missed")

    unobserved = f"{pm.not_observed} not observed (drill ended before recovery)" if pm.not_observed else ""
    if pm.required:
        pm_value = f"{pm.complete} of {pm.required} ({pm.ratio:.0%})" + (f"; {unobserved}" if unobserved else "")
        pm_mark = "✅" if pm.ratio == 1 else "❌"
    else:
        pm_value, pm_mark = unobserved or "none required", "—"

    lines = [
        f"# Drill run {run.run_id}",
        "",
        f"{m.drills} drill(s): {m.passed} passed, {m.failed} failed, {m.aborted} aborted, {m.error} error(s).",
        "",
        *_table(["Run", ""], [
            ("Started", fmt_wall(run.started_at)), ("Ended", fmt_wall(run.ended_at)),
            ("Chain", run.chain_backend or "—"),
            ("Agent command", f"`{' '.join(run.agent_command)}`" if run.agent_command else "—"),
            ("Agent runtime", f"docker, image `{run.agent_runtime.get('image')}`" if run.agent_runtime.get("kind") == "docker"
             else "process"),
            ("Budget scale", f"{run.budget_scale:g}"),
            ("Agent profile", ", ".join(f"`{p}`" for p in sorted({d.agent_profile or "not recorded" for d in run.drills})) or "—"),
            ("Regression gate", f"{run.gate.mode}" + (f" (factor {run.gate.factor:g}, at least {run.gate.min_history} past runs)"
                                                     if run.gate.mode != "off" else "")),
            ("Versions", ", ".join(f"{k} {v}" for k, v in sorted(run.versions.items())) or "—"),
        ]),
        "",
        "## Incident metrics",
        "",
        *_table(["Metric", "This run", "Policy target", ""], [
            ("Mean time to detect (MTTD)", fmt_seconds(m.mean_mttd_s), f"< {fmt_seconds(mttd_target)}", meets(m.mean_mttd_s, mttd_target)),
            ("Mean time to recover (MTTR)", fmt_seconds(m.mean_mttr_s), f"< {fmt_seconds(mttr_target)}", meets(m.mean_mttr_s, mttr_target)),
            ("Incidents by severity", ", ".join(f"{k}: {v}" for k, v in sev.items()), "—", ""),
            ("Repeat incidents (same kind again in one drill)", str(m.repeat_incidents), "—", ""),
            ("Post-mortems complete (SEV-1/SEV-2 drills that waited for recovery)", pm_value, "all", pm_mark),
        ]),
        "",
        "## Drills",
        "",
        *_table(["Drill", "Status", "MTTD / budget", "Contain / budget", "MTTR / budget", "What went wrong"],
                [_drill_row(d) for d in run.drills]),
        "",
    ]
    for d in run.drills:
        lines += _drill_section(run, d, files)
    lines += ["---", "", "The machine-readable record of this run is [summary.json](summary.json).", ""]
    return "\n".join(lines)


def events_json(d: DrillRecord) -> str:
    """The drill's timeline as JSON (for attachments)."""
    return json.dumps([e.to_json() for e in d.timeline], indent=1, default=str)
