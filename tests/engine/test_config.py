"""Configuration files a user writes: drills.toml / [tool.drills], the fault proxy's --config, and the
hints given when a tool is missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.chain.anvil import find_anvil
from harness.checks.budgets import load_config
from harness.cli import main
from harness.config import config_source, load_drills_table, shadowed_source
from harness.errors import ToolMissingError

DOCUMENTED_BLOCK = """\
[tool.drills]
detect = 5              # seconds
contain = 10
recover = 30
deadline_misses = 0
value_at_risk_eth = 20.0
time_limit = 90         # hard limit for one drill, seconds

[tool.drills.scenarios.test_primary_rpc_down_fails_over_to_backup]
deadline_misses = 1
"""


def test_the_documented_block_applies_in_drills_toml_as_in_pyproject(tmp_path: Path) -> None:
    in_pyproject, in_drills = tmp_path / "a", tmp_path / "b"
    in_pyproject.mkdir(), in_drills.mkdir()
    (in_pyproject / "pyproject.toml").write_text("[project]\nname = 'x'\n\n" + DOCUMENTED_BLOCK.replace("detect = 5", "detect = 6"))
    (in_drills / "drills.toml").write_text(DOCUMENTED_BLOCK.replace("detect = 5", "detect = 6"))
    a, b = load_config(in_pyproject), load_config(in_drills)
    assert a.defaults == b.defaults and a.defaults.detect == 6 and a.defaults.time_limit == 90
    assert b.budget_for("test_primary_rpc_down_fails_over_to_backup").deadline_misses == 1
    assert a.scenarios == b.scenarios


def test_top_level_keys_in_drills_toml_still_work(tmp_path: Path) -> None:
    (tmp_path / "drills.toml").write_text('chain = "anvil"\ndetect = 4\n[scenarios.test_x]\ncontain = 3\n')
    assert load_drills_table(tmp_path)["chain"] == "anvil"
    assert load_config(tmp_path).budget_for("test_x").contain == 3


def test_drills_toml_wins_whole_and_is_not_merged_with_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.drills]\nchain = "anvil"\ndetect = 3\ncontain = 4\n')
    (tmp_path / "drills.toml").write_text("[tool.drills]\ndetect = 7\n")
    assert config_source(tmp_path) == tmp_path / "drills.toml"
    assert load_drills_table(tmp_path) == {"detect": 7}  # no chain, no contain from pyproject.toml
    assert load_config(tmp_path).defaults.contain == 10  # the built-in default
    assert shadowed_source(tmp_path) == tmp_path / "pyproject.toml"


def test_nothing_is_shadowed_without_a_drills_table_in_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / "drills.toml").write_text("detect = 7\n")
    assert shadowed_source(tmp_path) is None


# -- drill proxy --config ----------------------------------------------------------------------------

SHAPE = ('it must hold a JSON array of proxies (the Toxiproxy /populate format), e.g. '
         '[{"name": "rpc", "listen": "127.0.0.1:18545", "upstream": "127.0.0.1:8545"}]')


@pytest.mark.parametrize(("content", "message"), [
    ("{}", "holds an object; " + SHAPE),
    ("not json", "is not JSON (Expecting value: line 1 column 1 (char 0)); " + SHAPE),
    ('["rpc"]', ": proxy 1 is a string, not an object; " + SHAPE),
    ('[{"name": "rpc"}]', ": proxy 1 needs 'upstream' as a non-empty string; " + SHAPE),
    ('[{"name": "rpc", "upstream": "127.0.0.1:8545", "listen": 18545}]',
     ": proxy 1's 'listen' must be a string like \"127.0.0.1:18545\" (port 0 or no 'listen' picks a free port)"),
])
def test_proxy_config_file_mistakes_are_explained(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   content: str, message: str) -> None:
    cfg = tmp_path / "proxies.json"
    cfg.write_text(content)
    assert main(["proxy", "--port", "0", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"drill proxy: config file {cfg}{'' if message.startswith(':') else ' '}{message}"
    assert "Go value" not in err


# -- a missing anvil ---------------------------------------------------------------------------------


def test_missing_anvil_hint_works_for_a_pip_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANVIL_BIN", str(tmp_path / "no-anvil"))
    with pytest.raises(ToolMissingError) as info:
        find_anvil()
    text = str(info.value)
    assert "foundryup" in text and "npm install @foundry-rs/anvil" in text and "ANVIL_BIN" in text
    assert "--chain pyevm" in text
    # `npm ci` is offered only for a checkout of agent-drills, not as the one way
    assert "in a checkout of agent-drills, `npm ci`" in text
