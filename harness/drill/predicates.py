"""Named ground-truth predicates for ``Drill.expect_containment``.

Each predicate looks at the chain (through the chain watcher), the proxies' counters or the agent's
health and says whether it holds and what it saw, so a wait that times out can say e.g. "no sweep
to the cold wallet within 10.0 s (cold wallet received 0 ETH; hot wallet holds 4.9 ETH)".
A predicate is built in the scenario (``swept_to_cold_wallet()``) and evaluated by the drill many
times against a ``Probe``; it may keep state between evaluations (a quiet window, a baseline).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from harness import clock
from harness.units import fmt_eth

if TYPE_CHECKING:
    from harness.drill.context import DrillContext

__all__ = [
    "Probe", "Seen", "Predicate", "latest_since", "agent_sends", "proxy_counts", "ProxyCounts", "sends_on",
    "backlog_at_least", "one_proof_at_a_time",
    "swept_to_cold_wallet", "allowance_revoked", "new_address_announced", "key_retired", "no_outgoing_from",
    "traffic_on", "failed_over", "proofs_landing", "halted", "in_mode", "silent_while", "pending_queue_drained",
    "no_nonce_gap", "replaced_with_fee_bump", "reverts_at_most", "healthy", "restarted",
]


@dataclass(frozen=True)
class ProxyCounts:
    """What the fault proxy counted so far: bytes received and JSON-RPC calls, per proxy."""

    received: dict[str, float]  # proxy -> bytes read from its client
    calls: dict[tuple[str, str], float]  # (proxy, method) -> calls

    def sends(self, proxy: str) -> float:
        return self.calls.get((proxy, "eth_sendRawTransaction"), 0.0)


def proxy_counts(api_url: str | None) -> ProxyCounts | None:
    """The proxy server's counters (its Prometheus /metrics); None when they cannot be read."""
    if not api_url:
        return None
    try:
        text = requests.get(api_url + "/metrics", timeout=2).text
    except requests.RequestException:
        return None
    received: dict[str, float] = {}
    calls: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("toxiproxy_proxy_received_bytes") and "proxy" in sample.labels:
                name = sample.labels["proxy"]
                received[name] = received.get(name, 0.0) + sample.value
            elif sample.name.startswith("toxiproxy_proxy_rpc_calls") and "method" in sample.labels:
                key = (sample.labels["proxy"], sample.labels["method"])
                calls[key] = calls.get(key, 0.0) + sample.value
    return ProxyCounts(received, calls)


@dataclass
class Probe:
    """What a predicate may read: the world, and the moment the fault under test was injected."""

    ctx: DrillContext
    since: float  # harness time of the injection (or of the drill's start)
    #: the proxy's counters at ``since``; None when they could not be read then (no baseline)
    proxy_at_since: ProxyCounts | None = None
    fault: Any = None

    @property
    def watcher(self) -> Any:
        return self.ctx.watcher


@dataclass(frozen=True)
class Seen:
    ok: bool
    seen: str  # what was observed, for the failure message
    # Harness clock time at which the evidence that makes the predicate hold began (the start of the
    # quiet window that proved it, ...); None means "now". The engine dates containment at the latest.
    since: float | None = None
    # Harness clock time of the agent's first action this result rests on (a send through a backup,
    # a refused request); the engine records the earliest as the time to respond. None: no action.
    acted: float | None = None


def latest_since(*seen: Seen) -> float | None:
    """The latest ``since`` of several results (a combined predicate holds from then); None if any is "now"."""
    if any(s.since is None for s in seen):
        return None
    return max((s.since for s in seen if s.since is not None), default=None)


class Predicate:
    """Base class. ``name`` reads as the expectation, ``failure`` as its absence."""

    name = "predicate"
    failure = "predicate did not hold"

    # True when judged on what the harness observes (chain, proxy counters, supervisor, control-API
    # answers to the harness); False when it rests on the agent's own claim (/health, alerts).
    # A containment check needs at least one evidence predicate. False by default: a new predicate
    # must say so to count as evidence.
    evidence: bool = False

    def __call__(self, probe: Probe) -> Seen:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _agent_outgoing(probe: Probe, address: str, since: float) -> list[Any]:
    """Transactions from ``address`` since ``since`` that the harness did not make itself."""
    attackers = {a.lower() for a in probe.ctx.attacker_addresses}
    return [
        tx for tx in probe.watcher.agent_txs(since)
        if tx.sender == address and tx.hash.lower() not in probe.ctx.harness_txs
        and (tx.to or "").lower() not in attackers and (tx.arg_address or "").lower() not in attackers
    ]


def agent_sends(ctx: DrillContext, since: float) -> list[Any]:
    """What the agent sent since ``since`` (pool or chain), without the harness's own and the attacker's."""
    attackers = {a.lower() for a in ctx.attacker_addresses}
    agents = set(ctx.agent_addresses)
    return [s for s in ctx.watcher.sends(since)
            if s.sender in agents and s.hash not in ctx.harness_txs and s.to not in attackers]


class swept_to_cold_wallet(Predicate):
    """The cold wallet received ETH since injection and the hot wallet is left with dust at most."""

    evidence = True

    name = "funds swept to the cold wallet"
    failure = "no sweep to the cold wallet"

    def __init__(self, *, dust_eth: float = 0.05, tokens: bool = False) -> None:
        self.dust = int(dust_eth * 10**18)
        self.tokens = tokens
        self._cold_start: int | None = None

    def __call__(self, probe: Probe) -> Seen:
        w, ctx = probe.watcher, probe.ctx
        initial = w.initial_balances.get(ctx.cold_wallet, {}).get("eth", 0)
        received = ctx.chain.balance(ctx.cold_wallet) - initial
        hot = ctx.chain.balance(ctx.hot_address)
        ok = received > 0 and hot <= self.dust
        seen = f"cold wallet received {fmt_eth(received)}; hot wallet holds {fmt_eth(hot)}"
        if self.tokens:
            hot_tokens = ctx.deployment.token_contract(ctx.chain.w3).functions.balanceOf(ctx.hot_address).call()
            ok = ok and hot_tokens == 0
            seen += f", {hot_tokens / 10**18:g} DRILL"
        # dated to the last sweep the chain shows (ETH to the cold wallet, or a token transfer to it)
        cold = ctx.cold_wallet.lower()
        sweeps = [tx.t for tx in _agent_outgoing(probe, ctx.hot_address, probe.since)
                  if (tx.to or "").lower() == cold or (tx.method == "transfer" and (tx.arg_address or "").lower() == cold)]
        return Seen(ok, seen, since=max(sweeps) if ok and sweeps else None)


class allowance_revoked(Predicate):
    """The old hot address's token allowance to the escrow is zero."""

    evidence = True

    name = "escrow allowance revoked"
    failure = "the escrow allowance was not revoked"

    def __call__(self, probe: Probe) -> Seen:
        ctx = probe.ctx
        token = ctx.deployment.token_contract(ctx.chain.w3)
        value = token.functions.allowance(ctx.hot_address, ctx.deployment.escrow).call()
        escrow = ctx.deployment.escrow.lower()
        revokes = [tx.t for tx in _agent_outgoing(probe, ctx.hot_address, probe.since)
                   if tx.method == "approve" and (tx.arg_address or "").lower() == escrow and tx.arg_amount == 0]
        # dated to the revoking transaction when the chain shows one
        return Seen(value == 0, f"allowance of the hot wallet to the escrow is {value}",
                    since=max(revokes) if value == 0 and revokes else None)


class new_address_announced(Predicate):
    evidence = False  # the agent's own claim (/health or its alerts)

    name = "a new hot address announced"
    failure = "no new hot address announced (details.new_address)"

    def __call__(self, probe: Probe) -> Seen:
        new = probe.ctx.new_addresses()
        return Seen(bool(new), f"announced: {', '.join(new) or 'none'}")


class no_outgoing_from(Predicate):
    """No transaction by the agent from ``address`` (default: the original hot address) for ``quiet`` seconds.

    Transactions the harness or an attacker made with the same key do not count.
    """

    evidence = True

    name = "no further transactions from the old key"
    failure = "the agent kept sending from the old key"

    def __init__(self, address: str | None = None, *, quiet: float = 2.0) -> None:
        self.address = address
        self.quiet = quiet

    def __call__(self, probe: Probe) -> Seen:
        address = self.address or probe.ctx.hot_address
        txs = _agent_outgoing(probe, address, probe.since)
        last = max((tx.t for tx in txs), default=probe.since)
        quiet_for = clock.now() - last
        ok = quiet_for >= self.quiet
        return Seen(ok, f"{len(txs)} transaction(s) from {address} since injection, last {quiet_for:.1f} s ago (need {self.quiet:g} s quiet)", since=last)


class key_retired(Predicate):
    """A new address is announced and the agent no longer sends from the leaked one."""

    evidence = True

    name = "leaked key retired"
    failure = "the leaked key was not retired"

    def __init__(self, leak: Any = None, *, quiet: float = 2.0) -> None:
        self._announced = new_address_announced()
        self._quiet = no_outgoing_from(quiet=quiet)

    def __call__(self, probe: Probe) -> Seen:
        a, q = self._announced(probe), self._quiet(probe)
        return Seen(a.ok and q.ok, f"{a.seen}; {q.seen}", since=q.since)


def _proxy_now(probe: Probe, endpoint: str, what: str) -> tuple[str, ProxyCounts, ProxyCounts] | Seen:
    """(proxy name, counters at injection, counters now), or the failed result saying why not."""
    ctx = probe.ctx
    if not ctx.proxy_api_url:
        return Seen(False, f"no fault proxy in this drill, so {what} cannot be measured")
    if probe.proxy_at_since is None:
        return Seen(False, "the proxy's counters could not be read at injection, so there is no baseline to compare with")
    now = proxy_counts(ctx.proxy_api_url)
    if now is None:
        return Seen(False, "the proxy's counters cannot be read")
    return ctx.endpoints.get(endpoint, endpoint), probe.proxy_at_since, now


class traffic_on(Predicate):
    """The proxy of ``endpoint`` ("primary", "backup-1") carried at least ``min_bytes`` since injection.

    Any byte counts, health probes included; to judge where the agent *sends*, use ``sends_on``.
    """

    evidence = True

    failure = "no traffic on the endpoint"

    def __init__(self, endpoint: str = "backup-1", *, min_bytes: int = 1) -> None:
        self.endpoint = endpoint
        self.min_bytes = min_bytes
        self.name = f"traffic on {endpoint}"
        self.failure = f"no traffic on {endpoint}"

    def __call__(self, probe: Probe) -> Seen:
        got = _proxy_now(probe, self.endpoint, "traffic per endpoint")
        if isinstance(got, Seen):
            return got
        name, before, now = got
        moved = now.received.get(name, 0.0) - before.received.get(name, 0.0)
        return Seen(moved >= self.min_bytes, f"{name} received {moved:.0f} bytes since injection")


class sends_on(Predicate):
    """At least ``count`` transactions sent (``eth_sendRawTransaction``) through ``endpoint`` since injection.

    Counted by the fault proxy per JSON-RPC method, so health probes and reads do not count.
    """

    evidence = True

    def __init__(self, endpoint: str = "backup-1", *, count: int = 1) -> None:
        self.endpoint = endpoint
        self.count = count
        self._first_seen: float | None = None
        self.name = f"transactions sent through {endpoint}"
        self.failure = f"no transaction sent through {endpoint}"

    def __call__(self, probe: Probe) -> Seen:
        got = _proxy_now(probe, self.endpoint, "sends per endpoint")
        if isinstance(got, Seen):
            return got
        name, before, now = got
        sent = now.sends(name) - before.sends(name)
        ok = sent >= self.count
        if ok and self._first_seen is None:
            self._first_seen = clock.now()  # the counters are read at each poll: dated to the first poll that saw it
        return Seen(ok, f"{sent:.0f} eth_sendRawTransaction call(s) through {name} since injection (need {self.count})",
                    since=self._first_seen if ok else None, acted=self._first_seen if ok else None)


class proofs_landing(Predicate):
    """At least ``count`` escrows proven (on time: the contract refuses late proofs) since injection."""

    evidence = True

    def __init__(self, count: int = 1) -> None:
        self.count = count
        self.name = f"{count} proof(s) landing"
        self.failure = f"fewer than {count} proof(s) landed"

    def __call__(self, probe: Probe) -> Seen:
        proven = sorted(probe.watcher.proven(probe.since), key=lambda e: e.proven_t or 0.0)
        expired = probe.watcher.expired(probe.since)
        ok = len(proven) >= self.count
        # dated to the proof that made the count
        return Seen(ok, f"{len(proven)} proven, {len(expired)} expired since injection",
                    since=proven[self.count - 1].proven_t if ok and self.count > 0 else None)


class failed_over(Predicate):
    """Transactions sent through the backup since injection and proofs landing again."""

    evidence = True

    def __init__(self, to: str = "backup-1", *, proofs: int = 1) -> None:
        self._traffic = sends_on(to)
        self._proofs = proofs_landing(proofs)
        self.name = f"failed over to {to}"
        self.failure = f"no failover to {to}"

    def __call__(self, probe: Probe) -> Seen:
        t, p = self._traffic(probe), self._proofs(probe)
        return Seen(t.ok and p.ok, f"{t.seen}; {p.seen}", since=latest_since(t, p), acted=t.acted)


def _health(probe: Probe) -> dict[str, Any] | None:
    poller = probe.ctx.health
    return poller.last if poller is not None else None


class in_mode(Predicate):
    """The agent's /health reports one of ``modes`` (e.g. "safe", "paused")."""

    evidence = False  # the agent's own claim (/health or its alerts)

    def __init__(self, *modes: str) -> None:
        self.modes = modes
        self.name = f"agent in mode {'/'.join(modes)}"
        self.failure = f"the agent never reported mode {'/'.join(modes)}"

    def __call__(self, probe: Probe) -> Seen:
        h = _health(probe)
        if h is None:
            return Seen(False, "health endpoint unreachable")
        return Seen(h.get("mode") in self.modes, f"health says status={h.get('status')!r} mode={h.get('mode')!r}")


class halted(Predicate):
    """Health says halted and nothing was sent from the agent's addresses for ``quiet`` seconds."""

    evidence = True

    name = "agent halted"
    failure = "the agent did not halt"

    def __init__(self, *, quiet: float = 2.0) -> None:
        self.quiet = quiet

    def __call__(self, probe: Probe) -> Seen:
        h = _health(probe)
        txs = [tx for a in probe.ctx.agent_addresses for tx in _agent_outgoing(probe, a, probe.since)]
        last = max((tx.t for tx in txs), default=probe.since)
        quiet_for = clock.now() - last
        mode_ok = h is not None and (h.get("mode") == "halted" or h.get("status") == "halted")
        mode = "unreachable" if h is None else f"mode={h.get('mode')!r}"
        return Seen(mode_ok and quiet_for >= self.quiet, f"health {mode}; last transaction {quiet_for:.1f} s ago", since=last)


class silent_while(Predicate):
    """The agent claims one of ``modes`` (paused/halted/safe) and the harness sees no transaction of
    its addresses (mined, or waiting in the pool: a stalled chain mines nothing) for ``quiet``
    seconds since it first claimed it, and none since that claim.

    The claim alone proves nothing: an agent that reports "safe" while it keeps sending fails here.
    The evidence is dated to the start of the quiet window (the claim, or the last send after it).
    """

    evidence = True

    def __init__(self, *modes: str, quiet: float = 2.0) -> None:
        self.modes = modes or ("paused", "halted", "safe")
        self.quiet = quiet
        self._claimed_at: float | None = None
        self.name = f"nothing sent while in mode {'/'.join(self.modes)}"
        self.failure = f"the agent did not go quiet in mode {'/'.join(self.modes)}"

    def __call__(self, probe: Probe) -> Seen:
        h = _health(probe)
        mode = None if h is None else h.get("mode")
        claims = mode in self.modes
        now = clock.now()
        if claims and self._claimed_at is None:
            self._claimed_at = now
        txs = agent_sends(probe.ctx, probe.since)
        last = max((tx.t for tx in txs), default=probe.since)
        during = [tx for tx in txs if self._claimed_at is not None and tx.t >= self._claimed_at]
        # quiet counts from the later of the last send and the first claim: silence before the
        # agent claimed the mode (a restart, say) is not silence in that mode
        start = max(last, self._claimed_at) if self._claimed_at is not None else now
        quiet_for = now - start
        shown = "unreachable" if h is None else f"mode={mode!r}"
        seen = f"health {shown}; {len(txs)} transaction(s) since injection, last {quiet_for:.1f} s ago (need {self.quiet:g} s quiet)"
        if during:
            seen += f"; {len(during)} sent while it claimed {'/'.join(self.modes)}"
        return Seen(claims and quiet_for >= self.quiet and not during, seen, since=start)


class healthy(Predicate):
    evidence = False  # the agent's own claim (/health or its alerts)

    name = "agent healthy"
    failure = "the agent did not report healthy"

    def __call__(self, probe: Probe) -> Seen:
        h = _health(probe)
        if h is None:
            return Seen(False, "health endpoint unreachable")
        return Seen(h.get("status") == "ok", f"health says status={h.get('status')!r} mode={h.get('mode')!r}")


def _pool(probe: Probe) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """The agent's transactions in the node's pool right now: (pending, queued) nonces by sender."""
    agents = {a.lower() for a in probe.ctx.agent_addresses}
    content = probe.ctx.chain.txpool_content()
    out: tuple[dict[str, list[int]], dict[str, list[int]]] = ({}, {})
    for section, target in zip(("pending", "queued"), out, strict=True):
        for sender, by_nonce in (content.get(section) or {}).items():
            if sender.lower() in agents and by_nonce:
                target[sender] = sorted(int(n) for n in by_nonce)
    return out


class pending_queue_drained(Predicate):
    """Nothing of the agent's waits in the node's pool (pending or queued)."""

    evidence = True

    name = "pending queue drained"
    failure = "the agent's pending queue did not drain"

    def __call__(self, probe: Probe) -> Seen:
        pool, queue = _pool(probe)
        pending = sum(len(v) for v in pool.values())
        queued = sum(len(v) for v in queue.values())
        return Seen(pending == 0 and queued == 0, f"{pending} pending and {queued} queued transaction(s) of the agent in the pool")


class no_nonce_gap(Predicate):
    """No transaction of the agent is queued behind a missing nonce."""

    evidence = True

    name = "no nonce gap"
    failure = "a nonce gap is left"

    def __call__(self, probe: Probe) -> Seen:
        _pending, queued = _pool(probe)
        return Seen(not queued, f"queued behind a gap: {queued or 'nothing'}")


class replaced_with_fee_bump(Predicate):
    """A transaction of the agent was replaced since injection with both fees raised by ``min_ratio``."""

    evidence = True

    def __init__(self, *, min_ratio: float = 1.10) -> None:
        self.min_ratio = min_ratio
        self.name = f"stuck transaction replaced with a fee bump >= {min_ratio - 1:.0%}"
        self.failure = "no stuck transaction replaced with a sufficient fee bump"

    def __call__(self, probe: Probe) -> Seen:
        reps = [r for r in probe.watcher.replacements if r.t >= probe.since]
        good = [r for r in reps if r.cap_ratio >= self.min_ratio and r.tip_ratio >= self.min_ratio]
        shown = ", ".join(f"nonce {r.nonce}: cap x{r.cap_ratio:.3f} tip x{r.tip_ratio:.3f}" for r in reps[-3:])
        return Seen(bool(good), f"{len(reps)} replacement(s) seen{': ' + shown if shown else ''}")


class reverts_at_most(Predicate):
    """The agent's reverted transactions since injection stay at or under ``count`` for ``quiet`` seconds."""

    evidence = True

    def __init__(self, count: int = 3, *, quiet: float = 2.0) -> None:
        self.count = count
        self.quiet = quiet
        self.name = f"at most {count} reverted transaction(s)"
        self.failure = f"the agent kept sending failing transactions (more than {count})"

    def __call__(self, probe: Probe) -> Seen:
        reverted = [tx for tx in probe.watcher.agent_txs(probe.since) if tx.status == 0]
        last = max((tx.t for tx in reverted), default=probe.since)
        quiet_for = clock.now() - last
        ok = len(reverted) <= self.count and quiet_for >= self.quiet
        return Seen(ok, f"{len(reverted)} reverted transaction(s) since injection, last {quiet_for:.1f} s ago", since=last)


class restarted(Predicate):
    """The supervisor restarted the agent at least ``count`` times since injection."""

    evidence = True

    def __init__(self, count: int = 1) -> None:
        self.count = count
        self.name = f"agent restarted {count} time(s)"
        self.failure = "the agent was not restarted"

    def __call__(self, probe: Probe) -> Seen:
        n = len([e for e in probe.ctx.timeline.events("agent.restart") if e.t >= probe.since])
        return Seen(n >= self.count, f"{n} restart(s) since injection")


class backlog_at_least(Predicate):
    """At least ``count`` escrows of the agent are open and not yet due (work piled up, on chain).

    Used to hold a fault until the backlog is big enough for a check to bind (a resumption burst
    over the limit of 5 needs more than 5 proofs waiting).
    """

    evidence = True

    def __init__(self, count: int) -> None:
        self.count = count
        self.name = f"at least {count} escrow(s) waiting"
        self.failure = f"fewer than {count} escrow(s) waiting"

    def __call__(self, probe: Probe) -> Seen:
        w = probe.watcher
        agents = {a.lower() for a in probe.ctx.agent_addresses}
        with w.lock:
            waiting = [e for e in w.escrows.values() if e.state == "open" and e.agent.lower() in agents and e.deadline >= w.head_ts]
        return Seen(len(waiting) >= self.count, f"{len(waiting)} escrow(s) open and not yet due")


class one_proof_at_a_time(Predicate):
    """Scarce funds spent one proof at a time, the most urgent deadline first, judged on chain.

    From the agent's first alert after the injection (when it says it saw the problem) on: at least
    ``count`` proofs landed; no block holds two of its proofs (they were not sent together; needs
    blocks slower than the agent's sends, see ``BlockTime``); and no proof was sent while an escrow
    with an earlier deadline had been waiting for ``grace`` seconds and could still be proven.
    """

    evidence = True

    def __init__(self, count: int = 5, *, grace: float = 1.0) -> None:
        self.count = count
        self.grace = grace
        self.name = f"{count} proofs one at a time, most urgent first"
        self.failure = "scarce funds were not spent one proof at a time, most urgent first"

    def __call__(self, probe: Probe) -> Seen:
        alerts = [e.t for e in probe.ctx.timeline.events("alert") if e.t >= probe.since]
        if not alerts:
            return Seen(False, "no alert from the agent since injection, so no window to judge")
        start = alerts[0]
        w = probe.watcher
        agents = set(probe.ctx.agent_addresses)
        lows = {a.lower() for a in agents}
        proofs = sorted((tx for tx in w.agent_txs(start) if tx.sender in agents and tx.method == "submitProof"
                         and tx.status == 1 and tx.arg0 is not None and tx.first_seen >= start), key=lambda tx: tx.first_seen)
        with w.lock:
            escrows = dict(w.escrows)
        per_block: dict[int, int] = {}
        for tx in proofs:
            per_block[tx.block] = per_block.get(tx.block, 0) + 1
        shared = sorted(b for b, n in per_block.items() if n > 1)
        inversions = []
        for tx in proofs:
            mine = escrows.get(tx.arg0)
            if mine is None:
                continue
            sent = tx.first_seen
            waiting = [e for e in escrows.values()
                       if e.id != mine.id and e.agent.lower() in lows and e.opened_t <= sent - self.grace
                       and (e.proven_t is None or e.proven_t > sent) and e.state != "expired"
                       and e.deadline < mine.deadline]
            if waiting:
                first = min(waiting, key=lambda e: e.deadline)
                inversions.append(f"escrow {mine.id} (deadline {mine.deadline}) before escrow {first.id} (deadline {first.deadline})")
        parts = [f"{len(proofs)} of {self.count} proofs since the agent's first alert"]
        if shared:
            parts.append(f"{len(shared)} block(s) with several of its proofs (e.g. block {shared[0]}: {per_block[shared[0]]})")
        if inversions:
            parts.append(f"{len(inversions)} proof(s) sent before a more urgent one: {inversions[0]}")
        ok = len(proofs) >= self.count and not shared and not inversions
        return Seen(ok, "; ".join(parts), since=proofs[self.count - 1].t if ok else None)
