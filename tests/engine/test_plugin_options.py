"""Misuse of the drill options, marker and configuration is caught before any drill runs.

Every mistake ends the run at start (configure or collection time, so ``--collect-only`` shows it too)
with pytest's usage error: exit code 4 and one line ``ERROR: <what is wrong and what to do>``, no
traceback, no INTERNALERROR.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from projects import collect_project, usage_error

ROOT = Path(__file__).resolve().parents[2]
DRILLS = Path(__file__).with_name("minimal_drills.py")
AGENT = ROOT / "tests" / "minimal_agent" / "agent.py"

A_DRILL = '''
import pytest

@pytest.mark.drill(playbook="network-issues", incident="rpc_failure", family="network")
def test_a_drill(drill):
    drill.steady_state()

def test_not_a_drill():
    pass
'''


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pytest", "-p", "harness.drill.pytest_plugin", str(DRILLS), "-q",
           "--basetemp", str(tmp_path / "inner"), "-o", "drill_agent_cmd=", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "COLUMNS": "300"})


def run_project(project: Path, *args: str, drills: str = A_DRILL) -> subprocess.CompletedProcess[str]:
    """pytest in a fresh project of its own (rootdir ``project``), collection only."""
    return collect_project(project, "test_drills.py", drills, *args)


# -- options, at configure time (before collection) -------------------------------------------------


def test_agent_env_without_equals_names_the_value(tmp_path: Path) -> None:
    proc = run(tmp_path, "--collect-only", "--agent-cmd", f"{{python}} {AGENT}", "--agent-env", "NOEQUALS")
    assert usage_error(proc) == "--agent-env 'NOEQUALS' is not KEY=VALUE (e.g. --agent-env AGENT_DEFECTS=no_sweep)"


@pytest.mark.parametrize(("line", "suggestion"), [("MY-VAR=1", "MY_VAR"), ("2FA=on", "_2FA"), ("A.B=x", "A_B")])
def test_agent_env_with_a_bad_name_says_which_characters_are_allowed(tmp_path: Path, line: str, suggestion: str) -> None:
    proc = run_project(tmp_path, "--agent-cmd", "python -m my_agent", "--agent-env", line)
    name = line.split("=")[0]
    assert usage_error(proc) == (
        f"--agent-env {name}=...: the name {name!r} may hold only letters, digits and '_' and must not start "
        f"with a digit; use e.g. {suggestion}"
    )


def test_agent_env_error_does_not_echo_the_value(tmp_path: Path) -> None:
    secret = "0x" + "ab" * 32
    proc = run_project(tmp_path, "--agent-cmd", "python -m my_agent", "--agent-env", f"HOT-KEY={secret}")
    assert secret not in proc.stdout + proc.stderr
    assert "the name 'HOT-KEY' may hold only" in usage_error(proc)


def test_bad_ini_agent_env_line_is_named_as_such(tmp_path: Path) -> None:
    proc = run_project(tmp_path, "--agent-cmd", "python -m my_agent", "-o", "drill_agent_env=JUSTANAME")
    assert usage_error(proc).startswith("drill_agent_env line 'JUSTANAME' is not KEY=VALUE")


def test_unparsable_agent_command(tmp_path: Path) -> None:
    proc = run(tmp_path, "--collect-only", "--agent-cmd", '"unclosed')
    assert usage_error(proc) == (
        "--agent-cmd '\"unclosed' cannot be split into arguments: No closing quotation; "
        "check its quotes (it is split like a shell command)"
    )


def test_unparsable_ini_agent_command_is_caught_without_any_drill_selected(tmp_path: Path) -> None:
    proc = run_project(tmp_path, "-o", "drill_agent_cmd=python 'x", "-k", "not_a_drill")
    assert usage_error(proc).startswith("the ini option drill_agent_cmd = \"python 'x\" cannot be split into arguments")


@pytest.mark.parametrize("scale", ["0", "-1", "inf", "nan"])
def test_bad_budget_scale(tmp_path: Path, scale: str) -> None:
    proc = run(tmp_path, "--collect-only", "--agent-cmd", f"{{python}} {AGENT}", "--drill-budget-scale", scale)
    assert usage_error(proc) == (
        f"--drill-budget-scale must be a number > 0, got {float(scale)!r} (1 keeps the budgets; 2 doubles them for a slow machine)"
    )


# -- the marker and the agent, at collection time ---------------------------------------------------


def test_misspelt_incident_kind_gets_a_suggestion_at_collection(tmp_path: Path) -> None:
    proc = run(tmp_path, "--collect-only", "-k", "misspelt", "--agent-cmd", f"{{python}} {AGENT}")
    assert usage_error(proc) == (
        "tests/engine/minimal_drills.py::test_marker_with_a_misspelt_incident: @pytest.mark.drill(incident='rpc_failur'): "
        "unknown incident kind 'rpc_failur'; did you mean 'rpc_failure'?"
    )


def test_unknown_marker_argument_at_collection(tmp_path: Path) -> None:
    drills = A_DRILL.replace('family="network"', 'familly="network"')
    proc = run_project(tmp_path, "--agent-cmd", "python -m my_agent", drills=drills)
    assert usage_error(proc) == (
        "test_drills.py::test_a_drill: @pytest.mark.drill got unknown argument(s) ['familly']; "
        "it takes playbook, incident, family, budget"
    )


def test_missing_agent_command_says_how_to_give_one(tmp_path: Path) -> None:
    proc = run(tmp_path, "--collect-only", "-k", "steady_state_holds")
    assert usage_error(proc) == (
        '1 drill(s) selected but no agent to drill: pass --agent-cmd "python -m my_agent" (the agent as a process) '
        "or --agent-image IMAGE (as a container), or set agent_cmd in drills.toml (`drill init` writes one) "
        "or drill_agent_cmd in the pytest ini options"
    )


def test_no_agent_needed_when_no_drill_is_selected(tmp_path: Path) -> None:
    proc = run_project(tmp_path, "-k", "not_a_drill")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "test_drills.py::test_not_a_drill" in proc.stdout


def test_a_correct_project_collects(tmp_path: Path) -> None:
    (tmp_path / "drills.toml").write_text('[tool.drills]\nchain = "pyevm"\ndetect = 7\n')
    proc = run_project(tmp_path, "--agent-cmd", "python -m my_agent", "--agent-env", "MY_VAR=1",
                       "--drill-budget-scale", "2", "--drill-catalogue=no")  # the built-in drills: test_catalogue.py
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 tests collected" in proc.stdout


# -- drills.toml and [tool.drills], at configure time -----------------------------------------------


@pytest.mark.parametrize("chain_option", [[], ["--chain", "pyevm"]])
@pytest.mark.parametrize(("text", "message"), [
    ("detect = [\n", "drills.toml is not valid TOML: "),
    ('chain = "geth"\n', "drills.toml: chain = 'geth' is not a chain backend (use one of pyevm, anvil)"),
    ('chain = "anvill"\n', "drills.toml: chain = 'anvill' is not a chain backend; did you mean 'anvil'? (use one of pyevm, anvil)"),
    ('[tool.drills]\ndetect = "fast"\n', "drills.toml.detect must be a number of seconds > 0, got 'fast' (str)"),
    ("[tool.drills]\nrecover = 0\n", "drills.toml: budget recover must be a number > 0, got 0"),
    ("[tool.drills.scenarios.test_a_drill]\ndetcet = 2\n", "unknown key 'detcet'; did you mean 'detect'?"),
    ('detect = 3\n[tool.drills]\ncontain = 4\n', "mixes top-level keys (detect) with a [tool.drills] table"),
    ("[tool.ruff]\nline-length = 100\n", "only [tool.drills] may appear under [tool] in drills.toml, found [tool.ruff]"),
])
def test_bad_drills_toml_is_a_usage_error_at_start(tmp_path: Path, text: str, message: str, chain_option: list[str]) -> None:
    (tmp_path / "drills.toml").write_text(text)
    proc = run_project(tmp_path, "--agent-cmd", "python -m my_agent", *chain_option)
    assert message in usage_error(proc)


def test_bad_chain_in_pyproject_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.drills]\nchain = "geth"\n')
    proc = run_project(tmp_path, "--agent-cmd", "python -m my_agent")
    assert usage_error(proc) == (
        "[tool.drills] in pyproject.toml: chain = 'geth' is not a chain backend (use one of pyevm, anvil)"
    )


def test_drills_toml_overriding_pyproject_is_said_in_the_header(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.drills]\nchain = "geth"\n')  # not read: drills.toml wins
    (tmp_path / "drills.toml").write_text('[tool.drills]\nchain = "pyevm"\n')
    proc = run_project(tmp_path, "--agent-cmd", "python -m my_agent", "-v")  # -v undoes -q: the header is shown
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "agent-drills: drill configuration from drills.toml ([tool.drills] in pyproject.toml is not read)" in proc.stdout
