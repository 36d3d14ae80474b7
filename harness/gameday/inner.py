"""Loaded into each game-day item's pytest (``-p harness.gameday.inner``): the game day's side of a drill.

- While a drill's world is up, ``$GAMEDAY_OUT/agent.json`` says where the agent's control API is and
  ``$GAMEDAY_OUT/agent.token`` (mode 0600) holds the operator's token, so the people of the game day
  can look at the agent's ``/health`` and report with ``drill incident "..." --gameday OUT`` without
  being told either. Both are removed when the drill ends.
- ``reported_by_a_person()``: a predicate that holds once someone reported an incident to the game
  day's journal since the injection, for drills of faults the agent cannot notice itself (a silent
  fault such as ``Freeze``: the agent's process stopped, its ``/health`` silent).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import clock
from harness.drill.predicates import Predicate, Probe, Seen

__all__ = ["GAMEDAY_OUT", "reported_by_a_person"]

#: the environment variable the runner sets for each item: the game day's --out directory
GAMEDAY_OUT = "GAMEDAY_OUT"


def _out() -> Path | None:
    value = os.environ.get(GAMEDAY_OUT)
    return Path(value) if value else None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    from harness.drill.pytest_plugin import DRILL

    out, drill = _out(), item.stash.get(DRILL, None)
    written: list[Path] = []
    if out is not None and drill is not None and out.is_dir():
        token = out / "agent.token"
        fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(drill.ctx.operator_token)
        info = out / "agent.json"
        info.write_text(json.dumps({"control": drill.ctx.control_url, "drill": item.nodeid, "pid": os.getpid()}) + "\n")
        written += [info, token]
    try:
        yield
    finally:
        for path in written:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


class reported_by_a_person(Predicate):
    """Someone reported an incident to the game day's journal (``drill incident --gameday``) since the injection."""

    name = "a person reported the incident"
    failure = "nobody reported an incident with `drill incident ... --gameday OUT`"

    def __call__(self, probe: Probe) -> Seen:
        out = _out()
        if out is None:
            return Seen(False, f"not run by `drill gameday` (no ${GAMEDAY_OUT}): no person to report")
        from harness.gameday.journal import read_journal

        since_wall = clock.wall() - (clock.now() - probe.since)
        journal = out / "journal.jsonl"
        reports = [e for e in (read_journal(journal) if journal.is_file() else [])
                   if e.get("event") == "incident.reported" and float(e.get("ts", 0)) >= since_wall]
        if not reports:
            return Seen(False, "no report in the journal since the injection")
        first = reports[0]
        at = probe.since + float(first["ts"]) - since_wall
        return Seen(True, f"{first.get('severity')} {first.get('summary')!r} {float(first['ts']) - since_wall:.1f} s after "
                    "the injection", since=at)
