"""Recovery read from the chain (harness.checks.recovery): each rule seen holding and failing."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from harness.checks.recovery import BAND_FLOOR_S, Band, latency_band, recovery

AGENT = "0xAbC0000000000000000000000000000000000001"
OTHER = "0xdef0000000000000000000000000000000000002"


@dataclass
class E:
    id: int
    opened_t: float
    proven_t: float | None = None
    state: str = "open"
    deadline: int = 10_000
    agent: str = AGENT

    def __post_init__(self) -> None:
        if self.proven_t is not None:
            self.state = "proven"


BAND = Band(1.0, (0.3, 0.5))


def test_band_is_twice_the_slowest_steady_proof_with_a_floor() -> None:
    escrows = [E(1, 0.0, 0.9), E(2, 1.0, 1.2), E(3, 5.0, 9.0), E(4, 0.5, 0.6, agent=OTHER)]
    band = latency_band(escrows, {AGENT}, t_start=0.0, t0=3.0)
    assert band.samples == pytest.approx((0.2, 0.9))  # escrow 3 was proven after the injection, 4 is not the agent's
    assert band.seconds == pytest.approx(1.8)
    assert latency_band([E(1, 0.0, 0.1)], {AGENT}, t_start=0.0, t0=3.0).seconds == BAND_FLOOR_S
    assert latency_band([], {AGENT}, t_start=0.0, t0=3.0).seconds == BAND_FLOOR_S
    # a real-time drill (time scale 20) widens the floor, not a band its steady state made wider
    slow = latency_band([E(1, 0.0, 0.65)], {AGENT}, t_start=0.0, t0=3.0, time_scale=20.0)
    assert slow.seconds == 20 * BAND_FLOOR_S and slow.to_json()["rule"].startswith("max(20 s,")
    assert latency_band([E(1, 0.0, 15.0)], {AGENT}, t_start=0.0, t0=30.0, time_scale=20.0).seconds == 30.0


def test_recovered_at_the_first_of_two_in_band_proofs_after_the_heal() -> None:
    escrows = [E(1, 0.0, 0.3), E(2, 10.2, 10.5), E(3, 11.2, 11.4)]
    r = recovery(escrows, {AGENT}, since=10.0, now=12.0, head_ts=0, band=BAND)
    assert r.ok and r.t == pytest.approx(10.5)
    assert r.run == (2, 3) and r.backlog == ()


def test_one_in_band_proof_is_not_enough_and_says_so() -> None:
    r = recovery([E(2, 10.2, 10.5)], {AGENT}, since=10.0, now=10.8, head_ts=0, band=BAND)
    assert not r.ok and r.t is None
    assert "1 of 2 new escrow(s) proven within the 1.00 s band" in r.seen


def test_an_open_backlog_escrow_holds_recovery_back_until_it_is_proven() -> None:
    backlog = E(1, 5.0)  # opened during the fault, still open and not yet due
    new = [E(2, 10.2, 10.5), E(3, 11.2, 11.4)]
    r = recovery([backlog, *new], {AGENT}, since=10.0, now=12.0, head_ts=100, band=BAND)
    assert not r.ok and r.backlog_open == (1,)
    assert "backlog 1 escrow(s), 1 still open" in r.seen
    backlog.proven_t, backlog.state = 13.0, "proven"
    r = recovery([backlog, *new], {AGENT}, since=10.0, now=13.1, head_ts=100, band=BAND)
    assert r.ok and r.t == pytest.approx(13.0)  # the last backlog proof, later than the in-band run


def test_a_backlog_escrow_past_its_deadline_does_not_block_recovery() -> None:
    overdue = E(1, 5.0, deadline=50)
    r = recovery([overdue, E(2, 10.2, 10.5), E(3, 11.2, 11.4)], {AGENT}, since=10.0, now=12.0, head_ts=60, band=BAND)
    assert r.ok and r.backlog == (1,) and r.backlog_open == ()


def test_a_late_proof_restarts_the_run_so_a_slow_resume_moves_the_time() -> None:
    # the agent idles 5 s after the heal: escrows 2 and 3 are proven late, 4 and 5 in band
    escrows = [E(2, 10.1, 15.2), E(3, 11.1, 15.3), E(4, 15.5, 15.7), E(5, 16.5, 16.6)]
    r = recovery(escrows, {AGENT}, since=10.0, now=17.0, head_ts=0, band=BAND)
    assert r.ok and r.late == (2, 3) and r.run == (4, 5)
    assert r.t == pytest.approx(15.7)
    prompt = [E(2, 10.1, 10.3), E(3, 11.1, 11.3)]
    assert recovery(prompt, {AGENT}, since=10.0, now=12.0, head_ts=0, band=BAND).t == pytest.approx(10.3)


def test_an_escrow_left_open_past_the_band_counts_as_late() -> None:
    escrows = [E(2, 10.1), E(3, 10.6, 10.8)]
    assert recovery(escrows, {AGENT}, since=10.0, now=10.9, head_ts=0, band=BAND).run == (3,)  # 2 pending, within the band
    escrows.append(E(4, 11.1, 11.2))
    r = recovery(escrows, {AGENT}, since=10.0, now=11.5, head_ts=0, band=BAND)
    assert r.late == (2,) and r.run == (3, 4) and r.ok


def test_no_new_work_is_no_recovery() -> None:
    r = recovery([E(1, 0.0, 0.3)], {AGENT}, since=10.0, now=30.0, head_ts=0, band=BAND)
    assert not r.ok and "no escrow opened since recovery could start" in r.seen


def test_other_agents_escrows_are_ignored_and_need_is_checked() -> None:
    r = recovery([E(2, 10.2, 10.5, agent=OTHER), E(3, 11.2, 11.4, agent=OTHER)], {AGENT}, since=10.0, now=12.0,
                 head_ts=0, band=BAND)
    assert not r.ok
    with pytest.raises(ValueError, match="need must be at least 1"):
        recovery([], {AGENT}, since=0.0, now=1.0, head_ts=0, band=BAND, need=0)
