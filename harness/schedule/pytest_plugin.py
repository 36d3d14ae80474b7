"""pytest wiring of the schedule search and replay: options, Hypothesis profiles, the ``schedule_search`` fixture.

Options: ``--drill-search ci|explore`` (how many examples: ``ci`` eight, the same ones every run
unless ``--hypothesis-seed`` is given, so that CI is reproducible;
``explore`` as many as ``--drill-search-budget SECONDS`` allows, for game days and nightly runs),
``--drill-schedule FILE`` (repeatable: the schedule files ``test_schedule_replay`` replays instead of
the committed ones). The seed is Hypothesis's own ``--hypothesis-seed``; the example database is
``.hypothesis/`` under the rootdir, so a search continues where the last one stopped.

``--drill-search-faults a,b`` limits the faults drawn; ``--drill-shrink-budget SECONDS`` how long
shrinking may go on after the first failure (each candidate is a drill of seconds; then the smallest
failing schedule so far is reported).

``schedule_search.run(check)`` runs the search: ``check(schedule)`` carries out one example (a
drill of its own, from ``drill_factory``) and raises when the agent fails it. A failure is shrunk by
Hypothesis; the first failing schedule and the shrunk one are saved under the run's report
directory (``schedules/``), and the test fails with both and the command that replays the shrunk
one. A failure that does not come back when Hypothesis replays the shrunk schedule is reported as
flaky (saved as ``flaky-*.json``, a warning), not as a finding.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness import clock
from harness.errors import DrillFailure, UsageError

__all__ = ["SEARCH_PROFILES", "SHRINK_BUDGETS", "FlakySchedule", "ScheduleSearch", "SearchFinding", "schedule_files"]

#: examples per search: ``ci`` is sized for every CI run, ``explore`` is bounded by the time budget
SEARCH_PROFILES = {"ci": 8, "explore": 100_000}
#: seconds of shrinking after the first failure, by profile (--drill-shrink-budget overrides)
SHRINK_BUDGETS = {"ci": 120.0, "explore": 600.0}


class _AgentFailed(Exception):
    """What the search's property raises when the agent fails a schedule (any ``DrillFailure``)."""


class FlakySchedule(UserWarning):
    """A schedule failed once and passed when Hypothesis replayed it."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("agent-drills")
    group.addoption("--drill-search", dest="drill_search", choices=sorted(SEARCH_PROFILES), default="ci",
                    help="schedule search profile: ci (a handful of examples, default) or explore (as many as "
                         "--drill-search-budget allows)")
    group.addoption("--drill-search-budget", dest="drill_search_budget", type=float, default=1200.0, metavar="SECONDS",
                    help="time budget of an explore search (default 1200)")
    group.addoption("--drill-shrink-budget", dest="drill_shrink_budget", type=float, default=None, metavar="SECONDS",
                    help="stop shrinking a failure this long after it was found (default: 120 for ci, 600 for explore)")
    group.addoption("--drill-search-faults", dest="drill_search_faults", default=None, metavar="NAME,NAME",
                    help="search only schedules of these faults (names of harness.schedule.FAULTS; default: all)")
    group.addoption("--drill-schedule", dest="drill_schedule", action="append", default=[], metavar="FILE",
                    help="replay this schedule file (repeatable); test_schedule_replay replays these instead of the "
                         "committed ones")


@dataclass(eq=False)
class SearchFinding:
    """What a search found: the first failing schedule, the shrunk one, and where they were saved."""

    original: Any = None
    shrunk: Any = None
    error: str = ""
    exc: BaseException | None = None
    files: list[Path] = field(default_factory=list)
    failing: list[Any] = field(default_factory=list)  # every schedule that failed, in the order run
    unconfirmed: list[Any] = field(default_factory=list)  # failed once, passed when replayed


@dataclass(eq=False)
class ScheduleSearch:
    """One search in one test item (see the module docstring)."""

    profile: str
    budget_s: float
    out_dir: Path
    replay_hint: Callable[[Path], str]
    progress: Callable[[str], None] = lambda line: None
    faults: tuple[str, ...] | None = None  # the registry's names the strategy draws from (None: all)
    shrink_s: float = 120.0  # shrinking stops this long after the first failure
    #: the same examples every run (the ci profile without --hypothesis-seed): a CI run is reproducible
    derandomize: bool = False
    #: failing schedules replayed, smallest first, when the shrunk one passed its replay (see _confirm)
    confirm_tries: int = 3
    examples: int = 0
    failures: int = 0
    flaky: list[Any] = field(default_factory=list)  # schedules set aside as flaky (an explore search goes on)
    started: float = field(default_factory=clock.now)

    def run(self, check: Callable[[Any], None], strategy: Any = None, *, label: str = "search") -> None:
        from harness.schedule import schedules

        if strategy is None:
            # combinations only when there is more than one fault to combine: single faults are the catalogue's drills
            several = self.faults is None or len(set(self.faults)) > 1
            strategy = schedules(faults=self.faults, min_steps=2 if several else 1)
        over = self.started + self.budget_s if self.profile == "explore" else None
        rounds = 0
        while True:
            found, failed, flaky = self._round(check, strategy, label, rounds, over)
            if flaky is not None and self._confirm(check, found, label):
                flaky, failed = None, flaky
            if failed is not None:
                self._leave_out_steps(check, found, label)
                found.files = self._save(found, flaky=False)
                pytest.fail(
                    f"{label}: the agent failed a fault schedule.\n"
                    f"  first failing: {found.original.label()}\n"
                    f"  shrunk to:     {found.shrunk.label()}\n"
                    f"  failure:       {found.error}\n"
                    f"  saved:         {', '.join(map(str, found.files))}\n"
                    f"  replay:        {self.replay_hint(found.files[-1])}\n"
                    + "".join(f"  flaky:         {s.label()} (failed once, passed when replayed)\n" for s in found.unconfirmed)
                    + f"  ({self.examples} example(s) run, {self.failures} of them failing)",
                    pytrace=False,
                )
            if flaky is None:
                return
            found.files = self._save(found, flaky=True)
            self.flaky.append(found.shrunk)
            warnings.warn(FlakySchedule(
                f"{label}: a schedule failed once and passed when replayed, so it is reported as flaky, not as a "
                f"finding: {found.shrunk.label() if found.shrunk else '?'} ({found.error}); saved to "
                f"{', '.join(map(str, found.files))}"), stacklevel=2)
            if over is None or clock.now() >= over:
                return
            # Hypothesis ends a search at its first flaky failure; an explore budget is for searching on
            rounds += 1
            self.progress(f"[{label}] flaky schedule set aside; searching on (round {rounds + 1})")

    def _round(self, check: Callable[[Any], None], strategy: Any, label: str, rounds: int,
               over: float | None) -> tuple[SearchFinding, BaseException | None, BaseException | None]:
        """One Hypothesis search: what it found, and its failure or its flaky failure (else None)."""
        from hypothesis import HealthCheck, Phase, given, reject, seed, settings
        from hypothesis.errors import Flaky

        found = SearchFinding()
        shrink_until: list[float] = []  # set at the first failure
        broken: list[BaseException] = []  # an error of the harness (not a DrillFailure): it ends the search
        phases = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink]
        if rounds:  # a later round of an explore search: other examples, and not the flaky one again first
            phases.remove(Phase.reuse)

        @settings(max_examples=SEARCH_PROFILES[self.profile], deadline=None, print_blob=False,
                  derandomize=self.derandomize and not rounds,
                  report_multiple_bugs=False, suppress_health_check=list(HealthCheck), phases=phases)
        @given(schedule=strategy)
        def search(schedule: Any) -> None:
            if broken:
                return  # the harness broke: nothing more to learn about the agent, and no shrinking of that
            if found.shrunk is None and over is not None and clock.now() > over:
                reject()  # the time budget is spent: the remaining examples are skipped at once
            if shrink_until and clock.now() > shrink_until[0] and schedule != found.shrunk:
                # The shrink budget is spent. Each candidate is a drill of seconds, so Hypothesis is told it
                # passes without running it; only the smallest failing schedule so far runs again, for the
                # final replay that Hypothesis makes of it (which also tells a flaky failure from a finding).
                return
            self.examples += 1
            spent = clock.now() - self.started
            left = f" of {self.budget_s:.0f} s" if over is not None else ""
            self.progress(f"[{label} {spent:.0f} s{left}] example {self.examples}, {self.failures} failing so far; "
                          f"now: {schedule.label()}")
            failure: DrillFailure | None = None
            try:
                check(schedule)
            except Exception as exc:
                if not isinstance(exc, DrillFailure):  # the harness broke, or the world could not be built
                    broken.append(exc)
                    self.progress(f"[{label}] error of the harness, not of the agent: {type(exc).__name__}: {exc}")
                    raise
                self.failures += 1
                first = str(exc).strip().splitlines()[0][:240] if str(exc).strip() else ""
                if found.original is None:
                    found.original = schedule
                    shrink_until.append(clock.now() + self.shrink_s)
                    self.progress(f"[{label}] failed: {type(exc).__name__}: {first}; shrinking for at most {self.shrink_s:.0f} s")
                else:
                    self.progress(f"[{label}] failed: {type(exc).__name__}: {first}")
                found.shrunk, found.error, found.exc = schedule, f"{type(exc).__name__}: {exc}", exc
                if schedule not in found.failing:
                    found.failing.append(schedule)
                failure = exc
            if failure is not None:
                # One exception type, raised from one place with no context, whichever check the agent broke:
                # Hypothesis tells failures apart by type, place and context, and a defect that shows as a
                # missed detection one time and a double proof the next (timing decides) is one finding of
                # this schedule, not a flaky one. The drill's own failure is in ``found``.
                raise _AgentFailed(found.error)

        if rounds:
            # @seed wins over --hypothesis-seed, which would draw the same examples again: the round's own seed,
            # derived from the examples run so far, keeps a seeded explore search reproducible
            search = seed(self.examples * 7919 + rounds)(search)
        failed = flaky = None
        try:
            with warnings.catch_warnings():
                # py_ecc raises the recursion limit on first import, inside an example; Hypothesis says so
                warnings.filterwarnings("ignore", message="The recursion limit will not be reset")
                search()
        except Flaky as exc:
            flaky = exc
        except Exception as exc:
            if found.shrunk is None and not broken:
                raise
            failed = exc
        if broken:  # an error of the run, not a finding about the agent
            raise broken[0] from None
        if flaky is not None and found.shrunk is None:
            flaky = None  # no schedule failed: examples rejected once the budget was spent, which Hypothesis calls flaky
        return found, failed, flaky

    def _leave_out_steps(self, check: Callable[[Any], None], found: SearchFinding, label: str) -> None:
        """Run the shrunk schedule with each of its steps left out in turn and keep any that still fails.

        Hypothesis shrinks the values well, but a whole step goes only when its shrinker happens to try
        the fewer-steps choice before the budget is spent, and a ci budget is a handful of drills: a
        finding can end as a spike, the kill that matters and a second spike that does not. Leaving out
        one step is a drill or two per step (three steps at most), and what it keeps failed twice."""
        from harness.schedule import Schedule

        smaller = True
        while smaller and len(found.shrunk.steps) > 1:
            smaller = False
            for i, step in enumerate(found.shrunk.steps):
                candidate = Schedule(steps=found.shrunk.steps[:i] + found.shrunk.steps[i + 1:], note=found.shrunk.note)
                self.progress(f"[{label}] without {step.label()}: {candidate.label()}")
                failures = []
                for _ in range(2):  # kept only when it fails twice, as every finding is
                    try:
                        check(candidate)
                        break
                    except DrillFailure as exc:
                        failures.append(exc)
                if len(failures) == 2:
                    exc = failures[-1]
                    found.shrunk, found.error, found.exc = candidate, f"{type(exc).__name__}: {exc}", exc
                    smaller = True
                    break

    def _confirm(self, check: Callable[[Any], None], found: SearchFinding, label: str) -> bool:
        """After the shrunk schedule passed its replay: replay the schedules that failed before it, the
        smallest (latest) first, at most ``confirm_tries``; the first that fails again is the finding.

        Shrinking walks to the edge of the failing region, where an agent's timing decides (a kill half a
        second earlier finds no replacement to lose): a schedule there may fail once and pass the next
        time. One a step back from the edge that fails twice is a finding; only when none does is the
        search's result a flaky schedule."""
        candidates = [s for s in reversed(found.failing) if s != found.shrunk][:self.confirm_tries]
        found.unconfirmed = [found.shrunk]
        for schedule in candidates:
            self.progress(f"[{label}] {found.unconfirmed[-1].label()} passed when replayed; replaying {schedule.label()}")
            try:
                check(schedule)
            except DrillFailure as exc:
                found.shrunk, found.error, found.exc = schedule, f"{type(exc).__name__}: {exc}", exc
                return True
            found.unconfirmed.append(schedule)
        found.unconfirmed = []
        return False

    def _save(self, found: SearchFinding, *, flaky: bool) -> list[Path]:
        stamp = re.sub(r"[^0-9]", "", f"{clock.wall():.3f}")[-9:]
        prefix = "flaky" if flaky else "found"
        files = []
        if found.original is not None and found.original != found.shrunk:
            files.append(found.original.dump(self.out_dir / f"{prefix}-{stamp}-original.json"))
        if found.shrunk is not None:
            files.append(found.shrunk.dump(self.out_dir / f"{prefix}-{stamp}-shrunk.json"))
        return files


def _out_dir(config: pytest.Config, fallback: Path) -> Path:
    """``schedules/`` of the run's report directory, or ``fallback`` when reports are off."""
    try:
        from harness.report.pytest_plugin import REPORT

        rep = config.stash[REPORT]
        return Path(rep.root) / rep.run_id / "schedules"
    except (ImportError, KeyError, AttributeError):
        return fallback


@pytest.fixture
def schedule_search(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ScheduleSearch]:
    """The search of this test item, set by ``--drill-search`` and ``--drill-search-budget``."""
    config = request.config
    budget = float(config.getoption("drill_search_budget"))
    if budget <= 0:
        raise UsageError(f"--drill-search-budget must be a number of seconds > 0, got {budget:g}")

    def hint(path: Path) -> str:
        extra = []
        for name, opt in (("--agent-cmd", "agent_cmd"), ("--agent-image", "agent_image"), ("--chain", "chain")):
            value = getattr(config.option, opt, None)
            if value:
                extra += [name, str(value)]
        for value in getattr(config.option, "agent_env", None) or []:
            extra += ["--agent-env", str(value)]
        return shlex.join(["drill", "replay", str(path), *extra])

    faults = None
    if config.getoption("drill_search_faults"):
        from harness.schedule import FAULTS

        faults = tuple(f.strip() for f in config.getoption("drill_search_faults").split(",") if f.strip())
        unknown = [f for f in faults if f not in FAULTS]
        if unknown or not faults:
            raise UsageError(f"--drill-search-faults: unknown fault(s) {', '.join(unknown) or '(none given)'}; "
                             f"known: {', '.join(FAULTS)}")
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")

    def progress(line: str) -> None:  # to the terminal past pytest's capture: seen while the search runs
        if reporter is None:
            return
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            reporter.write_line(line)

    profile = config.getoption("drill_search")
    shrink = config.getoption("drill_shrink_budget")
    if shrink is not None and shrink < 0:
        raise UsageError(f"--drill-shrink-budget must be a number of seconds >= 0, got {shrink:g}")
    yield ScheduleSearch(profile=profile, budget_s=budget, shrink_s=SHRINK_BUDGETS[profile] if shrink is None else shrink,
                         out_dir=_out_dir(config, tmp_path / "schedules"), replay_hint=hint, progress=progress,
                         faults=faults, derandomize=profile == "ci" and config.getoption("--hypothesis-seed", None) is None)


def schedule_files(config: pytest.Config, committed: Path) -> list[Path]:
    """The files ``test_schedule_replay`` replays: ``--drill-schedule`` ones, else the committed ones."""
    given = [Path(p) for p in config.getoption("drill_schedule")]
    for p in given:
        if not p.is_file():
            raise pytest.UsageError(f"--drill-schedule {p}: no such file (a schedule saved by a search, or "
                                    "committed under the catalogue's schedules/)")
    return given or sorted(committed.glob("*.json"))
