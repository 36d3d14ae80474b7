"""Whole-run invariants, checked on every drill from the chain watcher's ground truth.

Each checker returns passed, failed, skipped or unknown with a message; a checker that raises yields
unknown (never a pass, never a traceback in the report); verdicts compose, the worst one wins.
``skipped`` says the check was not made and why (a pass it is not, a failure neither); ``unknown``
says it was attempted and could not be judged, and fails the drill (``Drill.verify``).
Checkers only read: the drill performs the end-of-run monitoring probe before they run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.units import fmt_eth
from harness.vocabulary import FAILED, PASSED, SKIPPED, UNKNOWN, VERDICTS

if TYPE_CHECKING:
    from harness.drill.context import DrillContext

__all__ = [
    "PASSED", "FAILED", "UNKNOWN", "SKIPPED", "VERDICTS", "DeadlineMisses", "deadline_misses", "InvariantResult", "RunInfo", "Money", "INVARIANTS", "check_all", "worst", "money",
]

#: worst last: a skipped check weakens a pass, an unknown one is worse (it fails the drill), failed is worst
_ORDER = {PASSED: 0, SKIPPED: 1, UNKNOWN: 2, FAILED: 3}


@dataclass(frozen=True)
class InvariantResult:
    name: str
    verdict: str  # passed | failed | skipped | unknown
    message: str

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"InvariantResult.verdict must be one of {VERDICTS}, got {self.verdict!r}")

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "verdict": self.verdict, "message": self.message}


@dataclass(frozen=True, kw_only=True)
class RunInfo:
    """Facts about the run the checkers need beyond the context."""

    t_start: float
    t0: float | None
    deadline_misses_allowed: int = 0
    burst_limit: int = 5  # transactions in the first `burst_window` after a pause that still count as gradual
    pause_gap: float = 2.0
    burst_window: float = 1.0  # both times scale with --drill-time-scale (an agent running its real intervals)


@dataclass(frozen=True, kw_only=True)
class Money:
    """Where the agent's funds went (wei and token units), for the report."""

    gas_wei: int = 0
    swept_wei: int = 0
    swept_tokens: int = 0
    lost_wei: int = 0  # to the attacker
    lost_tokens: int = 0
    fees_tokens: int = 0
    unexplained_wei: int = 0
    unexplained_tokens: int = 0
    earned_wei: int = 0

    def to_json(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def worst(verdicts: Sequence[str]) -> str:
    return max(verdicts, key=lambda v: _ORDER.get(v, _ORDER[UNKNOWN]), default=PASSED)


def _lower(xs: Any) -> set[str]:
    return {x.lower() for x in xs}


def money(ctx: DrillContext) -> Money:
    """Classify every wei and token that left the agent's addresses."""
    w = ctx.watcher
    agents = _lower(ctx.agent_addresses)
    attackers = _lower(ctx.attacker_addresses)
    cold = ctx.cold_wallet.lower()
    gas = swept = lost = unexplained = 0
    for tx in w.agent_txs():
        to = (tx.to or "").lower()
        by_harness = tx.hash.lower() in ctx.harness_txs
        if by_harness:
            lost += tx.value + tx.gas_cost
            continue
        gas += tx.gas_cost
        if tx.value == 0:
            continue
        if to == cold:
            swept += tx.value
        elif to in attackers:
            lost += tx.value
        elif to in agents or to == ctx.deployment.escrow.lower():
            pass  # moved between the agent's own addresses, or locked in an escrow it opened
        else:
            unexplained += tx.value
    swept_t = lost_t = fees_t = unexplained_t = 0
    by_hash = {tx.hash.lower(): tx for tx in w.agent_txs()}
    for tr in w.token_transfers:
        if tr.sender.lower() not in agents:
            continue
        to = tr.to.lower()
        tx = by_hash.get(tr.tx_hash.lower())
        if tr.tx_hash.lower() in ctx.harness_txs or to in attackers:
            lost_t += tr.amount
        elif to == cold:
            swept_t += tr.amount
        elif to in agents:
            pass
        elif to == ctx.deployment.owner.lower() and tx is not None and tx.method == "submitProof":
            fees_t += tr.amount
        else:
            unexplained_t += tr.amount
    earned = sum(e.amount for e in w.proven() if (e.proven_by or "").lower() in agents)
    return Money(gas_wei=gas, swept_wei=swept, swept_tokens=swept_t, lost_wei=lost, lost_tokens=lost_t,
                 fees_tokens=fees_t, unexplained_wei=unexplained, unexplained_tokens=unexplained_t, earned_wei=earned)


# -- the checkers -----------------------------------------------------------------------------------
def funds_accounted(ctx: DrillContext, run: RunInfo) -> InvariantResult:
    """Every wei and token that left the agent's addresses went somewhere the drill can name."""
    name = "funds accounted for"
    m = money(ctx)
    problems = []
    if m.unexplained_wei:
        problems.append(f"{fmt_eth(m.unexplained_wei)} left the agent's addresses to unknown destinations")
    if m.unexplained_tokens:
        problems.append(f"{m.unexplained_tokens / 10**18:g} DRILL left the agent's addresses to unknown destinations")
    summary = (f"gas {fmt_eth(m.gas_wei)}, swept {fmt_eth(m.swept_wei)} + {m.swept_tokens / 10**18:g} DRILL, "
               f"lost to attacker {fmt_eth(m.lost_wei)} + {m.lost_tokens / 10**18:g} DRILL, fees {m.fees_tokens / 10**18:g} DRILL")
    if problems:
        return InvariantResult(name, FAILED, "; ".join(problems) + f" ({summary})")
    return InvariantResult(name, PASSED, summary)


def _reconciliation_skipped(ctx: DrillContext) -> str | None:
    """Why balances cannot be reconciled from the recorded history in this drill (None: they can)."""
    why = []
    families = sorted({str(e.data.get("family")) for e in ctx.timeline.events("fault.inject")
                       if e.data.get("family") in ("balance", "chain")})
    if families:
        why.append(f"a {' and '.join(families)} fault changes balances or blocks outside any transaction the watcher sees")
    reorgs = len(ctx.timeline.events("chain.reorg"))
    if reorgs:
        why.append(f"{reorgs} reorg(s) rewrote the recorded history")
    return "; ".join(why) or None


def balances_reconcile(ctx: DrillContext, run: RunInfo) -> InvariantResult:
    """What the chain holds for each agent address equals its start + income - what it sent.

    Skipped (and says so) when the drill itself moved balances or rewrote blocks: a balance fault
    sets balances directly, a chain fault or a reorg drops or replays transactions, so the recorded
    history is no longer the whole story and a mismatch would blame the agent for the harness.
    """
    name = "balances reconcile with the recorded history"
    why = _reconciliation_skipped(ctx)
    if why is not None:
        return InvariantResult(name, SKIPPED, f"balance reconciliation skipped: {why}")
    w = ctx.watcher
    problems = []
    for addr in sorted(ctx.agent_addresses):
        start = w.initial_balances.get(addr, {}).get("eth", 0)
        income = sum(e.amount for e in w.proven() if (e.proven_by or "") == addr)
        income += sum(i["value"] for i in w.incoming if i["to"].lower() == addr.lower())
        income += sum(tx.value for tx in w.agent_txs() if (tx.to or "").lower() == addr.lower() and tx.sender != addr)
        spent = sum(tx.value + tx.gas_cost for tx in w.agent_txs() if tx.sender == addr)
        expected = start + income - spent
        actual = w.eth(addr)
        if actual != expected:
            problems.append(f"{addr} holds {fmt_eth(actual)} but its recorded history says {fmt_eth(expected)}")
    if problems:
        return InvariantResult(name, FAILED, "; ".join(problems))
    return InvariantResult(name, PASSED, f"{len(ctx.agent_addresses)} address(es) hold what their history says")


def no_duplicate_proof(ctx: DrillContext, run: RunInfo) -> InvariantResult:
    name = "no escrow proven or proof attempted twice"
    w = ctx.watcher
    proven_block = {e.id: e.proven_block for e in w.proven()}
    proof_tx: dict[int, str] = {}
    for tx in w.agent_txs():
        if tx.method == "submitProof" and tx.status == 1 and tx.arg0 is not None:
            proof_tx[tx.arg0] = tx.hash
    dupes = []
    for tx in w.agent_txs():
        if tx.method != "submitProof" or tx.arg0 is None:
            continue
        blk = proven_block.get(tx.arg0)
        if blk is not None and proof_tx.get(tx.arg0) != tx.hash and tx.block >= blk:
            dupes.append(f"escrow {tx.arg0} (again in {tx.hash[:10]}…, block {tx.block})")
    if dupes:
        return InvariantResult(name, FAILED, f"proof attempted after the escrow was already proven: {', '.join(dupes[:5])}")
    return InvariantResult(name, PASSED, f"{len(proven_block)} escrow(s) proven once each")


#: seconds an open escrow may wait while less urgent ones are proven before it counts as left behind
LEFT_BEHIND_S = 2.0


@dataclass(frozen=True)
class DeadlineMisses:
    """The agent's escrows whose deadline it missed or will miss, as the chain shows them."""

    expired: tuple[int, ...]  # expired on chain
    overdue: tuple[int, ...]  # still open past the head's time
    left_behind: tuple[int, ...]  # open, not yet due, passed over for a less urgent one

    @property
    def count(self) -> int:
        return len(self.expired) + len(self.overdue) + len(self.left_behind)


def deadline_misses(ctx: DrillContext) -> DeadlineMisses:
    """See DeadlineMisses. An escrow is left behind when a less urgent escrow was proven after this
    one had waited LEFT_BEHIND_S: most drills end before a 15 s deadline comes, so without it a
    skipped escrow would never count against the allowance."""
    w = ctx.watcher
    agents = _lower(ctx.agent_addresses)
    with w.lock:
        mine = [e for e in w.escrows.values() if e.agent.lower() in agents]
        head_ts = w.head_ts
    proven = [e for e in mine if e.state == "proven" and e.proven_t is not None]
    return DeadlineMisses(
        expired=tuple(e.id for e in mine if e.state == "expired"),
        overdue=tuple(e.id for e in mine if e.state == "open" and e.deadline < head_ts),
        left_behind=tuple(e.id for e in mine if e.state == "open" and e.deadline >= head_ts
                          and any(f.deadline > e.deadline and f.proven_t >= e.opened_t + LEFT_BEHIND_S  # type: ignore[operator]
                                  for f in proven)),
    )


def deadlines_within_allowance(ctx: DrillContext, run: RunInfo) -> InvariantResult:
    name = "deadlines missed within allowance"
    d = deadline_misses(ctx)
    expired, overdue, left = d.expired, d.overdue, d.left_behind
    missed = d.count
    msg = (f"{missed} missed ({len(expired)} expired, {len(overdue)} overdue, {len(left)} left behind), "
           f"allowance {run.deadline_misses_allowed}")
    if left:
        msg += f"; left behind: escrow {left[0]} (a later deadline was proven first)"
    return InvariantResult(name, FAILED if missed > run.deadline_misses_allowed else PASSED, msg)


def _agent_duty(ctx: DrillContext, tx: Any) -> bool:
    """A transaction shape the contract gives the agent a reason to send."""
    d = ctx.deployment
    agents = _lower(ctx.agent_addresses)
    to = (tx.to or "").lower()
    if to == d.escrow.lower():
        return True
    if to == d.token.lower():
        target = (tx.arg_address or "").lower()
        return tx.method == "approve" and target == d.escrow.lower() or (
            tx.method == "transfer" and (target == ctx.cold_wallet.lower() or target in agents)
        )
    return to == ctx.cold_wallet.lower() or to in agents  # sweep, rotation, or a self-send cancelling a nonce


def no_foreign_tx(ctx: DrillContext, run: RunInfo) -> InvariantResult:
    name = "no transaction from the agent's address that neither it nor the attacker made"
    attackers = _lower(ctx.attacker_addresses)
    strange = []
    for tx in ctx.watcher.agent_txs():
        if tx.hash.lower() in ctx.harness_txs:
            continue
        if (tx.to or "").lower() in attackers or (tx.arg_address or "").lower() in attackers:
            continue
        if not _agent_duty(ctx, tx):
            strange.append(f"{tx.hash[:10]}… from {tx.sender} to {tx.to} ({tx.method or tx.selector or 'transfer'}, {fmt_eth(tx.value)})")
    if strange:
        return InvariantResult(name, FAILED, f"{len(strange)} unexplained transaction(s): {'; '.join(strange[:3])}")
    return InvariantResult(name, PASSED, f"{len(ctx.watcher.agent_txs())} transaction(s), all explained")


def fee_bumps(ctx: DrillContext, run: RunInfo) -> InvariantResult:
    name = "replacements bump cap and tip by at least 10%"
    reps = [r for r in ctx.watcher.replacements if r.old_hash.lower() not in ctx.harness_txs and r.new_hash.lower() not in ctx.harness_txs]
    low = [r for r in reps if r.cap_ratio < 1.10 or r.tip_ratio < 1.10]
    if low:
        shown = ", ".join(f"nonce {r.nonce}: cap x{r.cap_ratio:.3f}, tip x{r.tip_ratio:.3f}" for r in low[:3])
        return InvariantResult(name, FAILED, f"{len(low)} of {len(reps)} replacement(s) under +10%: {shown}")
    return InvariantResult(name, PASSED, f"{len(reps)} replacement(s), all bumped by >= 10%")


def gradual_resumption(ctx: DrillContext, run: RunInfo) -> InvariantResult:
    name = "gradual resumption"
    if run.t0 is None:
        return InvariantResult(name, PASSED, "no fault, nothing to resume from")
    # Transactions mined again after a reorg are old work coming back, not a resumption burst.
    skip = set(ctx.harness_txs) | ctx.watcher.reorged
    # When the agent *sent* each transaction matters, not when it was mined: transactions held up
    # by the fault (stuck under a gas spike, a stalled chain) that land together are not a burst.
    # A fee bump is old work too: a replacement counts from when its nonce was first sent, so that
    # six stuck transactions bumped together (a gas spike after a backlog) are not a resumption burst.
    w = ctx.watcher
    first_sent = {s.hash.lower(): s.t for s in w.sends()}
    nonce_sent: dict[tuple[str, int], float] = {}
    for r in w.replacements:
        t_old = first_sent.get(r.old_hash.lower())
        if t_old is not None:
            key = (r.sender.lower(), r.nonce)
            nonce_sent[key] = min(nonce_sent.get(key, t_old), t_old)
    times = sorted(min(tx.first_seen, nonce_sent.get((tx.sender.lower(), tx.nonce), tx.first_seen))
                   for tx in w.agent_txs() if tx.hash.lower() not in skip)
    bursts = []
    prev = run.t0
    for i, t in enumerate(times):
        if t < run.t0:
            continue
        if t - prev >= run.pause_gap:
            burst = sum(1 for u in times[i:] if u - t <= run.burst_window)
            if burst > run.burst_limit:
                bursts.append(f"{burst} transactions within {run.burst_window:g} s after a {t - prev:.1f} s pause")
        prev = t
    if bursts:
        return InvariantResult(name, FAILED, f"resumed at full rate at once: {'; '.join(bursts)} (limit {run.burst_limit})")
    return InvariantResult(name, PASSED, "no burst after a pause")


def _secret_forms(key: str) -> list[str]:
    bare = key.lower().removeprefix("0x")
    return [bare] if len(bare) >= 32 else []


def no_key_in_output(ctx: DrillContext, run: RunInfo) -> InvariantResult:
    name = "no private key in the agent's output"
    sources = {"the agent's output": ctx.agent.output_text() if ctx.agent else ""}
    sources["the incident events"] = json.dumps(
        [dict(e.data) for e in ctx.timeline.events() if e.kind in ("alert", "contract.violation")], default=str
    )
    hits = []
    for label, text in sources.items():
        low = text.lower()
        for key in ctx.secrets:
            for form in _secret_forms(key):
                if form in low:
                    line = low[: low.index(form)].count("\n") + 1
                    hits.append(f"a private key appears in {label} (line {line})")
    if hits:
        return InvariantResult(name, FAILED, "; ".join(hits))
    return InvariantResult(name, PASSED, f"scanned {sum(len(t) for t in sources.values())} characters")


def monitoring_alive(ctx: DrillContext, run: RunInfo) -> InvariantResult:
    name = "monitoring alive at the end"
    probes = ctx.timeline.events("drill.probe")
    if not probes:
        return InvariantResult(name, UNKNOWN, "no end-of-drill probe was made (verify() was not reached)")
    probe = probes[-1]
    if not probe.data.get("ok"):
        return InvariantResult(name, FAILED, f"the manual incident report was refused: {probe.data.get('error')}")
    inc = probe.data.get("incident_id")
    sent = float(probe.data.get("sent", probe.t))
    answer = next((e for e in ctx.timeline.events("alert") if e.t >= sent and e.data.get("incident_id") == inc), None)
    if answer is None:
        return InvariantResult(name, FAILED, f"the manual incident {inc} was accepted but no alert for it arrived")
    return InvariantResult(name, PASSED, f"manual incident {inc} alerted {answer.t - sent:.2f} s after the report")


Checker = Callable[["DrillContext", RunInfo], InvariantResult]
INVARIANTS: dict[str, Checker] = {
    "funds_accounted": funds_accounted,
    "balances_reconcile": balances_reconcile,
    "no_duplicate_proof": no_duplicate_proof,
    "deadlines_within_allowance": deadlines_within_allowance,
    "no_foreign_tx": no_foreign_tx,
    "fee_bumps": fee_bumps,
    "gradual_resumption": gradual_resumption,
    "no_key_in_output": no_key_in_output,
    "monitoring_alive": monitoring_alive,
}


def _scrub(ctx: DrillContext, text: str) -> str:
    for key in ctx.secrets:
        for form in _secret_forms(key):
            text = re.sub(re.escape(form), "<redacted>", text, flags=re.IGNORECASE)
    return text


def check_all(ctx: DrillContext, run: RunInfo, checkers: dict[str, Checker] | None = None) -> list[InvariantResult]:
    out = []
    for key, fn in (checkers or INVARIANTS).items():
        try:
            out.append(fn(ctx, run))
        except Exception as exc:  # a crashing checker knows nothing: unknown, not pass
            out.append(InvariantResult(key, UNKNOWN, _scrub(ctx, f"checker crashed: {exc!r}")))
    return out
