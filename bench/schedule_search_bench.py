"""How often, and how fast, the schedule search finds each combination-only defect of the reference agent.

For each defect and seed: one search (``--drill-search ci``, the faults of the defect's combination,
``--hypothesis-seed N``) in a pytest of its own; prints whether it found the defect, after how many
examples, the shrunk schedule and the wall time. Against the sound agent the same searches must find
nothing. Usage:

    .venv/bin/python bench/schedule_search_bench.py [--seeds 1 2 3] [--profile ci|explore] [--budget 300]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: defect -> the faults of the combination that shows it (docs/agent.md, section 5)
DEFECTS = {"kill_loses_replacement": "gas_spike,process_kill", "failover_forgets_pending": "gas_spike,rpc_outage"}


def search(defect: str | None, faults: str, seed: int, profile: str, budget: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="schedule-bench-") as tmp:
        cmd = [sys.executable, "-m", "pytest", "-m", "drill",
               "scenarios/test_schedules.py::test_schedule_search_finds_no_failing_combination", "-p", "no:cacheprovider",
               "--drill-report-dir", f"{tmp}/reports", "--basetemp", f"{tmp}/inner", "--drill-search", profile,
               "--drill-search-budget", str(budget), "--drill-search-faults", faults, "--hypothesis-seed", str(seed),
               "--drill-shrink-budget", "90"]
        if defect:
            cmd += ["--agent-env", f"AGENT_DEFECTS={defect}"]
        t0 = time.monotonic()
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600)
        took = time.monotonic() - t0
        out = done.stdout
        examples = re.findall(r"^\[search [^\]]*\] example (\d+)", out, re.M)
        first_fail = re.search(r"^\[search [^\]]*\] example (\d+), 0 failing so far.*\n\[search\] failed", out, re.M)
        shrunk = re.search(r"^\s+shrunk to:\s+(.*)$", out, re.M)
        failure = re.search(r"^\s+failure:\s+(\w+)", out, re.M)
        return {"defect": defect or "(sound)", "seed": seed, "found": done.returncode == 1 and shrunk is not None,
                "exit": done.returncode, "examples": int(examples[-1]) if examples else 0,
                "found_at_example": int(first_fail.group(1)) if first_fail else None,
                "shrunk": shrunk.group(1) if shrunk else None, "failure": failure.group(1) if failure else None,
                "seconds": round(took, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--profile", choices=("ci", "explore"), default="ci")
    ap.add_argument("--budget", type=float, default=300.0, help="explore profile: seconds per search")
    ap.add_argument("--sound", action="store_true", help="also search with the sound agent")
    args = ap.parse_args()
    rows = []
    for defect, faults in DEFECTS.items():
        for agent in ([defect, None] if args.sound else [defect]):
            for seed in args.seeds:
                r = search(agent, faults, seed, args.profile, args.budget)
                rows.append(r)
                print(json.dumps(r), flush=True)
    found = [r for r in rows if r["defect"] != "(sound)" and r["found"]]
    print(f"\n{len(found)} of {sum(1 for r in rows if r['defect'] != '(sound)')} defect searches found their defect "
          f"({args.profile} profile); sound-agent searches failing: {sum(1 for r in rows if r['defect'] == '(sound)' and r['exit'] != 0)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
