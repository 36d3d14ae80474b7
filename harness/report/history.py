"""``reports/history.jsonl``: one line per drill per run, and the regression gate read from it.

The gate compares a drill's MTTD and MTTR with the median of the same drill's past passing runs on the
same chain backend (the last ``WINDOW`` of them): worse than ``factor`` times the median is a regression.
With fewer than ``min_history`` past values there is nothing to compare with: the drill is not gated,
and the verdict's message says so (``no history: not gated (...)`` or ``N past run(s), need M passing:
not gated (...)``), so that a CI job whose history was lost does not pass as if it had been checked.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.record.model import DrillRecord, Regression, RunRecord
from harness.report.secrets import SecretRegistry

__all__ = ["WINDOW", "history_entry", "append_run", "load_history", "past_entries", "check_regression"]

WINDOW = 20


def history_entry(run: RunRecord, d: DrillRecord) -> dict[str, Any]:
    return {
        "run_id": run.run_id, "ts": run.started_at, "name": d.name, "scenario": d.scenario,
        "chain_backend": run.chain_backend, "status": d.status, "failure_category": d.failure_category,
        "mttd_s": d.mttd_s, "contain_s": d.contain_s, "mttr_s": d.mttr_s,
        "budgets": {"detect_s": d.budgets.detect_s, "contain_s": d.budgets.contain_s, "recover_s": d.budgets.recover_s},
        "regressed": bool(d.regression and d.regression.regressed),
        # setup, drill and teardown (a search: all its examples): what --drill-shard weighs a drill by
        "wall_s": d.item_wall_s if d.item_wall_s is not None else round(d.duration_s + (d.harness_overhead_s or 0.0), 3),
    }


def append_run(path: Path, run: RunRecord, registry: SecretRegistry) -> int:
    """Append every drill of ``run`` to the history file; returns the number of lines written."""
    lines = "".join(json.dumps(history_entry(run, d), default=str) + "\n" for d in run.drills)
    registry.check(lines, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(lines)
    return len(run.drills)


def load_history(path: Path) -> list[dict[str, Any]]:
    """Every entry of the history file, oldest first ([] when the file does not exist)."""
    if not path.is_file():
        return []
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError as exc:
            raise UsageError(f"{path}:{n} is not a JSON line ({exc}); fix or delete that line") from None
        if not isinstance(entry, dict) or "name" not in entry:
            raise UsageError(f"{path}:{n} is not a drill history entry (an object with 'name'); fix or delete that line")
        out.append(entry)
    return out


def past_entries(history: Sequence[Mapping[str, Any]], name: str, chain_backend: str | None,
                 *, exclude_run: str | None = None) -> list[Mapping[str, Any]]:
    """The drill's past passing entries on the same backend, the last ``WINDOW``, oldest first."""
    same = [e for e in history if e.get("name") == name and e.get("status") == "passed"
            and (chain_backend is None or e.get("chain_backend") in (None, chain_backend))
            and (exclude_run is None or e.get("run_id") != exclude_run)]
    return same[-WINDOW:]


def _median(entries: Sequence[Mapping[str, Any]], key: str) -> tuple[float | None, int]:
    values = [float(e[key]) for e in entries if isinstance(e.get(key), (int, float))]
    return (statistics.median(values), len(values)) if values else (None, 0)


def check_regression(d: DrillRecord, past: Sequence[Mapping[str, Any]], *, factor: float, min_history: int) -> Regression:
    """Compare ``d`` with ``past`` (see the module docstring); the message carries the numbers."""
    if factor <= 0:
        raise UsageError(f"--drill-gate-factor must be > 0, got {factor!r}")
    med_d, n_d = _median(past, "mttd_s")
    med_r, n_r = _median(past, "mttr_s")
    runs = len(past)
    problems, notes, skipped = [], [], []
    for label, value, median, n in (("MTTD", d.mttd_s, med_d, n_d), ("MTTR", d.mttr_s, med_r, n_r)):
        if value is None:
            skipped.append(f"{label}: none in this run")
            continue
        if median is None or n < min_history:
            skipped.append(f"{label} {value:.2f} s: {n} past value(s), need {min_history} to compare")
            continue
        limit = median * factor
        ratio = value / median if median > 0 else float("inf")
        text = (f"{label} {value:.2f} s is {ratio:.2f}x the median {median:.2f} s of the last {n} passing run(s) "
                f"(limit {factor:g}x = {limit:.2f} s)")
        (problems if value > limit else notes).append(text)
    if problems:
        message = "; ".join(problems)
    elif d.mttd_s is None and d.mttr_s is None:
        message = "not gated: no MTTD or MTTR in this run (nothing to compare)"
    elif notes:
        message = "within history: " + "; ".join(notes + [f"{item} (not gated)" for item in skipped])
    elif runs == 0:
        message = (f"no history: not gated (no past passing run of this drill on this chain backend; "
                   f"the gate compares from {min_history} on, so keep history.jsonl between runs)")
    elif runs < min_history:
        message = f"{runs} past run(s), need {min_history} passing: not gated ({'; '.join(skipped)})"
    else:
        message = f"not gated: {'; '.join(skipped)}"
    return Regression(factor=factor, history_runs=runs, median_mttd_s=med_d, median_mttr_s=med_r,
                      regressed=bool(problems), message=message)
