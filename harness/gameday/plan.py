"""The game-day plan (``gameday.toml``): a frozen model, read and checked once by ``load_plan``.

A plan names the people (owner, coordinator, observers), the agent (a command, an image, or a
running remote agent's endpoints, the last only with ``--allow-remote``), what to run (catalogue
drills, schedule files, a schedule search with a time budget), the pacing, the stop conditions, the
profile (``drill``: compressed; ``production``: the agent's real intervals, budgets scaled) and
``every`` (metadata that ``drill gameday --check-schedule`` turns into a crontab line).

Every mistake is a ``ConfigError`` naming the key, the value, what was expected and, for a
misspelt key or drill, the nearest right one. docs/gameday.md lists every key.
"""

from __future__ import annotations

import ast
import difflib
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, UsageError
from harness.safety import check_loopback_url

__all__ = [
    "PROFILES", "DESTRUCTIVE_INCIDENTS", "AgentSpec", "Pacing", "StopConditions", "SearchSpec", "Item", "Plan",
    "load_plan", "parse_plan", "parse_duration", "catalogue_drills",
]

PROFILES = ("drill", "production")
#: drills whose fault destroys something (a key, the process, the state, chain history), by the incident they
#: expect: the owner approves each
DESTRUCTIVE_INCIDENTS = {"wallet_compromise": "key leak", "process_crash": "kill", "crash_loop": "kill",
                         "state_corruption": "state loss", "reorg": "reorg"}
#: schedule faults that are destructive in the same sense
DESTRUCTIVE_SCHEDULE_FAULTS = {"process_kill": "kill"}

_TOP_KEYS = ("name", "owner", "coordinator", "observers", "every", "profile", "budget_scale", "time_scale", "chain",
             "history_dir",
             "incident_log", "agent", "drills", "schedules", "search", "pacing", "stop")
_AGENT_KEYS = ("command", "image", "remote", "env")
_REMOTE_KEYS = ("control", "health", "rpc")
_PACING_KEYS = ("gap", "duration")
_STOP_KEYS = ("value_at_risk_eth", "health_url", "health_interval", "lever_file")
_SEARCH_KEYS = ("budget", "faults")


def parse_duration(value: Any, *, key: str) -> float:
    """Seconds from a number or a string like ``90s``, ``20m``, ``1h``; ConfigError naming ``key`` otherwise."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    if isinstance(value, bool):
        raise ConfigError(f"{key} must be a duration such as 30s, 5m or 1h (or seconds as a number), got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        number, unit = (text[:-1], text[-1]) if text[-1] in units else (text, "s")
        try:
            seconds = float(number) * units[unit]
        except ValueError:
            raise ConfigError(f"{key} must be a duration such as 30s, 5m or 1h, got {value!r}") from None
    else:
        raise ConfigError(f"{key} must be a duration such as 30s, 5m or 1h (or seconds as a number), got {value!r}")
    if seconds <= 0:
        raise ConfigError(f"{key} must be a positive duration, got {value!r}")
    return seconds


@dataclass(frozen=True, kw_only=True)
class AgentSpec:
    """Exactly one of ``command``, ``image`` or ``remote`` (a running agent's endpoints)."""

    command: str | None = None
    image: str | None = None
    remote: Mapping[str, Any] | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        if self.command:
            return f"command {self.command!r}"
        if self.image:
            return f"image {self.image}"
        return f"remote agent at {(self.remote or {}).get('control')}"


@dataclass(frozen=True, kw_only=True)
class Pacing:
    gap_s: float = 10.0  # between the end of one item and the start of the next
    duration_s: float | None = None  # no item starts once this much time has passed


@dataclass(frozen=True, kw_only=True)
class StopConditions:
    value_at_risk_eth: float | None = None  # stop once an item lost more ETH than this
    health_url: str | None = None  # stop when a GET of it fails or answers other than 2xx
    health_interval_s: float = 2.0
    lever_file: Path | None = None  # stop as soon as this file exists (OUT/STOP always counts too)


@dataclass(frozen=True, kw_only=True)
class SearchSpec:
    budget_s: float
    faults: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Item:
    """One planned run: a drill, a schedule replay or a search, as inner pytest arguments."""

    index: int
    kind: str  # drill | schedule | search
    label: str
    pytest_args: tuple[str, ...]
    destructive: str | None = None  # what makes it destructive ("kill", "key leak", ...), None if nothing
    incident: str | None = None  # the incident kind the drill expects, when known


@dataclass(frozen=True, kw_only=True)
class Plan:
    path: Path
    name: str
    owner: str
    coordinator: str
    observers: tuple[str, ...] = ()
    every: str | None = None
    profile: str = "drill"
    budget_scale: float = 1.0
    time_scale: float = 1.0
    chain: str = "pyevm"
    history_dir: Path
    incident_log: Path | None = None
    agent: AgentSpec
    drills: tuple[str, ...] = ()
    schedules: tuple[Path, ...] = ()
    search: SearchSpec | None = None
    pacing: Pacing = field(default_factory=Pacing)
    stop: StopConditions = field(default_factory=StopConditions)

    def items(self) -> list[Item]:
        """The planned runs in order: the drills, then the schedules, then the search."""
        from harness.drill.catalogue import load_catalogue

        catalogue = load_catalogue()
        known = catalogue_drills()
        out: list[Item] = []
        for name in self.drills:
            if "::" in name:
                path, _, func = name.partition("::")
                file = Path(path) if Path(path).is_absolute() else Path.cwd() / path
                info = _drills_in(file).get(func, {})
                node = str(file) + "::" + func
            else:
                info = known[name]
                node = f"{info['file']}::{name}"
                func = name
            destructive = DESTRUCTIVE_INCIDENTS.get(info.get("incident") or "")
            out.append(Item(index=len(out) + 1, kind="drill", label=func, pytest_args=(node,),
                            destructive=destructive, incident=info.get("incident")))
        if (self.schedules or self.search) and catalogue is None:
            raise ConfigError("the plan runs schedules or a search, but the built-in drills are not installed "
                              "(no package agent_drills_catalogue): reinstall agent-drills")
        for path in self.schedules:
            from harness.schedule import Schedule

            schedule = Schedule.load(path)
            kinds = [DESTRUCTIVE_SCHEDULE_FAULTS[s.fault] for s in schedule.steps if s.fault in DESTRUCTIVE_SCHEDULE_FAULTS]
            assert catalogue is not None
            out.append(Item(index=len(out) + 1, kind="schedule", label=f"schedule {path.name}",
                            pytest_args=(f"{catalogue.root / 'test_schedules.py'}::test_schedule_replay",
                                         "--drill-schedule", str(path)),
                            destructive=kinds[0] if kinds else None))
        if self.search is not None:
            assert catalogue is not None
            args = [f"{catalogue.root / 'test_schedules.py'}::test_schedule_search_finds_no_failing_combination",
                    "--drill-search", "explore", "--drill-search-budget", f"{self.search.budget_s:g}"]
            if self.search.faults:
                args += ["--drill-search-faults", ",".join(self.search.faults)]
            drawn = self.search.faults or ("process_kill",)
            out.append(Item(index=len(out) + 1, kind="search", label=f"schedule search {self.search.budget_s:g}s",
                            pytest_args=tuple(args),
                            destructive="kill" if "process_kill" in drawn else None))
        return out

    def agent_args(self) -> list[str]:
        """The inner pytest's agent, chain and profile options."""
        args = ["--chain", self.chain]
        if self.agent.command:
            args += ["--agent-cmd", self.agent.command]
        if self.agent.image:
            args += ["--agent-image", self.agent.image]
        env = dict(self.agent.env)
        if self.profile == "production":
            env.setdefault("AGENT_PROFILE", "production")
        for key, value in env.items():
            args += ["--agent-env", f"{key}={value}"]
        if self.budget_scale != 1.0:
            args += ["--drill-budget-scale", f"{self.budget_scale:g}"]
        if self.time_scale != 1.0:
            args += ["--drill-time-scale", f"{self.time_scale:g}"]
        return args

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path), "name": self.name, "owner": self.owner, "coordinator": self.coordinator,
            "observers": list(self.observers), "every": self.every, "profile": self.profile,
            "budget_scale": self.budget_scale, "time_scale": self.time_scale, "chain": self.chain, "agent": self.agent.describe(),
            "drills": list(self.drills), "schedules": [str(p) for p in self.schedules],
            "search": None if self.search is None else {"budget_s": self.search.budget_s, "faults": list(self.search.faults)},
            "pacing": {"gap_s": self.pacing.gap_s, "duration_s": self.pacing.duration_s},
            "stop": {"value_at_risk_eth": self.stop.value_at_risk_eth, "health_url": self.stop.health_url,
                     "lever_file": None if self.stop.lever_file is None else str(self.stop.lever_file)},
        }


def _drills_in(file: Path) -> dict[str, dict[str, Any]]:
    """Test functions of ``file`` -> {file, family, incident} from their ``pytest.mark.drill`` (read, not imported)."""
    try:
        tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
    except (OSError, SyntaxError):
        return {}
    names: dict[str, ast.Call] = {}  # module-level `network = pytest.mark.drill(...)`
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name) and ast.unparse(node.value.func) == "pytest.mark.drill":
            names[node.targets[0].id] = node.value
    out: dict[str, dict[str, Any]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            info: dict[str, Any] = {"file": file}
            for dec in node.decorator_list:
                call = dec if isinstance(dec, ast.Call) and ast.unparse(dec.func) == "pytest.mark.drill" else None
                if call is None and isinstance(dec, ast.Name):
                    call = names.get(dec.id)
                for kw in call.keywords if call is not None else ():
                    if kw.arg in ("family", "incident") and isinstance(kw.value, ast.Constant):
                        info[kw.arg] = kw.value.value
            out[node.name] = info
    return out


def catalogue_drills() -> dict[str, dict[str, Any]]:
    """The built-in drills: test function name -> {file, family, incident}; {} when not installed."""
    from harness.drill.catalogue import load_catalogue

    catalogue = load_catalogue()
    out: dict[str, dict[str, Any]] = {}
    for file in catalogue.files if catalogue is not None else ():
        out.update(_drills_in(file))
    return out


def _unknown_keys(table: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            near = difflib.get_close_matches(key, allowed, n=1)
            hint = f"; did you mean '{where}{near[0]}'?" if near else f"; the keys are {', '.join(allowed)}"
            raise ConfigError(f"unknown key '{where}{key}'{hint}")


def _str(table: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
    value = table.get(key)
    if value is None:
        if required:
            raise ConfigError(f"{where}{key} is missing: the plan must name it (a string)")
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}{key} must be a non-empty string, got {value!r}")
    return value.strip()


def _str_list(table: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{where}{key} must be a list of non-empty strings, got {value!r}")
    return tuple(v.strip() for v in value)


def _table(table: Mapping[str, Any], key: str, where: str = "") -> Mapping[str, Any]:
    value = table.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}{key} must be a table ([{where}{key}] or {key} = {{...}}), got {value!r}")
    return value


def _number(table: Mapping[str, Any], key: str, where: str) -> float | None:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"{where}{key} must be a number > 0, got {value!r}")
    return float(value)


def _path(base: Path, text: str) -> Path:
    p = Path(text).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def parse_plan(data: Mapping[str, Any], *, path: Path, allow_remote: bool = False) -> Plan:
    """Check ``data`` (a parsed gameday.toml) and build the plan; ``path`` is the file (relative paths start at its directory)."""
    base = path.parent.resolve()
    _unknown_keys(data, _TOP_KEYS, "")
    name = _str(data, "name", "", required=True)
    owner = _str(data, "owner", "", required=True)
    coordinator = _str(data, "coordinator", "") or owner
    profile = data.get("profile", "drill")
    if profile not in PROFILES:
        raise ConfigError(f"profile must be \"drill\" (compressed, the drills' own budgets) or \"production\" (the agent's "
                          f"real intervals, budgets times budget_scale), got {profile!r}")
    scale = _number(data, "budget_scale", "")
    if scale is None:
        scale = 60.0 if profile == "production" else 1.0
    time_scale = _number(data, "time_scale", "")
    if time_scale is None:
        time_scale = 20.0 if profile == "production" else 1.0
    chain = data.get("chain", "pyevm")
    if chain not in ("pyevm", "anvil"):
        raise ConfigError(f"chain must be \"pyevm\" or \"anvil\", got {chain!r}")
    every = _str(data, "every", "")
    if every is not None:
        from harness.gameday.cron import crontab_fields

        crontab_fields(every)  # a ConfigError saying what `every` accepts

    if "agent" not in data:
        raise ConfigError("the plan has no [agent] table: give the agent as command = \"...\" (a process), image = \"...\" "
                          "(a container) or remote = {control = \"http://...\"} (a running agent, with --allow-remote)")
    agent_t = _table(data, "agent")
    _unknown_keys(agent_t, _AGENT_KEYS, "agent.")
    given = [k for k in ("command", "image", "remote") if agent_t.get(k) is not None]
    if len(given) != 1:
        raise ConfigError("[agent] must give exactly one of command, image or remote, got "
                          + (", ".join(given) if given else "none"))
    env_t = _table(agent_t, "env", "agent.")
    for k, v in env_t.items():
        if not isinstance(v, str):
            raise ConfigError(f"agent.env.{k} must be a string, got {v!r}")
    remote = None
    if "remote" in agent_t:
        remote = _table(agent_t, "remote", "agent.")
        _unknown_keys(remote, _REMOTE_KEYS, "agent.remote.")
        if not remote.get("control"):
            raise ConfigError("agent.remote.control is missing: the running agent's control API, e.g. http://10.0.0.5:8080")
        urls = [("agent.remote.control", remote["control"])]
        urls += [("agent.remote.health", remote["health"])] if remote.get("health") else []
        urls += [(f"agent.remote.rpc[{i}]", u) for i, u in enumerate(remote.get("rpc") or [])]
        for what, url in urls:
            if not isinstance(url, str):
                raise ConfigError(f"{what} must be a URL string, got {url!r}")
            check_loopback_url(url, what=what, allow_remote=allow_remote)
    agent = AgentSpec(command=_str(agent_t, "command", "agent."), image=_str(agent_t, "image", "agent."),
                      remote=remote, env=dict(env_t))

    drills = _str_list(data, "drills", "")
    known = catalogue_drills()
    for d in drills:
        if "::" in d:
            file = _path(Path.cwd(), d.partition("::")[0])
            if not file.is_file():
                raise ConfigError(f"drills: {d!r} names the file {file}, which does not exist")
        elif d not in known:
            near = difflib.get_close_matches(d, list(known), n=1)
            raise ConfigError(f"drills: {d!r} is not a built-in drill" + (f"; did you mean {near[0]!r}?" if near else "")
                              + " (docs/catalogue.md lists them; a drill of your own is named by its node id, "
                              "path::test_name)")
    schedules = tuple(_path(base, s) for s in _str_list(data, "schedules", ""))
    for s in schedules:
        if not s.is_file():
            raise ConfigError(f"schedules: the file {s} does not exist (paths are relative to the plan's directory {base})")
    search = None
    if "search" in data:
        search_t = _table(data, "search")
        _unknown_keys(search_t, _SEARCH_KEYS, "search.")
        if "budget" not in search_t:
            raise ConfigError("search.budget is missing: how long the schedule search may run, e.g. budget = \"2m\"")
        search = SearchSpec(budget_s=parse_duration(search_t["budget"], key="search.budget"),
                            faults=_str_list(search_t, "faults", "search."))
    if not drills and not schedules and search is None:
        raise ConfigError("the plan runs nothing: give drills = [...], schedules = [...] and/or a [search] table")

    pacing_t = _table(data, "pacing")
    _unknown_keys(pacing_t, _PACING_KEYS, "pacing.")
    pacing = Pacing(
        gap_s=parse_duration(pacing_t["gap"], key="pacing.gap") if "gap" in pacing_t else Pacing().gap_s,
        duration_s=parse_duration(pacing_t["duration"], key="pacing.duration") if "duration" in pacing_t else None,
    )
    stop_t = _table(data, "stop")
    _unknown_keys(stop_t, _STOP_KEYS, "stop.")
    health_url = _str(stop_t, "health_url", "stop.")
    if health_url is not None:
        check_loopback_url(health_url, what="stop.health_url", allow_remote=allow_remote)
    stop = StopConditions(
        value_at_risk_eth=_number(stop_t, "value_at_risk_eth", "stop."),
        health_url=health_url,
        health_interval_s=(parse_duration(stop_t["health_interval"], key="stop.health_interval")
                           if "health_interval" in stop_t else 2.0),
        lever_file=_path(base, s) if (s := _str(stop_t, "lever_file", "stop.")) else None,
    )
    history = _str(data, "history_dir", "")
    incident_log = _str(data, "incident_log", "")
    return Plan(
        path=path.resolve(), name=name or "", owner=owner or "", coordinator=coordinator, observers=_str_list(data, "observers", ""),
        every=every, profile=profile, budget_scale=scale, time_scale=time_scale, chain=chain,
        history_dir=_path(base, history or "gameday-history"),
        incident_log=_path(base, incident_log) if incident_log else None,
        agent=agent, drills=drills, schedules=schedules, search=search, pacing=pacing, stop=stop,
    )


def load_plan(path: Path, *, allow_remote: bool = False) -> Plan:
    """Read and check ``path``; a ConfigError says what is wrong with it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"no game-day plan at {path} (docs/gameday.md shows one; gamedays/sample.toml is an example)") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    try:
        return parse_plan(data, path=path, allow_remote=allow_remote)
    except UsageError as exc:  # a ConfigError, or a RemoteAddressError without --allow-remote
        raise type(exc)(f"{path}: {exc}") from None
