"""What a game day leaves beside its journal: JUnit XML, the incident metrics, the history of game days.

Nothing here judges a drill: the verdicts and times come from the inner runs' records (through the
runner's ``ItemOutcome``), and this module only counts and groups them:

- ``junit.xml``: one testcase per planned item (failure, error or skipped as the item ended);
- ``metrics.json`` and ``metrics.md``: MTTD and MTTR by incident kind and severity over this game
  day and over the history; incident frequency by severity per calendar month against the policy
  (fewer than 1 SEV-1 and 4 SEV-2 a month), counted only from real-time (``production``) game days
  and an imported incident log, since compressed drills say nothing about how often incidents
  happen; repeat incidents (the same faults and the same failed check in more than one game day);
  post-mortem completion; the policy targets for real-time items;
- one line per game day appended to ``<history_dir>/gamedays.jsonl``.
"""

from __future__ import annotations

import json
import statistics
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.checks.budgets import POLICY
from harness.record.model import severity_rank

if TYPE_CHECKING:
    from harness.gameday.plan import Plan
    from harness.gameday.runner import GamedayResult

__all__ = ["FREQUENCY_TARGETS", "history_line", "compute_metrics", "junit_xml", "render_metrics", "write_outputs",
           "load_history", "load_incident_log"]

#: incidents a month the policy tolerates: fewer than this many
FREQUENCY_TARGETS = {"SEV-1": 1, "SEV-2": 4}
HISTORY_FILE = "gamedays.jsonl"


def history_line(plan: Plan, out: Path, result: GamedayResult) -> dict[str, Any]:
    items = []
    for o in result.outcomes:
        m = o.measured
        items.append({
            "index": o.item.index, "label": o.item.label, "kind": o.item.kind, "status": o.status,
            "started_at": o.started_at, "duration_s": o.duration_s, "scenario": m.get("scenario"),
            "incident_kind": m.get("incident_kind") or o.item.incident, "severity": m.get("severity"),
            "mttd_s": m.get("mttd_s"), "mttr_s": m.get("mttr_s"), "faults": m.get("faults", []),
            "failed_check": m.get("failed_check"), "incidents": m.get("incidents", []),
            "postmortems": m.get("postmortems"),
        })
    return {"gameday": plan.name, "plan": str(plan.path), "out": str(out), "started_at": result.started_at,
            "duration_s": result.duration_s, "profile": plan.profile, "budget_scale": plan.budget_scale,
            "reason": result.reason, "items": items}


def load_history(path: Path) -> list[dict[str, Any]]:
    """The game days of a history file (a JSON-lines file like the journal); [] when there is none."""
    from harness.gameday.journal import read_journal

    return read_journal(path) if path.is_file() else []


def load_incident_log(path: Path | None) -> list[dict[str, Any]]:
    """Incident events (docs/contract.md section 3, one JSON object a line) of production, imported by the user."""
    if path is None or not path.is_file():
        return []
    return [e for e in load_history(path) if isinstance(e, dict) and e.get("incident_id") and e.get("severity")]


def _times(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        if r.get("status") in ("skipped",) or (r.get("mttd_s") is None and r.get("mttr_s") is None):
            continue
        key = f"{r.get('incident_kind') or 'unknown'} {r.get('severity') or 'no severity'}"
        groups.setdefault(key, []).append(r)
    out = {}
    for key in sorted(groups, key=lambda k: (severity_rank(k.rsplit(' ', 1)[-1]), k)):
        rs = groups[key]
        d = [r["mttd_s"] for r in rs if r.get("mttd_s") is not None]
        m = [r["mttr_s"] for r in rs if r.get("mttr_s") is not None]
        out[key] = {"items": len(rs), "mean_mttd_s": round(statistics.fmean(d), 3) if d else None,
                    "max_mttd_s": max(d) if d else None, "mean_mttr_s": round(statistics.fmean(m), 3) if m else None,
                    "max_mttr_s": max(m) if m else None}
    return out


def _frequency(history: Sequence[Mapping[str, Any]], log: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Distinct incidents per month and severity from real-time game days and the imported log."""
    months: dict[str, dict[str, set[str]]] = {}

    def add(ts: float | None, incident_id: str, severity: str) -> None:
        month = time.strftime("%Y-%m", time.gmtime(ts or 0))
        months.setdefault(month, {}).setdefault(severity, set()).add(incident_id)

    for g in history:
        if g.get("profile") != "production":
            continue
        for it in g.get("items", []):  # each item's agent numbers its incidents afresh
            for inc in it.get("incidents", []):
                add(it.get("started_at") or g.get("started_at"), f"{g.get('out')}:{it.get('index')}:{inc.get('incident_id')}",
                    str(inc.get("severity")))
    first: dict[str, tuple[float, str]] = {}
    for e in log:
        iid, sev, ts = str(e["incident_id"]), str(e["severity"]), float(e.get("ts") or 0)
        if iid not in first or severity_rank(sev) < severity_rank(first[iid][1]):
            first[iid] = (min(ts, first.get(iid, (ts, sev))[0]), sev)
    for iid, (ts, sev) in first.items():
        add(ts, f"log:{iid}", sev)
    table = {}
    for month in sorted(months):
        counts = {s: len(months[month].get(s, ())) for s in ("SEV-1", "SEV-2", "SEV-3", "SEV-4")}
        table[month] = {"counts": counts, "within_targets": all(counts[s] < n for s, n in FREQUENCY_TARGETS.items())}
    return {"targets_fewer_than_per_month": FREQUENCY_TARGETS, "months": table,
            "sources": "real-time (production profile) game days and the imported incident log",
            "judged": bool(table)}


def _repeats(history: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The same faults and the same failed check in more than one game day."""
    seen: dict[tuple[str, str], list[str]] = {}
    for g in history:
        for it in g.get("items", []):
            if it.get("failed_check") and it.get("status") in ("failed", "error", "aborted"):
                key = ("+".join(it.get("faults") or [it.get("label", "?")]), str(it["failed_check"]))
                runs = seen.setdefault(key, [])
                if g.get("out") not in runs:
                    runs.append(str(g.get("out")))
    return [{"faults": k[0], "failed_check": k[1], "game_days": len(v), "where": v}
            for k, v in sorted(seen.items()) if len(v) > 1]


def _postmortems(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    required = complete = 0
    for r in rows:
        pm = r.get("postmortems") or {}
        required += int(pm.get("required") or 0)
        complete += int(pm.get("complete") or 0)
    return {"required": required, "complete": complete, "ratio": round(complete / required, 3) if required else None}


def _policy(rows: Iterable[Mapping[str, Any]], profile: str) -> dict[str, Any]:
    if profile != "production":
        return {"judged": False, "why": "compressed (drill) profile: the policy targets are judged only in real time"}
    out = []
    for r in rows:
        if r.get("status") == "skipped":
            continue
        d, m = r.get("mttd_s"), r.get("mttr_s")
        out.append({"label": r.get("label"), "mttd_s": d, "mttr_s": m,
                    "mttd_ok": None if d is None else d < POLICY.mttd, "mttr_ok": None if m is None else m < POLICY.mttr})
    return {"judged": True, "mttd_target_s": POLICY.mttd, "mttr_target_s": POLICY.mttr, "items": out}


def compute_metrics(this: Mapping[str, Any], history: Sequence[Mapping[str, Any]],
                    log: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The metrics of game day ``this`` and of ``history`` (which includes it)."""
    all_rows = [it for g in history for it in g.get("items", [])]
    return {
        "gameday": this.get("gameday"), "profile": this.get("profile"), "reason": this.get("reason"),
        "items": {s: sum(it["status"] == s for it in this["items"]) for s in sorted({it["status"] for it in this["items"]})},
        "this_gameday": {"by_kind_and_severity": _times(this["items"]), "postmortems": _postmortems(this["items"]),
                         "policy": _policy(this["items"], str(this.get("profile")))},
        "history": {"game_days": len(history), "by_kind_and_severity": _times(all_rows),
                    "frequency": _frequency(history, log), "repeat_incidents": _repeats(history),
                    "postmortems": _postmortems(all_rows), "imported_incidents": len({e["incident_id"] for e in log})},
    }


def render_metrics(metrics: Mapping[str, Any]) -> str:
    """metrics.md: the same numbers for people."""

    def table(groups: Mapping[str, Mapping[str, Any]]) -> list[str]:
        if not groups:
            return ["(no measured incident)", ""]
        lines = ["| Incident kind, severity | Items | Mean MTTD | Max MTTD | Mean MTTR | Max MTTR |", "|---|---|---|---|---|---|"]
        for key, g in groups.items():
            lines.append(f"| {key} | {g['items']} | " + " | ".join(
                "-" if g[k] is None else f"{g[k]:.1f} s" for k in ("mean_mttd_s", "max_mttd_s", "mean_mttr_s", "max_mttr_s")) + " |")
        return [*lines, ""]

    this, hist = metrics["this_gameday"], metrics["history"]
    lines = [f"# Game day {metrics['gameday']}: metrics", "",
             f"Profile {metrics['profile']}; ended: {metrics['reason']}; items: "
             + ", ".join(f"{n} {s}" for s, n in metrics["items"].items()), "", "## This game day", ""]
    lines += table(this["by_kind_and_severity"])
    pol = this["policy"]
    if pol["judged"]:
        lines += [f"Policy targets (MTTD < {pol['mttd_target_s']:g} s, MTTR < {pol['mttr_target_s']:g} s):", ""]
        def verdict(value: Any, ok: bool | None) -> str:
            return "not measured" if value is None else f"{value:g} s ({'ok' if ok else 'MISSED'})"

        lines += [f"- {p['label']}: MTTD {verdict(p['mttd_s'], p['mttd_ok'])}, MTTR {verdict(p['mttr_s'], p['mttr_ok'])}"
                  for p in pol["items"]]
        lines.append("")
    else:
        lines += [f"Policy targets: not judged ({pol['why']}).", ""]
    pm = this["postmortems"]
    lines += [f"Post-mortems: {pm['complete']} of {pm['required']} required complete.", "",
              f"## All {hist['game_days']} game day(s) of the history", ""]
    lines += table(hist["by_kind_and_severity"])
    freq = hist["frequency"]
    lines += ["### Incident frequency (targets: fewer than 1 SEV-1 and 4 SEV-2 a month)", ""]
    if freq["judged"]:
        lines += ["| Month | SEV-1 | SEV-2 | SEV-3 | SEV-4 | Within targets |", "|---|---|---|---|---|---|"]
        lines += [f"| {m} | " + " | ".join(str(v["counts"][s]) for s in ("SEV-1", "SEV-2", "SEV-3", "SEV-4"))
                  + f" | {'yes' if v['within_targets'] else 'NO'} |" for m, v in freq["months"].items()]
        lines.append("")
    else:
        lines += ["Not judged: no real-time (production profile) game day and no imported incident log yet; "
                  "compressed drills say nothing about how often incidents happen.", ""]
    lines += ["### Repeat incidents (same faults, same failed check, more than one game day)", ""]
    lines += ([f"- {r['faults']}: {r['failed_check']} in {r['game_days']} game days" for r in hist["repeat_incidents"]]
              or ["None."])
    return "\n".join(lines) + "\n"


def junit_xml(plan: Plan, result: GamedayResult) -> bytes:
    """One testsuite, one testcase per planned item."""
    counts = {s: sum(o.status == s for o in result.outcomes) for s in ("failed", "error", "skipped", "stopped", "aborted")}
    suite = ET.Element("testsuite", name=f"gameday.{plan.name}", tests=str(len(result.outcomes)),
                       failures=str(counts["failed"] + counts["aborted"]), errors=str(counts["error"]),
                       skipped=str(counts["skipped"] + counts["stopped"]), time=f"{result.duration_s:.3f}",
                       timestamp=time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(result.started_at)))
    props = ET.SubElement(suite, "properties")
    for k, v in (("owner", plan.owner), ("coordinator", plan.coordinator), ("profile", plan.profile),
                 ("ended", result.reason)):
        ET.SubElement(props, "property", name=k, value=str(v))
    for o in result.outcomes:
        case = ET.SubElement(suite, "testcase", classname=f"gameday.{plan.name}", name=f"{o.item.index:02d} {o.item.label}",
                             time=f"{o.duration_s:.3f}")
        m = o.measured
        if m:
            cp = ET.SubElement(case, "properties")
            for k in ("mttd_s", "contain_s", "mttr_s", "incident_kind", "severity", "failed_check"):
                if m.get(k) is not None:
                    ET.SubElement(cp, "property", name=k, value=str(m[k]))
        if o.status in ("failed", "aborted"):
            ET.SubElement(case, "failure", message=o.message[:500], type=str(m.get("failure_category") or o.status)).text = o.message
        elif o.status == "error":
            ET.SubElement(case, "error", message=o.message[:500]).text = o.message
        elif o.status in ("skipped", "stopped"):
            ET.SubElement(case, "skipped", message=o.message[:500] or o.status)
        if o.log is not None:
            ET.SubElement(case, "system-out").text = f"log: {o.log}\nrun: {o.run_dir}"
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)


def write_outputs(plan: Plan, out: Path, result: GamedayResult, *, console: Any = None) -> dict[str, Any]:
    """junit.xml, metrics.json, metrics.md in ``out``; the game day appended to the history."""
    (out / "junit.xml").write_bytes(junit_xml(plan, result))
    line = history_line(plan, out, result)
    plan.history_dir.mkdir(parents=True, exist_ok=True)
    hist_path = plan.history_dir / HISTORY_FILE
    with open(hist_path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line, default=str) + "\n")
    metrics = compute_metrics(line, load_history(hist_path), load_incident_log(plan.incident_log))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str) + "\n", encoding="utf-8")
    (out / "metrics.md").write_text(render_metrics(metrics), encoding="utf-8")
    if console is not None:
        console.print(f"game day {plan.name} ended ({result.reason}) after {result.duration_s:.0f} s: "
                      + ", ".join(f"{n} {s}" for s, n in metrics["items"].items()))
        console.print(f"journal {out / 'journal.jsonl'}; JUnit {out / 'junit.xml'}; metrics {out / 'metrics.md'}; "
                      f"runs under {out / 'runs'}; history {hist_path}")
    return metrics
