"""Run drills several times and print their timings and verdicts (numbers, no assertions).

    python bench/drill_bench.py --runs 3 --chain anvil scenarios/
    python bench/drill_bench.py --agent-cmd "{python} tests/minimal_agent/agent.py" tests/engine/minimal_drills.py -k killed

Prints, per drill: how many runs passed, wall time (median and max), harness overhead, MTTD,
time to contain and MTTR (medians), and the drills that did not pass the same way every run
(flakes). Everything after the known options goes to pytest unchanged.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def median(values: list[float | None]) -> str:
    got = [v for v in values if v is not None]
    return f"{statistics.median(got):6.2f}" if got else "     -"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chain", default=None, help="pyevm or anvil (default: the project's config)")
    parser.add_argument("--agent-cmd", default=None)
    args, pytest_args = parser.parse_known_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    results: dict[str, list[dict]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            jsonl = Path(tmp) / f"run{run}.jsonl"
            cmd = [sys.executable, "-m", "pytest", "-q", "--drill-jsonl", str(jsonl), *pytest_args]
            if args.chain:
                cmd += ["--chain", args.chain]
            if args.agent_cmd:
                cmd += ["--agent-cmd", args.agent_cmd]
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            tail = proc.stdout.strip().splitlines()[-1:] or ["(no output)"]
            print(f"run {run + 1}/{args.runs}: {tail[0]}", flush=True)
            for line in jsonl.read_text().splitlines() if jsonl.exists() else []:
                r = json.loads(line)
                results[r["name"]].append(r)
    if not results:
        print("no drill ran; check the selection")
        return 1
    print()
    print(f"{'drill':70} {'pass':>5} {'wall':>6} {'max':>6} {'ovh':>6} {'MTTD':>6} {'cont':>6} {'MTTR':>6}")
    flakes = 0
    for name, rs in sorted(results.items()):
        passed = sum(r["status"] == "passed" for r in rs)
        if 0 < passed < len(rs):
            flakes += 1
        walls = [r["duration_s"] + r["harness_overhead_s"] for r in rs]
        print(f"{name[-70:]:70} {passed:>2}/{len(rs):<2} {median(walls)} {max(walls):6.2f} "
              f"{median([r['harness_overhead_s'] for r in rs])} {median([r['mttd'] for r in rs])} "
              f"{median([r['time_to_contain'] for r in rs])} {median([r['mttr'] for r in rs])}")
    print(f"\nflaky drills (passed in some runs, not all): {flakes}")
    for name, rs in sorted(results.items()):
        for r in rs:
            if r["status"] != "passed":
                print(f"  {name}: {r['status']} ({r['category']}): {r['message']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
