"""Writes one run's directory ``<report dir>/<run id>/`` and appends to the history.

Layout of a run directory::

    summary.json                     the record (validated against harness/record/schema/summary.schema.json)
    README.md                        the readable report
    charts/<drill>.timeline.png|svg  a timeline per drill
    trends/<scenario>.trend.png|svg  a trend per scenario, from the history
    events/<drill>.events.json       the drill's timeline as JSON
    status-updates/<drill>--<incident>.md  the update as of the drill's end, then one dated update per change
    postmortems/<drill>.md           SEV-1/SEV-2 drills
    notices/<drill>.md               SEV-1/SEV-2 drills that affected the escrow partners (markdown.notice_due)
    logs/<drill>.agent.log           the agent's output, keys replaced by [REDACTED]

Every file goes through the secret scanner; a refused file is left out and recorded in ``leaks``.
A writer with ``pictures=False`` draws no charts: a run interrupted by Ctrl-C or a game day's lever
has a second or so before it is killed, and the record and README come first.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.report import charts, history
from harness.report.markdown import (
    events_json, harness_author, render_notice, render_postmortem, render_readme, render_status_updates, slug,
    status_update_name,
)
from harness.record.model import DrillRecord, RunRecord, validate_summary
from harness.report.secrets import SecretLeak, SecretRegistry, write_bytes, write_text

__all__ = ["RunWriter"]


class RunWriter:
    def __init__(self, root: Path, run_id: str, registry: SecretRegistry) -> None:
        self.root = Path(root)
        self.run_id = run_id
        self.registry = registry
        self.run_dir = self.root / run_id
        self.files: dict[str, list[str]] = {}
        self.leaks: list[SecretLeak] = []
        self.written: list[Path] = []
        #: draw the timeline and trend charts (False: an interrupted run, short of time)
        self.pictures = True
        #: who owns the run (a game day's plan owner): the author of its post-mortem drafts; None: the harness
        self.owner: str | None = None

    @property
    def history_path(self) -> Path:
        return self.root / "history.jsonl"

    def _guard(self, rel: str, write: Callable[[Path], Path]) -> str | None:
        try:
            self.written.append(write(self.run_dir / rel))
        except SecretLeak as leak:
            self.leaks.append(leak)
            return None
        return rel

    def text(self, rel: str, content: str) -> str | None:
        return self._guard(rel, lambda p: write_text(p, content, self.registry, artifact=f"{self.run_id}/{rel}"))

    def binary(self, rel: str, content: bytes) -> str | None:
        return self._guard(rel, lambda p: write_bytes(p, content, self.registry, artifact=f"{self.run_id}/{rel}"))

    def write_drill(self, d: DrillRecord, agent_output: str | None) -> dict[str, Any]:
        """Write a drill's own files; returns {"files": [...], "chart_png": bytes|None, "agent_log": str|None}."""
        s = slug(d.name)
        files: list[str] = []
        pictures = charts.timeline_chart(d) if self.pictures else {}
        for fmt, data in pictures.items():
            rel = self.binary(f"charts/{s}.timeline.{fmt}", data)
            if rel:
                files.append(rel)
        if (rel := self.text(f"events/{s}.events.json", events_json(d))):
            files.append(rel)
        scrubbed = None
        if agent_output is not None:
            scrubbed = self.registry.redact(agent_output)
            if (rel := self.text(f"logs/{s}.agent.log", scrubbed)):
                files.append(rel)
        for inc in d.incidents:
            if (rel := self.text(status_update_name(d, inc), render_status_updates(d, inc))):
                files.append(rel)
        if d.needs_postmortem and (rel := self.text(f"postmortems/{s}.md",
                                                    render_postmortem(d, author=harness_author(self.owner)))):
            files.append(rel)
        notice = render_notice(d)
        if notice and (rel := self.text(f"notices/{s}.md", notice)):
            files.append(rel)
        self.files[d.name] = files
        png = pictures.get("png")
        return {"files": files, "chart_png": png if f"charts/{s}.timeline.png" in files else None,
                "agent_log": f"logs/{s}.agent.log" if f"logs/{s}.agent.log" in files else None,
                "agent_log_text": scrubbed}

    def finish(self, run: RunRecord, past: list[dict[str, Any]], *, append_history: bool = True) -> None:
        """summary.json, README.md and the trend charts; then the run is appended to the history.

        ``append_history=False`` for a shard of a run: `drill report merge` appends the merged run.
        """
        document = run.to_json()
        validate_summary(document)
        self.text("summary.json", json.dumps(document, indent=2, default=str) + "\n")
        for d in run.drills if self.pictures else ():
            entries = [e for e in past if e.get("name") == d.name][-history.WINDOW + 1:]
            entries.append(history.history_entry(run, d))
            for fmt, data in charts.trend_chart(d.scenario, entries).items():
                rel = self.binary(f"trends/{slug(d.name)}.trend.{fmt}", data)
                if rel:
                    self.files.setdefault(d.name, []).append(rel)
        self.text("README.md", render_readme(run, self.files))
        if not append_history:
            return
        try:
            history.append_run(self.history_path, run, self.registry)
        except SecretLeak as leak:
            self.leaks.append(leak)
