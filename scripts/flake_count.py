#!/usr/bin/env python3
"""Flake count: run the whole drill suite N times against the unbroken agent and count failures.

Any failure of the unbroken reference agent is a flake (the drills must pass it every time). The
script prints, per run, how many drills passed and failed, then every drill that failed at least
once with its failure count and first message, and finally ``flakes: <n>`` (drill failures over
all runs). Exit code 0 only with no flake.

    python scripts/flake_count.py --runs 3 --chain anvil
    python scripts/flake_count.py --runs 3 -- --agent-cmd "{python} -m reference_agent"

Arguments after ``--`` go to every pytest run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sensitivity import Outcome, run_drills, split_extra


def run_suite(*, chain: str | None, extra: Sequence[str], timeout: float, tmp: Path, index: int) -> tuple[dict[str, Outcome], float]:
    workdir = tmp / f"run{index}"
    workdir.mkdir(parents=True, exist_ok=True)
    outcomes, seconds, timed_out = run_drills(workdir, chain=chain, extra=extra, timeout=timeout)
    if timed_out:
        print(f"run {index}: stopped after {timeout:.0f} s", flush=True)
    return outcomes, seconds


def main(argv: Sequence[str] | None = None) -> int:
    argv, extra = split_extra(argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3, help="full suite runs (default 3)")
    p.add_argument("--chain", choices=("pyevm", "anvil"), default=None)
    p.add_argument("--timeout", type=float, default=1200.0, help="seconds per full run")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be at least 1")
    failures: Counter[str] = Counter()
    first_message: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="flakes-") as tmp_s:
        tmp = Path(tmp_s)
        for i in range(1, args.runs + 1):
            outcomes, took = run_suite(chain=args.chain, extra=extra, timeout=args.timeout, tmp=tmp, index=i)
            bad = [o for o in outcomes.values() if o.status not in ("passed", "skipped")]
            for o in bad:
                failures[o.test] += 1
                first_message.setdefault(o.test, (o.message.splitlines() or ["(no message)"])[0][:240])
            print(f"run {i}: {len(outcomes) - len(bad)} passed, {len(bad)} failed, {took:.0f} s", flush=True)
            if not outcomes:
                print(f"run {i}: no result at all (pytest did not start? try the command by hand)", flush=True)
                failures["<no results>"] += 1
    for test, n in failures.most_common():
        print(f"  {n}x {test}: {first_message.get(test, '')}")
    total = sum(failures.values())
    print(f"flakes: {total} drill failure(s) in {args.runs} run(s), {len(failures)} drill(s) affected")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
