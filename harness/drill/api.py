"""The ``Drill`` object a scenario drives, phase by phase.

    drill.steady_state()
    fault = drill.inject(SomeFault(...))
    drill.expect_detection("rpc_failure", severity="SEV-3")
    drill.expect_containment(failed_over(), proofs_landing(2))
    drill.heal(fault)
    drill.expect_recovery()
    drill.verify()

Budgets (``within``) are measured from the injection (t0), as MTTD and MTTR are, and default to the
scenario's configured budget. Every wait polls a condition until a deadline and, when it times out,
says what it waited for and what it saw last. Each wait also checks the stop conditions (hard time
limit, value at risk) and aborts the drill when one is passed; cleanup runs regardless.
"""

from __future__ import annotations

import difflib
import json
import time
from collections.abc import Callable
from typing import Any

from harness import clock
from harness.checks import invariants as inv
from harness.checks.budgets import POLICY, Budget, PolicyTargets
from harness.checks.metrics import compute, first_alert, incidents, without_probe_alerts
from harness.checks.recovery import Recovery, latency_band, recovery
from harness.drill.context import DrillContext
from harness.drill.predicates import (
    Predicate,
    Probe,
    ProxyCounts,
    Seen,
    agent_sends,
    latest_since,
    proxy_counts,
)
from harness.drill.result import DrillResult
from harness.errors import (
    AgentStartError,
    ContainmentFailed,
    DetectionMissed,
    DrillAborted,
    DrillFailure,
    DrillsError,
    HarnessError,
    InvariantBroken,
    OverReaction,
    RecoveryFailed,
    UsageError,
    WrongSeverity,
)
from harness.faults.base import Fault
from harness.observe.alerts import KINDS, SEVERITIES
from harness.observe.control import control_request
from harness.units import fmt_eth

__all__ = ["MINOR_FAULT_DUTY", "MISTYPED_TOKEN_DUTY", "Drill", "classify", "contained_at"]

#: the duties ``expect_no_overreaction`` names when it fails (docs/contract.md)
MINOR_FAULT_DUTY = ("contract 1.1, section 3, minor faults are SEV-4: a minor fault is logged at SEV-4 or not at all, "
                    "with no failover, pause or halt")
MISTYPED_TOKEN_DUTY = ("contract 1.1, section 4, a mistyped token is no attack: one wrong token from a source gets 401 "
                       "and nothing more; the right token from it is served, and no incident is raised above SEV-4")


def check_kind(kind: str) -> None:
    """Raise UsageError (with a suggestion) unless ``kind`` is an incident kind of the contract."""
    _check_kind(kind)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        close = difflib.get_close_matches(kind, sorted(KINDS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; the contract's kinds are {', '.join(sorted(KINDS))}"
        raise UsageError(f"unknown incident kind {kind!r}{hint}")


def _check_severity(severity: str) -> None:
    if severity not in SEVERITIES:
        raise UsageError(f"severity {severity!r} is not one of {', '.join(SEVERITIES)} (SEV-1 is the most severe)")


def classify(exc: BaseException | None) -> tuple[str, str | None, str | None]:
    """(status, category, message) of a drill that ended with ``exc`` (None: it passed)."""
    if exc is None:
        return "passed", None, None
    if isinstance(exc, DrillAborted):
        return "aborted", "aborted", exc.reason
    if isinstance(exc, DrillFailure):
        return "failed", exc.category, str(exc)
    if isinstance(exc, AgentStartError):
        return "error", "not_steady", str(exc)
    if isinstance(exc, AssertionError) or type(exc).__name__ == "Failed":  # assert, or pytest.fail()
        return "failed", "failed", str(exc) or "assertion failed"
    if isinstance(exc, KeyboardInterrupt):
        return "aborted", "aborted", "interrupted (Ctrl-C)"
    return "error", "harness_error", f"{type(exc).__name__}: {exc}"


def contained_at(t0: float, now: float, seen: list[Seen]) -> float:
    """When containment happened, given the results that all hold at ``now``.

    Dated to the evidence: a quiet window that proved containment contains at its start, not at the
    end of the wait that saw it. Never before the injection, never after ``now``.
    """
    since = latest_since(*seen)
    return now if since is None else min(now, max(t0, since))


class Drill:
    """One drill against one agent; built by the ``drill`` fixture (see the module docstring)."""

    def __init__(
        self,
        ctx: DrillContext,
        *,
        name: str,
        scenario: str,
        budget: Budget,
        playbook: str | None = None,
        incident: str | None = None,
        family: str | None = None,
        policy: PolicyTargets = POLICY,
        steady_proofs: int = 2,
        poll: float = 0.1,
    ) -> None:
        if incident is not None:
            _check_kind(incident)
        self.ctx = ctx
        self.name = name
        self.scenario = scenario
        self.budget = budget
        self.playbook = playbook
        self.incident = incident
        self.family = family
        self.policy = policy
        self.steady_proofs = steady_proofs
        self.poll = poll
        #: --drill-time-scale: the pace of the world and of the time-based invariants (1: the compressed drills)
        self.time_scale = 1.0
        self.t_start = clock.now()
        self.t0: float | None = None
        self.faults: list[Fault] = []
        self.incident_id: str | None = None
        self.detected_severity: str | None = None
        self.expected_severity: str | None = None  # the minimum severity expect_detection asked for
        self.contained_t: float | None = None
        self.recovered_t: float | None = None
        self.last_heal_t: float | None = None
        self.invariant_results: list[inv.InvariantResult] | None = None
        self._proxy_at_t0: ProxyCounts | None = None
        #: the command that re-runs just this drill (set by the pytest plugin)
        self.rerun = ""

    # -- helpers -----------------------------------------------------------------------------------
    @property
    def timeline(self) -> Any:
        return self.ctx.timeline

    def _phase(self, event_kind: str, /, **data: Any) -> None:
        self.ctx.timeline.record(event_kind, "drill", **data)

    def _check_stop(self) -> None:
        elapsed = clock.now() - self.t_start
        if elapsed > self.budget.time_limit:
            self._abort(f"hard time limit of {self.budget.time_limit:.0f} s passed ({elapsed:.1f} s into the drill)")
        if self.ctx.watcher is None or (self.t0 is None and self.budget.value_at_risk_eth is None):
            return  # a share of what was at risk needs the injection (nothing is at risk before it)
        held = self._at_risk(self.ctx.timeline.events("chain.balances"))
        limit = self.budget.value_at_risk_limit(held)
        if limit is None:
            return
        lost = inv.money(self.ctx).lost_wei
        if lost <= limit:
            return
        how = ("value_at_risk_eth" if self.budget.value_at_risk_eth is not None
               else f"{self.budget.value_at_risk_share:.0%} of the {fmt_eth(held)} the agent held at the injection")
        if self.t0 is None:  # a fixed limit passed before any fault: a stop, not a verdict on the agent
            self._abort(f"value at risk: {fmt_eth(lost)} lost, over the limit of {fmt_eth(limit)} ({how})")
        # After the injection a loss past the limit is the agent's: it did not contain the incident
        # before losing that much. The drill stops here and fails as a containment failure.
        self._phase("drill.value_at_risk", lost_wei=lost, limit_wei=limit, held_wei=held,
                    share=None if self.budget.value_at_risk_eth is not None else self.budget.value_at_risk_share)
        raise ContainmentFailed(
            f"the agent did not contain the loss: {fmt_eth(lost)} lost, over the value-at-risk limit of "
            f"{fmt_eth(limit)} ({how}); the drill was stopped at +{clock.now() - self.t0:.1f} s"
        )

    def _abort(self, reason: str) -> None:
        self._phase("drill.aborted", reason=reason)
        raise DrillAborted(reason)

    def _wait(self, check: Callable[[], tuple[bool, str]], deadline: float) -> tuple[bool, str]:
        """Evaluate ``check`` until it holds or ``deadline`` passes; wake early on any new event."""
        while True:
            self._check_stop()
            ok, seen = check()
            if ok:
                return True, seen
            left = deadline - clock.now()
            if left <= 0:
                return False, seen
            mark = clock.now()
            self.ctx.timeline.wait_for(lambda e: True, timeout=min(self.poll, left), after=mark + 1e-9)

    def _need_t0(self, what: str) -> float:
        if self.t0 is None:
            raise UsageError(f"{what} needs a fault: call drill.inject(fault) first")
        return self.t0

    def _probe(self) -> Probe:
        return Probe(ctx=self.ctx, since=self.t0 if self.t0 is not None else self.t_start,
                     proxy_at_since=self._proxy_at_t0, fault=self.faults[-1] if self.faults else None)

    def _scrub(self, text: str) -> str:
        for key in self.ctx.secrets:
            bare = key.lower().removeprefix("0x")
            text = text.replace(bare, "<redacted>").replace(bare.upper(), "<redacted>")
        return text

    def _health_text(self) -> str:
        h = self.ctx.health.last if self.ctx.health else None
        if h is None:
            return "health unreachable"
        return f"health status={h.get('status')!r} mode={h.get('mode')!r}"

    def _alerts_since(self, t: float) -> str:
        evs = [e for e in self.ctx.timeline.events("alert") if e.t >= t]
        if not evs:
            return "no alert since injection"
        shown = ", ".join(f"{e.data.get('kind')} {e.data.get('severity')} {e.data.get('status')} at +{e.t - t:.1f} s" for e in evs[:5])
        more = f" and {len(evs) - 5} more" if len(evs) > 5 else ""
        return f"alerts since injection: {shown}{more}"

    # -- phases --------------------------------------------------------------------------------------
    def steady_state(self, *, timeout: float = 30.0, proofs: int | None = None) -> None:
        """Wait until the agent is healthy, has proven ``proofs`` escrows and has no incident open.

        Not reaching it is an error of the drill (AgentStartError), not a failure of the agent's response.
        """
        need = self.steady_proofs if proofs is None else proofs
        timeout *= self.time_scale  # escrows come time_scale times slower
        started = clock.now()

        def check() -> tuple[bool, str]:
            h = self.ctx.health.last if self.ctx.health else None
            proven = len(self.ctx.watcher.proven(self.t_start)) if self.ctx.watcher else 0
            open_inc = [i.incident_id for i in incidents(self.ctx.timeline.events("alert")) if i.open]
            ok = h is not None and h.get("status") == "ok" and proven >= need and not open_inc
            return ok, (f"{self._health_text()}; {proven} of {need} escrows proven; "
                        f"open incidents: {', '.join(open_inc) or 'none'}; {self.ctx.agent.restarts if self.ctx.agent else 0} restart(s)")

        ok, seen = self._wait(check, started + timeout)
        if not ok:
            tail = "\n".join(self.ctx.agent.output_text().splitlines()[-8:]) if self.ctx.agent else ""
            raise AgentStartError(self._scrub(
                f"the agent did not reach steady state within {timeout:.1f} s ({seen}); "
                f"last lines of its output:\n{tail or '(nothing)'}"
            ))
        self._phase("drill.steady", took=round(clock.now() - started, 3), seen=seen)

    def inject(self, fault: Fault) -> Fault:
        """Bind ``fault`` to this drill, inject it (t0 = the first injection) and register its heal."""
        if not isinstance(fault, Fault):
            raise UsageError(f"drill.inject() takes a harness.faults Fault, got {type(fault).__name__}")
        fault.bind(self.ctx)
        if self.time_scale != 1.0:
            fault.pace(self.time_scale)  # the blocks it mines come as much slower as the escrows
        self._proxy_at_t0 = proxy_counts(self.ctx.proxy_api_url)
        self.ctx.cleanup.callback(self._heal_quietly, fault)
        # t0 is the moment the injection starts: a fault may act inside inject() (a first theft)
        # before its own fault.inject event is recorded.
        start = self.ctx.timeline.record("drill.inject", "drill", fault=fault.name, family=fault.family)
        fault.inject()
        if self.t0 is None:
            self.t0 = start.t
        self.faults.append(fault)
        return fault

    def _heal_quietly(self, fault: Fault) -> None:
        try:
            fault.heal()
        except Exception as exc:  # cleanup goes on; the timeline keeps the trace
            self.ctx.timeline.record("harness.error", "drill", where=f"heal {fault.name}", error=repr(exc))

    def expect_detection(self, kind: str, severity: str = "SEV-3", *, at_least: bool = False,
                         within: float | None = None) -> dict[str, Any]:
        """Wait for the ``kind`` alert at exactly ``severity``; MTTD is its arrival minus t0.

        Severity is exact by default: the first alert of ``kind`` at ``severity`` or above must be at
        ``severity`` (an over-classification fails at once, with ``WrongSeverity``), and one that
        only ever comes below it (an under-classification) fails once the budget is spent. A lower
        severity raised later to the expected one passes (the contract lets an incident be raised).
        ``at_least=True`` accepts ``severity`` or any more severe one, where a range is right.
        """
        _check_kind(kind)
        _check_severity(severity)
        t0 = self._need_t0("expect_detection")
        within = self.budget.detect if within is None else within * self.budget.scale
        self.expected_severity = severity
        wanted = f"{severity} or above" if at_least else f"exactly {severity}"

        def check() -> tuple[bool, str]:
            ev = first_alert(self.ctx.timeline.events("alert"), kind, severity, after=t0)
            return (ev is not None), self._alerts_since(t0)

        ok, seen = self._wait(check, t0 + within)
        if not ok:
            lower = [e for e in self.ctx.timeline.events("alert") if e.t >= t0 and e.data.get("kind") == kind]
            if lower:
                got = min((str(e.data.get("severity")) for e in lower), key=SEVERITIES.index)
                raise WrongSeverity(
                    f"{kind} under-classified: the agent reported it at {got}, the drill expects {wanted} "
                    f"(within {within:.1f} s of injection; {seen})")
            raise DetectionMissed(f"no {kind} alert at {wanted} within {within:.1f} s of injection ({seen})")
        ev = first_alert(self.ctx.timeline.events("alert"), kind, severity, after=t0)
        assert ev is not None
        got = str(ev.data["severity"])
        if not at_least and got != severity:
            raise WrongSeverity(
                f"{kind} over-classified: the agent reported it at {got}, the drill expects exactly {severity} "
                f"(incident {ev.data.get('incident_id')} at +{ev.t - t0:.1f} s; pass at_least=True where a range is right)")
        self.incident_id = str(ev.data["incident_id"])
        self.detected_severity = got
        self._phase("drill.detected", kind=kind, severity=self.detected_severity, incident_id=self.incident_id, mttd=round(ev.t - t0, 3),
                    within=round(within, 3), expected_severity=severity, at_least=at_least)
        return dict(ev.data)

    def expect_escalation(self, severity: str = "SEV-2", *, after: float, within: float | None = None) -> float:
        """The drill's incident, still unresolved ``after`` seconds from t0, is raised to ``severity``.

        Call after ``expect_detection`` (it names the incident) while the fault is still held. The
        raise must be an alert with the same incident id at exactly ``severity``, arriving no earlier
        than half the escalation time (a raise at once is a classification, not an escalation) and
        within ``within`` seconds after it (default: the detection budget). Returns the raise's
        arrival, seconds from t0.
        """
        _check_severity(severity)
        t0 = self._need_t0("expect_escalation")
        if self.incident_id is None or self.detected_severity is None:
            raise UsageError("expect_escalation needs the incident: call drill.expect_detection(kind, severity) first")
        if SEVERITIES.index(severity) >= SEVERITIES.index(self.detected_severity):
            raise UsageError(f"expect_escalation({severity!r}) must name a higher severity than the detected "
                             f"{self.detected_severity} (SEV-1 is the most severe)")
        # the escalation time is the agent's (scaled with the world by --drill-time-scale); the slack
        # after it is a budget (scaled by --drill-budget-scale)
        esc = after * self.time_scale
        slack = self.budget.detect if within is None else within * self.budget.scale
        deadline = t0 + esc + slack
        inc = self.incident_id

        def raised() -> list[Any]:
            return [e for e in self.ctx.timeline.events("alert")
                    if e.data.get("incident_id") == inc and e.t >= t0
                    and SEVERITIES.index(str(e.data.get("severity"))) < SEVERITIES.index(self.detected_severity or "SEV-4")]

        def check() -> tuple[bool, str]:
            evs = [e for e in self.ctx.timeline.events("alert") if e.data.get("incident_id") == inc and e.t >= t0]
            shown = ", ".join(f"{e.data.get('severity')} {e.data.get('status')} at +{e.t - t0:.1f} s" for e in evs[-5:])
            return bool(raised()), f"incident {inc}: {shown or 'no event'}"

        ok, seen = self._wait(check, deadline)
        if not ok:
            resolved = [e for e in self.ctx.timeline.events("alert") if e.data.get("incident_id") == inc and e.data.get("status") == "resolved"]
            healed = self.last_heal_t is not None and self.last_heal_t < t0 + esc
            if resolved and healed:
                raise UsageError(f"incident {inc} was resolved at +{resolved[0].t - t0:.1f} s, after the drill healed its "
                                 f"fault and before its escalation time of {esc:g} s: hold the fault longer ({seen})")
            if resolved:
                raise WrongSeverity(
                    f"incident {inc} was never escalated: the agent called it resolved at +{resolved[0].t - t0:.1f} s "
                    f"while the fault was still held, then left it at {self.detected_severity} past its escalation time "
                    f"of {esc:.1f} s ({seen})")
            raise WrongSeverity(
                f"incident {inc} was never escalated: still {self.detected_severity} and unresolved past its escalation "
                f"time of {esc:.1f} s, the drill expects it raised to {severity} by "
                f"+{deadline - t0:.1f} s ({seen})")
        ev = raised()[0]
        got = str(ev.data.get("severity"))
        if got != severity:
            raise WrongSeverity(f"incident {inc} escalated from {self.detected_severity} to {got}, the drill expects {severity} "
                                f"(at +{ev.t - t0:.1f} s)")
        if ev.t - t0 < esc / 2:
            raise WrongSeverity(f"incident {inc} raised to {got} at +{ev.t - t0:.1f} s, long before its escalation time of "
                                f"{esc:.1f} s: that is a classification, not an escalation")
        rel = round(ev.t - t0, 3)
        self._phase("drill.escalated", incident_id=inc, severity=got, previous=self.detected_severity, at=rel,
                    escalation_time=round(esc, 3))
        return rel

    def expect_no_overreaction(self, *, hold: float = 6.0, proofs: int = 2, max_severity: str = "SEV-4",
                               duty: str = MINOR_FAULT_DUTY) -> None:
        """For a minor fault: for ``hold`` seconds from t0 the agent does not over-react.

        Over-reaction, each judged on the harness's own evidence where it can be: a transaction sent
        through a backup endpoint (the proxy's per-endpoint counts: traffic moved), ``/health``
        naming a backup RPC or saying paused, halted or safe (a failover and back, a pause), a
        control-API request with the right token answered 429 since t0 (a source blocked: the
        ``auth.probe`` answers an auth fault's ``probe`` recorded), an incident above
        ``max_severity`` (the contract's SEV-4 for a blip or a single failed transaction; no
        incident at all is fine), and, at the end, fewer than ``proofs`` escrows proven since t0
        (the chain shows the work stopped). The first one seen fails the drill with
        ``OverReaction`` naming it and ``duty``, the contract's duty the drill holds the agent to.
        """
        _check_severity(max_severity)
        t0 = self._need_t0("expect_no_overreaction")
        # the window is world time (proofs come time_scale times slower) and the agent's reaction time
        # (a budget): the wider of the two scales stretches it
        end = t0 + hold * max(self.budget.scale, self.time_scale)
        before = self._proxy_at_t0
        if before is None:
            raise HarnessError("the proxy's counters could not be read at the injection, so traffic per endpoint "
                               "cannot be judged; is the fault proxy running?")
        backups = {role: name for role, name in self.ctx.endpoints.items() if role != "primary"}
        backup_urls = {u.rstrip("/"): r for r, u in self.ctx.endpoint_urls.items() if r != "primary"}

        def findings() -> list[str]:
            out: list[str] = []
            now = proxy_counts(self.ctx.proxy_api_url)
            for role, name in backups.items():
                sent = (now.sends(name) - before.sends(name)) if now is not None else 0.0
                if sent > 0:
                    out.append(f"traffic moved to {role}: {sent:.0f} transaction(s) sent through its proxy since the fault")
            for e in self.ctx.timeline.events("health"):
                if e.t < t0:
                    continue
                mode, status = e.data.get("mode"), e.data.get("status")
                if mode in ("paused", "halted", "safe") or status == "halted":
                    out.append(f"/health said mode={mode!r} status={status!r} at +{e.t - t0:.1f} s (paused or halted)")
                    break
                role = backup_urls.get(str(e.data.get("rpc") or "").rstrip("/"))
                if role is not None:
                    out.append(f"/health named {role} as the active RPC at +{e.t - t0:.1f} s (failed over)")
                    break
            for e in self.ctx.timeline.events("auth.probe"):
                if e.t >= t0 and e.data.get("status") == 429 and e.data.get("right_token", True):
                    out.append(f"the control API blocked {e.data.get('source')}: the right token from it was answered "
                               f"429 at +{e.t - t0:.1f} s")
                    break
            for e in self.ctx.timeline.events("alert"):
                sev = str(e.data.get("severity"))
                if e.t >= t0 and e.data.get("kind") != "manual" and sev in SEVERITIES and SEVERITIES.index(sev) < SEVERITIES.index(max_severity):
                    out.append(f"incident {e.data.get('kind')} raised at {sev} (+{e.t - t0:.1f} s), above the {max_severity} "
                               f"a minor fault deserves")
                    break
            return out

        def check() -> tuple[bool, str]:
            return bool(findings()), ""

        over, _ = self._wait(check, end)
        seen = findings()
        proven = len(self.ctx.watcher.proven(t0)) if self.ctx.watcher else 0
        if not over and proven < proofs:
            seen.append(f"work stopped: {proven} escrow(s) proven in the {hold * self.budget.scale:.1f} s since the fault, "
                        f"fewer than {proofs}")
        if seen:
            self._phase("drill.over_reaction", findings=seen)
            raise OverReaction(f"over-reaction to {self.faults[-1].name if self.faults else 'the fault'}: " + "; ".join(seen)
                               + f" ({duty})")
        self._phase("drill.calm", hold=round(hold * self.budget.scale, 3), proofs=proven)

    def expect_containment(self, *predicates: Predicate, within: float | None = None) -> float:
        """Wait until every predicate holds at once; returns the time to contain (seconds from t0)."""
        if not predicates:
            raise UsageError("expect_containment needs at least one predicate, e.g. swept_to_cold_wallet()")
        for p in predicates:
            if not isinstance(p, Predicate):
                raise UsageError(f"expect_containment takes predicates from harness.drill.predicates, got {p!r}")
        t0 = self._need_t0("expect_containment")
        within = self.budget.contain if within is None else within * self.budget.scale
        probe = self._probe()
        last: list[tuple[Predicate, Seen]] = []

        def check() -> tuple[bool, str]:
            nonlocal last
            last = [(p, p(probe)) for p in predicates]
            return all(s.ok for _, s in last), "; ".join(f"{p.name}: {s.seen}" for p, s in last)

        ok, _seen = self._wait(check, t0 + within)
        if not ok:
            missing = "; ".join(f"{p.failure} within {within:.1f} s ({s.seen})" for p, s in last if not s.ok)
            raise ContainmentFailed(missing)
        now = clock.now()
        self.contained_t = contained_at(t0, now, [s for _, s in last])
        took = round(self.contained_t - t0, 3)
        respond = self._first_response(t0, [s for _, s in last], [p for p, _ in last])
        self._phase("drill.contained", time_to_contain=took, seen_at=round(now - t0, 3),
                    time_to_respond=None if respond is None else round(respond[0] - t0, 3),
                    respond_action=None if respond is None else respond[1],
                    predicates=[p.name for p in predicates],
                    evidence=[p.name for p in predicates if getattr(p, "evidence", False)],
                    claims=[p.name for p in predicates if not getattr(p, "evidence", False)],
                    within=round(within, 3))
        self._note_claim_ahead("contained", self.contained_t, "containment")
        return took

    def _first_response(self, t0: float, seen: list[Seen], predicates: list[Predicate]) -> tuple[float, str] | None:
        """The first containment action the harness itself saw since t0, and what it was.

        Candidates: a transaction of the agent that is not routine proving (a sweep, a revocation,
        a self-send cancelling a nonce, a transfer), a replacement of a stuck transaction, and the
        dated evidence of an action predicate (a send through a backup, a refused request). None
        when the harness saw no action (a drill contained by silence alone has no response to date).
        """
        found: list[tuple[float, str]] = []
        w = self.ctx.watcher
        if w is not None:
            escrow = self.ctx.deployment.escrow.lower()
            by_hash = {t.hash.lower(): t for t in w.agent_txs(t0)}
            for send in agent_sends(self.ctx, t0):
                tx = by_hash.get(send.hash)
                if send.to == escrow and (tx is None or tx.method == "submitProof"):
                    continue  # routine work (or not yet mined, so not known to be anything else)
                what = tx.method if tx is not None and tx.method else ("transfer" if send.to else "contract creation")
                found.append((send.t, f"agent transaction ({what}) {send.hash[:10]}…"))
            for rep in w.replacements:
                if rep.t >= t0 and rep.new_hash.lower() not in self.ctx.harness_txs:
                    found.append((rep.t, f"replacement of nonce {rep.nonce}"))
        for p, s in zip(predicates, seen):
            if s.acted is not None:
                found.append((s.acted, p.name))
        return min(found) if found else None

    def _claims(self) -> dict[str, float]:
        """The agent's account of the drill's incident: each status -> arrival of its first alert (harness time)."""
        claims: dict[str, float] = {}
        if self.incident_id is not None:
            for e in self.ctx.timeline.events("alert"):
                if e.data.get("incident_id") == self.incident_id:
                    claims.setdefault(str(e.data.get("status")), e.t)
        return claims

    def _claim_t(self, status: str) -> float | None:
        """Arrival time of the first alert of the drill's incident with ``status`` (the agent's claim)."""
        return self._claims().get(status)

    def _note_claim_ahead(self, status: str, measured_t: float, what: str) -> None:
        """Record (not judge) a claim of the agent that came before the harness's own evidence."""
        claimed = self._claim_t(status)
        if claimed is None or self.t0 is None or claimed >= measured_t:
            return
        self._phase("drill.finding", finding="claim_ahead_of_evidence", claim=status,
                    claimed_rel_s=round(claimed - self.t0, 3), measured_rel_s=round(measured_t - self.t0, 3),
                    message=(f"the agent claimed {status!r} at +{claimed - self.t0:.2f} s, "
                             f"{measured_t - claimed:.2f} s before the harness saw {what} (+{measured_t - self.t0:.2f} s)"))

    def wait_until(self, *predicates: Predicate, within: float) -> None:
        """Wait for predicates without recording a phase (for steps between phases); raises ContainmentFailed."""
        probe = self._probe()
        last: list[tuple[Predicate, Seen]] = []

        def check() -> tuple[bool, str]:
            nonlocal last
            last = [(p, p(probe)) for p in predicates]
            return all(s.ok for _, s in last), ""

        ok, _ = self._wait(check, clock.now() + within * self.budget.scale)
        if not ok:
            raise ContainmentFailed("; ".join(f"{p.failure} within {within:.1f} s ({s.seen})" for p, s in last if not s.ok))

    def pause(self, seconds: float) -> None:
        """Let ``seconds`` pass while the drill's time limit and value at risk are still enforced."""
        if seconds > 0:
            self._wait(lambda: (False, ""), clock.now() + seconds)

    def open_escrows(self, *deadlines: int) -> None:
        """Have the counterparty open one escrow per deadline (seconds past the chain's time) at once,
        besides the steady workload: work of mixed urgency arriving together."""
        if self.ctx.workload is None:
            raise UsageError("drill.open_escrows() needs the drill world's workload, and this drill has none")
        self.ctx.workload.open_batch(tuple(deadlines))
        self._phase("drill.open_escrows", deadlines=list(deadlines))

    def heal(self, fault: Fault | None = None) -> None:
        """Undo ``fault`` (default: the last one injected)."""
        if fault is None:
            active = [f for f in self.faults if f.active]
            if not active:
                raise UsageError("drill.heal() found no active fault to heal")
            fault = active[-1]
        ev = fault.heal()
        self.last_heal_t = ev.t if ev is not None else clock.now()

    def expect_recovery(self, *, within: float | None = None, proofs: int | None = None) -> float:
        """Wait until the chain shows the agent recovered; returns the recovery time (seconds from t0).

        Read from the chain (see harness.checks.recovery): the backlog open at the last heal (or at
        the injection) is cleared and ``proofs`` escrows opened since are proven within the
        steady-state latency band, none late after them. The agent's ``resolved`` alert and its
        ``/health`` are claims: recorded beside the measured time, never deciding it.
        """
        t0 = self._need_t0("expect_recovery")
        within = self.budget.recover if within is None else within * self.budget.scale
        need = self.steady_proofs if proofs is None else proofs
        if need < 1:
            raise UsageError(f"expect_recovery(proofs=...) must be at least 1, got {need}")
        w = self.ctx.watcher
        since = self.last_heal_t or t0
        band = latency_band(w.escrows.values(), set(self.ctx.agent_addresses), t_start=self.t_start, t0=t0,
                            time_scale=self.time_scale)
        last: list[Recovery] = []

        def check() -> tuple[bool, str]:
            self._learn_incident(t0)
            with w.lock:
                escrows = list(w.escrows.values())
                head_ts = w.head_ts
            r = recovery(escrows, set(self.ctx.agent_addresses), since=since, now=clock.now(), head_ts=head_ts,
                         band=band, need=need)
            last[:] = [r]
            return r.ok, f"{r.seen}; {self._claims_text()}"

        ok, seen = self._wait(check, t0 + within)
        if not ok:
            raise RecoveryFailed(f"no recovery on chain within {within:.1f} s of injection "
                                 f"(counted from the {'heal' if self.last_heal_t else 'injection'}: {seen})")
        r = last[0]
        assert r.t is not None
        self.recovered_t = r.t
        mttr = round(r.t - t0, 3)
        claimed = self._claim_t("resolved")
        self._phase("drill.recovered", mttr=mttr, seen_at=round(clock.now() - t0, 3), incident_id=self.incident_id,
                    within=round(within, 3), since=("heal" if self.last_heal_t else "injection"),
                    since_rel_s=round(since - t0, 3), band=band.to_json(), proofs=need, **r.to_json(t0),
                    claimed_resolved_rel_s=None if claimed is None else round(claimed - t0, 3))
        self._note_claim_ahead("resolved", self.recovered_t, "recovery on chain")
        return mttr

    def _learn_incident(self, t0: float) -> None:
        """The drill's incident id from the first alert of its kind, if expect_detection did not set it."""
        if self.incident_id is None and self.incident is not None:
            ev = first_alert(self.ctx.timeline.events("alert"), self.incident, "SEV-4", after=t0)
            if ev is not None:
                self.incident_id = str(ev.data["incident_id"])

    def _claims_text(self) -> str:
        if self.incident_id is None:
            return f"no incident reported; {self._health_text()} (claims)"
        evs = [e for e in self.ctx.timeline.events("alert") if e.data.get("incident_id") == self.incident_id]
        status = evs[-1].data.get("status") if evs else "none"
        return f"the agent claims incident {self.incident_id} {status}, {self._health_text()}"

    def _extra(self, events: list[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.expected_severity:
            out["expected_severity"] = self.expected_severity
        findings = [{k: e.data[k] for k in ("finding", "claim", "message") if k in e.data}
                    for e in events if e.kind == "drill.finding"]
        if findings:
            out["findings"] = findings
        if self.t0 is not None and self.incident_id is not None:
            # the agent's own account of its incident, beside the times the harness measured:
            # the first arrival of each status, seconds from t0 (absent: not claimed during the drill)
            out["claims"] = {status: round(t - self.t0, 3) for status, t in self._claims().items()}
        violations = self._violations()
        if violations:
            out["violations"] = violations
        return out

    def _at_risk(self, events: list[Any]) -> int:
        """ETH the agent's addresses held when the fault was injected (what a compromise could take)."""
        t = self.t0 if self.t0 is not None else clock.now()
        snap = [e for e in events if e.kind == "chain.balances" and e.t <= t]
        if not snap:
            return 0
        balances = snap[-1].data.get("balances", {})
        return sum(int(b.get("eth", 0)) for a, b in balances.items() if a in self.ctx.agent_addresses)

    def probe_monitoring(self, *, timeout: float = 5.0) -> bool:
        """Report a manual incident through the operator API and wait for its alert (recorded)."""
        body = {"summary": "end-of-drill monitoring probe", "severity": "SEV-4"}
        deadline = clock.now() + timeout
        error = "no answer"
        while clock.now() < deadline:
            sent = clock.now()
            try:
                status, answer = control_request(self.ctx.control_url, "/operator/incident", token=self.ctx.operator_token,
                                                 body=body, timeout=2.0)
                if status == 201 and isinstance(answer, dict) and answer.get("incident_id"):
                    inc = str(answer["incident_id"])
                    self._phase("drill.probe", ok=True, incident_id=inc, sent=sent)
                    got = self.ctx.timeline.wait_for(
                        lambda e, inc=inc: e.kind == "alert" and e.data.get("incident_id") == inc, max(0.5, deadline - clock.now())
                    )
                    return got is not None
                error = f"HTTP {status}: {json.dumps(answer)[:200]}"
                if status not in (429, 503):
                    break
            except OSError as exc:
                error = f"{type(exc).__name__}"
            time.sleep(0.2)  # between retries of a refused probe, not a wait for a condition
        self._phase("drill.probe", ok=False, error=error)
        return False

    def _violations(self) -> dict[str, int]:
        """Every contract violation the harness saw, by what was done: the alert sink's (malformed, oversized,
        over the rate, slow events) and the runtime's (processes escaped, output cut, direct connections)."""
        out = {"alert sink": self.ctx.alerts.violations} if self.ctx.alerts and self.ctx.alerts.violations else {}
        if self.ctx.agent is not None:
            out.update(self.ctx.agent.violations)
        return out

    def verify(self) -> list[inv.InvariantResult]:
        """Probe monitoring, then check every invariant; raise InvariantBroken naming each that failed or could not be checked.

        An invariant whose checker could not judge (``unknown``) fails the drill as a broken one does:
        a drill passes on evidence that every rule held, not on the absence of a counterexample. A
        ``skipped`` invariant (not checkable in this drill, and saying why) does not fail it.
        """
        self._check_stop()
        self.probe_monitoring(timeout=5.0 * self.budget.scale)
        results = self.check_invariants()
        failed = [r for r in results if r.verdict == inv.FAILED]
        unknown = [r for r in results if r.verdict == inv.UNKNOWN]
        self._phase("drill.verified", verdict=inv.worst([r.verdict for r in results]),
                    failed=[r.name for r in failed], unknown=[r.name for r in unknown],
                    skipped=[r.name for r in results if r.verdict == inv.SKIPPED])
        if failed or unknown:
            raise InvariantBroken("; ".join(
                [f"{r.name}: {r.message}" for r in failed]
                + [f"{r.name} could not be checked (unknown): {r.message}" for r in unknown]))
        return results

    def check_invariants(self) -> list[inv.InvariantResult]:
        if self.ctx.watcher is not None:
            try:
                self.ctx.watcher.poll_once()
            except Exception as exc:  # a stalled chain: judge on what was seen
                self.ctx.timeline.record("harness.warning", "drill", where="final chain poll", error=repr(exc))
        run = inv.RunInfo(t_start=self.t_start, t0=self.t0, deadline_misses_allowed=self.budget.deadline_misses,
                          pause_gap=2.0 * self.time_scale, burst_window=1.0 * self.time_scale)
        self.invariant_results = inv.check_all(self.ctx, run)
        return self.invariant_results

    # -- the record ----------------------------------------------------------------------------------
    def result(self, exc: BaseException | None, *, rerun: str = "", overhead: float = 0.0,
               agent_cmd: tuple[str, ...] = ()) -> DrillResult:
        status, category, message = classify(exc)
        if message:
            message = self._scrub(message)
        invariants = self.invariant_results
        if invariants is None and isinstance(exc, KeyboardInterrupt):
            invariants = [inv.InvariantResult("invariants", inv.UNKNOWN, "not checked: the drill was interrupted")]
        if invariants is None:
            try:
                invariants = self.check_invariants()
            except DrillsError as err:
                invariants = [inv.InvariantResult("invariants", inv.UNKNOWN, f"not checked: {err}")]
        m = compute(without_probe_alerts(self.ctx.timeline.events()), kind=self.incident)
        w = self.ctx.watcher
        money: inv.Money | None = None
        funds_error: str | None = None
        try:
            money = inv.money(self.ctx) if w is not None else None
        except Exception as err:  # funds unknown, never "0 ETH lost"
            funds_error = self._scrub(f"the funds read failed: {type(err).__name__}: {err}")
        if money is None and funds_error is None:
            funds_error = "no chain watcher was running, so no funds were read"
        if funds_error is not None:
            self._phase("drill.funds_unknown", error=funds_error)
            if status == "passed":
                # The harness could not observe; that is no verdict on the agent (so not "failed"),
                # but a drill whose funds are unknown has not shown that nothing was lost.
                status, category, message = "error", "harness_error", f"funds unknown: {funds_error}"
            else:
                message = f"{message}; funds unknown: {funds_error}" if message else f"funds unknown: {funds_error}"
        t0 = self.t0
        events = self.ctx.timeline.events()
        funds: dict[str, int] = money.to_json() if money is not None else {}
        funds["at_risk_wei"] = self._at_risk(events)
        profile = self.ctx.agent_env.get("AGENT_PROFILE") if self.ctx.agent_env else None
        escrows = {
            "opened": len(w.escrows) if w else 0,
            "proven": len(w.proven()) if w else 0,
            "expired": len(w.expired()) if w else 0,
        }
        if w is not None:
            # the deadlines invariant's count: expired, overdue, or passed over for a less urgent escrow
            escrows["missed_deadlines"] = inv.deadline_misses(self.ctx).count
        # The budget each stage was held to: the ``within`` its phase recorded when it held; the
        # configured one for the stage that failed (a phase records nothing when it fails); None
        # for a stage the drill never asserted.
        failed_stage = {"missed_detection": "detect", "wrong_severity": "detect", "late_containment": "contain",
                        "over_reaction": "contain", "no_recovery": "recover"}.get(category or "")
        budgets: dict[str, Any] = {}
        for stage, kind in (("detect", "drill.detected"), ("contain", "drill.contained"), ("recover", "drill.recovered")):
            ev = next((e for e in events if e.kind == kind), None)
            within = ev.data.get("within") if ev is not None else None
            if isinstance(within, (int, float)):
                budgets[f"{stage}_s"] = float(within)
            elif stage == failed_stage:
                budgets[f"{stage}_s"] = float(getattr(self.budget, stage))
            else:
                budgets[f"{stage}_s"] = None
        budgets["deadline_misses"] = self.budget.deadline_misses
        budgets["scale"] = self.budget.scale
        return DrillResult(
            name=self.name, scenario=self.scenario, playbook=self.playbook, family=self.family,
            fault=repr(self.faults[0]) if self.faults else None,
            faults=tuple({"name": f.name, "family": f.family, "repr": repr(f)} for f in self.faults),
            expected_incident=self.incident, status=status, category=category, message=message,
            t_start=self.t_start, t0=t0, mttd=m.mttd, time_to_contain=m.time_to_contain, mttr=m.mttr,
            incident_id=self.incident_id or m.incident_id, detected_severity=self.detected_severity or m.detected_severity,
            budget=self.budget.to_json(), budgets_applied=budgets, policy=self.policy.to_json(),
            incidents=tuple(i.to_json(t0) for i in incidents(events)),
            invariants=tuple(r.to_json() for r in invariants),
            funds=funds, funds_error=funds_error, escrows=escrows, gas_spent_wei=money.gas_wei if money is not None else None,
            harness_overhead_s=round(overhead, 3), duration_s=round(clock.now() - self.t_start, 3),
            timeline=tuple(e.to_json(t0) for e in events),
            agent_output=str(self.ctx.agent.output_path) if self.ctx.agent else None,
            agent_cmd=agent_cmd, restarts=self.ctx.agent.restarts if self.ctx.agent else 0,
            alert_duplicates=self.ctx.alerts.duplicates if self.ctx.alerts else 0,
            contract_violations=sum(self._violations().values()),
            chain_backend=self.ctx.chain.backend, budget_scale=self.budget.scale, rerun=rerun,
            agent_profile=profile, extra=self._extra(events),
        )
