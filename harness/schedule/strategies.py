"""Hypothesis strategies over fault schedules: what the search draws, and what shrinking simplifies.

``schedules()`` draws ``min_steps`` to ``max_steps`` steps from a registry of ``FaultSpec``s: a fault, its
parameters, when it starts and how long it holds; every step after the first starts while an
earlier one is held (at any point of its busy window alike: while it is at work on the agent, a
climbing gas spike while transactions are stranded; else of its hold), and is another fault than the one it overlaps
when the search has more than one, so the faults combine. Times are whole or half seconds (a finer grid
buys nothing against an agent whose intervals are tenths of seconds, and costs the shrinker). Steps
that would hold one resource at once are moved apart: the later one starts when the earlier is
healed, so every schedule drawn passes ``Schedule.check``.

Shrinking moves towards fewer steps, the registry's first faults, the first value of each
parameter, earlier starts and shorter holds (each fault's ``min_hold``): a failure found with three overlapping faults ends up as the one
or two that matter. Users pass their own registry to search their own faults.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hypothesis import strategies as st

from harness.errors import UsageError
from harness.schedule.model import FAULTS, FaultSpec, Schedule, Step

__all__ = ["schedules", "steps"]

_GRID = 0.5


def _seconds(low: float, high: float) -> st.SearchStrategy[float]:
    return st.integers(int(round(low / _GRID)), int(round(high / _GRID))).map(lambda n: n * _GRID)


@st.composite
def steps(draw: Any, *, registry: Mapping[str, FaultSpec] | None = None, faults: Sequence[str] | None = None,
          latest_start: float = 6.0, longest_hold: float = 10.0) -> Step:
    """One step: a fault of ``faults`` (default: all of the registry), its parameters, start and hold."""
    registry = FAULTS if registry is None else registry
    names = list(faults) if faults is not None else list(registry)
    if not names:
        raise UsageError("steps() needs at least one fault to draw from")
    missing = [n for n in names if n not in registry]
    if missing:
        raise UsageError(f"unknown fault(s) {', '.join(missing)}; known: {', '.join(sorted(registry))}")
    spec = registry[draw(st.sampled_from(names))]
    params = {k: draw(st.sampled_from(values)) for k, values in spec.params.items() if len(values) > 1}
    params.update({k: values[0] for k, values in spec.params.items() if len(values) == 1})
    at = draw(_seconds(0, latest_start))
    longest = longest_hold if spec.max_hold is None else min(longest_hold, spec.max_hold)
    hold = draw(_seconds(spec.min_hold, max(spec.min_hold, longest)))
    return Step(fault=spec.name, params=params, at=at, hold=hold)


def _separate(drawn: list[Step], registry: Mapping[str, FaultSpec]) -> tuple[Step, ...]:
    """Move each step that would share a held resource with an earlier one to after its heal (and its rest)."""
    placed: list[Step] = []
    for step in sorted(drawn, key=lambda s: s.at):
        mine = set(registry[step.fault].holds(step.params))
        clash = [p.heal_at + max(registry[p.fault].rest, registry[step.fault].rest)
                 for p in placed if mine & set(registry[p.fault].holds(p.params))]
        start = max([step.at, *clash])
        placed.append(step if start == step.at else Step(fault=step.fault, params=step.params, at=start, hold=step.hold))
    return tuple(placed)


def _offsets(spec: FaultSpec, hold: float) -> list[float]:
    """Where into a step of ``spec`` held ``hold`` seconds a later step may start: its busy window, if any."""
    every = [n * _GRID for n in range(max(1, int(hold / _GRID)))]
    if spec.busy is None:
        return every
    low, high = spec.busy
    return [t for t in every if low <= t <= high] or every


@st.composite
def _overlapping(draw: Any, *, registry: Mapping[str, FaultSpec], faults: Sequence[str] | None, min_steps: int,
                 max_steps: int, latest_start: float, longest_hold: float) -> Schedule:
    names = list(faults) if faults is not None else list(registry)
    first = draw(steps(registry=registry, faults=names, latest_start=latest_start, longest_hold=longest_hold))
    drawn = [first]
    for _ in range(draw(st.integers(min_steps - 1, max_steps - 1))):
        # a later step starts while an earlier one is active, and is another fault when there is one:
        # combinations of different faults are what single-fault drills miss
        anchor = drawn[draw(st.integers(0, len(drawn) - 1))]
        others = [n for n in names if n != anchor.fault] or names
        step = draw(steps(registry=registry, faults=others, latest_start=0, longest_hold=longest_hold))
        # any point of the anchor's busy window (else of its hold) alike: integers() would favour its first
        # instants, when a climbing fault has done nothing yet
        offset = draw(st.sampled_from(_offsets(registry[anchor.fault], anchor.hold)))
        drawn.append(Step(fault=step.fault, params=step.params, at=anchor.at + offset, hold=step.hold))
    return Schedule(steps=_separate(drawn, registry)).check(registry)


def schedules(*, registry: Mapping[str, FaultSpec] | None = None, faults: Sequence[str] | None = None,
              min_steps: int = 1, max_steps: int = 3, latest_start: float = 4.0,
              longest_hold: float = 10.0) -> st.SearchStrategy[Schedule]:
    """Schedules of ``min_steps`` to ``max_steps`` steps over ``faults`` of ``registry`` (see the module docstring).

    The first step starts within ``latest_start`` seconds of steady state; each further step starts
    while an earlier one is held (inside its busy window, when its ``FaultSpec`` has one), so every
    schedule of two steps or more overlaps. ``min_steps=2`` leaves out single faults (the catalogue's
    drills have them): every example is a combination.
    """
    if not 1 <= min_steps <= max_steps:
        raise UsageError(f"schedules() needs 1 <= min_steps <= max_steps, got min_steps={min_steps}, max_steps={max_steps}")
    reg = FAULTS if registry is None else registry
    unknown = [f for f in faults or () if f not in reg]
    if unknown or (faults is not None and not faults):
        raise UsageError(f"schedules(faults=...): unknown fault(s) {', '.join(unknown) or '(none given)'}; "
                         f"known: {', '.join(reg)}")
    return _overlapping(registry=reg, faults=faults, min_steps=min_steps, max_steps=max_steps, latest_start=latest_start,
                        longest_hold=longest_hold)
