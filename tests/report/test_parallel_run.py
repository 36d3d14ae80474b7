"""The same drills run three ways leave the same report: one process, two xdist workers, two shards merged.

Real runs, the way users start them: pytest subprocesses drive the engine's minimal drills against
the minimal agent (one passes, one is judged on a restart, one fails its detection), first in one
process, then with ``-n 2`` (each worker its own chain, proxies and agent), then as two
``--drill-shard`` processes whose run directories ``drill report merge`` joins. Compared: the drills,
their verdicts and numbers' presence, the order of the summary, the README's drill table, the
history lines, the Allure results.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.record.model import validate_summary

ROOT = Path(__file__).resolve().parents[2]
DRILLS = ROOT / "tests" / "engine" / "minimal_drills.py"
AGENT = ROOT / "tests" / "minimal_agent" / "agent.py"
SELECT = "steady_state_holds or killed_agent or fails_over_to_backup"
NAMES = [f"tests/engine/minimal_drills.py::{t}" for t in (
    "test_steady_state_holds", "test_killed_agent_reports_crash_after_restart", "test_primary_rpc_down_fails_over_to_backup")]


@dataclass
class Runs:
    base: Path
    procs: dict[str, subprocess.CompletedProcess[str]]

    def summary(self, reports: str, run_id: str) -> dict:
        return json.loads((self.base / reports / run_id / "summary.json").read_text())

    def history(self, reports: str) -> list[dict]:
        path = self.base / reports / "history.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _pytest(base: Path, reports: str, run_id: str, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pytest", "-p", "harness.drill.pytest_plugin", "-p", "harness.report.pytest_plugin",
           str(DRILLS), "-rA", "-q", "--agent-cmd", f"{{python}} {AGENT}", "-k", SELECT,
           f"--basetemp={base / f'tmp-{run_id}'}", f"--drill-report-dir={base / reports}",
           f"--drill-run-id={run_id}", *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=540, env=dict(os.environ))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    base = tmp_path_factory.mktemp("parallel")
    # Recorded durations for the workers to order by, heaviest first: the reverse of the collection.
    (base / "xdist").mkdir()
    (base / "xdist" / "history.jsonl").write_text("".join(
        json.dumps({"run_id": "seeded", "name": name, "chain_backend": None, "status": "failed", "wall_s": 10.0 * (n + 1)})
        + "\n" for n, name in enumerate(NAMES)))
    procs = {
        "serial": _pytest(base, "serial", "one"),
        "xdist": _pytest(base, "xdist", "two-workers", "-n", "2", "--alluredir", str(base / "allure")),
    }
    # The shards run one after the other here (a 2-core machine also runs the xdist case); on CI they
    # are separate machines. Each reads the same (empty) history, so both compute the same split.
    procs["shard1"] = _pytest(base, "shards", "part-1", "--drill-shard", "1/2")
    procs["shard2"] = _pytest(base, "shards", "part-2", "--drill-shard", "2/2")
    procs["merge"] = subprocess.run(
        [sys.executable, "-m", "harness.cli", "report", "merge", str(base / "shards" / "part-1"),
         str(base / "shards" / "part-2"), "--report-dir", str(base / "merged"), "--run-id", "joined"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    return Runs(base, procs)


def _verdicts(summary: dict) -> dict[str, tuple]:
    return {d["name"]: (d["status"], d["failure_category"], d["mttd_s"] is None, len(d["incidents"]) > 0)
            for d in summary["drills"]}


@pytest.mark.slow
def test_one_process_and_two_workers_give_the_same_report(runs: Runs) -> None:
    for key in ("serial", "xdist"):
        proc = runs.procs[key]
        assert proc.returncode == 1, f"{key}: {proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"  # the failover drill fails
        assert f"FAILED {NAMES[2]}" in proc.stdout, proc.stdout[-3000:]
    serial, xdist = runs.summary("serial", "one"), runs.summary("xdist", "two-workers")
    validate_summary(xdist)
    assert [d["name"] for d in xdist["drills"]] == [d["name"] for d in serial["drills"]] == NAMES  # collection order
    assert _verdicts(xdist) == _verdicts(serial)
    assert _verdicts(serial)[NAMES[0]][:2] == ("passed", None)
    assert _verdicts(serial)[NAMES[2]][:2] == ("failed", "missed_detection")
    for key in ("chain_backend", "agent_command", "agent_runtime", "budget_scale", "gate"):
        assert xdist[key] == serial[key], key
    assert xdist["metrics"]["drills"] == serial["metrics"]["drills"] == 3
    assert xdist["metrics"]["failed"] == serial["metrics"]["failed"]
    # one README whose drill table lists the drills in the same order, each drill's files beside it
    table = [line.split("|")[1].strip() for line in (runs.base / "xdist" / "two-workers" / "README.md").read_text().splitlines()
             if line.startswith("| ") and "test_" in line.split("|")[1]]
    serial_table = [line.split("|")[1].strip() for line in (runs.base / "serial" / "one" / "README.md").read_text().splitlines()
                    if line.startswith("| ") and "test_" in line.split("|")[1]]
    assert table == serial_table and len(table) >= 3
    for kind in ("charts/*.timeline.png", "events/*.events.json", "logs/*.agent.log", "trends/*.trend.png"):
        assert len(list((runs.base / "xdist" / "two-workers").glob(kind))) == 3, kind
    # one history line per drill, written once (by the controller), not once per worker
    written = runs.history("xdist")[len(NAMES):]
    assert [e["name"] for e in written] == NAMES
    assert {e["run_id"] for e in written} == {"two-workers"}
    assert all(e["wall_s"] > 0 for e in written)
    # the weight is the item's own wall time, setup to teardown: at least the drill it holds
    records = {d["name"]: d for d in runs.summary("xdist", "two-workers")["drills"]}
    assert all(e["wall_s"] == records[e["name"]]["item_wall_s"] >= records[e["name"]]["duration_s"] for e in written)


@pytest.mark.slow
def test_the_workers_start_the_longest_drills_first_and_the_report_keeps_the_collection_order(runs: Runs) -> None:
    drills = runs.summary("xdist", "two-workers")["drills"]
    assert [d["name"] for d in drills] == NAMES
    started = {d["name"]: d["started_at"] for d in drills}
    # heaviest first by the seeded history: the first drill collected is the lightest, so it starts last
    assert started[NAMES[0]] > max(started[NAMES[1]], started[NAMES[2]])
    serial = {d["name"]: d["started_at"] for d in runs.summary("serial", "one")["drills"]}
    assert serial[NAMES[0]] < serial[NAMES[1]] < serial[NAMES[2]]


@pytest.mark.slow
def test_the_two_workers_each_had_their_own_world(runs: Runs) -> None:
    xdist = runs.summary("xdist", "two-workers")
    rpc = {}
    for d in xdist["drills"]:
        ready = [e for e in d["timeline"] if e["kind"] == "world.ready"]
        assert ready, d["name"]
        rpc[d["name"]] = tuple(ready[0]["data"]["rpc_urls"])
    assert len(set(rpc.values())) == 3  # every drill its own proxies, whichever worker ran it
    results = list((runs.base / "allure").glob("*-result.json"))
    assert sorted(json.loads(p.read_text())["name"] for p in results) == sorted(n.split("::")[1] for n in NAMES)
    assert (runs.base / "allure" / "environment.properties").read_text().count("run_id=two-workers") == 1


@pytest.mark.slow
def test_two_shards_merged_give_the_verdicts_and_count_of_one_run(runs: Runs) -> None:
    shard1, shard2 = runs.procs["shard1"], runs.procs["shard2"]
    assert "agent-drills: shard 1/2: 2 of 3 selected test(s)" in shard1.stdout, shard1.stdout[-3000:]
    assert "agent-drills: shard 2/2: 1 of 3 selected test(s)" in shard2.stdout, shard2.stdout[-3000:]
    parts = [runs.summary("shards", "part-1"), runs.summary("shards", "part-2")]
    assert sorted(d["name"] for p in parts for d in p["drills"]) == sorted(NAMES)
    assert runs.history("shards") == []  # a shard leaves the history to the merge
    merge = runs.procs["merge"]
    assert merge.returncode == 1, merge.stdout + merge.stderr  # the failover drill failed in its shard
    assert "merged 2 shard(s): 3 drill(s), 1 failed, 2 passed; gate off" in merge.stdout, merge.stdout
    merged = runs.summary("merged", "joined")
    validate_summary(merged)
    assert _verdicts(merged) == _verdicts(runs.summary("serial", "one"))
    # listed as one run collects them (NAMES is not their alphabetical order), by the place each shard recorded
    assert [d["name"] for d in merged["drills"]] == NAMES
    assert [d["position"] for d in merged["drills"]] == [d["position"] for d in runs.summary("serial", "one")["drills"]]
    assert merged["metrics"]["drills"] == 3
    assert sorted(e["name"] for e in runs.history("merged")) == sorted(NAMES)
    assert len(list((runs.base / "merged" / "joined").glob("charts/*.timeline.png"))) == 3
