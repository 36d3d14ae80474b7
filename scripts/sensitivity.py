#!/usr/bin/env python3
"""Sensitivity of the drills: every defect variant of the reference agent must be caught.

For each defect (``AGENT_DEFECTS=<name>``) this runs, in a pytest subprocess, the drills aimed at
that defect plus one unrelated drill, and checks that every aimed drill *fails* with a drill
failure that names the broken expectation (DetectionMissed, WrongSeverity, ContainmentFailed,
OverReaction, RecoveryFailed, InvariantBroken: "no sweep to the cold wallet within 10.0 s (...)"),
not with an error, while the
unrelated drill still passes. It prints the defect x drill table.

Which drills aim at which defect comes from the defect table in docs/agent.md (rows naming a
defect in backticks and one or more ``test_...`` names); a built-in table is used for defects the
document does not list. The defects only two overlapping faults show (``COMBINATION_DEFECTS``) pass
every drill of scenarios/ and are not run here: tests/reference_agent/test_combination_defects.py
runs the two-fault drills aimed at them.

    python scripts/sensitivity.py --chain anvil
    python scripts/sensitivity.py --defects no_sweep,no_failover -- --drill-budget-scale 1.5

Arguments after ``--`` go to every pytest run (e.g. the agent command while the plugin has no
default one).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: drills aimed at each defect, used where docs/agent.md does not say
DEFAULT_AIMS: dict[str, tuple[str, ...]] = {
    "no_failover": ("test_primary_rpc_down_fails_over_to_backup",),
    "no_sweep": ("test_leaked_key_swept_to_cold_wallet_and_allowance_revoked",),
    "no_fee_bump": ("test_gas_spike_stuck_transactions_replaced_with_fee_bump",),
    "small_fee_bump": ("test_gas_spike_replacement_bumps_cap_and_tip_by_ten_percent",),
    "no_rebroadcast": ("test_dropped_transaction_rebroadcast_and_proofs_resume",),
    "volatile_nonce": ("test_process_killed_restarts_without_duplicate_or_lost_work",),
    "no_crash_report": ("test_process_killed_reports_process_crash",),
    "no_safe_mode": ("test_crash_loop_enters_safe_mode",),
    "no_simulation": ("test_revert_storm_pauses_instead_of_burning_gas",),
    "no_balance_alert": ("test_balance_low_alerts_and_serves_urgent_proofs_first",),
    "no_rate_limit": ("test_bad_operator_tokens_block_the_source",),
    "logs_key": ("test_agent_output_never_contains_the_private_key",),
    "instant_resume": ("test_resume_after_halt_is_gradual",),
    "slow_detection": ("test_primary_rpc_down_detected_within_budget",),
    "no_state_rebuild": ("test_state_corrupted_rebuilds_from_chain_without_duplicate_proof",),
    "claims_only": ("test_crash_loop_enters_safe_mode", "test_resume_after_halt_is_gradual",
                    "test_balance_low_alerts_and_serves_urgent_proofs_first"),
    "overreacts_to_blips": ("test_one_second_rpc_blip_is_no_incident", "test_single_failed_transaction_is_no_incident"),
    "never_escalates": ("test_unresolved_latency_incident_is_escalated_to_sev2",),
    "sev1_for_everything": ("test_primary_rpc_down_fails_over_to_backup", "test_revert_storm_pauses_instead_of_burning_gas"),
    "blocks_first_failure": ("test_single_mistyped_token_is_no_attack",),
    "wrong_config_hash": ("test_bad_operator_tokens_block_the_source",),
    "no_attempt_details": ("test_bad_operator_tokens_block_the_source",),
    "never_cancels": ("test_gas_spike_past_fee_cap_stuck_transactions_cancelled",),
}

#: defects that touch every drill (the key in every output, every detection slow): no unrelated
#: drill can pass, so none is required to
GLOBAL_DEFECTS = frozenset({"logs_key", "slow_detection", "sev1_for_everything"})

#: defects that no drill should fail on, but whose recorded recovery time must move (or not) as
#: the agent's real work does: the drill they are run against, and what is expected of it
TIMING_DEFECTS: dict[str, tuple[str, str]] = {
    "slow_resume": ("test_chain_stall_is_detected_and_sending_paused", "recovery 4 s or more later than the sound agent's"),
    "early_resolve": ("test_chain_stall_is_detected_and_sending_paused", "recovery still after the heal, the early claim a finding"),
}

#: defects that only two faults overlapping show: every single-fault drill of scenarios/ passes with
#: them, so none is aimed at one; the two-fault drill of COMBINATION_DRILLS that catches each
#: (tests/reference_agent/test_combination_defects.py runs them beside the sound agent)
COMBINATION_DRILLS = ROOT / "tests" / "reference_agent" / "combination_drills.py"
COMBINATION_DEFECTS: dict[str, str] = {
    "kill_loses_replacement": "test_restart_during_fee_bump_keeps_the_replacement",
    "failover_forgets_pending": "test_failover_while_transactions_are_stuck_keeps_their_nonces",
}

#: drills a defect touches without being aimed at them: they check the same behaviour on the way
#: (chain stall also pauses and resumes, so instant_resume fails it whenever more than five escrows
#: waited out the stall), so they can be neither required to fail nor used as the unrelated drill
TOUCHES: dict[str, tuple[str, ...]] = {
    "instant_resume": ("test_chain_stall_is_detected_and_sending_paused",),
}

#: candidates for the unrelated drill, the first one neither aimed at nor touched by the defect is used
CONTROLS = (
    "test_chain_stall_is_detected_and_sending_paused",
    "test_nonce_collision_is_detected_and_nonce_resynced",
    "test_rpc_latency_over_threshold_is_reported_and_resolved",
)

#: what a drill failure that names its broken expectation looks like in pytest's report
DRILL_FAILURES = ("DetectionMissed", "WrongSeverity", "ContainmentFailed", "OverReaction", "RecoveryFailed", "InvariantBroken",
                  "DrillFailure", "AssertionError")

_TEST = re.compile(r"(?<![\w/])test_[a-z0-9_]+\b(?!\.py)")
_TICKED = re.compile(r"`([a-z0-9_]+)`")


def aims_from_doc(path: Path, known: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Read ``defect -> drills`` from the markdown table rows of ``path`` (empty if it is missing)."""
    if not path.is_file():
        return {}
    known = set(known)
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if not line.lstrip().startswith("|"):
            continue
        defects = [d for d in _TICKED.findall(line) if d in known]
        tests = _TEST.findall(line)
        if defects and tests:
            for d in defects[:1]:
                out.setdefault(d, [])
                out[d] += [t for t in tests if t not in out[d]]
    return {d: tuple(t) for d, t in out.items()}


def aims(defects: Iterable[str] | None = None) -> dict[str, tuple[str, ...]]:
    table = dict(DEFAULT_AIMS)
    table.update(aims_from_doc(ROOT / "docs" / "agent.md", DEFAULT_AIMS))
    if defects is None:
        return table
    wanted = list(defects)
    unknown = [d for d in wanted if d not in table]
    if unknown:
        raise SystemExit(f"unknown defect(s) {', '.join(unknown)}; known: {', '.join(table)}")
    return {d: table[d] for d in wanted}


@dataclass
class Outcome:
    test: str
    status: str  # passed | failed | error | skipped | not run
    message: str = ""

    @property
    def names_expectation(self) -> bool:
        return self.status == "failed" and any(f in self.message for f in DRILL_FAILURES)


@dataclass
class Row:
    defect: str
    aimed: tuple[str, ...]
    control: str | None  # None for a defect that touches every drill
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def caught(self) -> bool:
        return all(self.outcomes.get(t, Outcome(t, "not run")).names_expectation for t in self.aimed)

    @property
    def control_passed(self) -> bool:
        if self.control is None:
            return True
        return self.outcomes.get(self.control, Outcome(self.control, "not run")).status == "passed"

    @property
    def ok(self) -> bool:
        return self.caught and self.control_passed


def parse_junit(path: Path) -> dict[str, Outcome]:
    out: dict[str, Outcome] = {}
    if not path.is_file():
        return out
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("name", "").split("[")[0]
        status, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            el = case.find(tag)
            if el is not None:
                status = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                message = (el.get("message") or el.text or "").strip()
                break
        prev = out.get(name)
        if prev is None or prev.status == "passed":  # an error in teardown after a pass counts
            out[name] = Outcome(name, status, message)
    return out


def run_drills(workdir: Path, *, chain: str | None, extra: Sequence[str], timeout: float,
               select: Sequence[str] = (), path: Path | None = None) -> tuple[dict[str, Outcome], float, bool]:
    """Run the drills of scenarios/ (or of the file ``path``) in a pytest subprocess (``select``: only
    these, by name).

    Returns the outcome of every drill that finished (from its JUnit XML), the seconds it took, and
    whether the run was stopped at ``timeout`` (what did not finish then shows as "not run").
    """
    import time

    junit = workdir / "junit.xml"
    # the run's own report directory: runs of broken agents stay out of the project's history (the
    # regression gate and --drill-shard read it), and runs side by side never append to one file
    cmd = [sys.executable, "-m", "pytest", str(path or ROOT / "scenarios"), "-m", "drill", "-q", "-p", "no:randomly",
           f"--junitxml={junit}", "--basetemp", str(workdir / "run"), "--drill-report-dir", str(workdir / "reports")]
    if path is not None:
        cmd += ["-p", "harness.drill.pytest_plugin"]  # a file outside scenarios/ is not a catalogue drill
    if select:
        cmd += ["-k", " or ".join(select)]
    if chain:
        cmd += ["--chain", chain]
    cmd += list(extra)
    started = time.monotonic()
    timed_out = False
    try:
        subprocess.run(cmd, check=False, cwd=ROOT, timeout=timeout, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    except subprocess.TimeoutExpired:
        timed_out = True
    return parse_junit(junit), time.monotonic() - started, timed_out


def run_defect(defect: str, aimed: Sequence[str], control: str | None, *, chain: str | None, extra: Sequence[str],
               timeout: float) -> Row:
    row = Row(defect, tuple(aimed), control)
    with tempfile.TemporaryDirectory(prefix=f"sens-{defect}-") as tmp:
        row.outcomes, row.seconds, _ = run_drills(
            Path(tmp), chain=chain, extra=["--agent-env", f"AGENT_DEFECTS={defect}", *extra], timeout=timeout,
            select=[*aimed, *([control] if control else [])],
        )
    return row


def _cell(row: Row, test: str) -> str:
    if test not in row.aimed and test != row.control:
        return ""
    o = row.outcomes.get(test, Outcome(test, "not run"))
    if test in row.aimed:
        return "CAUGHT" if o.names_expectation else f"MISSED ({o.status})"
    return "pass" if o.status == "passed" else f"BROKEN ({o.status})"


def table(rows: Sequence[Row]) -> str:
    """The defect x drill table in Markdown (aimed drills: CAUGHT/MISSED, the control: pass/BROKEN)."""
    tests: list[str] = []
    for r in rows:
        for t in (*r.aimed, *([r.control] if r.control else [])):
            if t not in tests:
                tests.append(t)
    short = {t: t.removeprefix("test_") for t in tests}
    lines = ["| defect | " + " | ".join(short[t] for t in tests) + " | verdict |",
             "|---|" + "---|" * len(tests) + "---|"]
    for r in rows:
        lines.append(f"| `{r.defect}` | " + " | ".join(_cell(r, t) for t in tests) + f" | {'ok' if r.ok else 'NOT OK'} |")
    return "\n".join(lines)


def details(rows: Sequence[Row]) -> str:
    out = []
    for r in rows:
        for t in r.aimed:
            o = r.outcomes.get(t, Outcome(t, "not run"))
            first = o.message.splitlines()[0] if o.message else "(no message)"
            out.append(f"{r.defect} -> {t}: {o.status}: {first[:300]}")
        if not r.control_passed:
            o = r.outcomes.get(r.control, Outcome(r.control, "not run"))
            first = o.message.splitlines()[0] if o.message else "(no message)"
            out.append(f"{r.defect} -> control {r.control}: {o.status}: {first[:300]}")
    return "\n".join(out)


def control_for(defect: str, aimed: Sequence[str]) -> str:
    """The unrelated drill run beside ``defect``'s aimed ones: the first control it neither aims at nor touches."""
    skip = set(aimed) | set(TOUCHES.get(defect, ()))
    return next(c for c in CONTROLS if c not in skip)


def run(defects: Mapping[str, Sequence[str]], *, chain: str | None, extra: Sequence[str], timeout: float,
        echo: bool = True, workers: int = 1) -> list[Row]:
    """One row per defect, in the order given; ``workers`` defects' pytest runs at a time.

    Each run is its own world (its chain, proxies, agent and ports, as under pytest-xdist), so
    they may overlap; the drills wait on the agent far more than they use the CPU.
    """
    from concurrent.futures import ThreadPoolExecutor

    if workers < 1:
        raise ValueError(f"workers must be 1 or more, got {workers}")

    def one(defect: str) -> Row:
        aimed = defects[defect]
        control = None if defect in GLOBAL_DEFECTS else control_for(defect, aimed)
        row = run_defect(defect, aimed, control, chain=chain, extra=extra, timeout=timeout)
        if echo:
            print(f"{defect}: {'ok' if row.ok else 'NOT OK'} ({row.seconds:.0f} s)", flush=True)
        return row

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, defects))


@dataclass(frozen=True)
class Timing:
    """What one drill recorded about recovery, read from the run's summary.json."""

    status: str
    after_heal: float | None  # recovery on chain, seconds after the heal (or the injection)
    claimed_resolved: float | None  # the agent's first `resolved`, seconds after the injection
    mttr: float | None
    findings: tuple[str, ...] = ()
    since: float | None = None  # when recovery was counted from (the heal), seconds after the injection


def recovery_timing(defect: str | None, drill: str, *, chain: str | None, extra: Sequence[str], timeout: float) -> Timing:
    """Run ``drill`` against the reference agent (with ``defect``, or sound) and read its recovery."""
    import json

    agent_env = ["--agent-env", f"AGENT_DEFECTS={defect}"] if defect else []
    with tempfile.TemporaryDirectory(prefix=f"timing-{defect or 'sound'}-") as tmp:
        reports = Path(tmp) / "reports"  # run_drills's report directory
        outcomes, _, _ = run_drills(Path(tmp), chain=chain, timeout=timeout, select=[drill], extra=[*agent_env, *extra])
        status = outcomes.get(drill, Outcome(drill, "not run")).status
        summaries = sorted(reports.glob("*/summary.json"))
        if not summaries:
            return Timing(status, None, None, None)
        rec = next((d for d in json.loads(summaries[-1].read_text())["drills"] if d["name"].endswith("::" + drill)), None)
    if rec is None:
        return Timing(status, None, None, None)
    ev = next((e["data"] for e in rec["timeline"] if e["kind"] == "drill.recovered"), None)
    findings = tuple(f"{e['data'].get('finding')}:{e['data'].get('claim')}" for e in rec["timeline"] if e["kind"] == "drill.finding")
    if ev is None:
        return Timing(status, None, None, rec.get("mttr_s"), findings)
    return Timing(status, round(ev["mttr"] - ev["since_rel_s"], 3), ev.get("claimed_resolved_rel_s"), ev["mttr"], findings,
                  ev["since_rel_s"])


def split_extra(argv: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """The script's own arguments and those after ``--`` (for every pytest run)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--" in args:
        i = args.index("--")
        return args[:i], args[i + 1:]
    return args, []


def main(argv: Sequence[str] | None = None) -> int:
    argv, extra = split_extra(argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chain", choices=("pyevm", "anvil"), default=None, help="chain backend (default: the project's)")
    p.add_argument("--defects", default=None, help="comma-separated defects (default: all)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per defect's pytest run")
    p.add_argument("--workers", type=int, default=1, help="defects run at a time, each in its own world (default 1)")
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error(f"--workers must be 1 or more, got {args.workers}")
    chosen = aims(args.defects.split(",") if args.defects else None)
    rows = run(chosen, chain=args.chain, extra=extra, timeout=args.timeout, workers=args.workers)
    print()
    print(table(rows))
    print()
    print(details(rows))
    bad = [r.defect for r in rows if not r.ok]
    print(f"\n{len(rows) - len(bad)} of {len(rows)} defects caught with the control drill passing"
          + (f"; not ok: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
