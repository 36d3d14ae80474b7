"""The built-in drills in a project of its own: when they are collected, selection by family and
playbook, overrides by drill name, and no drill collected twice in this repository.

Each test runs pytest (collection only) in a fresh directory, as a user's repository; the catalogue
is the one this environment has installed (here: this checkout's scenarios/, installed editable).
tests/test_install.py does the same from a real pip install.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from projects import collect_project, usage_error

from harness.drill.catalogue import load_catalogue, marker_name

ROOT = Path(__file__).resolve().parents[2]
#: the drills this repository has, counted from the generated catalogue (a test keeps it current)
_ROWS = re.findall(r"^\| test_\w+\.py \| (test_\w+)(?:\[[^]|]*\])? \|", (ROOT / "docs" / "catalogue.md").read_text(), re.M)
BUILT_IN = len(_ROWS)  # collected drills: a parametrized drill has a row per parameter
FUNCTIONS = len(set(_ROWS))  # drill functions

OWN_DRILL = '''
import pytest
from harness import Outage, failed_over

@pytest.mark.drill(playbook="wallet-compromise", family="custom", budget={"detect": 8})
def test_my_drill(drill):
    drill.steady_state()
    drill.inject(Outage("primary"))
    drill.expect_containment(failed_over("backup-1"))

def test_unit():
    pass
'''


def collect(project: Path, *args: str, drills: str = OWN_DRILL) -> subprocess.CompletedProcess[str]:
    return collect_project(project, "test_mine.py", drills, *args)


def ids(proc: subprocess.CompletedProcess[str]) -> list[str]:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [line for line in proc.stdout.splitlines() if "::" in line]


def test_the_catalogue_is_read_from_the_installed_package() -> None:
    catalogue = load_catalogue()
    assert catalogue is not None and len(catalogue.drills) == FUNCTIONS == 36
    assert {"process", "network", "key"} <= catalogue.families
    assert "wallet-compromise" in catalogue.playbooks and marker_name("wallet-compromise") == "wallet_compromise"


def test_asking_for_drills_collects_every_built_in_one_beside_the_projects(tmp_path: Path) -> None:
    found = ids(collect(tmp_path, "-m", "drill", "--agent-cmd", "python my_agent.py"))
    assert "test_mine.py::test_my_drill" in found
    assert len(found) == BUILT_IN + 1 and len(set(found)) == len(found)


def test_an_agent_option_alone_asks_for_drills(tmp_path: Path) -> None:
    found = ids(collect(tmp_path, "--agent-cmd", "python my_agent.py"))
    assert len(found) == BUILT_IN + 2  # no -m: the unit test too


@pytest.mark.parametrize(("args", "expected"), [
    ([], ["test_mine.py::test_unit"]),  # a project's plain test run (no drill of its own here)
    (["-m", "not drill", "--agent-cmd", "x"], ["test_mine.py::test_unit"]),
    (["-m", "drill", "--agent-cmd", "x", "test_mine.py"], ["test_mine.py::test_my_drill"]),  # a path named
    (["--agent-cmd", "x", "--drill-catalogue=no"], ["test_mine.py::test_my_drill", "test_mine.py::test_unit"]),
])
def test_the_built_in_drills_stay_out_unless_asked_for(tmp_path: Path, args: list[str], expected: list[str]) -> None:
    drills = OWN_DRILL if "x" in args else "def test_unit():\n    pass\n"
    assert ids(collect(tmp_path, *args, drills=drills)) == expected


def test_drill_catalogue_yes_adds_them_beside_a_named_path(tmp_path: Path) -> None:
    found = ids(collect(tmp_path, "-m", "drill", "test_mine.py", "--agent-cmd", "x", "--drill-catalogue=yes"))
    assert len(found) == BUILT_IN + 1


def test_a_playbook_or_a_family_is_a_marker(tmp_path: Path) -> None:
    found = ids(collect(tmp_path, "-m", "drill and wallet_compromise", "--agent-cmd", "x"))
    assert sorted(i.split("::")[1] for i in found) == [
        "test_agent_output_never_contains_the_private_key", "test_leaked_key_swept_to_cold_wallet_and_allowance_revoked",
        "test_my_drill"]
    found = ids(collect(tmp_path, "-m", "drill and process", "--agent-cmd", "x"))
    assert len(found) == 3 and all("process" in i or "crash" in i for i in found), found


def test_without_an_agent_the_error_names_both_ways_to_give_one(tmp_path: Path) -> None:
    assert usage_error(collect(tmp_path, "-m", "drill")) == (
        f"{BUILT_IN + 1} drill(s) selected but no agent to drill: pass --agent-cmd \"python -m my_agent\" (the agent "
        "as a process) or --agent-image IMAGE (as a container), or set agent_cmd in drills.toml (`drill init` writes one) "
        "or drill_agent_cmd in the pytest ini options"
    )


def test_overrides_name_built_in_or_own_drills_strictly(tmp_path: Path) -> None:
    (tmp_path / "drills.toml").write_text(
        "[scenarios.test_my_drill]\ncontain = 12\n"
        "[scenarios.test_process_killed_reports_process_crash]\ndetect = 20\n"
    )
    assert len(ids(collect(tmp_path, "-m", "drill", "--agent-cmd", "x"))) == BUILT_IN + 1
    # a built-in drill's name is known even when the built-in drills are left out
    assert len(ids(collect(tmp_path, "-m", "drill", "--agent-cmd", "x", "--drill-catalogue=no"))) == 1
    (tmp_path / "drills.toml").write_text("[scenarios.test_process_killed_report_process_crash]\ndetect = 20\n")
    assert usage_error(collect(tmp_path, "-m", "drill", "--agent-cmd", "x")) == (
        "drills.toml: [tool.drills.scenarios.test_process_killed_report_process_crash] names no drill; did you mean "
        "'test_process_killed_reports_process_crash'? (a scenario table takes the name of a drill's test function; "
        "`pytest -m drill --collect-only -q` lists them)"
    )


def test_a_bad_budget_in_a_marker_is_caught_at_collection(tmp_path: Path) -> None:
    drills = OWN_DRILL.replace('budget={"detect": 8}', 'budget={"detect": 0}')
    assert usage_error(collect(tmp_path, "-m", "drill", "--agent-cmd", "x", "--drill-catalogue=no", drills=drills)) == (
        "test_mine.py::test_my_drill: @pytest.mark.drill(budget=...): budget detect must be a number > 0, got 0"
    )


def test_in_this_repository_no_drill_is_collected_twice() -> None:
    """testpaths holds scenarios/, the catalogue's source: the installed catalogue is that directory."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "drill", "--collect-only", "-q"], cwd=ROOT,
                          capture_output=True, text=True, timeout=180)
    found = ids(proc)
    assert len(found) == len(set(found)) == BUILT_IN
    assert all(i.startswith("scenarios/") for i in found)
    assert "built-in drills from" not in proc.stdout


def test_one_import_gives_every_fault_and_predicate() -> None:
    """``from harness import ...`` resolves every name it lists, and lists every fault and predicate class."""
    import importlib
    import inspect
    import pkgutil

    import harness
    import harness.faults
    from harness.drill import playbook_predicates, predicates
    from harness.faults.base import Fault

    assert all(getattr(harness, name) is not None for name in harness.__all__)
    faults = {name for info in pkgutil.iter_modules(harness.faults.__path__) if not info.name.startswith("_")
              for name, obj in vars(importlib.import_module(f"harness.faults.{info.name}")).items()
              if inspect.isclass(obj) and issubclass(obj, Fault) and obj.__module__.endswith(info.name)
              and not name.startswith("_")}
    preds = {name for mod in (predicates, playbook_predicates) for name, obj in vars(mod).items()
             if inspect.isclass(obj) and issubclass(obj, predicates.Predicate) and obj.__module__ == mod.__name__}
    assert faults and preds
    missing = sorted((faults | preds) - set(harness.__all__))
    assert not missing, f"not exported from harness: {missing}"
    with pytest.raises(AttributeError, match="has no attribute 'Outtage'"):
        harness.Outtage  # noqa: B018


def test_agent_cmd_in_drills_toml_gives_the_agent(tmp_path: Path) -> None:
    (tmp_path / "drills.toml").write_text('agent_cmd = "python my_agent.py"\n')
    assert len(ids(collect(tmp_path, "-m", "drill"))) == BUILT_IN + 1
    (tmp_path / "drills.toml").write_text("agent_cmd = ['python', 'my_agent.py']\n")
    assert usage_error(collect(tmp_path, "-m", "drill")) == (
        "drills.toml: agent_cmd must be the command that starts your agent as a string, e.g. "
        "agent_cmd = \"python -m my_agent\", got ['python', 'my_agent.py']"
    )
