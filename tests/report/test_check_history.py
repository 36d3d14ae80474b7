"""``drill check RUN_DIR``: a stored run judged again from its recorded history.

One real run (the chain-stall drill against the reference agent, in a pytest subprocess, as users
run drills) leaves a summary.json; judged again, every re-derived verdict agrees with the live one.
Then copies of that record with an edited timeline (the detection alert removed, the proofs that
proved recovery landing late, a second proof of a proven escrow, an expired escrow) must make
``drill check`` disagree, naming the drill and the check; a directory that is not a run exits 2.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.checks.history import POLL_S, check_drill, check_run, load_run
from harness.cli import main

ROOT = Path(__file__).resolve().parents[2]
DRILL = "scenarios/test_chain.py::test_chain_stall_is_detected_and_sending_paused"
RUN_ID = "check-run"


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The summary.json of one real run of the chain-stall drill (detection, containment, heal, recovery)."""
    base = tmp_path_factory.mktemp("check")
    reports = base / "reports"
    cmd = [sys.executable, "-m", "pytest", DRILL, "-q", "-p", "no:cacheprovider", "--basetemp", str(base / "inner"),
           "--drill-report-dir", str(reports), "--drill-run-id", RUN_ID]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    summary = reports / RUN_ID / "summary.json"
    assert summary.is_file(), proc.stdout[-3000:] + proc.stderr[-2000:]
    doc = json.loads(summary.read_text())
    assert doc["drills"][0]["status"] == "passed", doc["drills"][0]["failure_message"]
    return doc


def _write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text(json.dumps(doc))
    return run_dir


def _edited(doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    out = copy.deepcopy(doc)
    return out, out["drills"][0]


def _events(drill: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in drill["timeline"] if e["kind"] == kind]


def _check(doc: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["check", str(_write(tmp_path, doc))])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_a_real_run_judged_again_agrees(stored: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proofs = [e["data"] for e in _events(stored["drills"][0], "chain.tx") if e["data"].get("method") == "submitProof"]
    assert proofs and all(isinstance(p.get("escrow_id"), int) for p in proofs)  # the watcher records which escrow
    check = check_drill(stored["drills"][0])
    by_check = {j.check: j for j in check.judgements}
    # the three stages and the invariants the timeline holds were judged again, not taken as recorded
    for name in ("detection", "containment", "recovery", "invariant: no escrow proven or proof attempted twice",
                 "invariant: deadlines missed within allowance", "invariant: monitoring alive at the end"):
        assert by_check[name].agree is True, by_check[name]
        assert by_check[name].rejudged == "passed", by_check[name]
    assert by_check["invariant: gradual resumption"].agree is None  # pool times are not in the record: said so
    assert "not re-judged" in by_check["invariant: gradual resumption"].detail
    recovered = next(e for e in stored["drills"][0]["timeline"] if e["kind"] == "drill.recovered")
    assert "heal" in by_check["recovery"].detail  # the chain stall is healed: recovery counts from the heal
    assert f"recorded MTTR {recovered['data']['mttr']:.3f} s" in by_check["recovery"].detail

    code, out, err = _check(stored, tmp_path, capsys)
    assert code == 0, out + err
    assert "test_chain_stall_is_detected_and_sending_paused" in out and "recovery" in out
    assert "agree with the live ones" in out and err == ""


@pytest.mark.slow
def test_a_removed_detection_alert_disagrees(stored: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc, drill = _edited(stored)
    inc = _events(drill, "drill.detected")[0]["data"]["incident_id"]
    drill["timeline"] = [e for e in drill["timeline"]
                         if not (e["kind"] == "alert" and e["data"].get("incident_id") == inc)]
    code, _out, err = _check(doc, tmp_path, capsys)
    assert code == 1
    assert f"DISAGREES: {DRILL}: detection: live passed, re-judged failed (no chain_stalled alert at SEV-2 or above" in err


@pytest.mark.slow
def test_late_proofs_move_recovery_and_disagree(stored: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc, drill = _edited(stored)
    recovered = _events(drill, "drill.recovered")[0]["data"]
    late = 3.0 + recovered["band"]["seconds"]  # every proof after the heal lands well past the band
    for e in _events(drill, "escrow.proven"):
        if e["rel_s"] >= recovered["since_rel_s"]:
            e["rel_s"] = round(e["rel_s"] + late, 3)
    drill["timeline"].sort(key=lambda e: e["rel_s"])
    [j] = [j for j in check_drill(drill).judgements if j.check == "recovery"]
    assert j.agree is False, j
    code, _out, err = _check(doc, tmp_path, capsys)
    assert code == 1
    assert f"DISAGREES: {DRILL}: recovery: live passed" in err, err
    assert ("re-judged failed (no recovery on chain" in err
            or f"more than the watcher's {POLL_S:g} s poll" in err), err


@pytest.mark.slow
def test_a_second_proof_of_a_proven_escrow_disagrees(stored: dict[str, Any], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    doc, drill = _edited(stored)
    proof = _events(drill, "escrow.proven")[0]
    tx = next(e for e in _events(drill, "chain.tx") if e["data"]["hash"] == proof["data"]["tx"])
    again = copy.deepcopy(tx)
    again["rel_s"] = round(tx["rel_s"] + 0.05, 3)
    again["data"].update(hash="0x" + "ab" * 32, status=0, block=tx["data"]["block"] + 1, escrow_id=proof["data"]["id"])
    drill["timeline"].append(again)
    drill["timeline"].sort(key=lambda e: e["rel_s"])
    code, _out, err = _check(doc, tmp_path, capsys)
    assert code == 1
    assert (f"DISAGREES: {DRILL}: invariant: no escrow proven or proof attempted twice: live passed, re-judged failed "
            f"(proof attempted after the escrow was already proven: escrow {proof['data']['id']}") in err, err


@pytest.mark.slow
def test_an_expired_escrow_over_the_allowance_disagrees(stored: dict[str, Any], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    doc, drill = _edited(stored)
    assert drill["budgets"]["deadline_misses"] == 0
    opened = _events(drill, "escrow.opened")
    # one more escrow for the agent, opened in the steady state and left to expire: it breaks the
    # deadlines and nothing else (no proof is taken away, so the steady band and the recovery stand)
    first = opened[0]
    extra = {**first["data"], "id": max(e["data"]["id"] for e in opened) + 1000}
    drill["timeline"] += [
        {"rel_s": first["rel_s"] + 0.1, "kind": "escrow.opened", "source": "chainwatch", "data": extra},
        {"rel_s": first["rel_s"] + 0.6, "kind": "escrow.expired", "source": "chainwatch",
         "data": {"id": extra["id"], "agent": extra["agent"], "block": 999}},
    ]
    drill["timeline"].sort(key=lambda e: e["rel_s"])
    code, _out, err = _check(doc, tmp_path, capsys)
    assert code == 1
    assert (f"DISAGREES: {DRILL}: invariant: deadlines missed within allowance: live passed, re-judged failed "
            "(1 missed (1 expired") in err, err
    assert err.count("DISAGREES") == 1, err  # the recovery and the other checks still agree


def test_a_directory_that_is_not_a_run_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path / "nowhere")]) == 2
    assert "does not exist: expected a run directory written by `pytest -m drill`" in capsys.readouterr().err
    assert main(["check", str(tmp_path)]) == 2
    assert "holds no summary.json: expected a run directory" in capsys.readouterr().err
    (tmp_path / "summary.json").write_text("{not json")
    assert main(["check", str(tmp_path)]) == 2
    assert "is not valid JSON" in capsys.readouterr().err
    (tmp_path / "summary.json").write_text(json.dumps({"run_id": "x", "drills": [{"name": "d"}]}))
    assert main(["check", str(tmp_path)]) == 2
    assert "drill #1 has no 'status' or no 'timeline' list" in capsys.readouterr().err
    with pytest.raises(Exception, match="a 'drills' list"):
        (tmp_path / "summary.json").write_text(json.dumps({"run_id": "x"}))
        load_run(tmp_path)


def test_a_drill_without_injection_judges_only_its_invariants() -> None:
    drill = {"name": "t::steady", "status": "passed", "budgets": {"deadline_misses": 0},
             "invariants": [{"name": "deadlines missed within allowance", "verdict": "passed", "message": ""}],
             "timeline": [{"rel_s": 0.0, "kind": "world.funded", "source": "world", "data": {"hot": "0xA"}},
                          {"rel_s": 0.1, "kind": "escrow.opened", "source": "chainwatch",
                           "data": {"id": 1, "agent": "0xA", "deadline": 100, "block": 2}},
                          {"rel_s": 0.5, "kind": "escrow.expired", "source": "chainwatch", "data": {"id": 1, "block": 3}}]}
    run = check_run({"run_id": "r", "drills": [drill]})
    [j] = run.drills[0].judgements
    assert (j.check, j.live, j.rejudged, j.agree) == ("invariant: deadlines missed within allowance", "passed", "failed", False)
    assert run.messages() == [f"t::steady: invariant: deadlines missed within allowance: live passed, re-judged failed ({j.detail})"]


def _late_containment(drill: dict[str, Any]) -> None:
    data = _events(drill, "drill.contained")[0]["data"]
    data["time_to_contain"] = data["within"] + 1.0


def _weak_fee_bump(drill: dict[str, Any]) -> None:
    drill["timeline"].append({"rel_s": 1.0, "kind": "chain.replacement", "source": "chainwatch",
                              "data": {"sender": "0xA", "nonce": 7, "old": "0x01", "new": "0x02",
                                       "cap_ratio": 1.05, "tip_ratio": 1.2}})
    drill["timeline"].sort(key=lambda e: e["rel_s"])


def _probe_unanswered(drill: dict[str, Any]) -> None:
    inc = _events(drill, "drill.probe")[-1]["data"]["incident_id"]
    drill["timeline"] = [e for e in drill["timeline"] if not (e["kind"] == "alert" and e["data"].get("incident_id") == inc)]


@pytest.mark.slow
@pytest.mark.parametrize(("edit", "expected"), [
    (_late_containment, "containment: live passed, re-judged failed (contained at +"),
    (_weak_fee_bump, "invariant: replacements bump cap and tip by at least 10%: live passed, re-judged failed "
                     "(1 of 1 replacement(s) under +10%: nonce 7: cap x1.050"),
    (_probe_unanswered, "invariant: monitoring alive at the end: live passed, re-judged failed (the manual incident"),
])
def test_each_rejudged_check_can_disagree(stored: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          edit: Any, expected: str) -> None:
    doc, drill = _edited(stored)
    edit(drill)
    code, _out, err = _check(doc, tmp_path, capsys)
    assert code == 1
    assert f"DISAGREES: {DRILL}: {expected}" in err, err
