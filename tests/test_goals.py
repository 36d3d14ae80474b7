"""The user's goals, followed from the docs alone: the commands and code in the docs run as written.

Goal 1, make my agent drillable (install, drill an agent from an empty directory, ``drill init``), is
tests/test_install.py. Here: goal 2, write my own two-fault drill (the example of docs/drills.md,
"Drills with two faults", copied into a project as it is), and goal 3, gate my deploys in CI (the shell
steps of docs/ci.md, run twice with the cache directory they keep, as two pipeline runs would).
All of it in the fresh virtual environment outside this checkout that tests/conftest.py installs.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
AGENT = "python -m reference_agent"  # the agent as the package ships it, standing in for the user's

pytestmark = pytest.mark.slow


def doc_block(doc: str, language: str, containing: str) -> str:
    """The fenced ``language`` block of docs/``doc`` that contains ``containing`` (exactly one)."""
    blocks = [b for b in re.findall(rf"```{language}\n(.*?)```", (ROOT / "docs" / doc).read_text(), re.S) if containing in b]
    assert len(blocks) == 1, f"docs/{doc}: expected one {language} block containing {containing!r}, found {len(blocks)}"
    return blocks[0]


def run(venv: Path, env: dict[str, str], cwd: Path, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / argv[0]), *argv[1:]], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_goal_2_the_documented_two_fault_drill_runs_in_a_users_project(
        installed_checkout: Path, installed_env: dict[str, str], tmp_path: Path) -> None:
    drill = doc_block("drills.md", "python", "def test_primary_down_during_a_gas_spike")
    (tmp_path / "drills").mkdir()
    (tmp_path / "drills" / "test_two_faults.py").write_text(drill)
    jsonl = tmp_path / "drills.jsonl"
    out = run(installed_checkout, installed_env, tmp_path, "pytest", "-m", "drill", "--agent-cmd", AGENT,
              "drills/test_two_faults.py", "--drill-jsonl", str(jsonl), "-p", "no:cacheprovider")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert re.search(r"\b1 passed\b", out.stdout), out.stdout[-2000:]  # only the named file: no built-in drill
    rec = json.loads(jsonl.read_text().splitlines()[0])
    assert rec["scenario"] == "test_primary_down_during_a_gas_spike" and rec["status"] == "passed"
    assert [f["name"] for f in rec["faults"]] == ["gas_spike", "rpc_outage"], rec["faults"]


def test_goal_3_the_documented_ci_steps_keep_the_history_and_the_second_run_is_gated(
        installed_checkout: Path, installed_env: dict[str, str], tmp_path: Path) -> None:
    steps = doc_block("ci.md", "sh", "--drill-gate=regression")
    project, cache = tmp_path / "project", tmp_path / "ci-cache"
    project.mkdir()
    out = run(installed_checkout, installed_env, project, "drill", "init", "--agent-cmd", AGENT)
    assert out.returncode == 0, out.stderr
    env = dict(installed_env, DRILLS_CACHE=str(cache),
               # one short drill; a huge factor, so the second run is compared but cannot fail on timing
               DRILL_ARGS="-k test_primary_rpc_down_fails_over_to_backup --drill-gate-min-history 1 "
                          "--drill-gate-factor 100 -p no:cacheprovider")
    summaries = []
    for attempt in (1, 2):
        reports = project / "reports"
        if reports.exists():  # each pipeline run starts from a fresh checkout: no reports/ of its own
            subprocess.run(["rm", "-rf", str(reports)], check=True)
        out = subprocess.run(["bash", "-c", steps], cwd=project, env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, f"CI run {attempt}:\n" + out.stdout[-4000:] + out.stderr[-2000:]
        assert re.search(r"\b1 passed\b", out.stdout), out.stdout[-2000:]
        history = (cache / "history.jsonl").read_text().splitlines()
        assert len(history) == attempt, history  # the cache holds every run so far
        (summary,) = reports.glob("*/summary.json")
        summaries.append(json.loads(summary.read_text()))
    first, second = (s["drills"][0]["regression"] for s in summaries)
    assert first["message"].startswith("no history: not gated"), first
    assert second["history_runs"] == 1 and "not gated" not in second["message"], second
