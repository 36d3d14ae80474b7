"""The drill catalogue serial and in parallel (pytest-xdist), side by side, on each chain backend.

    python bench/parallel_bench.py                        # both backends, -n 3, one run of each
    python bench/parallel_bench.py --chains pyevm --workers 2 --runs 3

For each backend: the catalogue's wall time in one process and with ``-n WORKERS`` (the median of
``--runs`` runs, taken alternately so that load on the machine falls on both alike), their ratio,
how many drills passed, and the harness's own share: per drill its setup and teardown (median, from
the drills' records) and what the session spends outside the drills (start, collection, chain,
reports: wall time minus the drills' own). Numbers only, no assertions; everything after the known
options goes to pytest unchanged.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Run:
    wall: float
    drills: list[dict]
    exit_code: int

    @property
    def passed(self) -> int:
        return sum(d["status"] == "passed" for d in self.drills)

    @property
    def drill_seconds(self) -> float:
        return sum(d["duration_s"] + d["harness_overhead_s"] for d in self.drills)


def run_catalogue(chain: str, workers: int, tmp: Path, tag: str, extra: list[str]) -> Run:
    jsonl = tmp / f"{tag}.jsonl"
    cmd = [sys.executable, "-m", "pytest", "-m", "drill", "-q", "--chain", chain,
           f"--drill-jsonl={jsonl}", f"--drill-report-dir={tmp / f'reports-{chain}'}", *extra]
    cmd += ["-n", str(workers)] if workers > 1 else ["-p", "no:xdist"]
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - started
    drills = [json.loads(line) for line in jsonl.read_text().splitlines()] if jsonl.exists() else []
    tail = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
    print(f"  {chain:5} {'serial' if workers == 1 else f'-n {workers}':7} {wall:6.1f} s  {tail}", flush=True)
    return Run(wall=wall, drills=drills, exit_code=proc.returncode)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", nargs="+", default=["pyevm", "anvil"], choices=["pyevm", "anvil"])
    parser.add_argument("--workers", type=int, default=3, help="xdist workers of the parallel run (default 3)")
    parser.add_argument("--runs", type=int, default=1, help="runs of each kind; the median is shown (default 1)")
    args, extra = parser.parse_known_args()
    if args.workers < 2 or args.runs < 1:
        parser.error("--workers must be at least 2 and --runs at least 1")
    rows = []
    with tempfile.TemporaryDirectory(prefix="parallel-bench-") as tmpdir:
        tmp = Path(tmpdir)
        for chain in args.chains:
            serial, parallel = [], []
            for n in range(args.runs):
                serial.append(run_catalogue(chain, 1, tmp, f"{chain}-serial-{n}", extra))
                parallel.append(run_catalogue(chain, args.workers, tmp, f"{chain}-n{args.workers}-{n}", extra))
            rows.append((chain, serial, parallel))
    print()
    print(f"{'chain':6} {'drills':>6} {'serial':>8} {f'-n {args.workers}':>8} {'ratio':>6} {'passed':>13} "
          f"{'setup+down':>11} {'session':>8}")
    for chain, serial, parallel in rows:
        s_wall = statistics.median(r.wall for r in serial)
        p_wall = statistics.median(r.wall for r in parallel)
        overheads = [d["harness_overhead_s"] for r in serial + parallel for d in r.drills]
        session = statistics.median(r.wall - r.drill_seconds for r in serial)
        drills = max(len(r.drills) for r in serial + parallel)
        passed = f"{min(r.passed for r in serial)}/{min(r.passed for r in parallel)}"
        print(f"{chain:6} {drills:>6} {s_wall:7.1f}s {p_wall:7.1f}s {p_wall / s_wall:6.2f} {passed:>13} "
              f"{statistics.median(overheads) if overheads else 0:10.2f}s {session:7.1f}s")
    print("\nratio: parallel / serial wall time (median of runs); passed: serial/parallel (fewest of the runs);")
    print("setup+down: the harness's own time per drill (median); session: a serial run's wall time outside its drills")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
