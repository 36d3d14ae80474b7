"""What a user does first: pip install agent-drills, then drill an agent from an empty directory.

The virtual environment is fresh, outside this checkout, installed (not editable) from a copy of
it (tests/conftest.py). The agent is the reference agent as the package ships it, started the way
the README tells a user to start theirs: ``--agent-cmd "python -m reference_agent"``. Nothing of
this checkout is on the path. Then ``drill init`` in another empty directory, and a run that takes
its agent command and budgets from the drills.toml written there and runs the example drill.
About 1.5 minutes on the 2-core development machine, most of it the install and three pytest starts.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: the drills of this repository, counted from the generated catalogue (tests/test_docs.py keeps it current)
# collected drills: a parametrized drill (a committed schedule's replay) has a row per parameter
BUILT_IN = len(re.findall(r"^\| test_\w+\.py \| test_\w+(?:\[[^]|]*\])? \|", (ROOT / "docs" / "catalogue.md").read_text(), re.M))
QUICK = "smoke or test_primary_rpc_down_fails_over_to_backup"  # two built-in drills of a few seconds each
AGENT = "python -m reference_agent"

pytestmark = pytest.mark.slow


def run(venv: Path, env: dict[str, str], cwd: Path, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """A command of the virtual environment's bin/ (pytest, drill, python), as the user types it."""
    return subprocess.run([str(venv / "bin" / argv[0]), *argv[1:]], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def records(path: Path) -> dict[str, dict]:
    return {r["scenario"]: r for r in map(json.loads, path.read_text().splitlines())}


def test_the_package_ships_the_catalogue_and_the_reference_agent(installed_checkout: Path,
                                                                  installed_env: dict[str, str], tmp_path: Path) -> None:
    code = ("import agent_drills_catalogue, reference_agent, harness, importlib.metadata as m; "
            "print(agent_drills_catalogue.__file__, reference_agent.__file__, harness.__file__); "
            "print(m.metadata('agent-drills')['License-Expression'])")
    out = run(installed_checkout, installed_env, tmp_path, "python", "-c", code)
    assert out.returncode == 0, out.stderr
    files, license_ = out.stdout.splitlines()
    site = str(installed_checkout / "lib")
    assert all(f.startswith(site) for f in files.split()), files  # the installed copies, nothing of the checkout
    assert license_ == "Apache-2.0"


def test_an_empty_directory_collects_the_whole_catalogue_and_drills_the_agent(
        installed_checkout: Path, installed_env: dict[str, str], tmp_path: Path) -> None:
    out = run(installed_checkout, installed_env, tmp_path, "pytest", "-m", "drill", "--agent-cmd", AGENT,
              "--collect-only", "-q")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    found = [line for line in out.stdout.splitlines() if "::" in line]
    assert len(found) == len(set(found)) == BUILT_IN, out.stdout[-2000:]

    jsonl = tmp_path / "drills.jsonl"
    out = run(installed_checkout, installed_env, tmp_path, "pytest", "-m", "drill", "--agent-cmd", AGENT, "-k", QUICK,
              "--drill-jsonl", str(jsonl), "-p", "no:cacheprovider")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert re.search(r"\b2 passed\b", out.stdout), out.stdout[-2000:]
    assert f"agent-drills: built-in drills from {installed_checkout}" in out.stdout
    drilled = records(jsonl)["test_primary_rpc_down_fails_over_to_backup"]
    assert drilled["status"] == "passed" and drilled["agent_cmd"] == ["python", "-m", "reference_agent"]
    # the command a failed drill prints to re-run it finds the drill wherever the package is installed
    rerun = shlex.split(drilled["rerun"])
    assert rerun[:3] == ["pytest", "--pyargs", "agent_drills_catalogue.test_network::test_primary_rpc_down_fails_over_to_backup"]
    out = run(installed_checkout, installed_env, tmp_path, *rerun, "--collect-only", "-q")
    assert out.returncode == 0 and "1 test collected" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]


def test_drill_init_then_pytest_runs_the_example_drill_with_the_written_config(
        installed_checkout: Path, installed_env: dict[str, str], tmp_path: Path) -> None:
    out = run(installed_checkout, installed_env, tmp_path, "drill", "init", "--agent-cmd", AGENT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1].strip() == "pytest -m drill"
    again = run(installed_checkout, installed_env, tmp_path, "drill", "init")
    assert again.returncode == 2 and "nothing was written" in again.stderr

    example = "test_my_agent_keeps_proving_through_a_primary_rpc_outage"
    with (tmp_path / "drills.toml").open("a") as fh:  # the user's override of their drill, by name
        fh.write(f"\n[scenarios.{example}]\nrecover = 45\n")
    jsonl = tmp_path / "drills.jsonl"
    out = run(installed_checkout, installed_env, tmp_path, "pytest", "-m", "drill", "-k", f"{example} or smoke",
              "--drill-jsonl", str(jsonl), "-p", "no:cacheprovider")  # no --agent-cmd: drills.toml gives it
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert re.search(r"\b2 passed\b", out.stdout), out.stdout[-2000:]
    rec = records(jsonl)[example]
    assert rec["status"] == "passed" and rec["agent_cmd"] == ["python", "-m", "reference_agent"]
    budget = rec["budget"]
    assert (budget["detect"], budget["contain"], budget["recover"]) == (5.0, 12, 45)  # default, marker, drills.toml
