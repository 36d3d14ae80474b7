"""Fault schedules as data: checked, serialised, ordered; the strategies draw only schedules that make sense."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings

from harness.errors import UsageError
from harness.schedule import FAULTS, FORMAT, FaultSpec, Schedule, Step, register_fault, schedules

CATALOGUE = Path(__file__).resolve().parents[2] / "scenarios" / "schedules"


def test_a_schedule_round_trips_through_json_and_orders_its_actions(tmp_path: Path) -> None:
    s = Schedule(steps=(Step(fault="process_kill", params={"down": 1.0}, at=3, hold=2),
                        Step(fault="rpc_outage", params={"target": "primary"}, at=0, hold=8)), note="why")
    assert s.faults() == ["rpc_outage", "process_kill"]  # kept in the order of injection
    assert s.actions() == [(0, "inject", 0), (3, "inject", 1), (5, "heal", 1), (8, "heal", 0)]
    assert s.end == 8
    again = Schedule.load(s.dump(tmp_path / "s.json"))
    assert again == s and json.loads((tmp_path / "s.json").read_text())["format"] == FORMAT


def test_a_heal_comes_before_an_injection_at_the_same_second() -> None:
    s = Schedule(steps=(Step(fault="gas_spike", at=0, hold=8), Step(fault="dropped_tx", at=8, hold=5))).check()
    assert s.actions()[1:3] == [(8, "heal", 0), (8, "inject", 1)]


@pytest.mark.parametrize("doc, message", [
    ({"steps": []}, 'expected a JSON object with "format": "agent-drills/schedule/1"'),
    ({"format": FORMAT, "steps": []}, "a schedule needs at least one step"),
    ({"format": FORMAT, "steps": [{"fault": "meteor", "at": 0, "hold": 1}]}, "unknown fault 'meteor' in a schedule; known: "),
    ({"format": FORMAT, "steps": [{"fault": "rpc_outage", "at": 0}]}, 'step 1 needs "fault", "at" and "hold"'),
    ({"format": FORMAT, "steps": [{"fault": "rpc_outage", "at": 0, "hold": 2, "when": 1}]}, "unknown key(s) when"),
    ({"format": FORMAT, "steps": [{"fault": "rpc_outage", "at": -1, "hold": 2}]}, "at is a number of seconds >= 0"),
    ({"format": FORMAT, "steps": [{"fault": "rpc_outage", "at": 0, "hold": 0}]}, "hold must be > 0 seconds"),
    ({"format": FORMAT, "steps": [{"fault": "gas_spike", "at": 0, "hold": 2}]}, "needs a hold of at least 8 s"),
    ({"format": FORMAT, "steps": [{"fault": "process_kill", "params": {"down": 7}, "at": 0, "hold": 2}]},
     "down=7 is not one of [0.0, 1.0, 3.0]"),
    ({"format": FORMAT, "steps": [{"fault": "rpc_outage", "params": {"host": "x"}, "at": 0, "hold": 2}]},
     "has no parameter(s) host; it takes target"),
    ({"format": FORMAT, "steps": [{"fault": "gas_spike", "at": 0, "hold": 9}, {"fault": "dropped_tx", "at": 4, "hold": 5}]},
     "schedule steps overlap on mining"),
    ({"format": FORMAT, "steps": [{"fault": "revert_storm", "at": 0, "hold": 6}, {"fault": "revert_storm", "at": 9, "hold": 6}]},
     "starts 3 s after revert_storm() at +0 s, healed at +6 s is healed, on escrow; leave 10 s between them"),
])
def test_a_bad_schedule_file_says_what_is_wrong(tmp_path: Path, doc: dict, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(UsageError) as err:
        Schedule.load(path)
    assert message in str(err.value)


def test_a_file_that_is_not_json_or_missing_says_so(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{")
    with pytest.raises(UsageError, match="is not JSON"):
        Schedule.load(tmp_path / "x.json")
    with pytest.raises(UsageError, match="no schedule file at"):
        Schedule.load(tmp_path / "none.json")


def test_the_committed_schedules_are_valid() -> None:
    files = sorted(CATALOGUE.glob("*.json"))
    assert files, "no committed schedule"
    for f in files:
        assert len(Schedule.load(f).steps) >= 2, f"{f.name}: a regression schedule combines faults"


@settings(max_examples=300, deadline=None)
@given(s=schedules())
def test_drawn_schedules_make_sense_and_overlap(s: Schedule) -> None:
    s.check()  # faults known, parameters allowed, holds long enough, no resource held twice at once
    assert 1 <= len(s.steps) <= 3
    for later in s.steps[1:]:  # every later step starts while an earlier one is held (or right after a clash and its rest)
        assert any(e.at <= later.at <= e.heal_at + max(FAULTS[e.fault].rest, FAULTS[later.fault].rest)
                   for e in s.steps if e is not later)


@settings(max_examples=100, deadline=None)
@given(s=schedules(faults=["process_kill", "rpc_outage"], max_steps=2))
def test_drawn_schedules_keep_to_the_faults_asked_for(s: Schedule) -> None:
    assert set(s.faults()) <= {"process_kill", "rpc_outage"} and len(s.steps) <= 2


@settings(max_examples=100, deadline=None)
@given(s=schedules(faults=["gas_spike", "process_kill"], min_steps=2, max_steps=2))
def test_a_later_step_lands_in_the_busy_window_of_the_fault_it_overlaps(s: Schedule) -> None:
    # min_steps=2: every example is a combination; over a climbing gas spike (busy 3-5 s after its
    # injection, while transactions are stranded) the kill lands inside that window, not anywhere in the hold
    assert len(s.steps) == 2
    first, later = s.steps
    if first.fault == "gas_spike" and later.at > first.at:  # the spike came first: the kill was drawn over it
        low, high = FAULTS["gas_spike"].busy
        assert low <= later.at - first.at <= high, f"{later.label()} is outside the spike's busy window {low}-{high} s"


def test_users_register_their_own_faults_in_a_registry_of_their_own() -> None:
    mine: dict[str, FaultSpec] = {}
    spec = register_fault(FaultSpec(name="disk_full", make=lambda p: None, incident="state_corruption",
                                    params={"share": (1.0, 0.5)}, min_hold=3.0), registry=mine)
    with pytest.raises(UsageError, match="registered already"):
        register_fault(spec, registry=mine)
    with pytest.raises(UsageError, match=r"busy is \(start, end\).*got \(5.0, 3.0\)"):
        register_fault(FaultSpec(name="slow_disk", make=lambda p: None, incident="manual", busy=(5.0, 3.0)), registry=mine)
    with pytest.raises(UsageError, match="a word of letters"):
        register_fault(FaultSpec(name="disk full", make=lambda p: None, incident="manual"), registry=mine)
    assert "disk_full" not in FAULTS

    @settings(max_examples=30, deadline=None)
    @given(s=schedules(registry=mine))
    def drawn(s: Schedule) -> None:
        assert s.faults() == ["disk_full"] * len(s.steps)
        assert all(step.hold >= 3.0 and step.params["share"] in (1.0, 0.5) for step in s.steps)

    drawn()


def test_strategy_mistakes_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="1 <= min_steps <= max_steps"):
        schedules(max_steps=0)
    with pytest.raises(UsageError, match="min_steps=3, max_steps=2"):
        schedules(min_steps=3, max_steps=2)
    with pytest.raises(UsageError, match="unknown fault"):
        schedules(faults=["meteor"])


def test_an_outage_shows_only_while_the_agent_is_there_to_meet_it() -> None:
    # FAULTS["rpc_outage"].shown judges on the supervisor's events: starts and exits of the agent
    from types import SimpleNamespace

    from harness.observe.timeline import Event

    def drill(*events: tuple[str, float]) -> SimpleNamespace:
        evs = [Event(t=t, wall=t, kind=kind, source="runtime") for kind, t in events]
        return SimpleNamespace(timeline=SimpleNamespace(events=lambda kind: [e for e in evs if e.kind == kind]))

    shown = FAULTS["rpc_outage"].shown
    up = drill(("agent.start", 0.0))
    assert shown(None, up, 10.0, 14.0) == 10.0  # running all along: from the injection
    killed_then_back = drill(("agent.start", 0.0), ("agent.exit", 10.1), ("agent.start", 11.0))
    assert shown(None, killed_then_back, 10.0, 14.0) == 11.0  # gone at once, back with 3 s of the outage left
    assert shown(None, killed_then_back, 10.0, 12.5) is None  # back with 1.5 s left: no fair chance to see it
    killed_later = drill(("agent.start", 0.0), ("agent.exit", 13.5), ("agent.start", 14.0))
    assert shown(None, killed_later, 10.0, 16.0) == 10.0  # up for 3.5 s of it before the kill
    # killed 1.5 s in, inside its blip grace, and back with 1 s left (found by an explore run): nothing to see
    in_grace = drill(("agent.start", 0.0), ("agent.exit", 11.5), ("agent.start", 12.0))
    assert shown(None, in_grace, 10.0, 13.0) is None
    assert shown(None, in_grace, 10.0, 15.0) == 12.0  # the restarted agent then meets 3 s of it


def test_a_deadline_missed_while_faults_overlapped_is_excused_and_no_other() -> None:
    # the runner's allowance, on a stand-in of what it reads: the steps' times and the watcher's escrows
    import threading
    from types import SimpleNamespace

    from harness.checks.budgets import Budget
    from harness.observe.chainwatch import EscrowRecord
    from harness.schedule.runner import ScheduleRun, _excuse_overlap_misses, _overlaps

    schedule = Schedule(steps=(Step(fault="dropped_tx", at=0, hold=9), Step(fault="revert_storm", at=4, hold=6),
                               Step(fault="rpc_outage", at=20, hold=2)))
    run = ScheduleRun(schedule=schedule, injected=[100.0, 104.0, 120.0], healed=[109.0, 110.0, 122.0], base=100.0)
    assert _overlaps(run) == [(104.0, 109.0)]  # the outage overlaps nothing
    agent = "0xagent"
    escrows = {1: EscrowRecord(id=1, agent=agent, deadline=0, amount=1, state="expired", opened_t=103.0),
               2: EscrowRecord(id=2, agent=agent, deadline=0, amount=1, state="expired", opened_t=115.0),
               3: EscrowRecord(id=3, agent=agent, deadline=0, amount=1, state="proven", opened_t=105.0, proven_t=106.0)}
    events: list[tuple[str, dict]] = []
    watcher = SimpleNamespace(escrows=escrows, lock=threading.Lock(), head_ts=0, poll_once=lambda: None)
    drill = SimpleNamespace(ctx=SimpleNamespace(watcher=watcher, agent_addresses=[agent]), budget=Budget(),
                            timeline=SimpleNamespace(record=lambda kind, source, **data: events.append((kind, data))))
    _excuse_overlap_misses(drill, run)
    assert drill.budget.deadline_misses == 1  # escrow 1 was open during the overlap; escrow 2 opened after it
    ((kind, data),) = events
    assert kind == "schedule.allowance" and data["escrows"] == [1] and data["overlaps"] == [[4.0, 9.0]]
