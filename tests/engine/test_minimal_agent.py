"""Drilling an agent the harness knows nothing about: the minimal agent, by --agent-cmd alone.

pytest runs tests/engine/minimal_drills.py in a subprocess (the way a user runs drills) and this
test reads its outcome lines and the drill results it wrote. The minimal agent implements steady
work, crash and latency reporting only, so it must pass those drills (and the one-second blip,
which it only retries, and a single mistyped token, which it only answers 401) and fail the
failover, escalation, authorisation-attack and fee-cap drills with a message that says what was missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AGENT = ROOT / "tests" / "minimal_agent" / "agent.py"
DRILLS = Path(__file__).with_name("minimal_drills.py")


def run_drills(tmp_path: Path, backend: str, *select: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
    results = tmp_path / "results.jsonl"
    cmd = [
        sys.executable, "-m", "pytest", "-p", "harness.drill.pytest_plugin", str(DRILLS), "-rA", "-q",
        "--agent-cmd", f"{{python}} {AGENT}", "-k", " or ".join(select), "--basetemp", str(tmp_path / "inner"), "--chain", backend,
        "--drill-jsonl", str(results),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "400", **(env or {})})
    lines = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    return proc, lines


@pytest.mark.slow
def test_minimal_agent_passes_what_it_implements_and_fails_what_it_does_not(tmp_path: Path, chain_backend: str) -> None:
    proc, results = run_drills(tmp_path, chain_backend, "steady_state_holds", "killed_agent", "fails_over_to_backup")
    out = proc.stdout
    assert "PASSED tests/engine/minimal_drills.py::test_steady_state_holds" in out, out
    assert "PASSED tests/engine/minimal_drills.py::test_killed_agent_reports_crash_after_restart" in out, out
    assert (
        "FAILED tests/engine/minimal_drills.py::test_primary_rpc_down_fails_over_to_backup - "
        "harness.errors.DetectionMissed: no rpc_failure alert at exactly SEV-3 within 5.0 s of injection "
        "(no alert since injection)"
    ) in out, out
    assert proc.returncode == 1
    by_name = {r["scenario"]: r for r in results}
    kill = by_name["test_killed_agent_reports_crash_after_restart"]
    assert kill["status"] == "passed" and kill["restarts"] >= 1
    assert kill["mttd"] is not None and kill["mttr"] is not None and kill["mttd"] <= kill["mttr"]
    assert all(i["verdict"] == "passed" for i in kill["invariants"]), kill["invariants"]
    failover = by_name["test_primary_rpc_down_fails_over_to_backup"]
    assert (failover["status"], failover["category"]) == ("failed", "missed_detection")
    assert failover["rerun"].startswith("pytest tests/engine/minimal_drills.py::test_primary_rpc_down_fails_over_to_backup")
    # the re-run command and the why are printed with the failure
    assert "re-run: pytest tests/engine/minimal_drills.py::test_primary_rpc_down_fails_over_to_backup" in out


@pytest.mark.slow
def test_failed_containment_names_the_missing_predicate(tmp_path: Path, chain_backend: str) -> None:
    proc, results = run_drills(tmp_path, chain_backend, "moves_traffic_to_backup")
    assert (
        "ContainmentFailed: no failover to backup-1 within 4.0 s "
        "(0 eth_sendRawTransaction call(s) through rpc-backup-1 since injection (need 1)"
    ) in proc.stdout, proc.stdout
    (res,) = results
    assert res["category"] == "late_containment"


@pytest.mark.slow
def test_minimal_agent_rides_out_a_blip_and_fails_the_escalation_duty(tmp_path: Path, chain_backend: str) -> None:
    proc, results = run_drills(tmp_path, chain_backend, "rpc_blip", "escalated")
    out = proc.stdout
    assert "PASSED tests/engine/minimal_drills.py::test_one_second_rpc_blip_is_no_incident" in out, out
    assert (
        "FAILED tests/engine/minimal_drills.py::test_unresolved_latency_incident_is_escalated_to_sev2 - "
        "harness.errors.WrongSeverity: incident INC-"
    ) in out, out
    assert "was never escalated: still SEV-3 and unresolved past its escalation time of 8.0 s" in out, out
    by_name = {r["scenario"]: r for r in results}
    assert by_name["test_unresolved_latency_incident_is_escalated_to_sev2"]["category"] == "wrong_severity"
    assert by_name["test_one_second_rpc_blip_is_no_incident"]["status"] == "passed"


@pytest.mark.slow
def test_minimal_agent_lets_a_typo_pass_and_fails_the_attack_duties_naming_them(tmp_path: Path, chain_backend: str) -> None:
    """It has no rate limit, so a typo is no attack to it (it passes), but after an attack it reports
    no attempts and has no configuration hash: the drill names both duties and their sections."""
    proc, results = run_drills(tmp_path, chain_backend, "mistyped_token", "configuration_verified")
    out = proc.stdout
    assert "PASSED tests/engine/minimal_drills.py::test_single_mistyped_token_is_no_attack" in out, out
    assert (
        "FAILED tests/engine/minimal_drills.py::test_attack_reported_with_its_attempts_and_configuration_verified - "
        "harness.errors.ContainmentFailed: the auth_failures event did not carry the attempts the harness made "
        "(contract 1.1, section 3:"
    ) in out, out
    by_name = {r["scenario"]: r for r in results}
    assert by_name["test_single_mistyped_token_is_no_attack"]["status"] == "passed"
    attack = by_name["test_attack_reported_with_its_attempts_and_configuration_verified"]
    assert attack["category"] == "late_containment"
    assert attack["message"] == (
        "the auth_failures event did not carry the attempts the harness made (contract 1.1, section 3: details.source, "
        "details.failed_attempts and details.window_s of the failed authorisations) within 4.0 s (no auth_failures "
        "alert since the injection); the agent did not show its configuration intact (contract 1.1, section 4: after "
        "an authorisation attack /health's config_sha256 must be the SHA-256 of the configuration the harness wrote) "
        "within 4.0 s (/health has no config_sha256)"
    )


@pytest.mark.slow
def test_minimal_agent_fails_the_fee_cap_duty_naming_it(tmp_path: Path, chain_backend: str) -> None:
    """It never replaces nor cancels: a spike past the fee cap leaves its proof stuck, and the drill
    names the long-term step and the contract section it belongs to."""
    proc, results = run_drills(tmp_path, chain_backend, "past_the_fee_cap")
    out = proc.stdout
    assert (
        "FAILED tests/engine/minimal_drills.py::test_stuck_nonce_cancelled_past_the_fee_cap - "
        "harness.errors.ContainmentFailed: no stuck transaction cancelled (the duty of contract 1.1, section 2, "
        "'The fee cap': a zero-value self-transfer at the stuck nonce once the base fee is above AGENT_FEE_CAP_WEI) "
        "within 6.0 s ("
    ) in out, out
    (res,) = results
    assert (res["status"], res["category"]) == ("failed", "late_containment")
    assert "0 zero-value self-transfer(s)" in res["message"], res["message"]
