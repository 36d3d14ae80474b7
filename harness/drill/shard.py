"""``--drill-shard I/N``: this run takes the I-th of N parts of the selected drills, even by recorded time.

Each selected test weighs its recorded wall time (setup, drill and teardown): the median ``wall_s`` of
its last runs on this chain backend in the history (``<report dir>/history.jsonl``). A test the
history does not know weighs the median of the known weights, or 1 when none is known, so a run
without history is split evenly by count. Tests are dealt heaviest first (equal weights in node-id
order), each to the part with the least weight so far (ties to the lower part): every shard that
reads the same history and selects the same tests computes the same parts, and each test is in
exactly one of them. A shard's run writes its report directory but not the history;
``drill report merge`` joins the shards' directories into one run, appends it to the history and
applies the regression gate (docs/ci.md).

In a pytest-xdist worker the same weights order the tests, heaviest first, so the longest drills
start first and the workers finish close together (the order a serial run collects them in is
kept in ``COLLECTED_AT``: the report lists the drills in it whatever order they ran in).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from harness.errors import UsageError

__all__ = ["COLLECTED_AT", "Shard", "parse_shard", "weights_from_history", "split"]

_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")
_PLAN = pytest.StashKey["Plan"]()
#: a test's position in the collection before this module reorders it (the report's order)
COLLECTED_AT = pytest.StashKey[int]()


@dataclass(frozen=True, kw_only=True)
class Shard:
    """Part ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 1 <= self.index <= self.count:
            raise UsageError(f"--drill-shard {self.index}/{self.count}: the part must be 1..N and N at least 1, "
                             "e.g. --drill-shard 1/2 and --drill-shard 2/2")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class Plan:
    shard: Shard
    kept: int
    selected: int
    seconds: float
    known: int


def parse_shard(text: str) -> Shard:
    """``"2/3"`` -> ``Shard(index=2, count=3)``; anything else is a ``UsageError`` that shows the form."""
    m = _SHARD.fullmatch(text or "")
    if m is None:
        raise UsageError(f"--drill-shard expects I/N (this run's part and the number of parts), e.g. 1/2, got {text!r}")
    return Shard(index=int(m.group(1)), count=int(m.group(2)))


def weights_from_history(entries: Sequence[Mapping[str, Any]], chain_backend: str | None) -> dict[str, float]:
    """Node id -> median recorded wall seconds over its last runs on ``chain_backend`` (history order)."""
    from harness.report.history import WINDOW

    walls: dict[str, list[float]] = {}
    for e in entries:
        wall = e.get("wall_s")
        if not isinstance(wall, (int, float)) or wall <= 0:
            continue
        if chain_backend is not None and e.get("chain_backend") not in (None, chain_backend):
            continue
        walls.setdefault(str(e.get("name")), []).append(float(wall))
    return {name: statistics.median(values[-WINDOW:]) for name, values in walls.items()}


def split(names: Sequence[str], weights: Mapping[str, float], count: int) -> list[list[str]]:
    """``names`` dealt into ``count`` parts of near-equal total weight (see the module docstring)."""
    known = [weights[n] for n in names if n in weights]
    default = statistics.median(known) if known else 1.0
    weight = {n: weights.get(n, default) for n in names}
    parts: list[list[str]] = [[] for _ in range(count)]
    totals = [0.0] * count
    for name in sorted(set(names), key=lambda n: (-weight[n], n)):
        lightest = min(range(count), key=lambda i: (totals[i], i))
        parts[lightest].append(name)
        totals[lightest] += weight[name]
    return parts


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("drills", "agent-drills: the drill engine")
    group.addoption("--drill-shard", dest="drill_shard", default=None, metavar="I/N",
                    help="run only part I of N of the selected drills, split evenly by the durations recorded in "
                         "the history (one shard per machine; join them with `drill report merge`)")


def pytest_configure(config: pytest.Config) -> None:
    text = config.getoption("drill_shard")
    if text is None:
        return
    try:
        parse_shard(text)
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    for n, item in enumerate(items):
        item.stash[COLLECTED_AT] = n
    text = config.getoption("drill_shard")
    distributed = hasattr(config, "workerinput")  # an xdist worker: every worker computes the same order
    if not items or (text is None and not distributed):
        return
    weights = _recorded_weights(config)
    known = [weights[item.nodeid] for item in items if item.nodeid in weights]
    if distributed and known:
        default = statistics.median(known)
        items.sort(key=lambda item: (-weights.get(item.nodeid, default), item.stash[COLLECTED_AT]))
    if text is None:
        return
    shard = parse_shard(text)
    names = [item.nodeid for item in items]
    mine = set(split(names, weights, shard.count)[shard.index - 1])
    kept = [item for item in items if item.nodeid in mine]
    dropped = [item for item in items if item.nodeid not in mine]
    default = statistics.median(known) if known else 1.0
    config.stash[_PLAN] = Plan(shard=shard, kept=len(kept), selected=len(items),
                               seconds=sum(weights.get(item.nodeid, default) for item in kept),
                               known=sum(1 for item in kept if item.nodeid in weights))
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = kept


def _recorded_weights(config: pytest.Config) -> dict[str, float]:
    from harness.pytest_chain import chain_backend_of
    from harness.report import history
    from harness.report.pytest_plugin import REPORT

    rs = config.stash.get(REPORT, None)
    if rs is None:
        return {}
    try:
        entries = history.load_history(rs.root / "history.jsonl")
    except UsageError as exc:
        raise pytest.UsageError(f"--drill-shard reads the durations in the history: {exc}") from None
    return weights_from_history(entries, chain_backend_of(config))


def pytest_report_collectionfinish(config: pytest.Config) -> str | None:
    plan = config.stash.get(_PLAN, None)
    if plan is None:
        return None
    return (f"agent-drills: shard {plan.shard}: {plan.kept} of {plan.selected} selected test(s), "
            f"~{plan.seconds:.0f} s by the history ({plan.known} of {plan.kept} with a recorded duration)")
