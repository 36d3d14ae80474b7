"""Recovery read from the chain: when the agent was back to doing its work, whatever it said.

Two facts decide it, both from the escrows the chain watcher recorded:

* the **backlog** — escrows of the agent that were open when recovery could start (the last heal,
  or the injection for a fault that is never healed) — is cleared: each one proven, or past its
  deadline (a miss, which the deadline invariant counts, not a reason to wait forever);
* **new work** — escrows opened since then — is proven within the latency band measured in the
  steady state before the injection: ``need`` of them in a row, with none late after them.

The recovery time is the later of the two: the last backlog proof, and the first proof of that
in-band run. The agent's ``resolved`` alert and its ``/health`` are claims recorded beside this
time; they do not move it. The workload's rate is a recorded setting of the drill and moves the
time only by when the first new escrow opens, not by how many proofs a ramp needs.

Pure functions over escrow records, so an engine test can make every rule fail.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from statistics import median
from typing import Protocol

__all__ = ["BAND_FLOOR_S", "BAND_FACTOR", "Band", "Recovery", "latency_band", "recovery"]

#: the band is never narrower than this: the watcher polls every 0.2 s and a block may hold the
#: proof one poll after the escrow, so shorter latencies are noise
BAND_FLOOR_S = 1.0
#: the band is this many times the slowest steady-state proof
BAND_FACTOR = 2.0


class EscrowLike(Protocol):
    id: int
    agent: str
    deadline: int
    state: str
    opened_t: float
    proven_t: float | None


@dataclass(frozen=True)
class Band:
    """How long after its opening a proof may land and still count as steady-state work."""

    seconds: float
    samples: tuple[float, ...]  # the steady-state latencies it was measured from
    floor: float = BAND_FLOOR_S  # BAND_FLOOR_S times the drill's time scale

    def to_json(self) -> dict[str, object]:
        return {"seconds": round(self.seconds, 3), "samples": [round(x, 3) for x in self.samples],
                "median": round(median(self.samples), 3) if self.samples else None,
                "rule": f"max({self.floor:g} s, {BAND_FACTOR:g} x the slowest steady-state proof)"}


def latency_band(escrows: Iterable[EscrowLike], agents: set[str], *, t_start: float, t0: float,
                 time_scale: float = 1.0) -> Band:
    """The band from the escrows opened and proven between the drill's start and the injection.

    At a time scale F (a real-time drill, ``--drill-time-scale``) the floor is F times wider: an
    agent on its real intervals ticks seconds apart, and the two or three steady-state proofs a
    slow workload gives are too few to show how far apart."""
    lows = {a.lower() for a in agents}
    samples = tuple(sorted(
        e.proven_t - e.opened_t for e in escrows
        if e.agent.lower() in lows and e.proven_t is not None and t_start <= e.opened_t and e.proven_t <= t0
    ))
    slowest = max(samples, default=0.0)
    floor = BAND_FLOOR_S * time_scale
    return Band(max(floor, BAND_FACTOR * slowest), samples, floor)


@dataclass(frozen=True)
class Recovery:
    ok: bool
    t: float | None  # when the chain shows recovery (None: not yet)
    seen: str  # what was seen, for a failure message
    backlog: tuple[int, ...] = ()  # escrow ids open when recovery could start
    backlog_open: tuple[int, ...] = ()  # of those, still open and not yet due
    backlog_cleared_t: float | None = None
    run: tuple[int, ...] = ()  # new escrows proven within the band, in a row
    late: tuple[int, ...] = field(default=())  # new escrows proven late, or open past the band

    def to_json(self, t0: float) -> dict[str, object]:
        rel = (lambda t: None if t is None else round(t - t0, 3))
        return {"backlog": list(self.backlog), "backlog_cleared_rel_s": rel(self.backlog_cleared_t),
                "in_band_run": list(self.run), "late": list(self.late), "recovered_rel_s": rel(self.t)}


def recovery(escrows: Sequence[EscrowLike], agents: set[str], *, since: float, now: float, head_ts: int,
             band: Band, need: int = 2) -> Recovery:
    """Whether (and since when) the chain shows the agent recovered; see the module docstring.

    ``since``: when recovery could start (the last heal, else the injection). ``head_ts``: the
    chain's latest block timestamp, against which deadlines are due.
    """
    if need < 1:
        raise ValueError(f"need must be at least 1, got {need}")
    lows = {a.lower() for a in agents}
    mine = [e for e in escrows if e.agent.lower() in lows]
    backlog = [e for e in mine if e.opened_t < since and not (e.proven_t is not None and e.proven_t < since)]
    still_open = [e for e in backlog if e.state == "open" and e.deadline >= head_ts]
    proofs = [e.proven_t for e in backlog if e.proven_t is not None]
    cleared_t = None if still_open else max(proofs, default=since)

    new = sorted((e for e in mine if e.opened_t >= since), key=lambda e: (e.opened_t, e.id))
    run: list[EscrowLike] = []
    late: list[EscrowLike] = []
    for e in new:
        if e.proven_t is not None and e.proven_t - e.opened_t <= band.seconds:
            run.append(e)
        elif e.proven_t is not None or e.state == "expired" or now - e.opened_t > band.seconds:
            late.append(e)
            run = []  # only in-band work after the last late one counts
        # else: still open and within the band; it neither counts nor breaks the run yet
    parts = [f"backlog {len(backlog)} escrow(s), {len(still_open)} still open"]
    parts.append(f"{len(run)} of {need} new escrow(s) proven within the {band.seconds:.2f} s band"
                 + (f", {len(late)} late" if late else ""))
    if not new:
        parts.append("no escrow opened since recovery could start")
    ok = cleared_t is not None and len(run) >= need
    t = None
    if ok:
        first = min(e.proven_t for e in run if e.proven_t is not None)
        t = max(cleared_t, first) if cleared_t is not None else first
    return Recovery(
        ok=ok, t=t, seen="; ".join(parts), backlog=tuple(e.id for e in backlog),
        backlog_open=tuple(e.id for e in still_open), backlog_cleared_t=cleared_t,
        run=tuple(e.id for e in run), late=tuple(e.id for e in late),
    )
