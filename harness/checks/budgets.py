"""Drill budgets (what CI asserts on a local chain) and the policy targets beside them.

A drill's budget is built in layers, each overriding the keys it sets:

1. the defaults of ``Budget`` below;
2. the project's ``[tool.drills]`` top-level keys (every drill);
3. the drill's own ``@pytest.mark.drill(budget={...})``, what the drill needs beyond the defaults
   (it travels with the drill, also in the installed catalogue);
4. the project's ``[tool.drills.scenarios.<drill>]`` table, named after the drill's test function;

then ``--drill-budget-scale`` multiplies the seconds. The project's config lives in ``[tool.drills]``
of pyproject.toml or in ``drills.toml`` (top level) in the rootdir::

    [tool.drills]                      # defaults for every drill
    detect = 5                         # seconds from injection to the first matching alert
    contain = 10                       # seconds from injection to containment
    recover = 30                       # seconds from injection to resolved + steady state
    deadline_misses = 0                # escrows the agent may let expire in one drill
    value_at_risk_share = 0.5          # fail (and stop) the drill once more than this share of the ETH the agent
                                       # held at the injection is lost (to the attacker, or as the harness's own txs)
    # value_at_risk_eth = 2.0          # a fixed limit in ETH instead; when set it replaces the share
    time_limit = 90                    # abort the drill after this many seconds

    [tool.drills.scenarios.test_primary_rpc_down_fails_over_to_backup]
    deadline_misses = 1                # per-drill override (test function name)

A scenario table that names no drill is refused (``DrillsConfig.check_scenarios``). Other keys of ``[tool.drills]`` (e.g. ``chain``) belong to other parts of the harness and are left alone.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, UnknownScenarioError

__all__ = ["Budget", "PolicyTargets", "POLICY", "DrillsConfig", "apply_budget", "load_config", "parse_config"]

WEI_PER_ETH = 10**18


@dataclass(frozen=True, kw_only=True)
class Budget:
    """Seconds (and limits) one drill is held to."""

    detect: float = 5.0
    contain: float = 10.0
    recover: float = 30.0
    deadline_misses: int = 0
    #: the loss limit as a share of the ETH the agent's addresses held at the injection (what was at risk)
    value_at_risk_share: float = 0.5
    #: a fixed loss limit in ETH; when set it replaces the share (None: the share applies)
    value_at_risk_eth: float | None = None
    time_limit: float = 90.0
    scale: float = 1.0  # already applied to the seconds above; kept for the report

    def __post_init__(self) -> None:
        for name in ("detect", "contain", "recover", "time_limit", "value_at_risk_eth"):
            value = getattr(self, name)
            if value is None and name == "value_at_risk_eth":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"budget {name} must be a number > 0, got {value!r}")
        share = self.value_at_risk_share
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
            raise ConfigError(
                f"budget value_at_risk_share must be a fraction > 0 and <= 1 of what the agent held at the injection "
                f"(0.5 = half), got {share!r}; for a fixed limit in ETH set value_at_risk_eth instead"
            )
        if isinstance(self.deadline_misses, bool) or not isinstance(self.deadline_misses, int) or self.deadline_misses < 0:
            raise ConfigError(f"budget deadline_misses must be a whole number >= 0, got {self.deadline_misses!r}")
        if self.scale <= 0:
            raise ConfigError(f"budget scale must be > 0, got {self.scale!r}")

    @property
    def value_at_risk_wei(self) -> int | None:
        """The fixed limit in wei (None when the limit is a share of what was at risk)."""
        return None if self.value_at_risk_eth is None else int(self.value_at_risk_eth * WEI_PER_ETH)

    def value_at_risk_limit(self, held_wei: int) -> int | None:
        """The loss (wei) past which the drill fails, given the ETH the agent held at the injection.

        ``value_at_risk_eth`` when set; else ``value_at_risk_share`` of ``held_wei``; None when no
        limit can be drawn (nothing held at the injection, and no fixed limit).
        """
        if self.value_at_risk_eth is not None:
            return self.value_at_risk_wei
        if held_wei <= 0:
            return None
        return int(held_wei * self.value_at_risk_share)

    def scaled(self, factor: float) -> Budget:
        """The same budget with its seconds multiplied by ``factor`` (--drill-budget-scale)."""
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor <= 0:
            raise ConfigError(f"--drill-budget-scale must be a number > 0, got {factor!r}")
        return replace(
            self, detect=self.detect * factor, contain=self.contain * factor, recover=self.recover * factor,
            time_limit=self.time_limit * factor, scale=self.scale * factor,
        )

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, kw_only=True)
class PolicyTargets:
    """The incident-response policy's targets (seconds), reported beside the drill budgets."""

    mttd: float = 5 * 60
    mttr: float = 30 * 60
    response: Mapping[str, float] = field(
        default_factory=lambda: {"SEV-1": 5 * 60, "SEV-2": 30 * 60, "SEV-3": 2 * 3600, "SEV-4": 24 * 3600}
    )

    def to_json(self) -> dict[str, Any]:
        return {"mttd": self.mttd, "mttr": self.mttr, "response": dict(self.response)}


POLICY = PolicyTargets()

_BUDGET_KEYS = {f.name for f in fields(Budget)} - {"scale"}


@dataclass(frozen=True, kw_only=True)
class DrillsConfig:
    """The project's budgets: defaults for every drill and per-drill tables (checked, as written)."""

    defaults: Budget = field(default_factory=Budget)
    scenarios: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    source: str = "built-in defaults"

    def budget_for(self, scenario: str, *, drill: Mapping[str, Any] | None = None, scale: float = 1.0) -> Budget:
        """The budget of ``scenario``: the project's defaults, then ``drill`` (the budget its marker
        carries), then the project's table for it, each overriding the keys it sets; scaled last."""
        budget = self.defaults
        if drill:
            budget = apply_budget(drill, budget, where=f"@pytest.mark.drill(budget=...) of {scenario}")
        table = self.scenarios.get(scenario)
        if table:
            budget = apply_budget(table, budget, where=f"{self.source}.scenarios.{scenario}")
        return budget.scaled(scale)

    def check_scenarios(self, drills: Iterable[str]) -> None:
        """Refuse a scenario table that names none of ``drills`` (the test function names known)."""
        known = set(drills)
        for name in self.scenarios:
            if name in known:
                continue
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.7)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UnknownScenarioError(
                f"{self.source}: [tool.drills.scenarios.{name}] names no drill{hint} (a scenario table takes the "
                f"name of a drill's test function; `pytest -m drill --collect-only -q` lists them)"
            )


def apply_budget(table: Mapping[str, Any], base: Budget = Budget(), *, where: str) -> Budget:
    """``base`` with the budget keys of ``table`` set; an unknown key or a bad value is a ConfigError naming ``where``."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table of budget keys (e.g. {{'detect': 10}}), got {table!r}")
    return _budget_from(table, base, where, strict=True)


def _budget_from(table: Mapping[str, Any], base: Budget, where: str, *, strict: bool) -> Budget:
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _BUDGET_KEYS:
            if strict:
                close = difflib.get_close_matches(key, sorted(_BUDGET_KEYS), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"{where}: unknown key {key!r}{hint} (budget keys: {', '.join(sorted(_BUDGET_KEYS))})")
            continue
        expected_int = key == "deadline_misses"
        ok = isinstance(value, int) if expected_int else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok:
            what = {"deadline_misses": "a whole number >= 0", "value_at_risk_eth": "a number of ETH > 0",
                    "value_at_risk_share": "a fraction > 0 and <= 1 (0.5 = half of what the agent held)"}.get(
                key, "a number of seconds > 0")
            raise ConfigError(f"{where}.{key} must be {what}, got {value!r} ({type(value).__name__})")
        values[key] = value
    try:
        return replace(base, **values)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def parse_config(table: Mapping[str, Any], *, source: str = "[tool.drills]") -> DrillsConfig:
    """Build a DrillsConfig from the ``[tool.drills]`` table (already parsed TOML)."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{source} must be a table, got {type(table).__name__}")
    defaults = _budget_from({k: v for k, v in table.items() if k != "scenarios"}, Budget(), source, strict=False)
    scenarios_table = table.get("scenarios", {})
    if not isinstance(scenarios_table, Mapping):
        raise ConfigError(f"{source}.scenarios must be a table of tables ([tool.drills.scenarios.<test name>]), got {scenarios_table!r}")
    scenarios: dict[str, Mapping[str, Any]] = {}
    for name, sub in scenarios_table.items():
        if not isinstance(sub, Mapping):
            raise ConfigError(f"{source}.scenarios.{name} must be a table of budget keys, got {sub!r}")
        _budget_from(sub, defaults, f"{source}.scenarios.{name}", strict=True)  # checked now, applied per drill
        scenarios[name] = dict(sub)
    return DrillsConfig(defaults=defaults, scenarios=scenarios, source=source)


def load_config(rootdir: Path) -> DrillsConfig:
    """Budgets from ``drills.toml`` if present, else ``[tool.drills]`` of ``pyproject.toml``, else defaults."""
    from harness.config import config_source, load_drills_table

    source = config_source(Path(rootdir))
    if source is None:
        return DrillsConfig()
    label = "drills.toml" if source.name == "drills.toml" else "[tool.drills]"
    return parse_config(load_drills_table(Path(rootdir)), source=label)
