"""``drill report merge RUN_DIR...``: the run directories of a run's shards joined into one run.

Each shard (``pytest -m drill --drill-shard I/N``, on this machine or another) leaves a run directory
with its ``summary.json`` and its drills' files, and no history line. The merge checks that the shards
belong to one run (same chain backend, agent, runtime and budget scale; no drill twice), copies every
drill's files into a new run directory, applies the regression gate to the merged drills against
``<report dir>/history.jsonl``, and writes the summary, README and trends of the merged run and its
history lines, exactly as one run would have. Drills are listed in the order one run of all shards
collects them (each record carries its `position` in that collection).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import clock
from harness.errors import UsageError
from harness.record.model import DrillRecord, GateSettings, RecordError, RunRecord, validate_summary
from harness.report import history
from harness.report.markdown import slug
from harness.report.secrets import SecretRegistry
from harness.report.writer import RunWriter

__all__ = ["MergeResult", "load_shard", "merge_runs", "default_run_id"]

#: what a run directory holds for the run as a whole; everything else belongs to one drill
_RUN_FILES = {"summary.json", "README.md"}
_RUN_DIRS = {"trends", "allure-report"}


@dataclass(frozen=True)
class MergeResult:
    run: RunRecord
    run_dir: Path
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Every drill passed (the gate included) and every file was written."""
        return not self.problems and all(d.status == "passed" for d in self.run.drills)


def load_shard(run_dir: Path) -> RunRecord:
    """The run recorded in ``run_dir/summary.json``, checked against the schema."""
    summary = Path(run_dir) / "summary.json"
    if not summary.is_file():
        raise UsageError(f"{run_dir} is not a run directory: it holds no summary.json (give the directory a shard's "
                         "run wrote, e.g. reports/<run-id>/)")
    try:
        document = json.loads(summary.read_text(encoding="utf-8"))
        validate_summary(document)
        return RunRecord.from_json(document)
    except (ValueError, RecordError) as exc:
        raise UsageError(f"{summary} is not a readable run summary: {exc}") from None


def _check_same_run(shards: Sequence[tuple[Path, RunRecord]]) -> None:
    first_dir, first = shards[0]
    for where, run in shards[1:]:
        for label, mine, theirs in (
            ("chain backend", run.chain_backend, first.chain_backend),
            ("agent command", run.agent_command, first.agent_command),
            ("agent runtime", dict(run.agent_runtime), dict(first.agent_runtime)),
            ("budget scale", run.budget_scale, first.budget_scale),
        ):
            if mine != theirs:
                raise UsageError(f"{where} and {first_dir} are not shards of one run: {label} {mine!r} vs {theirs!r}")
    seen: dict[str, Path] = {}
    for where, run in shards:
        for d in run.drills:
            if d.name in seen:
                raise UsageError(f"{d.name} is in both {seen[d.name]} and {where}: the shards overlap (did they read "
                                 "different history files, or select different drills?); run each part once")
            seen[d.name] = where


def _drill_files(run_dir: Path, d: DrillRecord) -> list[str]:
    """The run-relative files of ``d`` in a shard's directory (named after the drill's slug)."""
    s = slug(d.name)
    out = []
    for path in sorted(run_dir.rglob("*")):
        rel = path.relative_to(run_dir)
        if not path.is_file() or rel.parts[0] in _RUN_DIRS or str(rel) in _RUN_FILES:
            continue
        if path.name.startswith((f"{s}.", f"{s}--")):
            out.append(rel.as_posix())
    return out


def merge_runs(run_dirs: Sequence[Path], report_dir: Path, *, run_id: str, gate: GateSettings | None = None,
               past: list[dict[str, Any]] | None = None) -> MergeResult:
    """Join the shards in ``run_dirs`` into ``report_dir/run_id`` (see the module docstring).

    ``past``: the history to gate against, when the caller read it once for several merges.
    """
    if not run_dirs:
        raise UsageError("drill report merge needs at least one run directory (a shard's reports/<run-id>/)")
    target = Path(report_dir) / run_id
    if target.exists():
        raise UsageError(f"{target} exists already; give the merged run another --run-id")
    shards = [(Path(p), load_shard(Path(p))) for p in run_dirs]
    _check_same_run(shards)
    gate = gate or shards[0][1].gate
    if past is None:
        past = history.load_history(Path(report_dir) / "history.jsonl")
    writer = RunWriter(Path(report_dir), run_id, SecretRegistry())
    drills: list[DrillRecord] = []
    for where, run in shards:
        for d in run.drills:
            files = _drill_files(where, d)
            for rel in files:
                dest = target / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(where / rel, dest)
            writer.files[d.name] = files
            if gate.mode == "regression" and d.status == "passed":
                before = history.past_entries(past, d.name, run.chain_backend, exclude_run=run_id)
                verdict = history.check_regression(d, before, factor=gate.factor, min_history=gate.min_history)
                d = d.with_(regression=verdict)
                if verdict.regressed:
                    d = d.with_(status="failed", failure_category="regression",
                                failure_message=f"regression gate: {verdict.message}")
            drills.append(d)
    first = shards[0][1]
    merged = RunRecord(
        run_id=run_id, started_at=min(r.started_at for _, r in shards), ended_at=max(r.ended_at for _, r in shards),
        chain_backend=first.chain_backend, agent_command=first.agent_command, agent_runtime=first.agent_runtime,
        versions=first.versions, budget_scale=first.budget_scale, gate=gate, owner=first.owner,
        # each shard's positions are places in the one collection all shards split: the serial run's order
        drills=tuple(sorted(drills, key=lambda d: (d.position is None, d.position or 0, d.name))),
    )
    writer.finish(merged, past)
    return MergeResult(run=merged, run_dir=target, problems=tuple(str(leak) for leak in writer.leaks))


def default_run_id() -> str:
    """``merged-<UTC time>``: the name of a merged run's directory unless --run-id gives one."""
    import time

    return "merged-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime(clock.wall()))
