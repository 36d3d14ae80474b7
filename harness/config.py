"""Where drill configuration comes from: ``drills.toml`` or ``[tool.drills]`` in ``pyproject.toml``.

``drills.toml`` in the pytest rootdir wins over ``pyproject.toml``: when it exists, a ``[tool.drills]``
table in ``pyproject.toml`` is not read at all (the two are never merged). In ``drills.toml`` the keys
may sit at the top level or under the same ``[tool.drills]`` headers as in ``pyproject.toml``, so a
block can be moved between the files unchanged; mixing the two forms in one file is refused. This
module only finds and parses the table; each concern (chain, budgets, reports) validates its own keys.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from harness.errors import ConfigError

__all__ = ["load_drills_table", "config_source", "shadowed_source"]


def config_source(rootdir: Path) -> Path | None:
    """The file the drill configuration is read from, or None when there is none."""
    for name in ("drills.toml", "pyproject.toml"):
        path = Path(rootdir) / name
        if path.is_file():
            if name == "pyproject.toml" and "drills" not in _read(path).get("tool", {}):
                continue
            return path
    return None


def shadowed_source(rootdir: Path) -> Path | None:
    """``pyproject.toml`` when it holds a ``[tool.drills]`` table that ``drills.toml`` overrides, else None."""
    drills, pyproject = Path(rootdir) / "drills.toml", Path(rootdir) / "pyproject.toml"
    if drills.is_file() and pyproject.is_file() and "drills" in _read(pyproject).get("tool", {}):
        return pyproject
    return None


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}; fix the file or remove it") from exc


def _drills_toml_table(path: Path, data: dict[str, Any]) -> Any:
    """The table of ``drills.toml``: its top level, or its ``[tool.drills]`` when written that way."""
    tool = data.get("tool")
    if tool is None:
        return data
    if not isinstance(tool, dict) or set(tool) != {"drills"}:
        others = sorted(set(tool) - {"drills"}) if isinstance(tool, dict) else []
        raise ConfigError(
            f"{path}: only [tool.drills] may appear under [tool] in drills.toml, found "
            f"{', '.join(f'[tool.{k}]' for k in others) or repr(tool)}; move other tools' settings to pyproject.toml"
        )
    rest = sorted(k for k in data if k != "tool")
    if rest:
        raise ConfigError(
            f"{path} mixes top-level keys ({', '.join(rest)}) with a [tool.drills] table; "
            "write every key under [tool.drills] or every key at the top level, not both"
        )
    return tool["drills"]


def load_drills_table(rootdir: Path) -> dict[str, Any]:
    """The drill configuration table (empty when the project has none)."""
    path = config_source(Path(rootdir))
    if path is None:
        return {}
    data = _read(path)
    table = _drills_toml_table(path, data) if path.name == "drills.toml" else data["tool"]["drills"]
    if not isinstance(table, dict):
        raise ConfigError(f"[tool.drills] in {path} must be a table, not {type(table).__name__}")
    return table
