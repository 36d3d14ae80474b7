"""Budget configuration: defaults, per-scenario overrides, scaling, and errors that teach."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.checks.budgets import POLICY, Budget, load_config, parse_config
from harness.errors import ConfigError, UnknownScenarioError


def test_defaults_without_config(tmp_path: Path) -> None:
    cfg = load_config(tmp_path)
    assert cfg.defaults == Budget()
    assert cfg.budget_for("anything").detect == 5.0


def test_pyproject_defaults_and_scenario_overrides(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.drills]\nchain = "anvil"\ndetect = 3\nrecover = 20.5\n'
        "[tool.drills.scenarios.test_rpc_down]\ndeadline_misses = 2\ncontain = 4\n"
    )
    cfg = load_config(tmp_path)
    assert cfg.defaults.detect == 3 and cfg.defaults.recover == 20.5
    rpc = cfg.budget_for("test_rpc_down")
    assert (rpc.detect, rpc.contain, rpc.deadline_misses) == (3, 4, 2)  # inherits the file's defaults
    assert cfg.budget_for("test_other").deadline_misses == 0


def test_drills_toml_wins_over_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.drills]\ndetect = 3\n")
    (tmp_path / "drills.toml").write_text("detect = 7\n")
    assert load_config(tmp_path).defaults.detect == 7


def test_scale_multiplies_seconds_not_counts() -> None:
    b = Budget(detect=5, contain=10, recover=30, deadline_misses=1, time_limit=60).scaled(2)
    assert (b.detect, b.contain, b.recover, b.time_limit, b.deadline_misses, b.scale) == (10, 20, 60, 120, 1, 2)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[tool.drills]\ndetect = \"fast\"\n", r"\[tool.drills\].detect must be a number of seconds > 0, got 'fast'"),
        ("[tool.drills]\ndetect = -1\n", "detect must be a number > 0, got -1"),
        ("[tool.drills]\ndeadline_misses = 1.5\n", "deadline_misses must be a whole number >= 0"),
        ("[tool.drills.scenarios.test_x]\ndetcet = 2\n", "unknown key 'detcet'; did you mean 'detect'"),
        ("[tool.drills]\nscenarios = 3\n", "must be a table of tables"),
        ("[tool.drills\n", "not valid TOML"),
    ],
)
def test_malformed_config_names_the_key(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "pyproject.toml").write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path)


def test_bad_scale_is_refused() -> None:
    with pytest.raises(ConfigError, match="--drill-budget-scale"):
        Budget().scaled(0)


def test_policy_targets_are_the_documents() -> None:
    assert POLICY.mttd == 300 and POLICY.mttr == 1800
    assert POLICY.response == {"SEV-1": 300, "SEV-2": 1800, "SEV-3": 7200, "SEV-4": 86400}


def test_parse_config_accepts_other_parts_keys() -> None:
    assert parse_config({"chain": "pyevm", "agent_cmd": "x"}).defaults == Budget()


def test_a_drills_own_budget_sits_between_the_projects_defaults_and_its_table() -> None:
    """Layers: Budget() < [tool.drills] defaults < the marker's budget < [tool.drills.scenarios.<drill>]."""
    cfg = parse_config({"detect": 6, "recover": 40, "scenarios": {"test_x": {"contain": 20}}})
    own = {"detect": 10, "contain": 15, "deadline_misses": 2}
    x = cfg.budget_for("test_x", drill=own, scale=2)
    assert (x.detect, x.contain, x.recover, x.deadline_misses, x.time_limit) == (20, 40, 80, 2, 180)
    y = cfg.budget_for("test_y", drill=own)
    assert (y.detect, y.contain, y.recover, y.deadline_misses) == (10, 15, 40, 2)
    assert cfg.budget_for("test_y") == Budget(detect=6, recover=40)


def test_a_bad_drill_budget_names_the_drill_and_the_key() -> None:
    with pytest.raises(ConfigError, match=r"@pytest.mark.drill\(budget=...\) of test_x: unknown key 'detcet'; did you mean 'detect'"):
        parse_config({}).budget_for("test_x", drill={"detcet": 3})


def test_a_scenario_table_must_name_a_drill() -> None:
    cfg = parse_config({"scenarios": {"test_proces_killed": {"detect": 9}}}, source="drills.toml")
    cfg.check_scenarios({"test_proces_killed", "test_other"})
    with pytest.raises(UnknownScenarioError) as info:
        cfg.check_scenarios({"test_process_killed", "test_other"})
    assert str(info.value).startswith("drills.toml: [tool.drills.scenarios.test_proces_killed] names no drill; "
                                      "did you mean 'test_process_killed'?")
