"""pytest wiring of the drill engine: options, the ``drill`` marker and the ``drill`` fixture.

    @pytest.mark.drill(playbook="process-crash", incident="process_crash", family="process",
                       budget={"detect": 10})
    def test_killed_agent_restarts_and_reports_the_crash(drill): ...

Options: ``--agent-cmd "python -m my_agent"`` (default: ``agent_cmd`` in drills.toml / [tool.drills],
else the ini value ``drill_agent_cmd``),
``--agent-env KEY=VALUE`` (repeatable; ini ``drill_agent_env`` gives defaults), and
``--drill-budget-scale F`` and ``--drill-time-scale F`` (the world's pace and the resumption rule, for an agent
running its real intervals). In the command and the environment values, ``{python}`` stands for the
running interpreter and ``{rootdir}`` for pytest's rootdir. ``--agent-image IMAGE`` runs the agent as
a container of a local image instead (``harness.runtime.docker``; ``--agent-runtime process|docker``
says it explicitly); the image's command is used unless ``--agent-cmd`` is given on the command line.

Mistakes are caught before any drill runs, each as a one-line ``pytest.UsageError``: at configure
time a bad option (``--drill-budget-scale``, ``--agent-env``, an unsplittable ``--agent-cmd``) or drill
configuration (invalid TOML, budgets, ``chain``); at collection time a bad ``drill`` marker, or drills
selected with no agent command.

The fixture needs a session fixture ``drill_chain`` (a chain with the contracts deployed and a
snapshot: attributes ``chain``, ``deployment``, ``snapshot_id``), provided by ``harness.plugin``.
The drill's ``DrillResult`` is put on ``item.stash[DRILL_RESULT]`` during the fixture's teardown.
"""

from __future__ import annotations

import contextlib
import difflib
import itertools
import json
import math
import re
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness import clock
from harness.chain.base import BACKENDS
from harness.checks.budgets import DrillsConfig, apply_budget, load_config
from harness.config import config_source, load_drills_table, shadowed_source
from harness.drill.api import Drill
from harness.drill.catalogue import is_drill
from harness.drill.result import DrillResult
from harness.drill.world import WorldSettings, build_world
from harness.errors import ConfigError, UsageError
from harness.observe.timeline import Timeline
from harness.record.build import record_from_result
from harness.record.model import DrillRecord
from harness.runtime.limits import parse_limits
from harness.workload import WorkloadSettings

__all__ = ["DRILL_RESULT", "DRILL_RECORD", "DRILL", "DrillOptions", "drill_factory", "drill_options", "drills_config"]

DRILL_RESULT = pytest.StashKey[DrillResult]()
#: the drill's record, built from the result when the drill ends: what every report renders
DRILL_RECORD = pytest.StashKey[DrillRecord]()
DRILL = pytest.StashKey[Drill]()
_CALL_EXC = pytest.StashKey[BaseException | None]()
_CONFIG = pytest.StashKey[DrillsConfig]()
_TABLE_AGENT_CMD = pytest.StashKey[tuple[str, str] | None]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("drills", "agent-drills: the drill engine")
    group.addoption("--agent-cmd", dest="agent_cmd", default=None, metavar="CMD",
                    help='command that starts the agent under test, e.g. "python -m my_agent" (split like a shell, never run through one)')
    group.addoption("--agent-image", dest="agent_image", default=None, metavar="IMAGE",
                    help="run the agent as a container of this local Docker image (implies --agent-runtime docker; "
                         "--agent-cmd, when given, replaces the image's command)")
    group.addoption("--agent-runtime", dest="agent_runtime", choices=("process", "docker"), default=None,
                    help="how the agent runs: process (default) or docker (default when --agent-image is given)")
    group.addoption("--agent-env", dest="agent_env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment variable for the agent (repeatable)")
    group.addoption("--drill-budget-scale", dest="drill_budget_scale", type=float, default=1.0, metavar="F",
                    help="multiply every drill budget and time limit by F (for slow machines; recorded in reports)")
    group.addoption("--drill-time-scale", dest="drill_time_scale", type=float, default=1.0, metavar="F",
                    help="multiply the pace of the world (an escrow every second, deadlines 15 s ahead) and the "
                         "resumption rule's times by F, for an agent running its real intervals (a real-time game day); "
                         "recorded on the timeline as drill.time_scale")
    group.addoption("--agent-limit", dest="agent_limit", action="append", default=[], metavar="NAME=VALUE",
                    help="bound the agent: memory=4G, files=4096, processes=512, output=1M (0 lifts one; repeatable; "
                         "recorded on agent.start)")
    group.addoption("--agent-network", dest="agent_network", choices=("auto", "isolated", "host"), default="auto",
                    help="the agent's network: isolated (a loopback-only namespace reaching only the contract's "
                         "endpoints; needs root, and nsenter for a process), host, or auto (isolated when possible; "
                         "recorded on agent.start)")
    group.addoption("--drill-jsonl", dest="drill_jsonl", default=None, metavar="PATH",
                    help="append every drill's result to PATH as one JSON line (for scripts and benchmarks)")
    parser.addini("drill_agent_cmd", "default agent command for drills ({python} and {rootdir} are substituted)", default="")
    parser.addini("drill_agent_env", "default KEY=VALUE environment lines for the agent", type="linelist", default=[])


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "drill(playbook=None, incident=None, family=None, budget=None): an incident-response drill; `incident` is "
        "the expected incident kind, `playbook` and `family` label the report and become markers of their own "
        "(-m \"drill and process_crash\"), `budget` is a dict of the budget keys the drill needs beyond the defaults",
    )
    # Runs before the chain plugin's configure, so a broken drills.toml is reported here, once, whether
    # or not --chain was given.
    try:
        config.stash[_CONFIG] = _load_checked_config(Path(config.rootpath))
        config.stash[_TABLE_AGENT_CMD] = _table_agent_cmd(Path(config.rootpath))
        _agent_argv(config)
        _agent_env(config)
        _scale(config)
        _time_scale(config)
        parse_limits(config.getoption("agent_limit"))
        _runtime(config)
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_report_header(config: pytest.Config) -> str | None:
    shadowed = shadowed_source(Path(config.rootpath))
    if shadowed is None:
        return None
    return f"agent-drills: drill configuration from drills.toml ([tool.drills] in {shadowed.name} is not read)"


def _load_checked_config(rootdir: Path) -> DrillsConfig:
    """The budgets, after checking the whole drill table (``chain`` too, even when --chain overrides it)."""
    table = load_drills_table(rootdir)
    backend = table.get("chain")
    if backend is not None and backend not in BACKENDS:
        source = config_source(rootdir)
        where = "drills.toml" if source is not None and source.name == "drills.toml" else "[tool.drills] in pyproject.toml"
        close = difflib.get_close_matches(str(backend), BACKENDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{where}: chain = {backend!r} is not a chain backend{hint} (use one of {', '.join(BACKENDS)})")
    return load_config(rootdir)


def _table_agent_cmd(rootdir: Path) -> tuple[str, str] | None:
    """``agent_cmd`` of drills.toml / [tool.drills] as (where, command), or None when it is not set."""
    cmd = load_drills_table(rootdir).get("agent_cmd")
    if cmd is None:
        return None
    source = config_source(rootdir)
    where = "drills.toml" if source is not None and source.name == "drills.toml" else "[tool.drills] in pyproject.toml"
    if not isinstance(cmd, str) or not cmd.strip():
        raise ConfigError(f'{where}: agent_cmd must be the command that starts your agent as a string, e.g. '
                          f'agent_cmd = "python -m my_agent", got {cmd!r}')
    return where, cmd


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Check the selected drills' markers, and that there is an agent to drill, before anything runs."""
    drills = [item for item in items if is_drill(item)]
    if not drills:
        return
    problems = []
    for item in drills:
        marker = item.get_closest_marker("drill")
        if marker is None:
            continue
        try:
            _check_marker(marker)
        except UsageError as exc:
            problems.append(f"{item.nodeid}: {exc}")
    if problems:
        more = f" (and {len(problems) - 1} more drill(s) with a bad marker)" if len(problems) > 1 else ""
        raise pytest.UsageError(problems[0] + more)
    try:
        opts = drill_options(config)
    except UsageError as exc:
        raise pytest.UsageError(f"{len(drills)} drill(s) selected but {exc}") from None
    if opts.agent_image and not config.option.collectonly:
        # once, before any drill: a missing daemon or image would otherwise error every drill alike
        from harness.errors import EnvironmentProblem
        from harness.runtime.docker import check_image

        try:
            check_image(opts.agent_image)
        except EnvironmentProblem as exc:
            raise pytest.UsageError(f"{len(drills)} drill(s) selected but {exc}") from None


def _check_marker(marker: pytest.Mark) -> None:
    if marker.args:
        raise UsageError(f"@pytest.mark.drill takes keyword arguments only (playbook=, incident=, family=, budget=), "
                         f"got {marker.args!r}")
    unknown = set(marker.kwargs) - {"playbook", "incident", "family", "budget"}
    if unknown:
        raise UsageError(f"@pytest.mark.drill got unknown argument(s) {sorted(unknown)}; it takes playbook, incident, "
                         "family, budget")
    if marker.kwargs.get("budget") is not None:
        apply_budget(marker.kwargs["budget"], where="@pytest.mark.drill(budget=...)")  # a ConfigError names the key
    if marker.kwargs.get("incident") is not None:
        from harness.drill.api import check_kind

        try:
            check_kind(marker.kwargs["incident"])
        except UsageError as exc:
            raise UsageError(f"@pytest.mark.drill(incident={marker.kwargs['incident']!r}): {exc}") from None


class DrillOptions:
    def __init__(self, agent_cmd: list[str], agent_env: dict[str, str], scale: float, allow_remote: bool,
                 agent_image: str | None = None) -> None:
        self.agent_cmd = agent_cmd
        self.agent_env = agent_env
        self.scale = scale
        self.allow_remote = allow_remote
        self.agent_image = agent_image  # None: the agent runs as a process

    @property
    def runtime(self) -> dict[str, Any]:
        """How the agent runs, as the record names it."""
        return {"kind": "docker", "image": self.agent_image} if self.agent_image else {"kind": "process", "image": None}


def _runtime(config: pytest.Config) -> tuple[str, str | None]:
    """("process", None) or ("docker", image), from --agent-runtime and --agent-image."""
    image = config.getoption("agent_image")
    kind = config.getoption("agent_runtime") or ("docker" if image else "process")
    if image is not None and not str(image).strip():
        raise UsageError("--agent-image is empty; give a local image, e.g. --agent-image agent-drills/reference-agent:<version> "
                         "(build it with `drill image reference`)")
    if kind == "docker" and not image:
        raise UsageError("--agent-runtime docker needs --agent-image IMAGE (a local image; `drill image reference` "
                         "builds the reference agent's)")
    if kind == "process" and image:
        raise UsageError(f"--agent-image {image} runs the agent under Docker, but --agent-runtime process was given; "
                         "drop one of the two")
    if kind == "process" and parse_limits(config.getoption("agent_limit")).cpus:
        raise UsageError("--agent-limit cpus=... needs the Docker runtime (--agent-image IMAGE); a process gets no CPU quota")
    return kind, image


def _subst(text: str, config: pytest.Config) -> str:
    return text.replace("{python}", sys.executable).replace("{rootdir}", str(config.rootpath))


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _agent_argv(config: pytest.Config) -> list[str] | None:
    """The agent command split into arguments, or None when none is configured."""
    given = config.getoption("agent_cmd")
    in_table = config.stash.get(_TABLE_AGENT_CMD, None)  # (where, command) from drills.toml / [tool.drills]
    raw_cmd = given or (in_table[1] if in_table else None) or config.getini("drill_agent_cmd")
    if not raw_cmd or not str(raw_cmd).strip():
        return None
    where = "--agent-cmd" if given else f"{in_table[0]} agent_cmd =" if in_table else "the ini option drill_agent_cmd ="
    try:
        return [_subst(a, config) for a in shlex.split(str(raw_cmd))]
    except ValueError as exc:
        raise UsageError(f"{where} {raw_cmd!r} cannot be split into arguments: {exc}; "
                         "check its quotes (it is split like a shell command)") from exc


def _agent_env(config: pytest.Config) -> dict[str, str]:
    env: dict[str, str] = {}
    lines = [("drill_agent_env line", line) for line in config.getini("drill_agent_env")]
    lines += [("--agent-env", line) for line in config.getoption("agent_env")]
    for where, line in lines:
        key, sep, value = str(line).partition("=")
        if not sep or not key:
            raise UsageError(f"{where} {line!r} is not KEY=VALUE (e.g. --agent-env AGENT_DEFECTS=no_sweep)")
        if not _ENV_NAME.fullmatch(key):
            fixed = re.sub(r"[^A-Za-z0-9_]", "_", key)
            fixed = f"_{fixed}" if fixed[0].isdigit() else fixed
            # the value is not echoed: it may be a secret
            raise UsageError(f"{where} {key}=...: the name {key!r} may hold only letters, digits and '_' and must "
                             f"not start with a digit; use e.g. {fixed}")
        env[key] = _subst(value, config)
    return env


def _positive(config: pytest.Config, dest: str, flag: str, hint: str) -> float:
    value = config.getoption(dest)
    if value is None or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{flag} must be a number > 0, got {value!r} ({hint})")
    return float(value)


def _scale(config: pytest.Config) -> float:
    return _positive(config, "drill_budget_scale", "--drill-budget-scale", "1 keeps the budgets; 2 doubles them for a slow machine")


def _time_scale(config: pytest.Config) -> float:
    return _positive(config, "drill_time_scale", "--drill-time-scale", "1: the compressed drills; 20: an escrow every 20 s "
                     "with deadlines 300 s ahead, for an agent running its real intervals")


def drill_options(config: pytest.Config) -> DrillOptions:
    kind, image = _runtime(config)
    if kind == "docker":
        # The image's own command, unless --agent-cmd (on the command line, not the ini default) replaces it.
        given = config.getoption("agent_cmd")
        argv_or_none = _agent_argv(config) if given else None
        return DrillOptions(argv_or_none or [], _agent_env(config), _scale(config),
                            bool(getattr(config.option, "allow_remote", False)), agent_image=image)
    argv = _agent_argv(config)
    if argv is None:
        raise UsageError(
            "no agent to drill: pass --agent-cmd \"python -m my_agent\" (the agent as a process) or --agent-image IMAGE "
            "(as a container), or set agent_cmd in drills.toml (`drill init` writes one) or drill_agent_cmd in the "
            "pytest ini options"
        )
    if not argv:
        raise UsageError("--agent-cmd is empty after splitting; give the command that starts the agent")
    env = _agent_env(config)
    scale = _scale(config)
    allow_remote = bool(getattr(config.option, "allow_remote", False))
    return DrillOptions(argv, env, scale, allow_remote)


def drills_config(config: pytest.Config) -> DrillsConfig:
    """The project's drill configuration (``drills.toml`` / ``[tool.drills]``), read once per run."""
    if _CONFIG not in config.stash:
        config.stash[_CONFIG] = load_config(Path(config.rootpath))
    return config.stash[_CONFIG]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    if call.when != "call":
        return
    item.stash[_CALL_EXC] = call.excinfo.value if call.excinfo is not None else None
    d = item.stash.get(DRILL, None)
    if d is not None and call.excinfo is not None:
        from harness.drill.api import classify

        status, category, _ = classify(call.excinfo.value)
        b = d.budget
        lines = [
            f"status: {status} ({category})",
            f"budget: detect {b.detect:g} s, contain {b.contain:g} s, recover {b.recover:g} s (scale {b.scale:g})",
            f"faults: {', '.join(repr(f) for f in d.faults) or 'none injected'}",
            f"agent output: {d.ctx.agent.output_path if d.ctx.agent else '-'}",
            f"re-run: {getattr(d, 'rerun', '')}",
        ]
        outcome.get_result().sections.append(("drill", "\n".join(lines)))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Keep what interrupted a drill's call (Ctrl-C, SIGTERM, a game day's lever) for its record.

    pytest lets a KeyboardInterrupt end the session before the call is reported, so the drill
    fixture's teardown (run as the session ends) would otherwise know only that the call never finished.
    """
    try:
        return (yield)
    except KeyboardInterrupt as exc:
        if _CALL_EXC in item.stash:
            item.stash[_CALL_EXC] = exc
        raise


def _rerun(item: pytest.Item, opts: DrillOptions) -> str:
    from harness.drill.catalogue import rerun_selector

    parts = ["pytest", *rerun_selector(item)]
    if opts.agent_image:
        parts += ["--agent-image", opts.agent_image]
    if opts.agent_cmd:
        parts += ["--agent-cmd", shlex.join(opts.agent_cmd)]
    for k, v in opts.agent_env.items():
        parts += ["--agent-env", f"{k}={v}"]
    for line in item.config.getoption("agent_limit"):
        parts += ["--agent-limit", line]
    if item.config.getoption("agent_network") != "auto":
        parts += ["--agent-network", item.config.getoption("agent_network")]
    chain = getattr(item.config.option, "chain", None)
    if chain:
        parts += ["--chain", str(chain)]
    if opts.scale != 1.0:
        parts += ["--drill-budget-scale", str(opts.scale)]
    time_scale = item.config.getoption("drill_time_scale")
    if time_scale != 1.0:
        parts += ["--drill-time-scale", str(time_scale)]
    return shlex.join(parts)


def _open_drill(request: pytest.FixtureRequest, where: Path) -> tuple[Drill, DrillOptions, float]:
    """Build a fresh world at ``where`` and the ``Drill`` of the requesting test (its marker's settings)."""
    marker = request.node.get_closest_marker("drill")
    kwargs: dict[str, Any] = dict(marker.kwargs) if marker else {}
    if marker is not None:
        _check_marker(marker)  # already checked at collection; kept for drills run without it
    opts = drill_options(request.config)
    scenario = getattr(request.node, "originalname", request.node.name)
    budget = drills_config(request.config).budget_for(scenario, drill=kwargs.pop("budget", None), scale=opts.scale)
    session = request.getfixturevalue("drill_chain")
    t_setup = clock.now()
    time_scale = _time_scale(request.config)
    base = WorkloadSettings()
    workload = WorkloadSettings(interval=base.interval * time_scale, deadline=max(2, round(base.deadline * time_scale)))
    ctx = build_world(
        session,
        WorldSettings(agent_cmd=opts.agent_cmd, agent_env=opts.agent_env, budget=budget, allow_remote=opts.allow_remote,
                      limits=parse_limits(request.config.getoption("agent_limit")), agent_image=opts.agent_image,
                      agent_network=request.config.getoption("agent_network"),
                      agent_labels={"agent-drills.run": _run_id(request.config), "agent-drills.drill": request.node.nodeid},
                      workload=workload),
        where, Timeline(),
    )
    if time_scale != 1.0:
        ctx.timeline.record("drill.time_scale", "drill", scale=time_scale, escrow_interval_s=workload.interval,
                            escrow_deadline_s=workload.deadline, resumption_pause_s=2.0 * time_scale,
                            resumption_window_s=1.0 * time_scale)
    try:
        d = Drill(ctx, name=request.node.nodeid, scenario=scenario, budget=budget, **kwargs)
        d.time_scale = time_scale
    except BaseException:
        ctx.cleanup.close()
        raise
    d.rerun = _rerun(request.node, opts)
    request.node.stash[DRILL] = d
    return d, opts, clock.now() - t_setup


def _close_drill(d: Drill, opts: DrillOptions, setup_s: float, exc: BaseException | None) -> DrillResult | None:
    """Take the drill's result (the census and the sink's totals first), then tear its world down."""
    ctx = d.ctx
    t_down = clock.now()
    result = None
    try:
        if ctx.agent is not None:
            ctx.agent.census()  # processes that escaped and output cut, into the record before it is taken
        if ctx.alerts is not None:
            ctx.alerts.summarize()
        result = d.result(exc, rerun=d.rerun, overhead=setup_s, agent_cmd=tuple(opts.agent_cmd))
    finally:
        ctx.cleanup.close()
    if result is None:
        return None
    if isinstance(exc, KeyboardInterrupt) and str(exc):  # who interrupted it: SIGTERM, a game day's lever
        result = replace(result, message=f"interrupted: {exc}")
    return replace(result, harness_overhead_s=round(setup_s + clock.now() - t_down, 3), agent_runtime=opts.runtime)


def _keep(request: pytest.FixtureRequest, result: DrillResult) -> None:
    """The test's record: for the report plugin (stash) and ``--drill-jsonl``."""
    request.node.stash[DRILL_RESULT] = result
    request.node.stash[DRILL_RECORD] = record_from_result(result)
    _append_jsonl(request.config, result)


@pytest.fixture
def drill(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Drill]:
    """A fresh drill world around the agent under test; see ``harness.drill.api.Drill``."""
    d, opts, setup_s = _open_drill(request, tmp_path / "drill")
    # Replaced by the call phase's outcome; still there at teardown only if the call never finished.
    request.node.stash[_CALL_EXC] = KeyboardInterrupt()
    try:
        yield d
    finally:
        exc = request.node.stash.get(_CALL_EXC, None)
        result = _close_drill(d, opts, setup_s, exc)
        if result is not None:
            _keep(request, result)
            if exc is None and not result.passed:  # judged only when the record was taken (e.g. funds unknown)
                pytest.fail(f"drill {result.status} ({result.category}): {result.message}", pytrace=False)


@pytest.fixture
def drill_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], AbstractContextManager[Drill]]]:
    """Fresh drill worlds, one per ``with drill_factory() as d:``, each torn down at the end of its block.

    For a test that runs many drills in one item (a schedule search runs one per example). The
    item's record is the last drill's: after a failure Hypothesis runs the shrunk example last.
    """
    count = itertools.count(1)
    last: list[DrillResult] = []

    @contextlib.contextmanager
    def one() -> Iterator[Drill]:
        d, opts, setup_s = _open_drill(request, tmp_path / f"drill-{next(count)}")
        exc: BaseException | None = None
        try:
            yield d
        except BaseException as e:
            exc = e
            raise
        finally:
            result = _close_drill(d, opts, setup_s, exc)
            if result is not None:
                last[:] = [result]

    yield one
    if last:
        _keep(request, last[0])


def _run_id(config: pytest.Config) -> str:
    """The report's run id (it names reports/<run-id>/), or one for this process when reports are off."""
    try:
        from harness.report.pytest_plugin import REPORT

        return config.stash[REPORT].run_id
    except (ImportError, KeyError):
        from harness.runtime.docker import owner_id

        return owner_id().replace(":", "-")


def _append_jsonl(config: pytest.Config, result: DrillResult) -> None:
    path = config.getoption("drill_jsonl")
    if not path:
        return
    with open(path, "a") as fh:
        fh.write(json.dumps(result.to_json(), default=str) + "\n")
