"""Carry out a fault schedule in a drill, then judge what must hold whatever the schedule was.

``run_schedule(drill, schedule)`` waits for steady state, injects and heals each step at its offset
(the planned and the actual offsets are recorded: a thread's wake-up is not deterministic), and
then checks, in order:

1. every step whose fault showed was detected: an incident of its kind reported within its budget
   of the moment the fault first showed (its ``FaultSpec.shown``: the injection for most), or one of
   that kind already open then (two overlapping faults of one kind make one incident);
2. recovery on chain after the last heal, within the recovery budget counted from that heal;
3. every invariant (funds accounted for, no escrow proven twice, no nonce gap, deadlines within
   the allowance, gradual resumption, no key in any output): ``drill.verify()``. The allowance of
   missed deadlines grows by the escrows that were open while two faults or more acted at once
   (``_excuse_overlap_misses``): the single-fault drills hold the agent to each fault alone.

A failure raises the drill's own exceptions (``DetectionMissed``, ``RecoveryFailed``,
``InvariantBroken``), so a schedule drill is judged and recorded like any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from harness import clock
from harness.checks.metrics import incidents
from harness.errors import DetectionMissed
from harness.schedule.model import FAULTS, FaultSpec, Schedule

if TYPE_CHECKING:
    from harness.drill.api import Drill
    from harness.faults.base import Fault

__all__ = ["ScheduleRun", "run_schedule"]


@dataclass(eq=False)
class ScheduleRun:
    """What happened while a schedule ran: each step's fault and its actual offsets."""

    schedule: Schedule
    faults: list[Fault | None] = field(default_factory=list)
    injected: list[float | None] = field(default_factory=list)  # timeline times
    healed: list[float | None] = field(default_factory=list)
    base: float = 0.0


def run_schedule(drill: Drill, schedule: Schedule, *, registry: Mapping[str, FaultSpec] | None = None) -> ScheduleRun:
    """Carry out ``schedule`` in ``drill`` and judge it (see the module docstring)."""
    registry = FAULTS if registry is None else registry
    schedule.check(registry)
    n = len(schedule.steps)
    run = ScheduleRun(schedule=schedule, faults=[None] * n, injected=[None] * n, healed=[None] * n)
    drill.steady_state()
    run.base = clock.now()
    drill.timeline.record("schedule.start", "schedule", schedule=schedule.to_json(), steps=n)
    for offset, action, i in schedule.actions():
        drill.pause(run.base + offset - clock.now())
        step = schedule.steps[i]
        if action == "inject":
            fault = drill.inject(registry[step.fault].make(step.params))
            run.faults[i] = fault
            run.injected[i] = fault.injected_at.t if fault.injected_at else clock.now()
            actual = run.injected[i]
        else:
            fault = run.faults[i]
            assert fault is not None
            drill.heal(fault)
            run.healed[i] = fault.healed_at.t if fault.healed_at else clock.now()
            actual = run.healed[i]
        drill.timeline.record("schedule.step", "schedule", step=i, action=action, fault=step.fault,
                              planned=offset, actual=round((actual or clock.now()) - run.base, 3))
    _judge_detection(drill, run, registry)
    t0 = drill.t0 if drill.t0 is not None else run.base
    last_heal = max((t for t in run.healed if t is not None), default=clock.now())
    # the recovery budget counts from the last heal; expect_recovery counts from t0 and scales what it is given
    drill.expect_recovery(within=(last_heal - t0 + drill.budget.recover) / drill.budget.scale)
    _excuse_overlap_misses(drill, run)
    drill.verify()
    return run


def _overlaps(run: ScheduleRun) -> list[tuple[float, float]]:
    """The times (timeline seconds) when two steps or more were active at once."""
    spans = [(a, h if h is not None else clock.now()) for a, h in zip(run.injected, run.healed) if a is not None]
    out = []
    for i, (a1, h1) in enumerate(spans):
        for a2, h2 in spans[i + 1:]:
            if max(a1, a2) < min(h1, h2):
                out.append((max(a1, a2), min(h1, h2)))
    return out


def _excuse_overlap_misses(drill: Drill, run: ScheduleRun) -> None:
    """Allow the deadlines missed by escrows that were open while two faults or more acted at once.

    Each single-fault drill holds the agent to no missed deadline; faults together can leave no time
    to prove an escrow whatever the agent does (a revert storm, then a climbing gas spike before its
    backlog is cleared, with blocks every 2 s from a dropped-transaction fault before it). An escrow
    that missed its deadline is excused when it was opened before the last moment faults overlapped
    (so it was open while they did); any other miss still counts. What was excused is on the timeline
    (``schedule.allowance``) and in the invariant's allowance."""
    from harness.checks.invariants import deadline_misses

    windows = _overlaps(run)
    if not windows or drill.ctx.watcher is None:
        return
    drill.ctx.watcher.poll_once()
    missed = deadline_misses(drill.ctx)
    ids = set(missed.expired) | set(missed.overdue) | set(missed.left_behind)
    last = max(end for _, end in windows)
    with drill.ctx.watcher.lock:
        excused = sorted(i for i in ids if drill.ctx.watcher.escrows[i].opened_t <= last)
    if excused:
        drill.budget = replace(drill.budget, deadline_misses=drill.budget.deadline_misses + len(excused))
        drill.timeline.record("schedule.allowance", "schedule", escrows=excused,
                              overlaps=[[round(a - run.base, 3), round(b - run.base, 3)] for a, b in windows],
                              reason="open while two faults or more acted at once")


def _judge_detection(drill: Drill, run: ScheduleRun, registry: Mapping[str, FaultSpec]) -> None:
    """Wait out each acting step's detection budget; raise ``DetectionMissed`` naming every step not detected."""
    checks = []
    for i, step in enumerate(run.schedule.steps):
        spec, fault, t_inj = registry[step.fault], run.faults[i], run.injected[i]
        if fault is None or t_inj is None:
            continue
        t_heal = run.healed[i] if run.healed[i] is not None else clock.now()
        shown = spec.shown(fault, drill, t_inj, t_heal)
        if shown is None:
            drill.timeline.record("schedule.not_judged", "schedule", step=i, fault=step.fault,
                                  reason="on the evidence, the fault did nothing an agent could detect (a kill while "
                                         "it was down, a spike while nothing was sent)")
            continue
        within = (spec.detect * drill.budget.scale) if spec.detect is not None else drill.budget.detect
        checks.append((i, step, spec, shown, within))
    if not checks:
        return
    drill.pause(max(t + w for *_, t, w in checks) - clock.now())
    missed = []
    alerts = drill.timeline.events("alert")
    for i, step, spec, shown, within in checks:
        open_then = [inc for inc in incidents([e for e in alerts if e.t <= shown])
                     if inc.kind == spec.incident and inc.open]
        new = [e for e in alerts if e.data.get("kind") == spec.incident and shown <= e.t <= shown + within]
        after = round(shown - run.injected[i], 3) if run.injected[i] is not None else 0.0
        if open_then or new:
            at = round(new[0].t - shown, 3) if new else 0.0
            drill.timeline.record("schedule.detected", "schedule", step=i, fault=step.fault, kind=spec.incident,
                                  mttd=at, shown_s=after, already_open=bool(open_then))
        else:
            when = "its injection" if after == 0 else f"it showed ({after:.1f} s after its injection)"
            missed.append(f"step {i + 1} {step.label()}: no {spec.incident} incident within {within:.1f} s "
                          f"of {when}, and none open then")
    if missed:
        raise DetectionMissed("; ".join(missed))
