"""``drill report``: the last runs per scenario from the history, and the Allure HTML report.

    drill report [--report-dir reports] [--last 5]     table of the last runs, regressions marked
    drill report --allure allure-results               also build the HTML report with Allure 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from harness.errors import EnvironmentProblem, ToolMissingError, UsageError
from harness.report import history

__all__ = ["run", "find_allure", "build_allure_report", "latest_run_dir", "FACTOR", "MIN_HISTORY"]

FACTOR = 1.5
MIN_HISTORY = 3
_STATUS_STYLE = {"passed": "green", "failed": "red", "aborted": "yellow", "error": "magenta"}


def _fmt(value: Any) -> str:
    return "—" if not isinstance(value, (int, float)) else f"{value:.2f} s"


def latest_run_dir(report_dir: Path) -> Path | None:
    """The run directory whose summary.json started last."""
    best: tuple[float, Path] | None = None
    for summary in report_dir.glob("*/summary.json"):
        try:
            started = float(json.loads(summary.read_text(encoding="utf-8")).get("started_at", 0))
        except (OSError, ValueError, TypeError):
            continue
        if best is None or started > best[0]:
            best = (started, summary.parent)
    return best[1] if best else None


def find_allure(start: Path | None = None) -> Path:
    """The Allure 3 command line: ``node_modules/.bin/allure`` here or above, else ``allure`` on PATH."""
    here = (start or Path.cwd()).resolve()
    for base in [here, *here.parents, Path(__file__).resolve().parents[2]]:
        candidate = base / "node_modules" / ".bin" / "allure"
        if candidate.is_file():
            return candidate
    found = shutil.which("allure")
    if found:
        return Path(found)
    raise ToolMissingError("the Allure 3 command line was not found: install it with `npm install allure` "
                           "(node_modules/.bin/allure) or put `allure` on PATH")


def build_allure_report(results: Path, output: Path, *, timeout: float = 300.0, report_name: str | None = None) -> Path:
    """Run ``allure generate RESULTS -o OUTPUT``; returns the report's index.html."""
    if not results.is_dir() or not any(results.glob("*-result.json")):
        raise UsageError(f"{results} holds no Allure results (*-result.json); run pytest with --alluredir {results} first")
    from harness.report.allure import allure3_config

    allure = find_allure()
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="drill-allure-") as tmp:
        config = Path(tmp) / "allurerc.json"
        config.write_text(json.dumps(allure3_config(report_name or "agent-drills")), encoding="utf-8")
        try:
            proc = subprocess.run([str(allure), "generate", str(results.resolve()), "-o", str(output.resolve()),
                                   "--config", str(config)], capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise EnvironmentProblem(f"allure generate did not finish within {timeout:.0f} s") from None
    index = output / "index.html"
    if proc.returncode != 0 or not index.is_file():
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-10:])
        raise EnvironmentProblem(f"allure generate failed (exit {proc.returncode}); its last lines:\n{tail}")
    return index


def _table(entries: list[dict[str, Any]], last: int) -> Table:
    table = Table(title=f"Last {last} run(s) per drill", show_lines=False)
    for col in ("Drill", "Run", "Status", "MTTD", "Contain", "MTTR", "Note"):
        table.add_column(col, overflow="fold")
    by_name: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in entries:
        by_name[str(e["name"])].append(e)
    for name in sorted(by_name):
        runs = by_name[name]
        shown = runs[-last:]
        for i, e in enumerate(shown):
            before = runs[: len(runs) - len(shown) + i]
            note = ""
            if e.get("status") == "passed":
                from harness.record.model import DrillRecord

                probe = DrillRecord(name=name, status="passed", started_at=0.0, mttd_s=e.get("mttd_s"), mttr_s=e.get("mttr_s"))
                verdict = history.check_regression(
                    probe, history.past_entries(before, name, e.get("chain_backend")), factor=FACTOR, min_history=MIN_HISTORY)
                if verdict.regressed:
                    note = f"[bold red]REGRESSION[/] {verdict.message}"
                elif verdict.message.startswith("no history") or "passing: not gated" in verdict.message:
                    note = f"not gated ({verdict.history_runs} past passing run(s), need {MIN_HISTORY})"
            elif e.get("failure_category"):
                note = str(e["failure_category"])
            if e.get("regressed"):
                note = note or "[bold red]REGRESSION[/] (gate)"
            status = str(e.get("status"))
            table.add_row(str(e.get("scenario") or name) if i == 0 else "", str(e.get("run_id")),
                          f"[{_STATUS_STYLE.get(status, 'white')}]{status}[/]", _fmt(e.get("mttd_s")),
                          _fmt(e.get("contain_s")), _fmt(e.get("mttr_s")), note)
    return table


def run(args: argparse.Namespace) -> int:
    report_dir = Path(args.report_dir)
    last = getattr(args, "last", None)
    last = 5 if last is None else int(last)
    if last < 1:
        raise UsageError(f"--last must be at least 1, got {last}")
    console = Console()
    if not console.is_terminal:  # piped or captured: do not squeeze the table into 80 columns
        console = Console(width=160)
    entries = history.load_history(report_dir / "history.jsonl")
    if entries:
        console.print(_table(entries, last))
    else:
        console.print(f"No drill runs recorded in {report_dir / 'history.jsonl'} yet: run `pytest -m drill` first.")
    results = getattr(args, "allure", None)
    if results:
        output = getattr(args, "output", None)
        if output:
            out_dir = Path(output)
        else:
            run_dir = latest_run_dir(report_dir)
            out_dir = (run_dir if run_dir is not None else report_dir) / "allure-report"
        name = f"agent-drills {out_dir.parent.name}" if out_dir.name == "allure-report" else "agent-drills"
        index = build_allure_report(Path(results), out_dir, report_name=name)
        console.print(f"Allure report: {index}")
    return 0 if entries or results else 1
