"""``run_gameday``: carry out a plan, one planned item at a time, with people in the loop.

Design: each item (a drill, a schedule replay, a schedule search) runs as its own ``pytest`` process,
the same command a person would type (``pytest <node id> --agent-cmd ... --drill-report-dir
OUT/runs --drill-run-id NN-name``). Why a process per item rather than the engine in this process:

- the engine, the catalogue, schedule replay and the report plugin are used exactly as in CI, so a
  game day's verdicts are the drills' verdicts and each item leaves the run directory (summary.json,
  README.md, Allure results) that ``drill report`` and ``drill check`` already read;
- the lever has one sure way to end an item: SIGINT to that process, which the engine already
  answers by healing every fault and stopping the agent and the chain (its cleanup runs on Ctrl-C);
  if it does not end within the grace, its process group is killed, and its children, started with
  a parent-death signal, go with it;
- this process stays free for the terminal: the live view, the approval prompt, pause/resume and
  the journal, which ``drill incident`` appends to from another process.

The cost is a few seconds of pytest start-up per item (chain start, contract deployment).
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from harness import clock
from harness.errors import UsageError
from harness.gameday.journal import Journal
from harness.gameday.plan import Item, Plan

__all__ = ["Lever", "ItemOutcome", "GamedayResult", "run_gameday", "NoTerminal", "STOP_GRACE_S"]

#: how long an interrupted item gets to clean up before its process group is killed
STOP_GRACE_S = 1.5
_POLL_S = 0.1
_WEI_PER_ETH = 10**18


class NoTerminal(UsageError):
    """Approvals are needed and there is no terminal to ask on (and no --yes)."""


@dataclass(eq=False)
class Lever:
    """The stop button: the first reason wins; ``paused`` is toggled by SIGUSR1 or the p key."""

    reason: str | None = None
    paused: bool = False
    _event: threading.Event = field(default_factory=threading.Event)

    def pull(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self._event.set()

    @property
    def pulled(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        return self._event.wait(seconds)


@dataclass(frozen=True, kw_only=True)
class ItemOutcome:
    item: Item
    status: str  # passed | failed | error | aborted | stopped | skipped
    started_at: float | None = None
    duration_s: float = 0.0
    run_dir: Path | None = None
    log: Path | None = None
    message: str = ""
    measured: dict[str, Any] = field(default_factory=dict)  # mttd_s, contain_s, mttr_s, incidents, failed_check, ...


@dataclass(frozen=True, kw_only=True)
class GamedayResult:
    reason: str
    outcomes: tuple[ItemOutcome, ...]
    started_at: float
    duration_s: float

    @property
    def ok(self) -> bool:
        """Completed, and every item that ran passed (one the owner declined or the duration left out is no failure)."""
        return self.reason == "completed" and all(o.status in ("passed", "skipped") for o in self.outcomes)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:60] or "item"


def _failed_check(drill: Any) -> str | None:
    """What failed in a drill record: the failed phase or invariants, else the failure category."""
    if drill.status == "passed":
        return None
    bad_phase = [p.name for p in drill.phases if p.outcome in ("failed", "error") and p.name != "verify"]
    if bad_phase:  # the invariants were not all judged: the phase that failed is the check
        return bad_phase[0]
    bad_inv = [i.name for i in drill.invariants if i.verdict not in ("passed", "skipped")]
    if bad_inv:
        return "invariants (" + ", ".join(bad_inv) + ")"
    return drill.failure_category


def measured_from_run(run_dir: Path) -> tuple[str, str, dict[str, Any]] | None:
    """(status, message, measured times) of the one drill an inner run recorded, or None without a record."""
    from harness.record.model import RecordError, RunRecord

    summary = run_dir / "summary.json"
    if not summary.is_file():
        return None
    import json

    try:
        run = RunRecord.from_json(json.loads(summary.read_text(encoding="utf-8")))
    except (ValueError, RecordError):
        return None
    if not run.drills:
        return None
    d = run.drills[-1]
    expected = d.expected_incident.kind if d.expected_incident is not None else None
    incidents = [{"incident_id": i.incident_id, "kind": i.kind, "severity": i.severity,
                  "status": i.events[-1].status if i.events else None} for i in d.incidents]
    severity = None
    kinds = [i for i in incidents if expected is None or i["kind"] == expected]
    if kinds:
        from harness.record.model import severity_rank

        severity = min((i["severity"] for i in kinds), key=severity_rank)
    measured = {
        "scenario": d.scenario or d.name.rsplit("::", 1)[-1], "t0": d.t0, "mttd_s": d.mttd_s, "contain_s": d.contain_s,
        "mttr_s": d.mttr_s, "duration_s": d.duration_s, "incident_kind": expected or (incidents[0]["kind"] if incidents else None),
        "severity": severity, "incidents": incidents, "faults": [f.type for f in d.faults],
        "failure_category": d.failure_category, "failed_check": _failed_check(d),
        "lost_wei": d.funds.lost_wei, "agent_profile": d.agent_profile,
        "budgets": {"detect_s": d.budgets.detect_s, "recover_s": d.budgets.recover_s, "scale": d.budgets.scale},
        "policy": {"mttd_s": d.policy.mttd_s, "mttr_s": d.policy.mttr_s},
        "postmortems": run.metrics.postmortems.to_json() if run.metrics is not None else None,
    }
    return d.status, d.failure_message or "", measured


def _person_detection(measured: dict[str, Any], journal: Journal, item_start: float) -> dict[str, Any]:
    """Add the first person's report (``drill incident --gameday``) during the item, counted from its injection.

    For a drill whose incident the agent did not raise itself (a silent fault: no detection, or only the
    ``manual`` incident an operator's report opens), that report is the detection: ``mttd_s`` is then the
    person's, and ``detected_by`` says so.
    """
    t0 = measured.get("t0")
    since = t0 if t0 is not None else item_start
    reports = [e for e in journal.events() if e.get("event") == "incident.reported" and float(e.get("ts", 0)) >= since]
    if not reports:
        return measured
    first = reports[0]
    out = dict(measured, person_report={"after_s": round(float(first["ts"]) - since, 3), "severity": first.get("severity"),
                                         "summary": first.get("summary"), "counted_from": "injection" if t0 else "item start"})
    if t0 is not None and (measured.get("mttd_s") is None or measured.get("incident_kind") == "manual"):
        out.update(mttd_s=out["person_report"]["after_s"], detected_by="person",
                   incident_kind=f"{measured.get('incident_kind') or 'silent'} (reported by a person)",
                   severity=first.get("severity") or measured.get("severity"))
    else:
        out.setdefault("detected_by", "agent")
    return out


class _Keys:
    """The terminal in cbreak mode while the game day runs, so a single key (p, q) acts at once."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.saved: Any = None

    def __enter__(self) -> "_Keys":
        try:
            import termios
            import tty

            self.saved = termios.tcgetattr(self.stream.fileno())
            tty.setcbreak(self.stream.fileno())
        except (ImportError, OSError, ValueError):
            self.saved = None
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def restore(self) -> None:
        if self.saved is not None:
            import termios

            termios.tcsetattr(self.stream.fileno(), termios.TCSADRAIN, self.saved)

    def reenter(self) -> None:
        if self.saved is not None:
            import tty

            tty.setcbreak(self.stream.fileno())

    def key(self) -> str | None:
        if self.saved is None:
            return None
        ready, _, _ = select.select([self.stream], [], [], 0)
        return self.stream.read(1) if ready else None


@dataclass(eq=False)
class _View:
    """What the live panel shows."""

    plan: Plan
    items: list[Item]
    started: float = field(default_factory=clock.now)
    current: Item | None = None
    current_since: float | None = None
    waiting: str = ""
    done: list[ItemOutcome] = field(default_factory=list)
    reported: list[str] = field(default_factory=list)
    current_run_id: str | None = None
    #: status updates and notices the running item's drill wrote so far (journal: status.update, notice.written)
    updates: int = 0
    notices: int = 0

    def render(self, lever: Lever) -> Any:
        from rich.table import Table

        t = Table(title=f"Game day {self.plan.name} ({self.plan.profile} profile) — owner {self.plan.owner}, "
                  f"{clock.now() - self.started:.0f} s elapsed", expand=False)
        for col in ("#", "Item", "Status", "MTTD", "MTTR", "Incidents"):
            t.add_column(col)
        outcome = {o.item.index: o for o in self.done}
        for item in self.items:
            o = outcome.get(item.index)
            if o is not None:
                colour = {"passed": "green", "failed": "red", "error": "red", "stopped": "yellow"}.get(o.status, "white")
                inc = ", ".join(f"{i['kind']} {i['severity']} {i['status']}" for i in o.measured.get("incidents", []))
                t.add_row(str(item.index), item.label, f"[{colour}]{o.status}[/]", _secs(o.measured.get("mttd_s")),
                          _secs(o.measured.get("mttr_s")), inc)
            elif item is self.current and self.current_since is not None:
                feed = f"{self.updates} status update(s)" + (f", {self.notices} notice(s)" if self.notices else "")
                t.add_row(str(item.index), f"[bold]{item.label}[/]", f"running {clock.now() - self.current_since:.0f} s",
                          "", "", feed if self.updates or self.notices else "")
            else:
                t.add_row(str(item.index), item.label, "next" if self._next() is item else "planned", "", "", "")
        if lever.paused:
            t.caption = "PAUSED between items: p or SIGUSR1 resumes"
        elif self.waiting:
            t.caption = self.waiting
        else:
            t.caption = "p: pause after this item · q or Ctrl-C: pull the lever"
        if self.reported:
            t.caption += " · reported: " + "; ".join(self.reported[-3:])
        return t

    def _next(self) -> Item | None:
        done = {o.item.index for o in self.done}
        return next((i for i in self.items if i.index not in done and i is not self.current), None)


def _secs(v: Any) -> str:
    return "" if v is None else f"{v:.1f} s"


def _probe(url: str, timeout: float = 1.0) -> str | None:
    """None when ``url`` answers 2xx; else what went wrong."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (http(s), checked loopback)
            return None if 200 <= resp.status < 300 else f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"


@contextlib.contextmanager
def _signals(lever: Lever, on_pause: Callable[[], None]) -> Iterator[None]:
    """SIGINT and SIGTERM pull the lever; SIGUSR1 toggles pause. The old handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    signal.signal(signal.SIGINT, lambda *_: lever.pull("SIGINT (Ctrl-C)"))
    signal.signal(signal.SIGTERM, lambda *_: lever.pull("SIGTERM"))
    signal.signal(signal.SIGUSR1, lambda *_: on_pause())
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _stop_inner(proc: subprocess.Popen[Any]) -> str:
    """Interrupt an item's pytest as Ctrl-C would; kill its group if it has not ended within the grace."""
    from harness.procs import stop_process

    t = clock.now()
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=STOP_GRACE_S)
        how = f"interrupted, cleaned up in {clock.now() - t:.2f} s"
    except subprocess.TimeoutExpired:
        how = f"did not end within {STOP_GRACE_S} s of SIGINT; its process group was stopped"
    stop_process(proc, grace=0.3, name="game-day item")
    return how


def run_gameday(plan: Plan, out: Path, *, yes: bool = False, console: Any = None, stdin: TextIO | None = None,
                pytest_extra: tuple[str, ...] = ()) -> GamedayResult:
    """Run ``plan`` into ``out``: journal, one run directory per item, then JUnit, metrics and history."""
    from rich.console import Console
    from rich.live import Live

    from harness.gameday import outputs
    from harness.procs import spawn

    stdin = stdin if stdin is not None else sys.stdin
    console = console or Console()
    tty = stdin.isatty()
    if plan.agent.remote is not None:
        raise UsageError("a remote agent (agent.remote) can be probed (stop.health_url) and sent `drill incident`, but "
                         "the drills start and stop the agent they drill: give agent.command or agent.image to run them")
    items = plan.items()
    if not yes and not tty:
        raise NoTerminal("there is no terminal to ask the owner before each destructive fault: run on a terminal, or "
                         "pass --yes to run the game day unattended (every destructive fault then goes ahead)")
    levers = [out / "STOP"] + ([plan.stop.lever_file] if plan.stop.lever_file else [])
    for p in levers:
        if p.exists():
            raise UsageError(f"the lever file {p} already exists, so the game day would stop at once: remove it "
                             "(it is how a game day is stopped) and start again")
    out.mkdir(parents=True, exist_ok=True)
    (out / "runs").mkdir(exist_ok=True)
    (out / "items").mkdir(exist_ok=True)
    journal = Journal(out / "journal.jsonl")
    lever = Lever()
    view = _View(plan=plan, items=items)
    outcomes: list[ItemOutcome] = []
    started_wall, started = clock.wall(), clock.now()

    def toggle_pause() -> None:
        lever.paused = not lever.paused

    def say(text: str) -> None:
        console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {text}", highlight=False)

    journal.write("gameday.start", plan=plan.to_json(), out=str(out), unattended=yes, pid=os.getpid(),
                  items=[{"index": i.index, "kind": i.kind, "label": i.label, "destructive": i.destructive} for i in items],
                  levers=[str(p) for p in levers])
    (out / "gameday.pid").write_text(f"{os.getpid()}\n")

    stop_probe = threading.Event()

    def health_probe() -> None:
        url = plan.stop.health_url
        assert url is not None
        while not stop_probe.wait(plan.stop.health_interval_s):
            problem = _probe(url)
            if problem is not None:
                lever.pull(f"stop condition: health probe {url} failed ({problem})")
                return

    prober = threading.Thread(target=health_probe, name="gameday-health", daemon=True) if plan.stop.health_url else None

    paused_journaled = False
    seen_size = [0]
    said_feed = [0]  # status updates and notices already printed
    lever_journaled = False

    def journal_lever() -> str:
        """The lever's reason, journaled once: before the running item is stopped (its pytest names it in the record)."""
        nonlocal lever_journaled
        reason = lever.reason or "stopped"
        if not lever_journaled:
            lever_journaled = True
            journal.write("lever", reason=reason)
        return reason

    def check(keys: _Keys | None) -> None:
        """One look at everything that can stop or pause the game day."""
        nonlocal paused_journaled
        for p in levers:
            if p.exists():
                lever.pull(f"lever file {p}")
        key = keys.key() if keys is not None else None
        if key in ("p", "P", " "):
            toggle_pause()
        elif key in ("q", "Q"):
            lever.pull("q pressed on the terminal")
        if lever.paused != paused_journaled:
            paused_journaled = lever.paused
            journal.write("pause" if lever.paused else "resume")
            say("paused: p or SIGUSR1 resumes" if lever.paused else "resumed")
        size = journal.path.stat().st_size
        if size != seen_size[0]:  # drill incident appended a report, or the running item a status update
            seen_size[0] = size
            events = list(journal.events())
            view.reported = [f"{e.get('severity')}: {e.get('summary')}" for e in events
                             if e.get("event") == "incident.reported"]
            run_id = view.current_run_id
            feed = [e for e in events if e.get("event") in ("status.update", "notice.written")]
            for e in feed[said_feed[0]:]:
                if e["event"] == "status.update":
                    say(f"status update {e.get('incident_id')}: {e.get('kind')} {e.get('severity')} {e.get('status')} "
                        f"({e.get('file') or e.get('problem')})")
                else:
                    say(f"notice to the counterparties ({', '.join(e.get('because') or ())}): {e.get('file') or e.get('problem')}")
            said_feed[0] = len(feed)
            view.updates = sum(e.get("event") == "status.update" and e.get("run_id") == run_id for e in feed)
            view.notices = sum(e.get("event") == "notice.written" and e.get("run_id") == run_id for e in feed)

    def wait(seconds: float, keys: _Keys | None, why: str, hold_while_paused: bool = True) -> None:
        end = clock.now() + seconds
        while not lever.pulled:
            check(keys)
            left = end - clock.now()
            if left <= 0 and not (hold_while_paused and lever.paused):
                break
            view.waiting = "PAUSED" if lever.paused else f"{why}: {max(left, 0):.0f} s"
            lever.wait(_POLL_S)
        view.waiting = ""

    def approve(item: Item, keys: _Keys | None, live: Any) -> bool:
        journal.write("approval.asked", item=item.index, label=item.label, fault=item.destructive, owner=plan.owner)
        if yes:
            journal.write("approval", item=item.index, answer="yes", by="--yes (unattended)")
            return True
        live.stop()
        if keys is not None:
            keys.restore()
        try:
            console.print(f"\n[bold yellow]Item {item.index}/{len(items)}[/] {item.label} injects a destructive fault "
                          f"([bold]{item.destructive}[/]). {plan.owner}, go ahead? \\[y/N] ", end="", highlight=False)
            answer = None
            while not lever.pulled:
                for p in levers:
                    if p.exists():
                        lever.pull(f"lever file {p}")
                ready, _, _ = select.select([stdin], [], [], _POLL_S)
                if ready:
                    answer = stdin.readline().strip().lower()
                    break
        finally:
            if keys is not None:
                keys.reenter()
            live.start()
        if answer is None:
            journal.write("approval", item=item.index, answer="none", by=plan.owner, note=f"lever: {lever.reason}")
            return False
        ok = answer in ("y", "yes")
        journal.write("approval", item=item.index, answer="yes" if ok else "no", by=plan.owner)
        return ok

    def run_item(item: Item, keys: _Keys | None) -> ItemOutcome:
        run_id = f"{item.index:02d}-{_slug(item.label)}"
        run_dir = out / "runs" / run_id
        log = out / "items" / f"{run_id}.log"
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "harness.gameday.inner",
               *item.pytest_args, "--drill-catalogue", "no",
               *plan.agent_args(), "--drill-report-dir", str(out / "runs"), "--drill-run-id", run_id,
               "--alluredir", str(out / "allure-results"), *pytest_extra]
        journal.write("item.start", item=item.index, kind=item.kind, label=item.label, run_id=run_id,
                      command=[Path(cmd[0]).name, *cmd[1:]])
        say(f"item {item.index}/{len(items)} [bold]{item.label}[/] started (log {log})")
        view.current, view.current_since, view.current_run_id = item, clock.now(), run_id
        view.updates = view.notices = 0
        t0_wall, t0 = clock.wall(), clock.now()
        with open(log, "wb") as fh:
            proc = spawn(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=os.getcwd(),
                         env={**os.environ, "GAMEDAY_OUT": str(out)})
            stopped_how = None
            try:
                while proc.poll() is None:
                    check(keys)
                    if lever.pulled:
                        journal_lever()
                        stopped_how = _stop_inner(proc)
                        break
                    lever.wait(_POLL_S)
            finally:
                if proc.poll() is None:
                    _stop_inner(proc)
        duration = round(clock.now() - t0, 3)
        view.current = None
        found = measured_from_run(run_dir)
        if stopped_how is not None:
            status, message = "stopped", f"stopped by the lever ({lever.reason}): {stopped_how}"
            measured = found[2] if found else {}
        elif found is None:
            status, message, measured = "error", f"the item's pytest exited {proc.returncode} without a drill record (see {log})", {}
        else:
            status, message, measured = found
        measured = _person_detection(measured, journal, t0_wall)
        outcome = ItemOutcome(item=item, status=status, started_at=t0_wall, duration_s=duration,
                              run_dir=run_dir if run_dir.is_dir() else None, log=log, message=message, measured=measured)
        journal.write("item.end", item=item.index, label=item.label, status=status, duration_s=duration,
                      exit_code=proc.returncode, message=message, run_dir=str(outcome.run_dir) if outcome.run_dir else None,
                      **{k: measured.get(k) for k in ("scenario", "mttd_s", "contain_s", "mttr_s", "incident_kind", "severity",
                                                      "incidents", "faults", "failure_category", "failed_check", "lost_wei",
                                                      "detected_by", "person_report")})
        colour = "green" if status == "passed" else "red"
        say(f"item {item.index} {item.label}: [{colour}]{status}[/] in {duration:.1f} s; MTTD {_secs(measured.get('mttd_s')) or '-'}, "
            f"MTTR {_secs(measured.get('mttr_s')) or '-'}" + (f"; {message}" if message else ""))
        return outcome

    reason = "completed"
    use_keys = tty
    with _signals(lever, toggle_pause), (_Keys(stdin) if use_keys else contextlib.nullcontext()) as keys, \
            Live(get_renderable=lambda: view.render(lever), console=console, refresh_per_second=4,
                 transient=False, auto_refresh=console.is_terminal) as live:
        if prober is not None:
            prober.start()
        try:
            for n, item in enumerate(items):
                check(keys)
                if lever.pulled:
                    break
                if plan.pacing.duration_s is not None and clock.now() - started > plan.pacing.duration_s:
                    journal.write("item.skipped", item=item.index, label=item.label,
                                  why=f"the plan's duration ({plan.pacing.duration_s:g} s) is over")
                    outcomes.append(ItemOutcome(item=item, status="skipped", message="the plan's duration is over"))
                    continue
                if lever.paused:
                    wait(0, keys, "paused")
                if lever.pulled:
                    break
                if item.destructive and not approve(item, keys, live):
                    if lever.pulled:
                        break
                    journal.write("item.skipped", item=item.index, label=item.label, why="the owner declined")
                    outcomes.append(ItemOutcome(item=item, status="skipped", message=f"{plan.owner} declined"))
                    view.done.append(outcomes[-1])
                    continue
                outcome = run_item(item, keys)
                outcomes.append(outcome)
                view.done.append(outcome)
                lost = outcome.measured.get("lost_wei")
                limit = plan.stop.value_at_risk_eth
                if limit is not None and lost is not None and lost > limit * _WEI_PER_ETH:
                    lever.pull(f"stop condition: value at risk: item {item.index} lost {lost / _WEI_PER_ETH:.4f} ETH, "
                               f"more than the plan's {limit:g} ETH")
                if lever.pulled:
                    break
                if n + 1 < len(items):
                    wait(plan.pacing.gap_s, keys, f"next: {items[n + 1].label} in")
        finally:
            stop_probe.set()
            if lever.pulled:
                reason = journal_lever()
                say(f"[bold red]stopped[/]: {reason}")
            done = {o.item.index for o in outcomes}
            for item in items:
                if item.index not in done:
                    outcomes.append(ItemOutcome(item=item, status="skipped", message=f"not run: {reason}"))
            result = GamedayResult(reason=reason, outcomes=tuple(outcomes), started_at=started_wall,
                                   duration_s=round(clock.now() - started, 3))
            journal.close(reason, duration_s=result.duration_s,
                          counts={s: sum(o.status == s for o in outcomes) for s in sorted({o.status for o in outcomes})})
            with contextlib.suppress(FileNotFoundError):
                (out / "gameday.pid").unlink()
    console.print()
    outputs.write_outputs(plan, out, result, console=console)
    return result
