"""The built-in drills: collected in any project, selectable by family and playbook.

The drills of this repository's ``scenarios/`` ship in the package as ``agent_drills_catalogue``.
Whether a run collects them (``--drill-catalogue``, default ``auto``):

- ``auto``: when the run asks for drills (``-m`` names ``drill``, not as ``not drill``; or
  ``--agent-cmd`` / ``--agent-image`` is given) and the command line names no path or node id
  (naming paths means "only these");
- ``yes``: always, beside whatever the command line names;
- ``no``: never.

A catalogue already among the run's paths (this repository's ``testpaths`` holds ``scenarios/``,
its source) is never added a second time.

Every drill, built-in or a project's own, carries its ``family`` and ``playbook`` as markers of
their own (``-`` becomes ``_``), so ``-m "drill and wallet_compromise"`` or ``-m "drill and network"``
selects a playbook or a family. The project's ``[tool.drills.scenarios.<name>]`` tables must name a
drill (built-in or collected in this run), else the run stops at start with a suggestion.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.errors import UnknownScenarioError

__all__ = ["CATALOGUE_PACKAGE", "Catalogue", "is_drill", "load_catalogue", "marker_name", "rerun_selector"]

CATALOGUE_PACKAGE = "agent_drills_catalogue"

_ADDED = pytest.StashKey[Path | None]()
_MARKERS = pytest.StashKey[set[str]]()


@dataclass(frozen=True)
class Catalogue:
    """The installed catalogue: its directory, its drill modules, and what they declare."""

    root: Path
    files: tuple[Path, ...]
    drills: frozenset[str]  # test function names
    families: frozenset[str]
    playbooks: frozenset[str]


def marker_name(label: str) -> str:
    """The marker a family or playbook label becomes: ``process-crash`` -> ``process_crash``."""
    name = re.sub(r"\W+", "_", str(label).strip()).strip("_").lower()
    return f"_{name}" if name[:1].isdigit() else name


@functools.cache
def load_catalogue() -> Catalogue | None:
    """The catalogue this installation ships, read without importing it; None when it is not installed."""
    spec = importlib.util.find_spec(CATALOGUE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))).resolve()
    files = tuple(sorted(root.glob("test_*.py")))
    drills: set[str] = set()
    labels: dict[str, set[str]] = {"family": set(), "playbook": set()}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                drills.add(node.name)
            elif isinstance(node, ast.Call) and ast.unparse(node.func) == "pytest.mark.drill":
                for kw in node.keywords:
                    if kw.arg in labels and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                        labels[kw.arg].add(kw.value.value)
    return Catalogue(root, files, frozenset(drills), frozenset(labels["family"]), frozenset(labels["playbook"]))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("drills")
    group.addoption("--drill-catalogue", dest="drill_catalogue", choices=("auto", "yes", "no"), default="auto",
                    help="collect the built-in drills: auto (default: when -m names drill or an agent option is given, "
                         "and no path is named), yes (also beside named paths), no")


def _asks_for_drills(config: pytest.Config) -> bool:
    expr = config.getoption("markexpr") or ""
    named = re.search(r"(?<![\w.])drill(?![\w.])", expr) is not None
    negated = re.search(r"\bnot\s+drill(?![\w.])", expr) is not None
    return (named and not negated) or bool(config.getoption("agent_cmd", None)) or bool(config.getoption("agent_image", None))


def _arg_paths(config: pytest.Config) -> list[Path]:
    base = config.invocation_params.dir
    return [(base / str(arg).split("::", 1)[0]).resolve() for arg in config.args]


def _already_collected(config: pytest.Config, root: Path) -> bool:
    return any(root == p or root.is_relative_to(p) or p.is_relative_to(root) for p in _arg_paths(config))


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    catalogue = load_catalogue()
    config.stash[_MARKERS] = set()
    for label in sorted(catalogue.families | catalogue.playbooks) if catalogue is not None else ():
        _register(config, label)
    config.stash[_ADDED] = None
    mode = config.getoption("drill_catalogue", "auto")
    if mode == "no" or (mode == "auto" and (config.args_source == pytest.Config.ArgsSource.ARGS or not _asks_for_drills(config))):
        return
    if catalogue is None:
        raise pytest.UsageError(
            f"the built-in drills are not installed (no package {CATALOGUE_PACKAGE}): reinstall agent-drills "
            "(pip install --force-reinstall agent-drills, or pip install -e . in a checkout), or pass --drill-catalogue=no"
        )
    if _already_collected(config, catalogue.root):
        return
    config.args.append(str(catalogue.root))
    config.stash[_ADDED] = catalogue.root


def _register(config: pytest.Config, label: str) -> str:
    """Register the marker of a family or playbook label (once) and return its name."""
    name = marker_name(label)
    if name not in config.stash[_MARKERS]:
        config.stash[_MARKERS].add(name)
        config.addinivalue_line("markers", f"{name}: the drills whose family or playbook is {label!r}")
    return name


def pytest_report_header(config: pytest.Config) -> str | None:
    root = config.stash.get(_ADDED, None)
    if root is None:
        return None
    return f"agent-drills: built-in drills from {root} (--drill-catalogue=no leaves them out)"


def is_drill(item: pytest.Item) -> bool:
    """A drill: marked ``drill``, or taking the ``drill`` fixture (the one test of what a run holds)."""
    return item.get_closest_marker("drill") is not None or "drill" in getattr(item, "fixturenames", ())


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Before -m and -k select: family and playbook markers on every drill, and the scenario tables checked."""
    drills = [item for item in items if is_drill(item)]
    for item in drills:
        marker = item.get_closest_marker("drill")
        for key in ("family", "playbook"):
            label = marker.kwargs.get(key) if marker is not None else None
            if isinstance(label, str) and label.strip():
                item.add_marker(_register(config, label))
    from harness.drill.pytest_plugin import drills_config

    catalogue = load_catalogue()
    known = {getattr(item, "originalname", item.name) for item in drills} | (catalogue.drills if catalogue else set())
    try:
        drills_config(config).check_scenarios(known)
    except UnknownScenarioError as exc:
        if config.args_source != pytest.Config.ArgsSource.ARGS:
            raise pytest.UsageError(str(exc)) from None
        # Paths were named: the drill may be one of the project's that this run did not collect.
        warnings.warn(pytest.PytestConfigWarning(f"{exc} (only the paths named on the command line were collected)"),
                      stacklevel=1)


def rerun_selector(item: pytest.Item) -> list[str]:
    """The arguments that select ``item`` again: its node id, or for a built-in drill outside the
    rootdir (an installed catalogue) its module path, which ``--pyargs`` finds wherever it is installed."""
    catalogue = load_catalogue()
    path = Path(item.path).resolve()
    if catalogue is None or not path.is_relative_to(catalogue.root) or path.is_relative_to(item.config.rootpath.resolve()):
        return [item.nodeid]
    return ["--pyargs", f"{CATALOGUE_PACKAGE}.{path.stem}::{item.name}"]
