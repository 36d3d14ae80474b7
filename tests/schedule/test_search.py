"""The schedule search end to end: a defect found, shrunk, saved and replayed; a flaky failure told apart.

The search runs as the catalogue's ``test_schedule_search_finds_no_failing_combination`` in an inner
pytest against the reference agent; the flaky case drives ``ScheduleSearch`` with a scripted check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from harness.errors import DetectionMissed, InvariantBroken
from harness.schedule import Schedule, Step, schedules
from harness.schedule.pytest_plugin import FlakySchedule, ScheduleSearch, SearchFinding

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, timeout: float = 600, examples: Path | None = None) -> subprocess.CompletedProcess[str]:
    # examples: Hypothesis's example database of this search alone (else the checkout's .hypothesis/, whose
    # failures from earlier searches would be tried first)
    env = {**os.environ, "COLUMNS": "250"}
    if examples is not None:
        env["HYPOTHESIS_STORAGE_DIRECTORY"] = str(examples)
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


#: the reference agent's combination-only defects (docs/agent.md, section 5) and the two faults that show them
COMBINATIONS = {
    "failover_forgets_pending": ("gas_spike", "rpc_outage"),
    "kill_loses_replacement": ("gas_spike", "process_kill"),
}
#: how each shows (timing decides which check breaks first: the forgotten transaction is proven again
#: through the backup, or it is never reported stuck because the agent no longer tracks it)
SHOWS_AS = {
    "failover_forgets_pending": ("InvariantBroken: no escrow proven or proof attempted twice",
                                 "DetectionMissed: step 1 gas_spike("),
    "kill_loses_replacement": ("InvariantBroken: no escrow proven or proof attempted twice",),
}


@pytest.mark.slow
def test_a_defect_is_found_shrunk_saved_and_replayed(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    search = _run("-m", "pytest", "-m", "drill", "scenarios/test_schedules.py::test_schedule_search_finds_no_failing_combination",
                  "-p", "no:cacheprovider", "--drill-report-dir", str(reports), "--basetemp", str(tmp_path / "inner"),
                  "--agent-env", "AGENT_DEFECTS=no_crash_report", "--drill-search-faults", "process_kill",
                  "--drill-shrink-budget", "45", "--hypothesis-seed", "1", examples=tmp_path / "hypothesis")
    out = search.stdout + search.stderr
    assert search.returncode == 1, out[-4000:]
    assert "search: the agent failed a fault schedule." in out, out[-4000:]
    assert "failure:       DetectionMissed: step 1 process_kill" in out, out[-4000:]
    (shrunk_file,) = reports.glob("*/schedules/found-*-shrunk.json")
    shrunk = Schedule.load(shrunk_file)
    assert shrunk.faults() == ["process_kill"], shrunk.label()  # one kill is all it takes
    assert f"replay:        drill replay {shrunk_file} --agent-env AGENT_DEFECTS=no_crash_report" in out
    assert "[search 0 s] example 1, 0 failing so far; now: process_kill" in search.stdout  # live progress
    (summary,) = [json.loads(p.read_text()) for p in reports.glob("*/summary.json")]
    (record,) = summary["drills"]
    assert record["status"] == "failed" and record["failure_category"] == "missed_detection", record["failure_message"]
    assert [s["fault"] for s in record["schedule"]] == ["process_kill"] and record["schedule"][0]["detected_s"] is None

    replay = ["-m", "harness.cli", "replay", str(shrunk_file), "--", "-p", "no:cacheprovider",
              "--drill-report-dir", str(tmp_path / "replays"), "--basetemp", str(tmp_path / "replay")]
    defect = _run(*replay[:4], "--agent-env", "AGENT_DEFECTS=no_crash_report", *replay[4:])
    assert defect.returncode == 1, defect.stdout[-3000:] + defect.stderr[-2000:]
    assert "no process_crash incident within 5.0 s of its injection" in defect.stdout, defect.stdout[-3000:]
    sound = _run(*replay)
    assert sound.returncode == 0, sound.stdout[-3000:] + sound.stderr[-2000:]
    assert "1 passed" in sound.stdout


@pytest.mark.slow
@pytest.mark.parametrize("defect", sorted(COMBINATIONS))
def test_a_combination_only_defect_is_found_and_shrunk_to_its_two_faults(tmp_path: Path, defect: str) -> None:
    # the ci profile with a seed of its own, over the two faults of the playbooks the defect is in (every
    # single-fault drill passes it): found within the profile's examples, shrunk to both faults and no more
    faults = COMBINATIONS[defect]
    reports = tmp_path / "reports"
    search = _run("-m", "pytest", "-m", "drill", "scenarios/test_schedules.py::test_schedule_search_finds_no_failing_combination",
                  "-p", "no:cacheprovider", "--drill-report-dir", str(reports), "--basetemp", str(tmp_path / "inner"),
                  "--agent-env", f"AGENT_DEFECTS={defect}", "--drill-search-faults", ",".join(faults),
                  "--hypothesis-seed", "3", examples=tmp_path / "hypothesis", timeout=900)
    out = search.stdout + search.stderr
    assert search.returncode == 1, out[-4000:]
    assert "search: the agent failed a fault schedule." in out, out[-4000:]
    assert any(f"failure:       {shows}" in out for shows in SHOWS_AS[defect]), out[-4000:]
    (shrunk_file,) = reports.glob("*/schedules/found-*-shrunk.json")
    shrunk = Schedule.load(shrunk_file)
    assert sorted(shrunk.faults()) == sorted(faults), shrunk.label()
    assert f"replay:        drill replay {shrunk_file} --agent-env AGENT_DEFECTS={defect}" in out


def test_a_schedule_that_fails_one_check_then_another_is_a_finding_not_a_flaky_one(tmp_path: Path) -> None:
    # timing decides which check a defect breaks first (failover_forgets_pending: a missed detection
    # one time, a double proof the next): the agent failed the schedule both times
    calls: list[Schedule] = []

    def check(schedule: Schedule) -> None:
        calls.append(schedule)
        raise (DetectionMissed if len(calls) % 2 else InvariantBroken)(f"failure {len(calls)}")

    search = ScheduleSearch(profile="ci", budget_s=60, out_dir=tmp_path / "schedules", replay_hint=str)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FlakySchedule)
        with pytest.raises(pytest.fail.Exception, match="search: the agent failed a fault schedule"):
            search.run(check, schedules(faults=["rpc_outage"], max_steps=1))
    assert len(calls) >= 2 and list((tmp_path / "schedules").glob("found-*-shrunk.json"))


def test_a_failure_that_does_not_come_back_is_reported_as_flaky(tmp_path: Path) -> None:
    calls: list[Schedule] = []

    def check(schedule: Schedule) -> None:  # fails the first time only: a timing accident, not a defect
        calls.append(schedule)
        if len(calls) == 1:
            raise InvariantBroken("a timing accident")

    search = ScheduleSearch(profile="ci", budget_s=60, out_dir=tmp_path / "schedules", replay_hint=str)
    with pytest.warns(FlakySchedule, match="failed once and passed when replayed, so it is reported as flaky"):
        search.run(check, schedules(faults=["rpc_outage"], max_steps=1))
    (saved,) = (tmp_path / "schedules").glob("flaky-*-shrunk.json")
    assert Schedule.load(saved) == calls[0]


def test_an_explore_search_goes_on_past_a_flaky_schedule_until_its_budget_is_spent(tmp_path: Path) -> None:
    calls: list[Schedule] = []

    def check(schedule: Schedule) -> None:  # fails the first time only: a timing accident, not a defect
        calls.append(schedule)
        if len(calls) == 1:
            raise InvariantBroken("a timing accident")

    search = ScheduleSearch(profile="explore", budget_s=3, out_dir=tmp_path / "schedules", replay_hint=str)
    with pytest.warns(FlakySchedule):
        search.run(check, schedules(faults=["rpc_outage", "process_kill"]))
    assert search.flaky == [calls[0]]
    replayed = max(i for i, c in enumerate(calls) if i and c == calls[0])  # Hypothesis's replay of the flaky one
    assert len(calls) > replayed + 1, "after the flaky schedule and its replay the search drew new examples"
    assert search.examples == len(calls) and len(list((tmp_path / "schedules").glob("flaky-*.json"))) == 1


def test_a_shrunk_schedule_that_does_not_fail_again_gives_way_to_a_larger_one_that_does(tmp_path: Path) -> None:
    # what the search does when Hypothesis's replay of its shrunk schedule passed (SearchFinding as it then is)
    three = Schedule(steps=(Step(fault="gas_spike", at=0, hold=8), Step(fault="process_kill", at=4, hold=2),
                            Step(fault="rpc_outage", at=6, hold=2)))
    two_a = Schedule(steps=three.steps[:2])
    two_b = Schedule(steps=(three.steps[0], Step(fault="process_kill", at=3, hold=2)))
    ran: list[Schedule] = []

    def check(schedule: Schedule) -> None:  # the three-step schedule fails every time; the two-step ones passed
        ran.append(schedule)
        if len(schedule.steps) == 3:
            raise InvariantBroken("nonce reused")

    search = ScheduleSearch(profile="ci", budget_s=20, out_dir=tmp_path / "schedules", replay_hint=str)
    found = SearchFinding(original=three, shrunk=two_b, failing=[three, two_a, two_b])
    assert search._confirm(check, found, "search")
    assert ran == [two_a, three], "replayed smallest first, up to the first that fails again"
    assert found.shrunk == three and found.unconfirmed == [two_b, two_a]
    assert "InvariantBroken: nonce reused" in found.error

    search = ScheduleSearch(profile="ci", budget_s=20, out_dir=tmp_path / "schedules", replay_hint=str, confirm_tries=1)
    found = SearchFinding(original=three, shrunk=two_b, failing=[three, two_a, two_b])
    assert not search._confirm(check, found, "search"), "only confirm_tries schedules are replayed"
    assert found.shrunk == two_b and found.unconfirmed == []


def test_a_failure_that_comes_back_fails_with_both_schedules_and_the_replay(tmp_path: Path) -> None:
    def check(schedule: Schedule) -> None:  # fails whenever a kill overlaps an outage
        kinds = set(schedule.faults())
        if {"process_kill", "rpc_outage"} <= kinds:
            raise InvariantBroken("nonce reused")

    search = ScheduleSearch(profile="explore", budget_s=30, out_dir=tmp_path / "schedules",
                            replay_hint=lambda p: f"drill replay {p}")
    with pytest.raises(pytest.fail.Exception) as failed:
        search.run(check, schedules(faults=["rpc_outage", "process_kill"]))
    text = str(failed.value)
    assert "failure:       InvariantBroken: nonce reused" in text
    (shrunk_file,) = (tmp_path / "schedules").glob("found-*-shrunk.json")
    shrunk = Schedule.load(shrunk_file)
    assert sorted(shrunk.faults()) == ["process_kill", "rpc_outage"], shrunk.label()  # nothing more than the two
    assert f"replay:        drill replay {shrunk_file}" in text


def test_a_step_that_does_not_matter_is_left_out_when_shrinking_had_no_time_to(tmp_path: Path) -> None:
    ran: list[Schedule] = []

    def check(schedule: Schedule) -> None:  # fails whenever a kill and an outage are both in it
        ran.append(schedule)
        if {"process_kill", "rpc_outage"} <= set(schedule.faults()):
            raise InvariantBroken("nonce reused")

    search = ScheduleSearch(profile="ci", budget_s=60, out_dir=tmp_path / "schedules", replay_hint=str, shrink_s=0)
    with pytest.raises(pytest.fail.Exception) as failed:
        search.run(check, schedules(faults=["rpc_outage", "process_kill"], min_steps=3, max_steps=3))
    (shrunk_file,) = (tmp_path / "schedules").glob("found-*-shrunk.json")
    shrunk = Schedule.load(shrunk_file)
    assert sorted(shrunk.faults()) == ["process_kill", "rpc_outage"], str(failed.value)  # the third step left out
    assert shrunk in ran, "the schedule reported was run and failed"


def test_a_harness_error_is_an_error_of_the_run_not_a_finding(tmp_path: Path) -> None:
    calls: list[Schedule] = []

    def check(schedule: Schedule) -> None:  # the harness itself breaks: nothing was learnt about the agent
        calls.append(schedule)
        raise TypeError("a bug of the harness")

    search = ScheduleSearch(profile="ci", budget_s=60, out_dir=tmp_path / "schedules", replay_hint=str, shrink_s=600)
    with pytest.raises(TypeError, match="a bug of the harness"):
        search.run(check, schedules(faults=["rpc_outage"], max_steps=1))
    assert len(calls) == 1, "a harness error ends the search at once: no drill more, no shrinking of it"
    assert not (tmp_path / "schedules").exists() or not list((tmp_path / "schedules").iterdir())
