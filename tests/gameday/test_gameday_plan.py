"""The game-day plan: every mistake is refused with a message that says what and how to fix it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import ConfigError, RemoteAddressError, UsageError
from harness.gameday.cron import crontab_fields, crontab_line
from harness.gameday.plan import load_plan

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "gamedays" / "sample.toml"

GOOD = """
name = "t"
owner = "alice"
drills = ["test_primary_rpc_down_fails_over_to_backup"]
[agent]
command = "{python} -m reference_agent"
"""


def _plan(tmp_path: Path, text: str, **kw: bool):
    path = tmp_path / "gameday.toml"
    path.write_text(text, encoding="utf-8")
    return load_plan(path, **kw)


def test_the_sample_plan_loads_with_its_destructive_items_marked() -> None:
    plan = load_plan(SAMPLE)
    items = plan.items()
    assert plan.owner == "alice" and plan.coordinator == "bob" and plan.observers == ("carol", "dave")
    assert [i.kind for i in items].count("schedule") == 1
    destructive = {i.label: i.destructive for i in items if i.destructive}
    assert destructive == {"test_process_killed_reports_process_crash": "kill",
                           "test_leaked_key_swept_to_cold_wallet_and_allowance_revoked": "key leak"}
    assert plan.pacing.gap_s == 10 and plan.pacing.duration_s == 360
    assert plan.stop.value_at_risk_eth == 1.0 and plan.stop.lever_file == ROOT / "gamedays" / "STOP"
    assert plan.agent_args()[:4] == ["--chain", "pyevm", "--agent-cmd", "{python} -m reference_agent"]


@pytest.mark.parametrize(("text", "error", "message"), [
    (GOOD.replace("[agent]", "ownr = 'x'\n[agent]"), ConfigError, r"unknown key 'ownr'; did you mean 'owner'\?"),
    (GOOD.replace("[agent]", "[pacing]\ngapp = '1s'\n[agent]"), ConfigError, r"unknown key 'pacing\.gapp'; did you mean 'pacing\.gap'"),
    (GOOD.replace('owner = "alice"', "owner = 3"), ConfigError, r"owner must be a non-empty string, got 3"),
    (GOOD.replace('owner = "alice"\n', ""), ConfigError, r"owner is missing"),
    (GOOD.split("[agent]")[0], ConfigError, r"the plan has no \[agent\] table: give the agent as command"),
    (GOOD.replace('command = "{python} -m reference_agent"', 'command = "x"\nimage = "y"'), ConfigError,
     r"exactly one of command, image or remote, got command, image"),
    (GOOD.replace('command = "{python} -m reference_agent"', 'remote = {control = "http://10.0.0.5:8080"}'),
     RemoteAddressError, r"agent\.remote\.control 'http://10\.0\.0\.5:8080' points at '10\.0\.0\.5'.*--allow-remote"),
    (GOOD.replace("test_primary_rpc_down_fails_over_to_backup", "test_primary_rpc_down_fails_over"), ConfigError,
     r"'test_primary_rpc_down_fails_over' is not a built-in drill; did you mean 'test_primary_rpc_down_fails_over_to_backup'"),
    (GOOD.replace('drills = ["test_primary_rpc_down_fails_over_to_backup"]', "drills = []"), ConfigError,
     r"the plan runs nothing"),
    (GOOD.replace("[agent]", "schedules = ['nowhere.json']\n[agent]"), ConfigError, r"schedules: the file .*nowhere\.json does not exist"),
    (GOOD.replace("[agent]", "profile = 'prod'\n[agent]"), ConfigError, r"profile must be \"drill\".*got 'prod'"),
    (GOOD.replace("[agent]", "every = 'sometimes'\n[agent]"), ConfigError, r"every 'sometimes' is not understood; every must be a cron expression"),
    (GOOD.replace("[agent]", "every = 'daily at 25:00'\n[agent]"), ConfigError, r"'25:00' is not a time of day"),
    (GOOD + "[search]\nfaults = ['rpc_outage']\n", ConfigError, r"search\.budget is missing"),
    (GOOD + "[search]\nbudget = 'soon'\n", ConfigError, r"search\.budget must be a duration such as 30s"),
    (GOOD + "[stop]\nvalue_at_risk_eth = -1\n", ConfigError, r"stop\.value_at_risk_eth must be a number > 0, got -1"),
    (GOOD + "[stop]\nhealth_url = 'http://example.com/health'\n", RemoteAddressError, r"stop\.health_url .*not a loopback"),
    (GOOD.replace("[agent]", "observers = 'carol'\n[agent]"), ConfigError, r"observers must be a list of non-empty strings, got 'carol'"),
    (GOOD.replace("name = \"t\"", "name = \"t\" x"), ConfigError, r"is not valid TOML"),
])
def test_a_wrong_plan_is_refused_saying_what_is_wrong(tmp_path: Path, text: str, error: type, message: str) -> None:
    with pytest.raises(error, match=message) as info:
        _plan(tmp_path, text)
    assert str(tmp_path / "gameday.toml") in str(info.value)  # which file


def test_remote_endpoints_pass_with_allow_remote(tmp_path: Path) -> None:
    plan = _plan(tmp_path, GOOD.replace('command = "{python} -m reference_agent"',
                                        'remote = {control = "http://10.0.0.5:8080"}'), allow_remote=True)
    assert plan.agent.remote == {"control": "http://10.0.0.5:8080"}


def test_a_production_plan_scales_the_budgets_and_asks_the_agent_for_its_real_intervals(tmp_path: Path) -> None:
    plan = _plan(tmp_path, GOOD.replace("[agent]", "profile = 'production'\n[agent]"))
    assert plan.budget_scale == 60 and plan.time_scale == 20
    args = plan.agent_args()
    assert "AGENT_PROFILE=production" in args and args[args.index("--drill-budget-scale") + 1] == "60"
    assert args[args.index("--drill-time-scale") + 1] == "20"


@pytest.mark.parametrize(("every", "fields"), [
    ("hourly", "0 * * * *"), ("daily at 02:30", "30 2 * * *"), ("weekdays at 2:00", "0 2 * * 1-5"),
    ("Monday at 10:05", "5 10 * * 1"), ("*/15 1-3 * * 0,6", "*/15 1-3 * * 0,6"),
])
def test_every_becomes_cron_fields(every: str, fields: str) -> None:
    assert crontab_fields(every) == fields


def test_a_cron_field_out_of_range_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"hour 24 is out of range 0-23"):
        crontab_fields("0 24 * * *")


def test_check_schedule_prints_the_crontab_line(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "harness.cli", "gameday", str(SAMPLE), "--check-schedule"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == crontab_line("weekdays at 02:00", SAMPLE, workdir=tmp_path)
    assert out.stdout.startswith(f"0 2 * * 1-5 cd {tmp_path} && drill gameday {SAMPLE} --yes --out ")
    assert "\\%Y\\%m\\%d" in out.stdout  # cron needs % escaped


def test_no_terminal_and_no_yes_is_refused_before_anything_runs(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "harness.cli", "gameday", str(SAMPLE), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, cwd=tmp_path, stdin=subprocess.DEVNULL, timeout=60)
    assert out.returncode == 2
    assert ("drill gameday: there is no terminal to ask the owner before each destructive fault: run on a terminal, "
            "or pass --yes") in out.stderr
    assert not (tmp_path / "o").exists()


def test_a_lever_file_left_from_before_is_refused(tmp_path: Path) -> None:
    plan = _plan(tmp_path, GOOD + "[stop]\nlever_file = 'STOP'\n")
    (tmp_path / "STOP").write_text("")
    from harness.gameday.runner import run_gameday

    with pytest.raises(UsageError, match=r"the lever file .*STOP already exists, so the game day would stop at once"):
        run_gameday(plan, tmp_path / "out", yes=True)


@pytest.mark.parametrize("scale", ["0", "nan"])
def test_a_bad_time_scale_is_refused_at_start(tmp_path: Path, scale: str) -> None:
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                          "--drill-time-scale", scale], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 4
    assert f"--drill-time-scale must be a number > 0, got {float(scale)!r}" in out.stderr
