"""Loaded into each game-day item's pytest (``-p harness.gameday.inner``): the game day's side of a drill.

- While a drill's world is up, ``$GAMEDAY_OUT/agent.json`` says where the agent's control API is and
  ``$GAMEDAY_OUT/agent.token`` (mode 0600) holds the operator's token, so the people of the game day
  can look at the agent's ``/health`` and report with ``drill incident "..." --gameday OUT`` without
  being told either. Both are removed when the drill ends.
- While the drill's call runs, ``harness.gameday.live.LiveFeed`` writes status updates
  (``$GAMEDAY_OUT/status/``) and partner notices (``$GAMEDAY_OUT/notices/``) as the incident unfolds,
  and journals each; it is stopped and joined when the call ends, and once the drill's record is
  built (its teardown) the files become the report's rendering of it.
- SIGINT, which the game day's runner sends when its lever is pulled, interrupts the drill with a
  ``KeyboardInterrupt`` naming the lever's reason (read from the journal), so the drill's record says
  who stopped it; the engine's cleanup then runs as on Ctrl-C.
- The plan's owner (from the journal's ``gameday.start``) is handed to the report plugin
  (``RUN_OWNER``): the run's ``owner``, named as the author of the item's post-mortem drafts.
- ``reported_by_a_person()``: a predicate that holds once someone reported an incident to the game
  day's journal since the injection, for drills of faults the agent cannot notice itself (a silent
  fault such as ``Freeze``: the agent's process stopped, its ``/health`` silent).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import clock
from harness.drill.predicates import Predicate, Probe, Seen

__all__ = ["GAMEDAY_OUT", "reported_by_a_person"]

#: the environment variable the runner sets for each item: the game day's --out directory
GAMEDAY_OUT = "GAMEDAY_OUT"


def _out() -> Path | None:
    value = os.environ.get(GAMEDAY_OUT)
    return Path(value) if value else None


def _stop_words() -> str:
    """Why the game day interrupted this run: the reason of the lever its runner journaled before the SIGINT."""
    from harness.gameday.journal import read_journal

    out = _out()
    journal = out / "journal.jsonl" if out is not None else None
    try:
        levers = [e for e in read_journal(journal) if e.get("event") == "lever"] if journal is not None else []
    except OSError:
        levers = []
    return f"stopped by the game day's lever ({levers[-1].get('reason')})" if levers else "SIGINT"


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(_stop_words())


_OLD_SIGINT = pytest.StashKey[object]()
_FEED = pytest.StashKey[Any]()


def _owner() -> str | None:
    """The game day plan's owner, from the journal's ``gameday.start`` (None: no journal, or it names none)."""
    from harness.gameday.journal import read_journal

    out = _out()
    try:
        events = read_journal(out / "journal.jsonl") if out is not None else []
    except OSError:
        return None
    start = next((e for e in events if e.get("event") == "gameday.start"), None)
    plan = start.get("plan") if start is not None else None
    owner = plan.get("owner") if isinstance(plan, dict) else None
    return str(owner) if owner else None


def pytest_configure(config: pytest.Config) -> None:
    if _out() is not None and threading.current_thread() is threading.main_thread():
        config.stash[_OLD_SIGINT] = signal.signal(signal.SIGINT, _interrupted)
    owner = _owner()
    if owner:  # the report names the owner as the author of the item's post-mortem drafts
        from harness.report.pytest_plugin import RUN_OWNER

        config.stash[RUN_OWNER] = owner


@pytest.hookimpl(tryfirst=True)
def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    """Keep only the frame the interrupt landed in.

    pytest's terminal reporter renders the whole traceback, with every frame's arguments, before the
    fixtures are torn down, though it prints only the last line; on a busy machine that took a second
    of the lever's 1.5 s grace, with the fault still on. The log keeps the line that matters.
    """
    if _out() is not None and len(excinfo.traceback) > 1:
        excinfo.traceback = excinfo.traceback[-1:]


def pytest_unconfigure(config: pytest.Config) -> None:
    old = config.stash.get(_OLD_SIGINT, None)
    if old is not None:
        signal.signal(signal.SIGINT, old)  # type: ignore[arg-type]


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
    feed = None
    if out is not None and out.is_dir():
        from harness.gameday.live import LiveFeed

        run_id = item.config.getoption("drill_run_id", None) or "run"
        # the drill of the item (the drill fixture's; each world of a drill_factory in turn)
        feed = LiveFeed(out, run_id, lambda: item.stash.get(DRILL, None)).start()
    interrupted = True  # until the call comes back: a KeyboardInterrupt (the lever) skips the hook's rest
    try:
        outcome = yield
        interrupted = outcome.excinfo is not None and issubclass(outcome.excinfo[0], KeyboardInterrupt)
    finally:
        if feed is not None:
            feed.stop(last_look=not interrupted)
            item.stash[_FEED] = feed
        for path in written:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    """After the drill's teardown, which builds its record: the live files become the report's rendering of it."""
    yield
    from harness.drill.pytest_plugin import DRILL_RECORD

    feed, record = item.stash.get(_FEED, None), item.stash.get(DRILL_RECORD, None)
    if feed is not None and record is not None:
        feed.publish_record(record)


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
