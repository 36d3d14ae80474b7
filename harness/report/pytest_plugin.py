"""pytest wiring of the reports: options, collecting each drill's result, writing the run at the end.

Options: ``--drill-report-dir DIR`` (default ``reports``), ``--drill-run-id ID`` (default: UTC time and
a random suffix), ``--drill-gate off|regression``, ``--drill-gate-factor F`` (default 1.5) and
``--drill-gate-min-history N`` (default 3). A session that ran no drill writes nothing.

Each drill is collected from the teardown report, once the engine has stored its ``DrillResult``; its
files (and its Allure steps and attachments when ``--alluredir`` is given) are written right away,
the summary, README and history at the session's end. A drill whose call was interrupted (Ctrl-C,
SIGTERM, a game day's lever) has no teardown report: its fixtures are torn down as the session
ends, and its record (status ``aborted``, the message naming the interrupt) is taken then. A secret
found in any artifact, or a drill the regression gate rejects, fails the run.

Under pytest-xdist (``-n N``) every worker runs its drills in a world of its own and writes their files
into the one run directory (the controller hands its run id to the workers); the drill's record
travels to the controller as JSON on the teardown report (``drill_record``), checked against the
worker's keys first, and the controller alone writes the summary, README and history of the merged
run. The same path serves a run without workers, so both leave the same report.
"""

from __future__ import annotations

import json
import os
import secrets as _random
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from harness import clock
from harness.errors import DrillsError, UsageError
from harness.report import history
from harness.record.model import DrillRecord, GateSettings, RecordError, RunRecord
from harness.report.secrets import SecretLeak, SecretRegistry
from harness.report.writer import RunWriter

__all__ = ["REPORT", "RUN_OWNER", "ReportSession", "secret_registry"]


@dataclass(eq=False)
class ReportSession:
    root: Path
    run_id: str
    gate: GateSettings
    registry: SecretRegistry = field(default_factory=SecretRegistry)
    started_at: float = field(default_factory=clock.wall)
    records: list[DrillRecord] = field(default_factory=list)
    raw: list[Any] = field(default_factory=list)  # the engine's results, in order
    past: list[dict[str, Any]] | None = None
    writer: RunWriter | None = None
    problems: list[str] = field(default_factory=list)
    #: a pytest-xdist worker: it writes its drills' files and sends their records to the controller
    worker: bool = False
    #: False for a shard of a run (--drill-shard): `drill report merge` appends the merged run instead
    append_history: bool = True
    #: how the run ran (backend, agent command, runtime, budget scale), from the first drill's result
    facts: dict[str, Any] | None = None
    #: each record's position in the collection, so the run lists drills in catalogue order
    order: dict[str, int] = field(default_factory=dict)
    files: dict[str, list[str]] = field(default_factory=dict)
    #: who owns the run (``RUN_OWNER``, set by a game day's item plugin); None: not known
    owner: str | None = None

    def history(self) -> list[dict[str, Any]]:
        if self.past is None:
            self.past = history.load_history(self.root / "history.jsonl")
        return self.past

    def get_writer(self) -> RunWriter:
        if self.writer is None:
            self.writer = RunWriter(self.root, self.run_id, self.registry)
            self.writer.owner = self.owner
        return self.writer


REPORT = pytest.StashKey[ReportSession]()
#: who owns the run, for another plugin to set in its pytest_configure (a game day's item plugin: the
#: plan's owner); read when the session starts, it becomes the run's ``owner`` and the drafts' author
RUN_OWNER = pytest.StashKey[str]()
#: when the item's setup began (clock.now()): its record's item_wall_s runs from here to its teardown
_ITEM_START = pytest.StashKey[float]()


def secret_registry(config: pytest.Config) -> SecretRegistry:
    """The run's registry of private keys; the engine adds every key it holds (``.add(key, label)``)."""
    return config.stash[REPORT].registry


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise pytest.UsageError(f"--drill-gate-factor expects a number such as 1.5, got {text!r}") from None
    if value <= 1.0:
        raise pytest.UsageError(f"--drill-gate-factor must be > 1 (1.5 = 50% slower than the median fails), got {text!r}")
    return value


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("drills-report", "agent-drills: reports")
    group.addoption("--drill-report-dir", dest="drill_report_dir", default="reports", metavar="DIR",
                    help="where each run's report directory and history.jsonl go (default: reports)")
    group.addoption("--drill-run-id", dest="drill_run_id", default=None, metavar="ID",
                    help="name of this run's report directory (default: UTC time plus a random suffix)")
    group.addoption("--drill-gate", dest="drill_gate", choices=("off", "regression"), default="off",
                    help="regression: fail a drill whose MTTD or MTTR is worse than its history's median "
                         "by more than --drill-gate-factor")
    group.addoption("--drill-gate-factor", dest="drill_gate_factor", type=_positive_float, default=1.5, metavar="F",
                    help="how much slower than the median the regression gate tolerates (default 1.5)")
    group.addoption("--drill-gate-min-history", dest="drill_gate_min_history", type=int, default=3, metavar="N",
                    help="past passing runs a drill needs before the gate compares it (default 3)")


def _run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S") + "-" + _random.token_hex(2)


#: names under which the controller hands its run to the workers (xdist's workerinput / workeroutput)
_RUN_ID_INPUT = "agent_drills_run_id"
_STARTED_INPUT = "agent_drills_started_at"
_PROBLEMS_OUTPUT = "agent_drills_problems"
_COLLECTOR = "agent-drills-report-collector"


def pytest_configure(config: pytest.Config) -> None:
    workerinput = getattr(config, "workerinput", None)
    run_id = ((workerinput or {}).get(_RUN_ID_INPUT) or config.getoption("drill_run_id") or _run_id())
    if not all(c.isalnum() or c in "._-" for c in run_id) or run_id.startswith((".", "-")):
        raise pytest.UsageError(f"--drill-run-id {run_id!r} must be letters, digits, '.', '_' or '-' (it names a directory)")
    min_history = config.getoption("drill_gate_min_history")
    if min_history < 1:
        raise pytest.UsageError(f"--drill-gate-min-history must be at least 1, got {min_history}")
    root = Path(config.getoption("drill_report_dir"))
    if not root.is_absolute():
        root = Path(config.invocation_params.dir) / root
    rs = ReportSession(
        root=root, run_id=run_id,
        gate=GateSettings(mode=config.getoption("drill_gate"), factor=config.getoption("drill_gate_factor"),
                          min_history=min_history),
        worker=workerinput is not None, append_history=getattr(config.option, "drill_shard", None) is None,
    )
    if workerinput is not None and _STARTED_INPUT in workerinput:
        rs.started_at = float(workerinput[_STARTED_INPUT])
    config.stash[REPORT] = rs
    if not rs.worker:
        config.pluginmanager.register(_Collector(rs), _COLLECTOR)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Every plugin is configured by now: take the run's owner if one of them named it (``RUN_OWNER``)."""
    rs = session.config.stash.get(REPORT, None)
    if rs is not None:
        rs.owner = session.config.stash.get(RUN_OWNER, None) or None


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist, in the controller: every worker writes into this run's directory."""
    rs = node.config.stash.get(REPORT, None)
    if rs is not None:
        node.workerinput[_RUN_ID_INPUT] = rs.run_id
        node.workerinput[_STARTED_INPUT] = rs.started_at


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object | None) -> None:
    """xdist, in the controller: what a worker found wrong after its last drill (a key in Allure results)."""
    rs = node.config.stash.get(REPORT, None)
    output = getattr(node, "workeroutput", None) or {}
    if rs is not None:
        rs.problems.extend(p for p in output.get(_PROBLEMS_OUTPUT, ()) if p not in rs.problems)


def _engine_keys() -> tuple[Any, Any, Any] | None:
    try:
        from harness.drill.pytest_plugin import DRILL, DRILL_RECORD, DRILL_RESULT
    except ImportError:
        return None
    return DRILL, DRILL_RESULT, DRILL_RECORD


def _register_secrets(rs: ReportSession, item: pytest.Item, drill_key: Any) -> None:
    drill = item.stash.get(drill_key, None)
    ctx = getattr(drill, "ctx", None)
    if ctx is None:
        return
    wallet = getattr(ctx, "hot_wallet", None)
    if wallet is not None and getattr(wallet, "key", None):
        rs.registry.add(wallet.key, "the agent's hot wallet")
    for n, key in enumerate(getattr(ctx, "secrets", ()) or ()):
        try:
            rs.registry.add(key, f"harness key #{n + 1}")
        except UsageError:
            pass  # not a private key (e.g. a token); the engine's own invariant covers it


def _read_output(path: str | None) -> str | None:
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _fail_report(report: pytest.TestReport, text: str) -> None:
    report.outcome = "failed"
    previous = report.longreprtext if report.longrepr else ""
    report.longrepr = f"{previous}\n{text}".strip()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_ITEM_START] = clock.now()


#: set on an item once its drill's record was taken (from its teardown report, or at the session's end)
_TAKEN = pytest.StashKey[bool]()


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    if call.when != "teardown":
        return
    report: pytest.TestReport = outcome.get_result()
    taken = _take_record(item, lambda text: _fail_report(report, text))
    for name, value in (taken or {}).items():
        setattr(report, name, value)


def _take_record(item: pytest.Item, fail: Any, *, allure: bool = True) -> dict[str, Any] | None:
    """Write the drill's own files and return what travels on its teardown report (``drill_record``, ...).

    None when the item has no drill record, or when writing it went wrong (``fail(text)`` is told).
    ``allure=False``: the test's Allure result is gone (an interrupted session), so no steps are added to it.
    """
    keys = _engine_keys()
    if keys is None or keys[2] not in item.stash or REPORT not in item.config.stash or item.stash.get(_TAKEN, False):
        return None
    item.stash[_TAKEN] = True
    rs = item.config.stash[REPORT]
    result, record = item.stash[keys[1]], item.stash[keys[2]]
    if _ITEM_START in item.stash:
        record = record.with_(item_wall_s=round(clock.now() - item.stash[_ITEM_START], 3))
    _register_secrets(rs, item, keys[0])
    try:
        if rs.gate.mode == "regression" and record.status == "passed":
            past = history.past_entries(rs.history(), record.name, result.chain_backend, exclude_run=rs.run_id)
            verdict = history.check_regression(record, past, factor=rs.gate.factor, min_history=rs.gate.min_history)
            record = record.with_(regression=verdict)
            if verdict.regressed:
                record = record.with_(status="failed", failure_category="regression",
                                      failure_message=f"regression gate: {verdict.message}")
                fail(f"drill regression gate: {verdict.message}")
        writer = rs.get_writer()
        leaks_before = len(writer.leaks)
        out = writer.write_drill(record, _read_output(getattr(result, "agent_output", None)))
        record = record.with_(agent_log=out["agent_log"])
        if allure and getattr(item.config.option, "allure_report_dir", None):
            from harness.report.allure import decorate_test

            try:
                decorate_test(record, rs.registry, chart_png=out["chart_png"], agent_log=out["agent_log_text"],
                              owner=rs.owner)
            except SecretLeak as leak:
                writer.leaks.append(leak)
        for leak in writer.leaks[leaks_before:]:
            fail(f"drill report: {leak}")
        # The record leaves this process as JSON; it is checked for the keys only this process knows.
        payload = json.dumps(record.to_json(), default=str)
        rs.registry.check(payload, f"{rs.run_id}/summary.json ({item.nodeid})")
    except DrillsError as exc:
        rs.problems.append(f"{item.nodeid}: {exc}")
        fail(f"drill report: {exc}")
        return None
    rs.raw.append(result)
    return {
        "drill_record": payload, "drill_files": list(out["files"]), "drill_index": _collected_at(item, len(rs.raw)),
        "drill_facts": {
            "chain_backend": getattr(result, "chain_backend", None),
            "agent_command": list(getattr(result, "agent_cmd", ()) or ()),
            "agent_runtime": dict(getattr(result, "agent_runtime", None) or {"kind": "process", "image": None}),
            "budget_scale": float(getattr(result, "budget_scale", 1.0) or 1.0),
        },
    }


def _take_interrupted(session: pytest.Session, rs: ReportSession) -> None:
    """Records of drills whose call was interrupted (Ctrl-C, SIGTERM, a game day's lever).

    pytest ends an interrupted session without the test's teardown report; the fixtures are torn
    down as the session finishes (which is when the engine builds the drill's record), so the record
    is taken here, after that teardown, and joins the run as any other.
    """
    collector = session.config.pluginmanager.get_plugin(_COLLECTOR)
    if collector is None:
        return
    rs.get_writer().pictures = False  # whoever interrupted is waiting: the record first, no charts
    for item in session.items:
        taken = _take_record(item, lambda text, item=item: rs.problems.append(f"{item.nodeid}: {text}"), allure=False)
        if taken is not None:
            collector.take(item.nodeid, **taken)


class _Collector:
    """Takes each drill's record off its teardown report, in the process that writes the run."""

    def __init__(self, rs: ReportSession) -> None:
        self.rs = rs

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        payload = getattr(report, "drill_record", None)
        if payload is None or report.when != "teardown":
            return
        self.take(report.nodeid, payload, getattr(report, "drill_files", ()), getattr(report, "drill_index", None),
                  getattr(report, "drill_facts", None))

    def take(self, nodeid: str, drill_record: str, drill_files: Any = (), drill_index: int | None = None,
             drill_facts: dict[str, Any] | None = None) -> None:
        rs = self.rs
        try:
            record = DrillRecord.from_json(json.loads(drill_record))
        except (ValueError, RecordError) as exc:
            rs.problems.append(f"{nodeid}: its record could not be read back ({exc})")
            return
        rs.records.append(record)
        rs.order[record.name] = int(drill_index if drill_index is not None else len(rs.records))
        rs.files[record.name] = list(drill_files or ())
        if rs.facts is None:
            rs.facts = dict(drill_facts or {})


def _collected_at(item: pytest.Item, default: int) -> int:
    """The test's place in the collection, before any reordering for workers (the report's order)."""
    from harness.drill.shard import COLLECTED_AT

    if COLLECTED_AT in item.stash:
        return item.stash[COLLECTED_AT]
    items = item.session.items
    return items.index(item) if item in items else default


def _versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for dist in ("agent-drills", "pytest", "web3", "py-evm", "eth-tester", "allure-pytest", "matplotlib"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def build_run(rs: ReportSession) -> RunRecord:
    """The run from the records collected, in collection order (the same whatever worker ran a drill)."""
    facts = rs.facts or {}
    drills = sorted((d.with_(position=rs.order[d.name]) if d.name in rs.order else d for d in rs.records),
                    key=lambda d: (d.position is None, d.position or 0, d.name))
    return RunRecord(
        run_id=rs.run_id, started_at=round(rs.started_at, 3), ended_at=round(clock.wall(), 3),
        chain_backend=facts.get("chain_backend"), agent_command=tuple(facts.get("agent_command") or ()),
        agent_runtime=dict(facts.get("agent_runtime") or {"kind": "process", "image": None}),
        versions=_versions(), budget_scale=float(facts.get("budget_scale") or 1.0), gate=rs.gate,
        drills=tuple(drills), owner=rs.owner,
    )


def _finish_worker(session: pytest.Session, rs: ReportSession) -> None:
    """An xdist worker's end: its keys are swept from the Allure results; problems go to the controller."""
    alluredir = getattr(session.config.option, "allure_report_dir", None)
    problems = list(rs.problems)
    if alluredir and len(rs.registry):
        from harness.report.allure import sweep_results_dir

        for name in sweep_results_dir(Path(alluredir), rs.registry):
            problems.append(f"removed {name} from the Allure results: it held one of the run's private keys")
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[_PROBLEMS_OUTPUT] = problems


@pytest.hookimpl(trylast=True)  # after pytest's own, which tears down what an interrupted session left set up
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    rs = session.config.stash.get(REPORT, None)
    if rs is not None and rs.worker:
        _finish_worker(session, rs)
        return
    if rs is not None and session.exitstatus == pytest.ExitCode.INTERRUPTED:
        _take_interrupted(session, rs)
    if rs is None or not rs.records:
        return
    writer = rs.get_writer()
    for name, files in rs.files.items():
        writer.files.setdefault(name, list(files))
    run = build_run(rs)
    try:
        past = rs.history()
        writer.finish(run, past, append_history=rs.append_history)
        alluredir = getattr(session.config.option, "allure_report_dir", None)
        if alluredir:
            from harness.report.allure import sweep_results_dir, write_results_extras

            try:
                write_results_extras(Path(alluredir), run, rs.registry)
            except SecretLeak as leak:
                writer.leaks.append(leak)
            for name in sweep_results_dir(Path(alluredir), rs.registry):
                rs.problems.append(f"removed {name} from the Allure results: it held one of the run's private keys")
    except (RecordError, DrillsError) as exc:
        rs.problems.append(str(exc))
    rs.problems.extend(str(leak) for leak in writer.leaks if str(leak) not in rs.problems)
    if rs.problems and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    rs = config.stash.get(REPORT, None)
    if rs is None or not rs.records:
        return
    tr = terminalreporter
    tr.section("drill report")
    readme = rs.root / rs.run_id / "README.md"
    if readme.is_file():
        shown = os.path.relpath(readme, config.invocation_params.dir)
        tr.write_line(f"report: {readme if shown.startswith('..') else shown}")
    # A gate that could not compare says so, rather than passing quietly (a CI job that lost its history).
    for record in rs.records:
        verdict = record.regression
        if (verdict is not None and not verdict.regressed and not verdict.message.startswith("within history")
                and (record.mttd_s is not None or record.mttr_s is not None)):
            tr.write_line(f"regression gate: {record.name}: {verdict.message}", yellow=True)
    for problem in rs.problems:
        tr.write_line(f"FAILED: {problem}", red=True)
