"""Several faults at once: schedules searched by Hypothesis, shrunk when one fails, and replayed.

Real incidents come in combinations: the primary RPC dies while transactions are stuck in a gas
spike, the agent is killed in the middle of a fee-bump episode. ``test_schedule_search`` draws fault
schedules of two or three overlapping faults (``harness.schedule.schedules()`` over the built-in
``FAULTS``), runs each in a world of its own, and checks what must hold whatever happened: each
fault detected within its budget, recovery on chain after the last heal, every invariant. A failure
is shrunk to the smallest schedule that still fails, saved under the run's report directory, and
printed with the command that replays it (`drill replay FILE`). `--drill-search explore` searches
for as long as `--drill-search-budget` allows; `--hypothesis-seed N` fixes the seed.

``test_schedule_replay`` replays the schedules committed under ``schedules/`` (each a failure once
found, or a combination worth keeping), or the files given with ``--drill-schedule``, as ordinary
drills: each is a regression drill.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.schedule import Schedule, run_schedule
from harness.schedule.pytest_plugin import schedule_files

COMMITTED = Path(__file__).with_name("schedules")

# Up to three faults over ~16 s, then recovery counted from the last heal: more time than one fault.
schedule_drill = pytest.mark.drill(playbook="combined-faults", family="schedule",
                                   budget={"detect": 5, "recover": 30, "time_limit": 150})


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "schedule_file" in metafunc.fixturenames:
        files = schedule_files(metafunc.config, COMMITTED)
        metafunc.parametrize("schedule_file", files, ids=[f.stem for f in files])


@schedule_drill
def test_schedule_search_finds_no_failing_combination(drill_factory, schedule_search):
    def check(schedule: Schedule) -> None:
        with drill_factory() as drill:
            run_schedule(drill, schedule)

    schedule_search.run(check)


@schedule_drill
def test_schedule_replay(drill, schedule_file):
    run_schedule(drill, Schedule.load(schedule_file))
