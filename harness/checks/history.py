"""Judge a stored run again from its recorded history (``drill check RUN_DIR``).

A drill run leaves ``summary.json``: per drill, the live verdicts and the whole timeline the harness
recorded while it ran. This module takes that record alone — no chain, no agent, no live observer —
and derives each verdict a second time from the timeline, the way a history checker judges a
recorded history:

* **detection**: the first alert of the drill's incident kind at the expected severity or above,
  after the injection, whether it is at exactly that severity (unless the drill passed
  ``at_least=True``) and whether it arrived within the recorded detect budget;
* **recovery**: escrow records rebuilt from the ``escrow.*`` events (and reorgs), replayed in time
  order through :func:`harness.checks.recovery.latency_band` and :func:`~harness.checks.recovery.recovery`
  — the same rules the engine applied live — and the time found compared with ``drill.recovered``
  (within the chain watcher's poll) and with the recover budget;
* **containment**: the recorded containment time against the contain budget (the predicates that
  proved it read live proxies and pools, so they are taken as recorded);
* **invariants** that the timeline holds enough to recompute (no duplicate proof, deadlines within
  allowance, fee bumps, monitoring alive); the others are listed as taken as recorded.

Everything here is a pure function of the parsed ``summary.json``; each judgement says what it
re-derived and, when it cannot, why it took the recorded verdict instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.checks.recovery import Band, latency_band, recovery
from harness.errors import UsageError
from harness.vocabulary import FAILED, PASSED, SEVERITIES, SKIPPED, UNKNOWN

__all__ = [
    "POLL_S", "Judgement", "DrillCheck", "RunCheck", "load_run", "check_run", "check_drill",
    "NOT_ASSERTED", "AS_RECORDED",
]

#: how far apart a re-derived recovery time and the recorded one may be: the chain watcher polls
#: every 0.2 s and the engine's wait every 0.1 s, so the two can see the same proof one poll apart
POLL_S = 0.25
#: slack for times stored rounded to the millisecond
_ROUNDING_S = 0.002
#: the workload's default escrow deadline (seconds past the chain's time) when workload.start is missing
_DEFAULT_DEADLINE_S = 15
#: the live recovery wait re-evaluates at least this often between events
_WAIT_POLL_S = 0.1

#: a check the drill never asserted (it ended before, or does not have that phase)
NOT_ASSERTED = "not asserted"
#: the re-judgement could not be made from the timeline; the recorded verdict stands
AS_RECORDED = "as recorded"

# the names the engine gives the invariants it records (harness/checks/invariants.py)
_INV_DUPLICATE = "no escrow proven or proof attempted twice"
_INV_DEADLINES = "deadlines missed within allowance"
_INV_FEE_BUMPS = "replacements bump cap and tip by at least 10%"
_INV_MONITORING = "monitoring alive at the end"
#: why the other invariants are taken as recorded: what they read that the timeline does not hold
_NOT_IN_TIMELINE = {
    "funds accounted for": "token transfers and the harness's own transactions are not all in the timeline",
    "balances reconcile with the recorded history": "incoming transfers and the watcher's balance reads at the "
                                                    "verify moment are not all in the timeline",
    "no transaction from the agent's address that neither it nor the attacker made":
        "the call arguments (approve/transfer targets) and the contracts' addresses are not in chain.tx events",
    "gradual resumption": "when each transaction was first seen in the pool is not in chain.tx events",
    "no private key in the agent's output": "it reads the agent's output with the keys, which a record never holds",
}


@dataclass(frozen=True)
class Judgement:
    """One check of one drill: the live verdict, the re-derived one, and whether they agree.

    ``agree`` is None when the check was not re-judged (taken as recorded, or never asserted).
    """

    check: str
    live: str
    rejudged: str
    agree: bool | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "live": self.live, "rejudged": self.rejudged, "agree": self.agree,
                "detail": self.detail}


@dataclass(frozen=True)
class DrillCheck:
    name: str
    status: str  # the drill's recorded status
    judgements: tuple[Judgement, ...]

    @property
    def disagreements(self) -> tuple[Judgement, ...]:
        return tuple(j for j in self.judgements if j.agree is False)

    @property
    def rejudged(self) -> tuple[Judgement, ...]:
        return tuple(j for j in self.judgements if j.agree is not None)

    @property
    def as_recorded(self) -> tuple[Judgement, ...]:
        return tuple(j for j in self.judgements if j.agree is None)


@dataclass(frozen=True)
class RunCheck:
    run_dir: str
    run_id: str
    drills: tuple[DrillCheck, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not any(d.disagreements for d in self.drills)

    def messages(self) -> list[str]:
        """One line per disagreement, naming the drill and the check."""
        return [f"{d.name}: {j.check}: live {j.live}, re-judged {j.rejudged} ({j.detail})"
                for d in self.drills for j in d.disagreements]


# -- loading ---------------------------------------------------------------------------------------
def load_run(path: str | Path) -> dict[str, Any]:
    """The parsed ``summary.json`` of a run directory (or the file itself); UsageError saying what
    was expected when it is not there or not a drill run's summary."""
    p = Path(path)
    summary = p if p.is_file() else p / "summary.json"
    if not p.exists():
        raise UsageError(f"{p} does not exist: expected a run directory written by `pytest -m drill`, "
                         "e.g. reports/<run-id>/ holding summary.json")
    if not summary.is_file():
        runs = sorted(p.glob("*/summary.json")) if p.is_dir() else []
        hint = f"; it has run directories, e.g. {runs[-1].parent}" if runs else ""
        raise UsageError(f"{p} holds no summary.json: expected a run directory written by `pytest -m drill` "
                         f"(reports/<run-id>/ with summary.json in it){hint}")
    try:
        doc = json.loads(summary.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{summary} could not be read: {exc}") from None
    except ValueError as exc:
        raise UsageError(f"{summary} is not valid JSON ({exc}); expected the summary a drill run writes") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("drills"), list):
        raise UsageError(f"{summary} is not a drill run's summary: expected a JSON object with a 'drills' list "
                         "(see harness/record/schema/summary.schema.json)")
    for i, d in enumerate(doc["drills"]):
        if not isinstance(d, dict) or not isinstance(d.get("timeline"), list) or "status" not in d:
            raise UsageError(f"{summary}: drill #{i + 1} has no 'status' or no 'timeline' list, so it cannot be "
                             "judged again (the summary must follow harness/record/schema/summary.schema.json)")
    return doc


# -- the timeline, read --------------------------------------------------------------------------------
def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class _History:
    """A drill's timeline as (rel_s, kind, data) triples, in recorded order."""

    def __init__(self, timeline: Sequence[Mapping[str, Any]]) -> None:
        self.events: list[tuple[float, str, Mapping[str, Any]]] = []
        for e in timeline:
            rel = _num(e.get("rel_s"))
            if rel is None:
                continue
            self.events.append((rel, str(e.get("kind", "")), e.get("data") or {}))

    def of(self, kind: str, *, until: float | None = None) -> list[tuple[float, Mapping[str, Any]]]:
        return [(t, d) for t, k, d in self.events if k == kind and (until is None or t <= until)]

    def first(self, kind: str) -> tuple[float, Mapping[str, Any]] | None:
        found = self.of(kind)
        return found[0] if found else None

    @property
    def end(self) -> float:
        return max((t for t, _k, _d in self.events), default=0.0)


def _severity_rank(severity: Any) -> int:
    return SEVERITIES.index(severity) + 1 if severity in SEVERITIES else 99


def _live_stage(h: _History, kind: str, category: str | None, failed_category: str) -> str:
    if h.first(kind) is not None:
        return PASSED
    if category == failed_category:
        return FAILED
    return NOT_ASSERTED


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f} s"


# -- detection -------------------------------------------------------------------------------------------
def _detection(d: Mapping[str, Any], h: _History) -> Judgement | None:
    category = d.get("failure_category")
    live = _live_stage(h, "drill.detected", category, "missed_detection")
    if live == NOT_ASSERTED and category == "wrong_severity":
        live = FAILED  # no detection recorded: the alert came at the wrong severity (a missing escalation
        # comes after a recorded detection, so it never reaches here)
    if live == NOT_ASSERTED:
        return None
    detected = h.first("drill.detected")
    data = detected[1] if detected else {}
    # exact severity: recorded as at_least=False (records before it have no at_least: "or above")
    exact = data.get("at_least") is False or (not data and category == "wrong_severity")
    expected = d.get("expected_incident") or {}
    kind = data.get("kind") or expected.get("kind")
    severity = data.get("expected_severity") or expected.get("min_severity") or "SEV-3"
    within = _num(data.get("within")) or _num((d.get("budgets") or {}).get("detect_s"))
    if kind is None or within is None:
        return Judgement("detection", live, AS_RECORDED, None,
                         "the record names no expected incident kind or detect budget to judge against")
    alert = next(((t, a) for t, a in h.of("alert") if t >= 0 and a.get("kind") == kind
                  and _severity_rank(a.get("severity")) <= _severity_rank(severity)), None)
    what = f"first {kind} alert at {severity} or above"
    if alert is None:
        return _verdict("detection", live, FAILED, f"no {kind} alert at {severity} or above after the injection "
                        f"(budget {within:.1f} s)")
    t, a = alert
    rejudged = PASSED if t <= within + _ROUNDING_S else FAILED
    if exact and a.get("severity") != severity:
        return _verdict("detection", live, FAILED, f"{what}: {a.get('incident_id')} at {a.get('severity')}, "
                        f"not the exact {severity} the drill expects")
    detail = f"{what}: {a.get('incident_id')} {a.get('severity')} at +{t:.3f} s, budget {within:.1f} s"
    if rejudged == PASSED and live == PASSED:
        mttd = _num(data.get("mttd"))
        if mttd is not None and abs(mttd - t) > _ROUNDING_S:
            return Judgement("detection", f"{live}, MTTD {mttd:.3f} s", f"{PASSED}, MTTD {t:.3f} s", False,
                             f"{detail}; the record says MTTD {mttd:.3f} s, not the time of that alert")
        if data.get("incident_id") not in (None, a.get("incident_id")):
            return Judgement("detection", live, PASSED, False,
                             f"{detail}; the record counted incident {data.get('incident_id')}")
    return _verdict("detection", live, rejudged, detail)


def _verdict(check: str, live: str, rejudged: str, detail: str) -> Judgement:
    return Judgement(check, live, rejudged, live == rejudged, detail)


# -- containment -----------------------------------------------------------------------------------------
def _containment(d: Mapping[str, Any], h: _History) -> Judgement | None:
    live = _live_stage(h, "drill.contained", d.get("failure_category"), "late_containment")
    if live == NOT_ASSERTED:
        return None
    if live == FAILED:
        return Judgement("containment", live, AS_RECORDED, None,
                         "the predicates that decide containment read live proxies, pools and the agent's "
                         "process; the record keeps their failure message, not their inputs")
    _t, data = h.first("drill.contained") or (0.0, {})
    took = _num(data.get("time_to_contain"))
    within = _num(data.get("within")) or _num((d.get("budgets") or {}).get("contain_s"))
    if took is None or within is None:
        return Judgement("containment", live, AS_RECORDED, None, "drill.contained records no time or budget")
    rejudged = PASSED if 0 <= took <= within + _ROUNDING_S else FAILED
    preds = ", ".join(map(str, data.get("predicates") or ())) or "none named"
    return _verdict("containment", live, rejudged,
                    f"contained at +{took:.3f} s, budget {within:.1f} s (predicates taken as recorded: {preds})")


# -- recovery ----------------------------------------------------------------------------------------------
@dataclass
class _Escrow:
    """What recovery() reads of an escrow (EscrowLike), rebuilt from the recorded events."""

    id: int
    agent: str
    deadline: int
    state: str = "open"
    opened_t: float = 0.0
    proven_t: float | None = None
    proven_block: int | None = None
    proven_tx: str | None = None


class _Replay:
    """The chain watcher's escrow state and the agent's addresses, advanced event by event."""

    def __init__(self, h: _History) -> None:
        self.h = h
        self.i = 0
        self.escrows: dict[int, _Escrow] = {}
        self.agents: set[str] = set()
        self.chain_ts = 0  # a lower bound of the chain's latest block timestamp (0: unknown)
        start = h.first("workload.start")
        self.deadline_s = int(start[1].get("deadline", _DEFAULT_DEADLINE_S)) if start else _DEFAULT_DEADLINE_S

    def advance(self, until: float) -> None:
        evs = self.h.events
        while self.i < len(evs) and evs[self.i][0] <= until:
            t, kind, data = evs[self.i]
            self.i += 1
            self._apply(t, kind, data)

    def _apply(self, t: float, kind: str, data: Mapping[str, Any]) -> None:
        if kind == "world.funded" and data.get("hot"):
            self.agents.add(str(data["hot"]))
        elif kind == "agent.new_address" and data.get("address"):
            self.agents.add(str(data["address"]))
        elif kind == "workload.open" and _num(data.get("deadline")) is not None:
            # the workload sets each deadline to the chain's latest timestamp + its deadline setting
            self.chain_ts = max(self.chain_ts, int(data["deadline"]) - self.deadline_s)
        elif kind == "escrow.opened" and data.get("id") is not None:
            esc_id = int(data["id"])
            self.escrows[esc_id] = _Escrow(id=esc_id, agent=str(data.get("agent", "")),
                                           deadline=int(data.get("deadline") or 0), opened_t=t)
        elif kind == "escrow.proven" and data.get("id") is not None:
            esc = self.escrows.get(int(data["id"]))
            if esc is not None:
                esc.state, esc.proven_t = "proven", t
                esc.proven_block = int(data["block"]) if data.get("block") is not None else None
                esc.proven_tx = str(data.get("tx") or "").lower() or None
        elif kind == "escrow.expired" and data.get("id") is not None:
            esc = self.escrows.get(int(data["id"]))
            if esc is not None:
                esc.state = "expired"
        elif kind == "escrow.reassigned" and data.get("id") is not None:
            esc = self.escrows.get(int(data["id"]))
            if esc is not None and data.get("new"):
                esc.agent = str(data["new"])
        elif kind == "chain.reorg" and data.get("ancestor") is not None:
            ancestor = int(data["ancestor"])
            for esc in self.escrows.values():
                if esc.state == "proven" and (esc.proven_block or 0) > ancestor:
                    esc.state, esc.proven_t, esc.proven_block, esc.proven_tx = "open", None, None, None

    def agent_set(self) -> set[str]:
        # a record without world.funded (an older one): every address escrows were assigned to
        return set(self.agents) or {e.agent for e in self.escrows.values()}


def _recovery_start(h: _History, until: float) -> float:
    """When the engine's recovery wait began, at the latest: after the drill's last step before it."""
    steps = ("drill.inject", "drill.detected", "drill.contained", "fault.heal", "drill.steady")
    return max((t for t, k, _d in h.events if k in steps and t <= until), default=0.0)


def _recovery(d: Mapping[str, Any], h: _History) -> Judgement | None:
    live = _live_stage(h, "drill.recovered", d.get("failure_category"), "no_recovery")
    if live == NOT_ASSERTED:
        return None
    rec = h.first("drill.recovered")
    data = rec[1] if rec else {}
    within = _num(data.get("within")) or _num((d.get("budgets") or {}).get("recover_s"))
    if within is None:
        return Judgement("recovery", live, AS_RECORDED, None, "the record has no recover budget to judge against")
    need = int(data.get("proofs") or 2)
    horizon = rec[0] if rec else min(within, h.end)
    heals = [t for t, _d in h.of("fault.heal", until=horizon) if t >= 0]
    since = heals[-1] if heals else 0.0
    started_at, t0 = _num(d.get("started_at")), _num(d.get("t0"))
    t_start = started_at - t0 if started_at is not None and t0 is not None else min((t for t, _k, _e in h.events), default=0.0)

    replay = _Replay(h)
    start = max(_recovery_start(h, horizon), 0.0)
    replay.advance(start)
    scaled = h.first("drill.time_scale")  # a real-time drill widened the band's floor with its time scale
    band = latency_band(replay.escrows.values(), replay.agent_set(), t_start=t_start, t0=0.0,
                        time_scale=_num((scaled[1] if scaled else {}).get("scale")) or 1.0)
    # The live wait re-evaluated on every event and at least every 0.1 s until its deadline; so does this.
    times = sorted({start, *(t for t, _k, _e in h.events if start < t <= within),
                    *(start + _WAIT_POLL_S * i for i in range(1, int(max(0.0, within - start) / _WAIT_POLL_S) + 1))})
    found = None
    last = None
    for now in times:
        replay.advance(now)
        r = recovery(list(replay.escrows.values()), replay.agent_set(), since=since, now=now,
                     head_ts=replay.chain_ts, band=band, need=need)
        last = r
        if r.ok:
            found = r
            break
    band_note = _band_note(band, data.get("band"))
    basis = (f"since the {'heal' if heals else 'injection'} at +{since:.3f} s, band {band.seconds:.3f} s"
             f"{band_note}, {need} in-band proof(s) needed, budget {within:.1f} s")
    recorded_since = _num(data.get("since_rel_s"))
    if recorded_since is not None and abs(recorded_since - since) > _ROUNDING_S:
        basis += f"; the engine counted from +{recorded_since:.3f} s"
    if found is None or found.t is None:
        seen = last.seen if last is not None else "no escrow events"
        return _verdict("recovery", live, FAILED, f"no recovery on chain within {within:.1f} s ({seen}); {basis}")
    mttr = found.t
    rejudged = PASSED if mttr <= within + _ROUNDING_S else FAILED
    detail = f"recovered at +{mttr:.3f} s (proofs {', '.join(map(str, found.run))}); {basis}"
    if live == PASSED and rejudged == PASSED:
        recorded = _num(data.get("mttr"))
        if recorded is None and rec is not None:
            recorded = round(rec[0], 3)  # an older record: the wait's end stood for the recovery time
        if recorded is not None and abs(recorded - mttr) > POLL_S:
            old = "" if "band" in data else " (this drill.recovered has no band: an engine from before recovery was read on chain wrote it)"
            return Judgement("recovery", f"{live}, MTTR {recorded:.3f} s", f"{PASSED}, MTTR {mttr:.3f} s", False,
                             f"{detail}; the record says MTTR {recorded:.3f} s, {abs(recorded - mttr):.3f} s apart "
                             f"(more than the watcher's {POLL_S:g} s poll){old}")
        if recorded is not None:
            detail += f"; recorded MTTR {recorded:.3f} s"
    return _verdict("recovery", live, rejudged, detail)


def _band_note(band: Band, recorded: Any) -> str:
    rec = _num(recorded.get("seconds")) if isinstance(recorded, Mapping) else None
    if rec is None or abs(rec - band.seconds) <= 0.01:
        return ""
    return f" (the engine's band was {rec:.3f} s)"


# -- invariants ---------------------------------------------------------------------------------------------
def _agent_txs(h: _History, until: float) -> list[tuple[float, Mapping[str, Any]]]:
    """The agent's mined transactions as the watcher held them at ``until`` (reorged ones removed)."""
    txs: list[tuple[float, Mapping[str, Any]]] = []
    for t, kind, data in h.events:
        if t > until:
            break
        if kind == "chain.tx":
            txs.append((t, data))
        elif kind == "chain.reorg" and data.get("ancestor") is not None:
            ancestor = int(data["ancestor"])
            txs = [(u, x) for u, x in txs if int(x.get("block") or 0) <= ancestor]
    return txs


def _no_duplicate_proof(h: _History, until: float) -> tuple[str, str]:
    replay = _Replay(h)
    replay.advance(until)
    proven = {e.id: e for e in replay.escrows.values() if e.state == "proven"}
    by_tx = {e.proven_tx: e.id for e in proven.values() if e.proven_tx}
    proofs = [x for _t, x in _agent_txs(h, until) if x.get("method") == "submitProof"]
    dupes, unattributed = [], 0
    for x in proofs:
        tx_hash = str(x.get("hash") or "").lower()
        esc_id = x.get("escrow_id")
        if esc_id is None:
            esc_id = by_tx.get(tx_hash)
        if esc_id is None:
            unattributed += 1
            continue
        esc = proven.get(int(esc_id))
        if esc is None or esc.proven_block is None:
            continue
        if esc.proven_tx != tx_hash and int(x.get("block") or 0) >= esc.proven_block:
            dupes.append(f"escrow {esc_id} (again in {tx_hash[:10]}…, block {x.get('block')})")
    if dupes:
        return FAILED, f"proof attempted after the escrow was already proven: {', '.join(dupes[:5])}"
    if unattributed:
        return UNKNOWN, (f"{unattributed} submitProof transaction(s) name no escrow in this record "
                         "(chain.tx without escrow_id and no matching escrow.proven)")
    return PASSED, f"{len(proven)} escrow(s) proven once each, {len(proofs)} proof transaction(s)"


def _deadlines(d: Mapping[str, Any], h: _History, until: float) -> tuple[str, str]:
    allowed = (d.get("budgets") or {}).get("deadline_misses")
    if not isinstance(allowed, int):
        return UNKNOWN, "the record has no deadline_misses allowance"
    replay = _Replay(h)
    replay.advance(until)
    agents = {a.lower() for a in replay.agent_set()}
    mine = [e for e in replay.escrows.values() if e.agent.lower() in agents]
    expired = [e for e in mine if e.state == "expired"]
    overdue = [e for e in mine if e.state == "open" and replay.chain_ts and e.deadline < replay.chain_ts]
    missed = len(expired) + len(overdue)
    msg = (f"{missed} missed ({len(expired)} expired, {len(overdue)} overdue by the chain time the workload "
           f"last read), allowance {allowed}")
    return (FAILED if missed > allowed else PASSED), msg


def _fee_bumps(h: _History, until: float) -> tuple[str, str]:
    harness_txs = {str(data.get("tx_hash") or "").lower() for t, k, data in h.events if k == "attacker.tx"}
    reps = [x for t, x in h.of("chain.replacement", until=until)
            if str(x.get("old") or "").lower() not in harness_txs and str(x.get("new") or "").lower() not in harness_txs]
    low = [x for x in reps if float(x.get("cap_ratio") or 0) < 1.10 or float(x.get("tip_ratio") or 0) < 1.10]
    if low:
        shown = ", ".join(f"nonce {x.get('nonce')}: cap x{float(x.get('cap_ratio') or 0):.3f}, "
                          f"tip x{float(x.get('tip_ratio') or 0):.3f}" for x in low[:3])
        return FAILED, f"{len(low)} of {len(reps)} replacement(s) under +10%: {shown}"
    return PASSED, f"{len(reps)} replacement(s), all bumped by >= 10%"


def _monitoring(h: _History, until: float) -> tuple[str, str]:
    probes = h.of("drill.probe", until=until)
    if not probes:
        return UNKNOWN, "no end-of-drill probe was recorded"
    _t, probe = probes[-1]
    if not probe.get("ok"):
        return FAILED, f"the manual incident report was refused: {probe.get('error')}"
    inc = probe.get("incident_id")
    if not any(a.get("incident_id") == inc for _t, a in h.of("alert")):
        return FAILED, f"the manual incident {inc} was accepted but no alert for it was recorded"
    return PASSED, f"manual incident {inc} alerted"


def _invariants(d: Mapping[str, Any], h: _History) -> list[Judgement]:
    verified = h.first("drill.verified")
    until = verified[0] if verified else h.end
    rejudge = {
        _INV_DUPLICATE: lambda: _no_duplicate_proof(h, until),
        _INV_DEADLINES: lambda: _deadlines(d, h, until),
        _INV_FEE_BUMPS: lambda: _fee_bumps(h, until),
        _INV_MONITORING: lambda: _monitoring(h, until),
    }
    out = []
    for inv in d.get("invariants") or ():
        name, live = str(inv.get("name", "?")), str(inv.get("verdict", "?"))
        fn = rejudge.get(name)
        if fn is None or live == SKIPPED:
            why = "skipped live" if fn is not None else (
                f"not re-judged: {_NOT_IN_TIMELINE.get(name, 'the engine does not record its inputs in the timeline')}")
            out.append(Judgement(f"invariant: {name}", live, AS_RECORDED, None, why))
            continue
        verdict, msg = fn()
        if verdict == UNKNOWN:
            out.append(Judgement(f"invariant: {name}", live, AS_RECORDED, None, f"not re-judged: {msg}"))
        else:
            out.append(_verdict(f"invariant: {name}", live, verdict, msg))
    return out


# -- the whole ---------------------------------------------------------------------------------------------
def check_drill(d: Mapping[str, Any]) -> DrillCheck:
    """Every judgement of one drill record (an entry of summary.json's ``drills``)."""
    h = _History(d.get("timeline") or ())
    judgements: list[Judgement] = []
    if h.first("drill.inject") is not None:
        for stage in (_detection, _containment, _recovery):
            j = stage(d, h)
            if j is not None:
                judgements.append(j)
    judgements.extend(_invariants(d, h))
    return DrillCheck(name=str(d.get("name", "?")), status=str(d.get("status", "?")), judgements=tuple(judgements))


def check_run(doc: Mapping[str, Any], run_dir: str = "") -> RunCheck:
    """Every drill of a parsed summary.json judged again."""
    drills: Iterable[Mapping[str, Any]] = doc.get("drills") or ()
    return RunCheck(run_dir=run_dir, run_id=str(doc.get("run_id", "?")), drills=tuple(check_drill(d) for d in drills))
