"""A game day's live feed of the drill that is running: status updates and partner notices while the fault is on.

``LiveFeed`` runs in the item's pytest (started by ``harness.gameday.inner`` around the drill's call
and stopped, joined and given a last look when the call ends, before the world is torn down). It
reads what the drill's process already has: the timeline, where the alert sink records each incident
event the agent sends, and the chain watcher's escrows. A listener on the alert sink wakes it at
once; otherwise it looks every ``POLL_S`` seconds.

- ``OUT/status/<run_id>--<incident_id>.md``: the latest status update of each incident, rewritten
  when the incident opens and whenever its status or severity changes; each time the game day's
  journal gets ``status.update`` (incident id, kind, severity, status, file).
- ``OUT/notices/<run_id>.md``: the external notice, written as soon as the harness itself sees a
  counterparty affected: an escrow deadline passed unproven, an escrow expired, or escrows reassigned
  on chain (the watcher's evidence, not the agent's word). The journal gets ``notice.written`` the
  first time each of the three is seen; the file is kept current with the counts.
- When the drill has ended and its record is built (``publish_record``), each file becomes the
  report's own rendering of that record (``render_status_updates``: the update as of the end, then one
  dated update per change; ``render_notice``: the funds read on chain, the final counts), journaled
  with ``final: true`` where it changed. The report writes a notice only for a SEV-1/SEV-2 incident
  that affected the partners; while the drill runs the severity may not be known yet (a frozen agent
  raises nothing), so the live notice goes out on the chain's evidence alone and stays as last
  written when the report has none. A drill stopped by the lever keeps the feed's last look instead
  (its record is built as the session ends).

The Markdown comes from ``harness.report.markdown`` (``status_update_text``, ``notice_text``), the
layout the run's report uses when the drill has ended, so the two cannot drift apart. Every file
goes through the secret scanner, as the report's files do.

A ``manual`` incident (one an operator opened) is held back for ``PROBE_GRACE_S`` unless a person's
report in the journal names it: the drill's own end-of-drill monitoring probe opens one too, and the
harness records which one only once the agent has answered. The probe's incident gets no update.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import clock
from harness.errors import UsageError
from harness.gameday.journal import append_event, read_journal
from harness.record.build import incidents_so_far
from harness.record.model import Escrows, Incident, severity_rank
from harness.report.markdown import (
    agent_words,
    fmt_seconds,
    fmt_wall,
    impact_text,
    notice_text,
    reassigned_to,
    status_update_text,
)
from harness.report.secrets import SecretLeak, SecretRegistry, write_text

__all__ = ["LiveFeed", "POLL_S", "PROBE_GRACE_S"]

#: how often the feed looks when no incident event woke it (escrow deadlines pass without one)
POLL_S = 0.5
#: how long an operator-opened incident waits for the monitoring probe to claim it
PROBE_GRACE_S = 2.0


class LiveFeed:
    """Status updates and notices of the drill ``drill_of()`` returns, written into the game day's ``out``."""

    def __init__(self, out: Path, run_id: str, drill_of: Callable[[], Any]) -> None:
        self.out = out
        self.run_id = run_id
        self.drill_of = drill_of
        self.journal = out / "journal.jsonl"
        self.updates = 0  # status updates written
        self.notices = 0  # notice.written events
        self._drill: Any = None
        self._written: dict[str, tuple[str, str]] = {}  # incident id -> (status, severity) last written
        self._texts: dict[str, str] = {}  # file -> the text last written to it
        self._notice_counts: tuple[int, int, int] | None = None
        self._notice_seen: set[str] = set()
        self._problems: set[str] = set()
        self._registry = SecretRegistry()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="gameday-live", daemon=True)

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> "LiveFeed":
        self._thread.start()
        return self

    def stop(self, *, last_look: bool = True) -> None:
        """Stop and join the thread, then take a last look (the world is still up).

        No last look when the thread is still in a look of its own (a chain read that hangs) or when
        the drill was interrupted (the lever): the world must be torn down and the faults healed
        within the runner's grace, and the record, written next, says what happened."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=2)
        if last_look and not self._thread.is_alive():
            self.update(final=True)

    def publish_record(self, record: Any) -> None:
        """The drill has ended: its status updates and notice as the run's report renders ``record``
        (a ``DrillRecord``). A problem is journaled, never raised into the item's teardown."""
        try:
            self._publish(record)
        except Exception as exc:  # noqa: BLE001 - the feed is a by-product; the record stands
            append_event(self.journal, "status.problem", run_id=self.run_id, error=f"{type(exc).__name__}: {exc}")

    def _publish(self, record: Any) -> None:
        from harness.report.markdown import render_notice, render_status_updates

        with self._lock:
            for inc in record.incidents:
                rel = self._status_name(inc)
                text = render_status_updates(record, inc)
                if self._texts.get(rel) == text:
                    continue
                written = self._write(rel, text)
                self.updates += written["file"] is not None
                append_event(self.journal, "status.update", run_id=self.run_id, incident_id=inc.incident_id, kind=inc.kind,
                             severity=inc.severity, status=inc.status, final=True, **written)
            notice = render_notice(record)
            rel = f"notices/{self.run_id}.md"
            if notice is not None and self._texts.get(rel) != notice:
                e = record.escrows
                written = self._write(rel, notice)
                self.notices += 1
                because = [w for w, n in (("missed_deadline", e.missed_deadlines), ("expired", e.expired),
                                          ("reassigned", e.reassigned)) if n]
                append_event(self.journal, "notice.written", run_id=self.run_id, because=because,
                             missed_deadlines=e.missed_deadlines, expired=e.expired, reassigned=e.reassigned, final=True,
                             **written)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.update()
            self._wake.wait(POLL_S)
            self._wake.clear()

    # -- one look -----------------------------------------------------------------------------------
    def update(self, *, final: bool = False) -> None:
        """Write what changed since the last look. A problem of the feed is recorded, never raised into the drill."""
        with self._lock:
            drill = self.drill_of()
            if drill is None:
                return
            try:
                self._attach(drill)
                self._look(drill, final=final)
            except Exception as exc:  # noqa: BLE001 - the feed is a by-product; the drill goes on
                text = f"{type(exc).__name__}: {exc}"
                if text not in self._problems:
                    self._problems.add(text)
                    drill.ctx.timeline.record("harness.warning", "gameday", where="game day live feed", error=text)

    def _attach(self, drill: Any) -> None:
        """Follow ``drill``; a new one (a schedule search opens one world per example) starts afresh."""
        if drill is self._drill:
            return
        self._drill = drill
        self._written.clear()
        self._texts.clear()
        self._notice_counts = None
        self._notice_seen.clear()
        if drill.ctx.alerts is not None:
            drill.ctx.alerts.add_listener(lambda _event: self._wake.set())

    def _look(self, drill: Any, *, final: bool) -> None:
        ctx = drill.ctx
        self._register_keys(ctx)
        events = ctx.timeline.events()
        origin = drill.t0 if drill.t0 is not None else drill.t_start
        offset = (events[0].wall - events[0].t) if events else clock.wall() - clock.now()
        escrows, new_addresses = self._escrows(ctx, events)
        shown = [inc for inc in incidents_so_far(events, origin) if final or self._ready(inc)]
        for inc in shown:
            last = inc.events[-1]
            if self._written.get(inc.incident_id) == (last.status, last.severity):
                continue
            self._status_update(drill, inc, escrows, offset)
            self._written[inc.incident_id] = (last.status, last.severity)
        if escrows.touched:
            self._notice(drill, shown, escrows, new_addresses, offset)

    def _ready(self, inc: Incident) -> bool:
        """False while an operator-opened incident may still turn out to be the harness's monitoring probe."""
        if inc.kind != "manual" or clock.wall() - inc.events[0].received_at >= PROBE_GRACE_S:
            return True
        if not self.journal.is_file():
            return False
        return any(e.get("event") == "incident.reported" and e.get("incident_id") == inc.incident_id
                   for e in read_journal(self.journal))

    def _register_keys(self, ctx: Any) -> None:
        wallet = getattr(ctx, "hot_wallet", None)
        if wallet is not None and getattr(wallet, "key", None):
            self._registry.add(wallet.key, "the agent's hot wallet")
        for n, key in enumerate(list(getattr(ctx, "secrets", ()) or ())):
            try:
                self._registry.add(key, f"harness key #{n + 1}")
            except UsageError:
                pass  # not a private key (a token): the engine's own invariant covers it

    @staticmethod
    def _escrows(ctx: Any, events: list[Any]) -> tuple[Escrows, list[str]]:
        """The counterparty's escrows as the chain shows them now; a deadline counts once it passed unproven."""
        w = ctx.watcher
        reassigned = [e for e in events if e.kind == "escrow.reassigned"]
        addresses = reassigned_to((e.kind, e.data) for e in reassigned)
        if w is None:
            return Escrows(reassigned=len(reassigned)), addresses
        from harness.checks.invariants import deadline_misses

        with w.lock:
            opened = len(w.escrows)
        misses = deadline_misses(ctx)
        return Escrows(opened=opened, proven=len(w.proven()), expired=len(w.expired()),
                       missed_deadlines=len(misses.expired) + len(misses.overdue), reassigned=len(reassigned)), addresses

    # -- the files ----------------------------------------------------------------------------------
    def _write(self, rel: str, text: str) -> dict[str, str | None]:
        """Write ``OUT/rel`` after the secret scan: the journal's ``file`` (None, and the ``problem``, on a key)."""
        try:
            write_text(self.out / rel, text, self._registry, artifact=f"game day {rel}")
        except SecretLeak as leak:
            return {"file": None, "problem": str(leak)}
        self._texts[rel] = text
        return {"file": rel}

    def _status_name(self, inc: Incident) -> str:
        return f"status/{self.run_id}--{_safe(inc.incident_id)}.md"

    def _status_update(self, drill: Any, inc: Incident, escrows: Escrows, offset: float) -> None:
        last = inc.events[-1]
        recover = float(drill.budget.recover)
        if drill.t0 is not None:
            eta = (f"open; the drill's recovery budget is {fmt_seconds(recover)} from the injection "
                   f"(until {fmt_wall(drill.t0 + offset + recover)})")
        else:
            eta = f"open; the drill's recovery budget is {fmt_seconds(recover)} from the injection"
        restarts = int(getattr(drill.ctx.agent, "restarts", 0) or 0) if drill.ctx.agent is not None else 0
        text = status_update_text(
            inc, base="t0" if drill.t0 is not None else "start",
            impact=impact_text(funds=None, escrows=escrows, restarts=restarts),
            response_target_s=drill.policy.response.get(inc.severity),
            next_steps_open=f"Incident {last.status}; the game day follows it until it is resolved or the drill ends.",
            eta_open=eta,
        )
        written = self._write(self._status_name(inc), text)
        self.updates += written["file"] is not None
        append_event(self.journal, "status.update", run_id=self.run_id, incident_id=inc.incident_id, kind=inc.kind,
                     severity=inc.severity, status=last.status, **written)

    def _notice(self, drill: Any, incidents: list[Incident], escrows: Escrows, new_addresses: list[str],
                offset: float) -> None:
        counts = (escrows.missed_deadlines, escrows.expired, escrows.reassigned)
        if counts == self._notice_counts:
            return
        self._notice_counts = counts
        since = (drill.t0 if drill.t0 is not None else drill.t_start) + offset
        restarts = int(getattr(drill.ctx.agent, "restarts", 0) or 0) if drill.ctx.agent is not None else 0
        grave = min(incidents, key=lambda i: severity_rank(i.severity)) if incidents else None
        claims = [f'{i.incident_id}: "{w}"' for i in incidents if (w := agent_words(i, "impact"))]
        recover = float(drill.budget.recover)
        text = notice_text(
            title=drill.scenario, opening=f"since {fmt_wall(since)} our agent has been handling an incident",
            incidents=incidents, escrows=escrows, new_addresses=new_addresses,
            to="the counterparties of our escrows",
            subject=(f"[{grave.severity}] {grave.incident_id} `{grave.kind}`: {grave.status}" if grave is not None
                     else "your escrows are affected; no incident reported by our agent yet"),
            impact=impact_text(funds=None, escrows=escrows, restarts=restarts)
            + (f" — the agent's own words (its claim, not checked): {'; '.join(claims)}" if claims else ""),
            status="; ".join(f"{i.incident_id} {i.status}" for i in incidents) or "no incident reported by the agent yet",
            eta=f"open; the drill's recovery budget is {fmt_seconds(recover)} from the injection",
            funds_at_risk="not measured yet: the harness reads the funds and escrow amounts on chain when the drill ends",
            next_update="this notice is rewritten whenever the escrow counts change while the drill runs, and "
                        "replaced by the report's notice when it ends if the incident was SEV-1 or SEV-2.",
        )
        written = self._write(f"notices/{self.run_id}.md", text)
        seen = {what for what, n in zip(("missed_deadline", "expired", "reassigned"), counts) if n}
        new = sorted(seen - self._notice_seen)
        self._notice_seen |= seen
        if new:
            self.notices += 1
            append_event(self.journal, "notice.written", run_id=self.run_id, because=new, missed_deadlines=escrows.missed_deadlines,
                         expired=escrows.expired, reassigned=escrows.reassigned, **written)


def _safe(text: str) -> str:
    """An incident id as part of a file name (the agent chooses it)."""
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in text)[:80] or "incident"
