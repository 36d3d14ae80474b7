"""The drill as an Allure test: labels, one step per phase, attachments; and the results dir's extras.

Called from the report plugin while the test's Allure result is still open (the teardown report),
through allure-pytest's public API only. Every attachment is scanned for the run's keys first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import allure

from harness.report.markdown import (
    CATEGORY_WORDS, against_budget, events_json, harness_author, render_postmortem, render_status_updates,
)
from harness.record.model import DrillRecord, RunRecord
from harness.report.secrets import SecretRegistry, write_text

__all__ = ["SEVERITY_LEVEL", "CATEGORIES", "CATEGORY_LABEL", "allure3_config", "decorate_test", "write_results_extras",
           "sweep_results_dir"]

SEVERITY_LEVEL = {
    "SEV-1": allure.severity_level.BLOCKER, "SEV-2": allure.severity_level.CRITICAL,
    "SEV-3": allure.severity_level.NORMAL, "SEV-4": allure.severity_level.MINOR,
}

#: the label carrying a failed drill's category; Allure 3's categories match on it
CATEGORY_LABEL = "drill_category"
_CATEGORY_NAMES = [
    ("missed detection", "missed_detection", "DetectionMissed"),
    ("wrong severity", "wrong_severity", "WrongSeverity"),
    ("late containment", "late_containment", "ContainmentFailed"),
    ("over-reaction", "over_reaction", "OverReaction"),
    ("no recovery", "no_recovery", "RecoveryFailed"),
    ("invariant broken", "invariant_broken", "InvariantBroken"),
    ("regression", "regression", "regression gate"),
    ("harness error", "harness_error", None),
]

#: categories.json (the Allure 2 results format): status and message; [\s\S] works in Java and JS regexes
CATEGORIES = [
    {"name": name, "matchedStatuses": ["failed"], "messageRegex": rf"[\s\S]*{needle}[\s\S]*"} if needle
    else {"name": name, "matchedStatuses": ["broken"]}
    for name, _, needle in _CATEGORY_NAMES
]


def allure3_config(report_name: str) -> dict[str, object]:
    """An Allure 3 config (allurerc.json) whose categories match the drills' category label."""
    return {
        "name": report_name,
        "categories": [
            {"id": category, "name": name, "matchers": {"labels": {CATEGORY_LABEL: f"^{category}$"}}}
            for name, category, _ in _CATEGORY_NAMES
        ],
    }


class _PhaseFailed(AssertionError):
    """Raised inside a failed phase's step so Allure marks that step failed with the phase's message."""


class _PhaseBroken(Exception):
    """Raised inside a phase where the harness failed, so Allure marks that step broken."""


def decorate_test(d: DrillRecord, registry: SecretRegistry, *, chart_png: bytes | None, agent_log: str | None,
                  owner: str | None = None) -> None:
    """Label the running Allure test, add a step per phase and attach the drill's files."""
    if d.playbook:
        allure.dynamic.epic(d.playbook)
    if d.family:
        allure.dynamic.feature(d.family)
    allure.dynamic.story(d.scenario)
    level = SEVERITY_LEVEL.get(d.severity or "")
    if level is not None:
        allure.dynamic.severity(level)
    allure.dynamic.tag(f"drill-{d.status}")
    if d.failure_category:
        allure.dynamic.label(CATEGORY_LABEL, d.failure_category)
    words = CATEGORY_WORDS.get(d.failure_category or "", "")
    description = (
        f"**{d.status}**{': ' + words if words else ''}\n\n"
        f"- MTTD {against_budget(d.mttd_s, d.budgets.detect_s)}\n"
        f"- contain {against_budget(d.contain_s, d.budgets.contain_s)}\n"
        f"- MTTR {against_budget(d.mttr_s, d.budgets.recover_s)}\n"
    )
    if d.failure_message:
        description += f"\n{d.failure_message}\n"
    registry.check(description, "Allure description")
    allure.dynamic.description(description)

    for p in d.phases:
        end = f"{p.end_rel_s:+.2f} s" if p.end_rel_s is not None else "…"
        title = f"{p.name} ({p.start_rel_s:+.2f} s .. {end})"
        try:
            with allure.step(title):
                if p.outcome in ("failed", "error"):
                    registry.check(p.message, f"Allure step {p.name!r}")
                    raise (_PhaseFailed if p.outcome == "failed" else _PhaseBroken)(p.message or p.outcome)
        except (_PhaseFailed, _PhaseBroken):
            pass

    def attach(body: str | bytes, name: str, kind: allure.attachment_type) -> None:
        registry.check(body, f"Allure attachment {name!r}")
        allure.attach(body, name=name, attachment_type=kind)

    if chart_png is not None:
        attach(chart_png, "timeline", allure.attachment_type.PNG)
    attach(events_json(d), "events", allure.attachment_type.JSON)
    if agent_log is not None:
        attach(agent_log, "agent log (scrubbed)", allure.attachment_type.TEXT)
    if d.incidents:
        attach("\n".join(render_status_updates(d, i) for i in d.incidents), "status updates", allure.attachment_type.TEXT)
    if d.needs_postmortem:
        attach(render_postmortem(d, author=harness_author(owner)), "post-mortem draft", allure.attachment_type.TEXT)


def _properties(values: Mapping[str, str]) -> str:
    def esc(text: str) -> str:
        return text.replace("\\", "\\\\").replace("\n", "\\n").replace("=", "\\=").replace(":", "\\:")

    return "".join(f"{esc(k).replace(' ', '_')}={esc(v)}\n" for k, v in values.items())


def sweep_results_dir(results_dir: Path, registry: SecretRegistry) -> list[str]:
    """Remove every file in the Allure results that holds a run key; returns what was removed.

    allure-pytest writes its own files (results, captured output) without asking us; this sweep
    at the session's end is the last line of defence for them, and a hit still fails the run.
    """
    removed = []
    for path in sorted(results_dir.glob("*")):
        if path.is_file() and registry.find(path.read_bytes()):
            path.unlink()
            removed.append(path.name)
    return removed


def write_results_extras(results_dir: Path, run: RunRecord, registry: SecretRegistry) -> list[Path]:
    """``environment.properties`` and ``categories.json`` in the Allure results directory."""
    env = {
        "run_id": run.run_id, "chain_backend": run.chain_backend or "", "agent_command": " ".join(run.agent_command),
        "budget_scale": f"{run.budget_scale:g}", "gate": run.gate.mode,
        **{f"version.{k}": v for k, v in sorted(run.versions.items())},
    }
    return [
        write_text(results_dir / "environment.properties", _properties(env), registry),
        write_text(results_dir / "categories.json", json.dumps(CATEGORIES, indent=2) + "\n", registry),
    ]
