"""Drill budgets (what CI asserts on a local chain) and the policy targets beside them.

Config lives in ``[tool.drills]`` of pyproject.toml or in ``drills.toml`` (top level) in the rootdir::

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
    deadline_misses = 1                # per-scenario override (test function name)

Other keys of ``[tool.drills]`` (e.g. ``chain``) belong to other parts of the harness and are left alone.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from harness.errors import ConfigError

__all__ = ["Budget", "PolicyTargets", "POLICY", "DrillsConfig", "load_config", "parse_config"]

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
    defaults: Budget = field(default_factory=Budget)
    scenarios: Mapping[str, Budget] = field(default_factory=dict)
    source: str = "built-in defaults"

    def budget_for(self, scenario: str, *, scale: float = 1.0) -> Budget:
        return self.scenarios.get(scenario, self.defaults).scaled(scale)


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
    scenarios: dict[str, Budget] = {}
    for name, sub in scenarios_table.items():
        if not isinstance(sub, Mapping):
            raise ConfigError(f"{source}.scenarios.{name} must be a table of budget keys, got {sub!r}")
        scenarios[name] = _budget_from(sub, defaults, f"{source}.scenarios.{name}", strict=True)
    return DrillsConfig(defaults=defaults, scenarios=scenarios, source=source)


def load_config(rootdir: Path) -> DrillsConfig:
    """Budgets from ``drills.toml`` if present, else ``[tool.drills]`` of ``pyproject.toml``, else defaults."""
    from harness.config import config_source, load_drills_table

    source = config_source(Path(rootdir))
    if source is None:
        return DrillsConfig()
    label = "drills.toml" if source.name == "drills.toml" else "[tool.drills]"
    return parse_config(load_drills_table(Path(rootdir)), source=label)
