"""Where drill configuration comes from: ``drills.toml`` or ``[tool.drills]`` in ``pyproject.toml``.

``drills.toml`` in the pytest rootdir wins over ``pyproject.toml``; its top level is the same table
as ``[tool.drills]``. This module only finds and parses the table; each concern (chain, budgets,
reports) validates its own keys.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from harness.errors import ConfigError

__all__ = ["load_drills_table", "config_source"]


def config_source(rootdir: Path) -> Path | None:
    """The file the drill configuration is read from, or None when there is none."""
    for name in ("drills.toml", "pyproject.toml"):
        path = Path(rootdir) / name
        if path.is_file():
            if name == "pyproject.toml" and "drills" not in _read(path).get("tool", {}):
                continue
            return path
    return None


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}; fix the file or remove it") from exc


def load_drills_table(rootdir: Path) -> dict[str, Any]:
    """The drill configuration table (empty when the project has none)."""
    path = config_source(Path(rootdir))
    if path is None:
        return {}
    data = _read(path)
    table = data if path.name == "drills.toml" else data["tool"]["drills"]
    if not isinstance(table, dict):
        raise ConfigError(f"[tool.drills] in {path} must be a table, not {type(table).__name__}")
    return table
