"""Ground-truth predicates that belong to particular faults (for the playbook drills in scenarios/).

They complement ``harness.drill.predicates`` (which the engine owns) with checks that read a
fault's own record: which transactions the node dropped, which proofs a reorg undid, how the
control API answered the attacker. Same protocol: ``__call__(probe) -> Seen``.
"""

from __future__ import annotations

from typing import Any

from harness.drill.predicates import Predicate, Probe, Seen
from harness.errors import HarnessError, NothingTested

__all__ = [
    "attacker_blocked",
    "attempts_reported",
    "collided_nonce_settled",
    "config_intact",
    "dropped_txs_resent",
    "no_work_lost",
    "not_halted",
    "reorged_proofs_redone",
    "stuck_nonce_cancelled",
    "using_endpoint",
]

def _submit_proof_selector() -> str:
    from eth_utils import function_signature_to_4byte_selector

    return "0x" + function_signature_to_4byte_selector("submitProof(uint256,bytes32)").hex()


class using_endpoint(Predicate):
    """The agent's /health says its active RPC is the URL of ``role`` ("primary", "backup-1")."""

    evidence = False  # the agent's own claim (/health or its alerts)

    def __init__(self, role: str = "primary") -> None:
        self.role = role
        self.name = f"agent using the {role} RPC"
        self.failure = f"the agent did not use the {role} RPC"

    def __call__(self, probe: Probe) -> Seen:
        ctx = probe.ctx
        url = ctx.endpoint_urls.get(self.role)
        if url is None:
            return Seen(False, f"no endpoint {self.role!r} in this drill (roles: {', '.join(ctx.endpoint_urls) or 'none'})")
        h = ctx.health.last if ctx.health is not None else None
        if h is None:
            return Seen(False, "health endpoint unreachable")
        active = str(h.get("rpc", ""))
        roles = {u.rstrip("/"): r for r, u in ctx.endpoint_urls.items()}
        shown = roles.get(active.rstrip("/"), active or "nothing")
        return Seen(active.rstrip("/") == url.rstrip("/"), f"health says the active RPC is {shown}")


class not_halted(Predicate):
    """The agent is not halted (e.g. an attacker's halt command did not run)."""

    evidence = False  # the agent's own claim (/health or its alerts)
    name = "agent not halted"
    failure = "the agent was halted"

    def __call__(self, probe: Probe) -> Seen:
        h = probe.ctx.health.last if probe.ctx.health is not None else None
        if h is None:
            return Seen(False, "health endpoint unreachable")
        ok = h.get("mode") != "halted" and h.get("status") != "halted"
        return Seen(ok, f"health says status={h.get('status')!r} mode={h.get('mode')!r}")


class dropped_txs_resent(Predicate):
    """Every transaction the DroppedTransaction fault dropped was sent again: the same hash mined,
    or another transaction of the agent mined at the same nonce."""

    evidence = True

    name = "dropped transactions rebroadcast"
    failure = "a dropped transaction was never sent again"

    def __init__(self, fault: Any) -> None:
        self.fault = fault

    def __call__(self, probe: Probe) -> Seen:
        ctx = probe.ctx
        dropped = [e.data for e in ctx.timeline.events("fault.tx_dropped") if e.t >= probe.since]
        if not dropped:
            return Seen(False, "the fault has not dropped any transaction yet")
        missing = []
        for d in dropped:
            if ctx.chain.rpc("eth_getTransactionReceipt", d["tx_hash"]) is not None:
                continue
            if ctx.chain.nonce(d["sender"], "latest") > int(d["nonce"]):
                continue  # a replacement (or the same bytes) took the nonce
            missing.append(f"nonce {d['nonce']}")
        return Seen(not missing, f"{len(dropped)} dropped, not yet resent and mined: {', '.join(missing) or 'none'}")


class stuck_nonce_cancelled(Predicate):
    """The long-term step of the stuck-transactions playbook, on chain: a zero-value transfer from
    the agent to itself mined since injection at a nonce where another transaction of the agent
    had waited in the pool (the stuck one, cancelled), and every nonce at which an agent
    transaction waited since injection now used on chain (the queue behind it mined, no gap)."""

    evidence = True
    name = "stuck transaction cancelled and the queue behind it mined"
    failure = ("no stuck transaction cancelled (the duty of contract 1.1, section 2, 'The fee cap': a "
               "zero-value self-transfer at the stuck nonce once the base fee is above AGENT_FEE_CAP_WEI)")

    def __call__(self, probe: Probe) -> Seen:
        ctx, watcher = probe.ctx, probe.watcher
        mined = [tx for tx in watcher.agent_txs(probe.since) if tx.hash.lower() not in ctx.harness_txs]
        selfs = [tx for tx in mined if tx.value == 0 and tx.selector is None and (tx.to or "").lower() == tx.sender.lower()]
        cancels = [tx for tx in selfs if any(h != tx.hash.lower() for h in watcher.seen_at_nonce(tx.sender, tx.nonce))]
        behind = sorted(f"nonce {n}" for sender, nonces in watcher.waited_nonces(probe.since).items()
                        for n in nonces if ctx.chain.nonce(sender, "latest") <= n)
        seen = (f"{len(mined)} agent transaction(s) mined since injection, {len(selfs)} zero-value self-transfer(s), "
                f"{len(cancels)} at a nonce where another transaction had waited"
                + (f" (first: nonce {cancels[0].nonce})" if cancels else "")
                + f"; still not mined: {', '.join(behind) or 'nothing'}")
        if not cancels or behind:
            return Seen(False, seen)
        first = min(cancels, key=lambda tx: tx.t)
        return Seen(True, seen, since=max(tx.t for tx in mined), acted=first.first_seen)


class collided_nonce_settled(Predicate):
    """After another sender took the agent's nonce (``NonceCollision``), the chain shows the agent
    dealt with it as the guide allows: at each taken nonce either the conflicting transaction mined
    and the agent's own next transaction mined at a later nonce (the nonce read again), or the
    agent's zero-value self-transfer mined there instead (the conflicting transaction cancelled)."""

    evidence = True
    name = "collided nonce settled (nonce re-read or the conflicting transaction cancelled)"
    failure = "the agent did not move past the taken nonce on chain (nonce not re-read, conflicting transaction not cancelled)"

    def __init__(self, fault: Any) -> None:
        self.fault = fault

    def __call__(self, probe: Probe) -> Seen:
        ctx = probe.ctx
        taken = list(getattr(self.fault, "taken", []))
        if not taken:
            return Seen(False, "the fault has not taken a nonce yet")
        address = ctx.hot_wallet.address
        own = [tx for tx in probe.watcher.agent_txs(probe.since)
               if tx.hash.lower() not in ctx.harness_txs and tx.sender.lower() == address.lower()]
        open_: list[str] = []
        how: list[str] = []
        settled_at: list[float] = []
        for nonce, tx_hash in taken:
            at = [tx for tx in own if tx.nonce == nonce]
            after = sorted((tx for tx in own if tx.nonce > nonce), key=lambda tx: tx.t)
            if at and at[0].value == 0 and (at[0].to or "").lower() == address.lower():
                how.append(f"nonce {nonce}: conflicting transaction cancelled")
                settled_at.append(at[0].t)
            elif after and ctx.chain.rpc("eth_getTransactionReceipt", tx_hash) is not None:
                how.append(f"nonce {nonce}: taken, the agent's next transaction mined at nonce {after[0].nonce}")
                settled_at.append(after[0].t)
            else:
                open_.append(f"nonce {nonce}")
        return Seen(not open_, f"{'; '.join(how) or 'nothing settled'}; not settled: {', '.join(open_) or 'none'}",
                    since=max(settled_at) if not open_ else None)


class attacker_blocked(Predicate):
    """The control API refuses the attacker's source: its last ``last`` attempts were answered 429."""

    evidence = True

    def __init__(self, attack: Any, *, last: int = 3) -> None:
        self.attack = attack
        self.last = last
        self.name = "attacker's source blocked"
        self.failure = f"the attacker's source ({attack.source}) was not blocked"

    def __call__(self, probe: Probe) -> Seen:
        attempts = [e for e in probe.ctx.timeline.events("auth.attempt") if e.t >= probe.since]
        answers = [e.data.get("status") for e in attempts]
        tail = answers[-self.last:]
        ok = len(tail) == self.last and all(a == 429 for a in tail)
        counts: dict[str, int] = {}
        for a in answers:
            counts[str(a)] = counts.get(str(a), 0) + 1
        # dated to the first refusal of the final run of refusals (when the source was blocked)
        first = None
        if ok:
            for e in reversed(attempts):
                if e.data.get("status") != 429:
                    break
                first = e.t
        return Seen(ok, f"answers to {len(answers)} attempts: {counts or 'none yet'}; last {tail}", since=first, acted=first)


class attempts_reported(Predicate):
    """The ``auth_failures`` event's details say where the failed attempts came from, how many, over
    what window (contract 1.1, section 3), and agree with what the harness itself sent.

    Some ``auth_failures`` alert since the injection must carry ``details.source`` equal to the
    attack's source, ``details.window_s`` a positive number of seconds and ``details.failed_attempts``
    an integer no larger than the attempts the harness sent from that source up to the alert's
    arrival (0.5 s of slack: an attempt is recorded once answered) and no smaller than those the
    agent answered 401 within the window before it, up to the first 429 and 0.2 s before the
    arrival at the latest (the later ones it may not have counted yet when it wrote the event).
    """

    evidence = False  # the agent's account, held against the harness's record of the attempts

    def __init__(self, attack: Any) -> None:
        self.attack = attack
        self.name = "attempt details in the auth_failures event"
        self.failure = ("the auth_failures event did not carry the attempts the harness made (contract 1.1, section 3: "
                        "details.source, details.failed_attempts and details.window_s of the failed authorisations)")

    def _problem(self, probe: Probe, event: Any) -> str | None:
        details = event.data.get("details") or {}
        source, count, window = details.get("source"), details.get("failed_attempts"), details.get("window_s")
        missing = [k for k, v in (("source", source), ("failed_attempts", count), ("window_s", window)) if v is None]
        if missing:
            return f"details without {', '.join(missing)} (it has {', '.join(sorted(details)) or 'nothing'})"
        if source != self.attack.source:
            return f"details.source is {source!r}, the harness sent from {self.attack.source}"
        if isinstance(window, bool) or not isinstance(window, int | float) or window <= 0:
            return f"details.window_s is {window!r}, not a positive number of seconds"
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            return f"details.failed_attempts is {count!r}, not an integer of 1 or more"
        mine = [e for e in probe.ctx.timeline.events("auth.attempt")
                if e.t >= probe.since and e.data.get("source") == self.attack.source]
        sent = sum(1 for e in mine if e.t <= event.t + 0.5)
        first_429 = next((e.t for e in mine if e.data.get("status") == 429), float("inf"))
        refused = sum(1 for e in mine if e.data.get("status") == 401
                      and event.t - window <= e.t <= min(first_429, event.t - 0.2))
        if count > sent:
            return f"details.failed_attempts is {count}, but the harness sent {sent} from {source} by then"
        if count < refused:
            return (f"details.failed_attempts is {count}, but the agent had answered {refused} of them 401 "
                    f"within its {window:g} s window before the event")
        return None

    def __call__(self, probe: Probe) -> Seen:
        events = [e for e in probe.ctx.timeline.events("alert")
                  if e.t >= probe.since and e.data.get("kind") == "auth_failures"]
        if not events:
            return Seen(False, "no auth_failures alert since the injection")
        problems = [self._problem(probe, e) for e in events]
        if None in problems:
            good = events[problems.index(None)]
            d = good.data.get("details") or {}
            return Seen(True, f"{d.get('failed_attempts')} failed attempt(s) from {d.get('source')} within "
                              f"{d.get('window_s')} s (incident {good.data.get('incident_id')} {good.data.get('status')})")
        last = events[-1]
        return Seen(False, f"{len(events)} auth_failures alert(s); the last, {last.data.get('status')} at "
                           f"+{last.t - probe.since:.1f} s: {problems[-1]}")


class config_intact(Predicate):
    """``/health``'s ``config_sha256`` equals the hash the harness computed over the configuration it
    wrote for the agent (contract 1.1, section 4): the agent checked, after the attack, that what it
    runs with is what it was given. Held against the harness's own hash; read from the agent's answer."""

    evidence = False
    name = "configuration verified intact"
    failure = ("the agent did not show its configuration intact (contract 1.1, section 4: after an authorisation "
               "attack /health's config_sha256 must be the SHA-256 of the configuration the harness wrote)")

    def __call__(self, probe: Probe) -> Seen:
        expected = probe.ctx.config_sha256
        if expected is None:
            raise HarnessError("config_intact: the drill world computed no configuration hash (ctx.config_sha256)")
        h = probe.ctx.health.last if probe.ctx.health is not None else None
        if h is None:
            return Seen(False, "health endpoint unreachable")
        got = h.get("config_sha256")
        if got is None:
            return Seen(False, "/health has no config_sha256")
        if str(got).lower() != expected:
            return Seen(False, f"/health says config_sha256 {str(got)[:16]}…, the harness computed {expected[:16]}… "
                               "over the configuration it wrote")
        return Seen(True, f"/health's config_sha256 {expected[:16]}… is the harness's own")


class reorged_proofs_redone(Predicate):
    """Every escrow whose proof the reorg orphaned is proven again on the new branch.

    A reorg that orphaned no proof of the agent gives this nothing to check: rather than hold of
    nothing, the predicate raises ``NothingTested`` and the drill ends as an error (not judged).
    """

    evidence = True

    name = "orphaned proofs submitted again"
    failure = "an escrow whose proof was orphaned by the reorg is not proven again"

    def __init__(self, reorg: Any) -> None:
        self.reorg = reorg

    def __call__(self, probe: Probe) -> Seen:
        ctx = probe.ctx
        selector = _submit_proof_selector()
        ids = []
        for tx in self.reorg.orphaned_agent_tx_data:
            data = str(tx.get("input") or "")
            if data.startswith(selector):
                ids.append(int(data[10:74], 16))
        if not ids:
            raise NothingTested(
                f"the reorg orphaned no proof of the agent: nothing was tested (it replaced "
                f"{len(self.reorg.orphaned)} transaction(s), {len(self.reorg.orphaned_agent_txs)} of them the agent's, "
                f"none a submitProof); re-run the drill, or orphan more history "
                f"(a larger Reorg(depth=...), or window=... in snapshot mode)"
            )
        escrow = ctx.deployment.escrow_contract(ctx.chain.w3)
        states = {i: int(escrow.functions.escrows(i).call()[3]) for i in ids}
        names = {0: "none", 1: "open", 2: "proven", 3: "expired"}
        pending = {i: names.get(s, str(s)) for i, s in states.items() if s != 2}
        ok = not pending
        return Seen(ok, f"escrows whose proof was orphaned: {sorted(ids)}; not proven again: {pending or 'none'}")


class no_work_lost(Predicate):
    """Every escrow opened for the agent more than ``grace`` seconds ago is proven, once the agent
    has been back for ``grace`` seconds.

    After a restart or a rebuilt state the agent must pick up the escrows opened while it was down
    (and those it was proving when it died); an agent that starts reading the chain at its head
    leaves them open until they expire. The check holds only once the agent has answered its health
    endpoint for ``grace`` seconds after its latest start, so the escrows opened while it was down
    or starting are old enough to count (otherwise it could hold in the instant after the restart,
    before anything had been missed).
    """

    evidence = True

    name = "no work lost"
    failure = "escrows opened for the agent were left unproven"

    def __init__(self, *, grace: float = 3.0) -> None:
        self.grace = grace

    def _back_since(self, probe: Probe) -> float | None:
        """When the agent was last back: the first health answer after its latest start since the
        injection (the injection itself when it was not restarted); None while it is not back."""
        tl = probe.ctx.timeline
        starts = [e.t for e in tl.events("agent.start") if e.t >= probe.since]
        if not starts:
            return probe.since
        answered = [e.t for e in tl.events("health") if e.t >= starts[-1]]
        if answered:
            return answered[0]
        health = probe.ctx.health
        if health is not None and health.reachable and health.last_t is not None and health.last_t >= starts[-1]:
            return starts[-1]  # back so fast that the poller never saw it gone
        return None

    def __call__(self, probe: Probe) -> Seen:
        from harness import clock

        w, ctx = probe.watcher, probe.ctx
        mine = {a.lower() for a in ctx.agent_addresses}
        now = clock.now()
        cutoff = now - self.grace
        with w.lock:
            escrows = list(w.escrows.values())
        due = [e for e in escrows if e.agent.lower() in mine and e.opened_t <= cutoff]
        left = sorted(e.id for e in due if e.state != "proven")
        shown = ", ".join(f"#{i}" for i in left[:8]) + (f" and {len(left) - 8} more" if len(left) > 8 else "")
        seen = f"{len(due)} escrow(s) opened more than {self.grace:g} s ago, not proven: {shown or 'none'}"
        back = self._back_since(probe)
        if back is None:
            return Seen(False, f"{seen}; the agent has not answered its health endpoint since its restart")
        if now - back < self.grace:
            return Seen(False, f"{seen}; the agent is back for {now - back:.1f} s, waiting until {self.grace:g} s")
        return Seen(not left, seen)
