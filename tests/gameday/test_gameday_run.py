"""Game days against the reference agent: the lever, the approval prompt, a whole plan unattended.

Each test runs ``drill gameday`` as a user would, in a process of its own, and reads what it left.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from harness.gameday.journal import read_journal

ROOT = Path(__file__).resolve().parents[2]
AGENT = """
[agent]
command = "{python} -m reference_agent"
env = { PYTHONPATH = "%s" }
""" % (ROOT / "fixtures")

HELD_DRILL = textwrap.dedent('''
    import json, os, time
    from pathlib import Path

    import pytest
    from harness import Outage


    @pytest.mark.drill(playbook="network-issues", incident="rpc_failure", family="network", budget={"time_limit": 300})
    def test_outage_held_until_the_lever(drill):
        drill.steady_state()
        drill.inject(Outage("primary"))
        drill.expect_detection("rpc_failure")
        ctx = drill.ctx
        mark = Path(os.environ["GAMEDAY_MARK"])
        token = mark.with_suffix(".token")
        token.touch(mode=0o600)
        token.write_text(ctx.operator_token)
        mark.write_text(json.dumps({"agent_pid": ctx.agent.pid, "control": ctx.control_url, "alert": ctx.alert_url,
                                    "rpc": list(ctx.endpoint_urls.values()), "chain": ctx.chain.rpc_url}))
        deadline = time.monotonic() + 240  # the fault stays on until the lever ends the game day
        while time.monotonic() < deadline:
            time.sleep(0.05)
''')


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _listening(url: str) -> bool:
    parts = urlsplit(url)
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((parts.hostname or "127.0.0.1", parts.port or 80)) == 0


def _gameday(*args: str, env: dict[str, str] | None = None, cwd: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness.cli", "gameday", *args], cwd=cwd,
                            env={**os.environ, **(env or {})}, **kw)


@pytest.mark.slow
def test_the_lever_stops_a_game_day_mid_fault_within_two_seconds_leaving_nothing_running(tmp_path: Path) -> None:
    (tmp_path / "drills").mkdir()
    (tmp_path / "drills" / "test_held.py").write_text(HELD_DRILL)
    plan = tmp_path / "gameday.toml"
    plan.write_text(textwrap.dedent(f"""
        name = "lever"
        owner = "alice"
        drills = ["{tmp_path}/drills/test_held.py::test_outage_held_until_the_lever",
                  "test_primary_rpc_down_fails_over_to_backup"]
        history_dir = "history"
        [stop]
        lever_file = "LEVER"
    """) + AGENT)
    mark, out = tmp_path / "mark.json", tmp_path / "out"
    proc = _gameday(str(plan), "--yes", "--out", str(out), cwd=tmp_path, env={"GAMEDAY_MARK": str(mark)},
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 120
        while not mark.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert mark.exists(), f"the held drill never injected its fault: {proc.communicate(timeout=30)[0]}"
        world = json.loads(mark.read_text())
        assert _alive(world["agent_pid"]) and _listening(world["control"])

        # a person reports what they see: to the agent's control API and to the journal
        report = subprocess.run([sys.executable, "-m", "harness.cli", "incident", "primary RPC dashboard red",
                                 "--severity", "SEV-2", "--control", world["control"], "--token-file",
                                 str(mark.with_suffix(".token")), "--gameday", str(out)],
                                capture_output=True, text=True, timeout=30)
        assert report.returncode == 0, report.stderr
        assert report.stdout.startswith("reported INC-") and "(SEV-2): primary RPC dashboard red" in report.stdout

        (tmp_path / "LEVER").write_text("")
        pulled = time.monotonic()
        urls = [world["control"], world["alert"], *world["rpc"], world["chain"]]
        while time.monotonic() - pulled < 10 and (_alive(world["agent_pid"]) or any(_listening(u) for u in urls)):
            time.sleep(0.02)
        gone_after = time.monotonic() - pulled
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    print(f"world gone {gone_after:.2f} s after the lever")
    assert gone_after < 2.0, f"the world was still up {gone_after:.2f} s after the lever: {output}"
    assert not _alive(world["agent_pid"]) and not any(_listening(u) for u in urls)
    assert proc.returncode == 3, output

    events = read_journal(out / "journal.jsonl")
    names = [e["event"] for e in events]
    assert names[0] == "gameday.start" and names[-1] == "gameday.end"
    assert events[-1]["reason"] == f"lever file {tmp_path / 'LEVER'}"
    reported = next(e for e in events if e["event"] == "incident.reported")
    assert reported["severity"] == "SEV-2" and reported["http_status"] == 201 and reported["incident_id"].startswith("INC-")
    ends = [e for e in events if e["event"] == "item.end"]
    assert len(ends) == 1 and ends[0]["status"] == "stopped" and "stopped by the lever" in ends[0]["message"]
    assert [e["why"] for e in events if e["event"] == "item.skipped"] == []  # the second never started ...
    cases = ET.parse(out / "junit.xml").getroot().findall("testcase")
    assert [c.find("skipped") is not None for c in cases] == [True, True]  # ... and is reported as not run
    assert "lever file" in cases[1].find("skipped").get("message")
    # the inner run's own teardown ran: its log says it was interrupted, not killed
    log = next((out / "items").glob("01-*.log")).read_text()
    assert "KeyboardInterrupt" in log or "Interrupted" in log, log[-2000:]
    # ... and the stopped drill left its record, saying the lever stopped it
    assert events.index(next(e for e in events if e["event"] == "lever")) < events.index(ends[0])
    run_dir = Path(ends[0]["run_dir"])
    drill = json.loads((run_dir / "summary.json").read_text())["drills"][0]
    assert (drill["status"], drill["failure_category"]) == ("aborted", "aborted")
    assert drill["failure_message"] == f"interrupted: stopped by the game day's lever (lever file {tmp_path / 'LEVER'})"
    assert drill["t0"] is not None and drill["mttd_s"] > 0  # what was measured before the stop is kept
    assert "stopped by the game day's lever" in (run_dir / "README.md").read_text()
    assert ends[0]["mttd_s"] == drill["mttd_s"] and ends[0]["failure_category"] == "aborted"


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _text(seen: list[str]) -> str:
    return ANSI.sub("", "".join(seen))


def _read_until(fd: int, needle: str, proc: subprocess.Popen, seen: list[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while needle not in _text(seen):
        assert time.monotonic() < deadline and proc.poll() is None, f"never saw {needle!r}: {_text(seen)[-3000:]}"
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen.append(os.read(fd, 65536).decode(errors="replace"))
            except OSError:
                break


@pytest.mark.slow
def test_the_owner_is_asked_on_the_terminal_before_each_destructive_fault(tmp_path: Path) -> None:
    plan = tmp_path / "gameday.toml"
    plan.write_text(textwrap.dedent("""
        name = "approvals"
        owner = "alice"
        drills = ["test_leaked_key_swept_to_cold_wallet_and_allowance_revoked",
                  "test_process_killed_reports_process_crash"]
        history_dir = "history"
        [pacing]
        gap = "1s"
    """) + AGENT)
    out = tmp_path / "out"
    master, slave = pty.openpty()
    proc = _gameday(str(plan), "--out", str(out), cwd=tmp_path, stdin=slave, stdout=slave, stderr=slave,
                    env={"COLUMNS": "200", "TERM": "xterm"})
    os.close(slave)
    seen: list[str] = []
    try:
        _read_until(master, "alice, go ahead? [y/N]", proc, seen)
        assert "test_leaked_key_swept_to_cold_wallet_and_allowance_revoked injects a destructive fault (key leak)" \
            in _text(seen)
        os.write(master, b"n\n")
        _read_until(master, "test_process_killed_reports_process_crash injects a destructive fault (kill). alice, "
                    "go ahead? [y/N]", proc, seen)
        os.write(master, b"y\n")
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            _drain(master, seen)
        _drain(master, seen)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
        os.close(master)
    assert proc.returncode == 0, _text(seen)[-3000:]
    events = read_journal(out / "journal.jsonl")
    answers = [(e["item"], e["answer"], e["by"]) for e in events if e["event"] == "approval"]
    assert answers == [(1, "no", "alice"), (2, "yes", "alice")]
    assert [(e["item"], e["why"]) for e in events if e["event"] == "item.skipped"] == [(1, "the owner declined")]
    ends = [e for e in events if e["event"] == "item.end"]
    assert [(e["item"], e["status"]) for e in ends] == [(2, "passed")]
    assert ends[0]["incident_kind"] == "process_crash" and ends[0]["mttd_s"] > 0


def _drain(fd: int, seen: list[str]) -> None:
    ready, _, _ = select.select([fd], [], [], 0.2)
    if ready:
        try:
            seen.append(os.read(fd, 65536).decode(errors="replace"))
        except OSError:
            pass


@pytest.mark.slow
def test_the_sample_plan_runs_unattended_and_leaves_journal_junit_reports_and_metrics(tmp_path: Path) -> None:
    sample = (ROOT / "gamedays" / "sample.toml").read_text()
    plan = tmp_path / "sample.toml"  # the sample, its history and lever kept in tmp_path
    plan.write_text(sample.replace("../scenarios/schedules/", f"{ROOT}/scenarios/schedules/")
                    .replace('"{rootdir}/fixtures"', f'"{ROOT}/fixtures"'))
    out = tmp_path / "out"
    t = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "harness.cli", "gameday", str(plan), "--yes", "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600,
                         env={**os.environ, "COLUMNS": "200"})
    took = time.monotonic() - t
    assert run.returncode in (0, 1), run.stdout[-4000:] + run.stderr[-2000:]
    assert 120 < took < 300, f"the sample game day took {took:.0f} s; it is meant to last about 3 minutes"

    # Every item ran to a verdict of the agent's (the reference agent fails a drill now and then on a
    # busy machine: that is the drill's verdict, and the exit code must say so).
    events = read_journal(out / "journal.jsonl")
    assert events[-1] == {**events[-1], "event": "gameday.end", "reason": "completed"}
    ends = [e for e in events if e["event"] == "item.end"]
    assert len(ends) == 7 and {e["status"] for e in ends} <= {"passed", "failed"}, ends
    assert all(e["mttd_s"] is not None for e in ends)
    failed = [e for e in ends if e["status"] == "failed"]
    assert run.returncode == (1 if failed else 0)
    assert all(e["failed_check"] and e["message"] for e in failed)
    assert len(failed) <= 1, f"more than one drill of the reference agent failed: {failed}"
    assert [e["answer"] for e in events if e["event"] == "approval"] == ["yes", "yes"]

    suite = ET.parse(out / "junit.xml").getroot()
    assert suite.get("tests") == "7" and suite.get("failures") == str(len(failed)) and suite.get("errors") == "0"
    for e in ends:  # the report plugin's own reports, one run directory per item
        run_dir = Path(e["run_dir"])
        assert (run_dir / "summary.json").is_file() and (run_dir / "README.md").is_file()
    assert any((out / "allure-results").glob("*-result.json"))

    metrics = json.loads((out / "metrics.json").read_text())
    groups = metrics["this_gameday"]["by_kind_and_severity"]
    assert {"wallet_compromise SEV-1", "process_crash SEV-2", "rpc_failure SEV-3"} <= set(groups)
    assert groups["wallet_compromise SEV-1"]["items"] == 1 and groups["wallet_compromise SEV-1"]["mean_mttd_s"] > 0
    assert metrics["history"]["game_days"] == 1 and metrics["history"]["frequency"]["judged"] is False
    assert "## This game day" in (out / "metrics.md").read_text()
    history = (tmp_path / "history" / "gamedays.jsonl").read_text().splitlines()
    assert len(history) == 1 and json.loads(history[0])["reason"] == "completed"


@pytest.mark.slow
def test_a_silent_fault_is_detected_when_a_person_reports_it(tmp_path: Path) -> None:
    """The agent is frozen and raises nothing; the person who sees /health go silent reports, and that is the MTTD."""
    plan = tmp_path / "gameday.toml"
    plan.write_text(textwrap.dedent(f"""
        name = "silent"
        owner = "alice"
        drills = ["{ROOT}/gamedays/drills/test_silent.py::test_frozen_agent_is_noticed_by_a_person"]
        history_dir = "history"
    """) + AGENT)
    out = tmp_path / "out"
    proc = _gameday(str(plan), "--yes", "--out", str(out), cwd=tmp_path, stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "agent.json").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        control = json.loads((out / "agent.json").read_text())["control"]
        # the person watches the agent's /health (once it is up) until it stops answering, then reports
        up = False
        while not up and proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(control + "/health", timeout=0.5):
                    up = True
            except OSError:
                time.sleep(0.2)
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(control + "/health", timeout=0.5):
                    pass
            except OSError:
                break
            time.sleep(0.2)
        noticed = time.time()
        report = subprocess.run([sys.executable, "-m", "harness.cli", "incident", "agent /health stopped answering",
                                 "--severity", "SEV-2", "--gameday", str(out)], capture_output=True, text=True, timeout=30)
        output, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    # the frozen agent cannot take the report; the journal has it all the same
    assert report.returncode == 1 and "did not answer" in report.stderr and "recorded in the journal" in report.stderr
    assert proc.returncode == 0, output[-4000:]
    events = read_journal(out / "journal.jsonl")
    reported = next(e for e in events if e["event"] == "incident.reported")
    assert reported["severity"] == "SEV-2" and reported["http_status"] is None and reported["problem"]
    end = next(e for e in events if e["event"] == "item.end")
    assert end["status"] == "passed" and end["detected_by"] == "person"
    assert end["incident_kind"] == "manual (reported by a person)" and end["severity"] == "SEV-2"
    # counted from the injection to the report: the person's noticing (a /health poll) and the command's start
    assert end["mttd_s"] == end["person_report"]["after_s"] and 0 < end["mttd_s"] < 15
    assert noticed <= reported["ts"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["this_gameday"]["by_kind_and_severity"]["manual (reported by a person) SEV-2"]["items"] == 1
    assert not (out / "agent.json").exists() and not (out / "agent.token").exists()


def _two_item_plan(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A plan of two short drills a second apart (for the pause tests) and the game day's --out."""
    plan = tmp_path / "gameday.toml"
    plan.write_text(textwrap.dedent(f"""
        name = "{name}"
        owner = "alice"
        drills = ["test_primary_rpc_down_fails_over_to_backup", "test_primary_rpc_down_detected_within_budget"]
        history_dir = "history"
        [pacing]
        gap = "1s"
    """) + AGENT)
    return plan, tmp_path / "out"


def _journal_events(out: Path) -> list[str]:
    """The journal so far as "event item" lines ("item.start 1", "pause", ...)."""
    path = out / "journal.jsonl"
    return [f"{e['event']} {e.get('item', '')}".strip() for e in read_journal(path)] if path.exists() else []


@pytest.mark.slow
def test_sigusr1_pauses_between_items_and_resumes(tmp_path: Path) -> None:
    plan, out = _two_item_plan(tmp_path, "pause")
    proc = _gameday(str(plan), "--yes", "--out", str(out), cwd=tmp_path, stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)

    def events() -> list[str]:
        return _journal_events(out)

    def wait_for(name: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while name not in events():
            assert proc.poll() is None and time.monotonic() < deadline, f"no {name!r} in {events()}"
            time.sleep(0.1)

    try:
        wait_for("item.start 1")
        proc.send_signal(signal.SIGUSR1)  # asked during item 1: the game day holds after it
        wait_for("pause")
        wait_for("item.end 1")
        time.sleep(3)  # longer than the gap: still held
        assert "item.start 2" not in events()
        proc.send_signal(signal.SIGUSR1)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode in (0, 1), output[-3000:]
    seq = events()
    assert seq.index("item.end 1") < seq.index("resume") < seq.index("item.start 2"), seq
    assert seq.count("pause") == 1 and seq[-1] == "gameday.end"


@pytest.mark.slow
def test_the_p_key_pauses_between_items_and_resumes(tmp_path: Path) -> None:
    """On the terminal, as a person would: `p` during item 1 holds item 2 until `p` again."""
    plan, out = _two_item_plan(tmp_path, "pause-key")
    master, slave = pty.openpty()
    proc = _gameday(str(plan), "--out", str(out), cwd=tmp_path, stdin=slave, stdout=slave, stderr=slave,
                    env={"COLUMNS": "200", "TERM": "xterm"})
    os.close(slave)
    seen: list[str] = []

    def events() -> list[str]:
        return _journal_events(out)

    def wait_for(name: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while name not in events():
            assert proc.poll() is None and time.monotonic() < deadline, f"no {name!r} in {events()}: {_text(seen)[-2000:]}"
            _drain(master, seen)

    try:
        wait_for("item.start 1")
        os.write(master, b"p")  # pressed during item 1: the game day holds after it
        wait_for("pause")
        assert "item.end 1" not in events()
        wait_for("item.end 1")
        held = time.monotonic() + 3  # longer than the gap: still held
        while time.monotonic() < held:
            _drain(master, seen)
        assert "item.start 2" not in events()
        assert "PAUSED between items: p or SIGUSR1 resumes" in _text(seen)
        os.write(master, b"p")
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            _drain(master, seen)
        _drain(master, seen)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
        os.close(master)
    assert proc.returncode in (0, 1), _text(seen)[-3000:]
    seq = events()
    assert seq.index("pause") < seq.index("item.end 1") < seq.index("resume") < seq.index("item.start 2"), seq
    assert seq.count("pause") == seq.count("resume") == 1 and seq[-1] == "gameday.end"
    assert "resumed" in _text(seen)
