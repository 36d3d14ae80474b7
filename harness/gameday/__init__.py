"""Game days: a planned window of drills with people in the loop, a safety lever and incident metrics.

    plan.py      the ``gameday.toml`` model, its loader and its checks (``load_plan``)
    journal.py   the game day's journal: one JSON line per event, appended by the runner and by ``drill incident``
    runner.py    ``run_gameday``: runs each planned item as its own ``pytest -m drill`` run, with the approval
                 gate, the lever, pause/resume and the live progress
    outputs.py   what the journal and the inner runs' records become: JUnit XML, metrics (JSON, Markdown),
                 the history of game days
    cron.py      the plan's ``every`` as a crontab line
    inner.py     a pytest plugin loaded into each item's run: names the agent for ``drill incident``, runs the
                 live feed, names the lever in an interrupted drill's record, and the ``reported_by_a_person()``
                 predicate of silent faults
    live.py      the live feed: status updates and partner notices written while an item's drill runs

docs/gameday.md describes the plan and the command.
"""

from harness.gameday.plan import Plan, load_plan

__all__ = ["Plan", "load_plan"]
