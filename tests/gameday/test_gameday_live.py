"""A game day writes status updates and partner notices while the drill runs, not only when it has ended.

Each test runs ``drill gameday`` against the reference agent, as a user would, and reads what it left.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.gameday.journal import read_journal

ROOT = Path(__file__).resolve().parents[2]
AGENT = """
[agent]
command = "{python} -m reference_agent"
env = { PYTHONPATH = "%s" }
"""  % (ROOT / "fixtures")

# The fault stays on until the game day's status update of the incident is there to read: the drill
# itself fails if it is not written while the primary RPC is down.
WATCHED_DRILL = textwrap.dedent('''
    import os, time
    from pathlib import Path

    import pytest
    from harness import Outage


    @pytest.mark.drill(playbook="network-issues", incident="rpc_failure", family="network")
    def test_outage_held_until_the_status_update_is_out(drill):
        drill.steady_state()
        drill.inject(Outage("primary"))
        drill.expect_detection("rpc_failure")
        status = Path(os.environ["GAMEDAY_OUT"]) / "status"
        deadline = time.monotonic() + 20
        while not list(status.glob(f"*--{drill.incident_id}.md")) and time.monotonic() < deadline:
            time.sleep(0.05)
        files = list(status.glob(f"*--{drill.incident_id}.md"))
        assert files, f"no status update of {drill.incident_id} in {status} while the fault was on"
        Path(os.environ["GAMEDAY_OUT"], "seen-while-on.md").write_text(files[0].read_text())
        drill.heal()
        drill.expect_recovery()
        drill.verify()
''')

# The agent is frozen (it raises nothing, proves nothing) until the game day has told the
# counterparties that an escrow deadline passed: the chain's evidence, not the agent's word.
FROZEN_DRILL = textwrap.dedent('''
    import os, time
    from pathlib import Path

    import pytest
    from harness import Freeze


    @pytest.mark.drill(playbook="monitoring", family="process", budget={"deadline_misses": 100, "time_limit": 120})
    def test_frozen_until_the_counterparties_are_told(drill):
        drill.steady_state()
        freeze = drill.inject(Freeze())
        notices = Path(os.environ["GAMEDAY_OUT"]) / "notices"
        deadline = time.monotonic() + 45  # an escrow's deadline is 15 s after it opens
        while not list(notices.glob("*.md")) and time.monotonic() < deadline:
            time.sleep(0.1)
        files = list(notices.glob("*.md"))
        assert files, f"no notice in {notices} while the agent was frozen"
        Path(os.environ["GAMEDAY_OUT"], "seen-while-frozen.md").write_text(files[0].read_text())
        drill.heal(freeze)
''')

FIELD = re.compile(r"^- \*\*(.+?):\*\* (.*)$", re.M)


def _fields(text: str) -> dict[str, str]:
    return dict(FIELD.findall(text))


def _run(tmp_path: Path, drills: list[str], timeout: float = 240) -> tuple[Path, subprocess.CompletedProcess[str]]:
    plan = tmp_path / "gameday.toml"
    plan.write_text(textwrap.dedent(f"""
        name = "live"
        owner = "alice"
        drills = {json.dumps(drills)}
        history_dir = "history"
    """) + AGENT)
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "harness.cli", "gameday", str(plan), "--yes", "--out", str(out)],
                         cwd=tmp_path, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout,
                         env={**os.environ, "COLUMNS": "200"})
    return out, run


@pytest.mark.slow
def test_status_updates_are_written_as_the_incident_unfolds_in_the_layout_of_the_report(tmp_path: Path) -> None:
    (tmp_path / "drills").mkdir()
    (tmp_path / "drills" / "test_watched.py").write_text(WATCHED_DRILL)
    out, run = _run(tmp_path, [f"{tmp_path}/drills/test_watched.py::test_outage_held_until_the_status_update_is_out"])
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]

    events = read_journal(out / "journal.jsonl")
    end = next(e for e in events if e["event"] == "item.end")
    assert end["status"] == "passed", end
    incident = end["incidents"][0]["incident_id"]
    updates = [e for e in events if e["event"] == "status.update"]
    assert updates and all(e["ts"] < end["ts"] for e in updates)
    mine = [e for e in updates if e["incident_id"] == incident]
    live = [e for e in mine if not e.get("final")]
    # one update when the incident opened, then one per change of status, while the drill ran ...
    assert live[0]["status"] == "detected" and len({e["status"] for e in live}) == len(live) > 1, mine
    start = next(e for e in events if e["event"] == "item.start")
    assert {(e["kind"], e["severity"], e["run_id"]) for e in mine} == {("rpc_failure", "SEV-3", start["run_id"])}
    path = out / live[0]["file"]
    assert path.parent == out / "status" and path.name == f"{start['run_id']}--{incident}.md"

    # ... in the report's layout, saying only what was known while the fault was on
    on = (out / "seen-while-on.md").read_text()
    report_path = next((Path(end["run_dir"]) / "status-updates").glob(f"*--{incident}.md"))
    report = report_path.read_text()
    assert list(_fields(on)) == list(_fields(report)) == ["Incident ID", "Severity", "Status", "Started", "Summary",
                                                          "Impact", "Actions taken", "Next steps", "ETA"]
    fields = _fields(on)
    assert fields["Incident ID"] == incident and fields["Status"] in ("detected", "investigating", "contained")
    assert fields["Started"] == _fields(report)["Started"]
    assert fields["ETA"].startswith("open; the drill's recovery budget is 30.0 s from the injection (until ")
    assert fields["Impact"].startswith("funds not read yet")
    assert "the game day follows it until it is resolved" in fields["Next steps"]

    # and once the drill has ended, the report's own rendering of its record (funds read on chain)
    assert mine[-1]["final"] is True and mine[-1]["file"] == live[0]["file"]
    assert path.read_text() == report
    assert "status update" in run.stdout and incident in run.stdout  # the runner said so as it happened
    # the item's run knows who owns the game day (the author of its post-mortem drafts)
    assert json.loads((Path(end["run_dir"]) / "summary.json").read_text())["owner"] == "alice"


@pytest.mark.slow
def test_a_notice_goes_to_the_counterparties_once_the_harness_sees_a_deadline_pass(tmp_path: Path) -> None:
    (tmp_path / "drills").mkdir()
    (tmp_path / "drills" / "test_frozen.py").write_text(FROZEN_DRILL)
    out, run = _run(tmp_path, [f"{tmp_path}/drills/test_frozen.py::test_frozen_until_the_counterparties_are_told"])
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]

    events = read_journal(out / "journal.jsonl")
    start = next(e for e in events if e["event"] == "item.start")
    end = next(e for e in events if e["event"] == "item.end")
    notices = [e for e in events if e["event"] == "notice.written"]
    # the deadline passed unproven; the counterparty's expiry of that escrow may land in the same look
    assert notices and "missed_deadline" in notices[0]["because"] and set(notices[0]["because"]) <= {"missed_deadline", "expired"}
    first = notices[0]
    assert first["ts"] < end["ts"] and first["run_id"] == start["run_id"]
    assert first["file"] == f"notices/{start['run_id']}.md" and first["missed_deadlines"] >= 1
    # written while the agent was frozen (the drill copied it before the thaw), from the chain's evidence alone
    seen = (out / "seen-while-frozen.md").read_text()
    assert seen.startswith("### External notice: test_frozen_until_the_counterparties_are_told\n")
    assert "our agent has been handling an incident (no incident reported)." in seen
    assert re.search(r"^- [1-9]\d* escrow deadline\(s\) were missed; \d+ escrow\(s\) expired unproven", seen, re.M)
    # in the notice fields of the report's layout, the funds not yet read
    fields = _fields(seen)
    assert list(fields) == ["To", "Subject", "Impact", "Status", "ETA", "Funds at risk", "Next update"]
    assert fields["Status"] == "no incident reported by the agent yet" and fields["Funds at risk"].startswith("not measured yet")
    # the run's report writes a notice only for a SEV-1/SEV-2 incident: this drill had none, so the
    # live notice is the one the partners got, left as it was
    assert not (Path(end["run_dir"]) / "notices").exists()
    assert (out / first["file"]).read_text().startswith("### External notice: test_frozen_until_the_counterparties_are_told\n")
    assert "notice to the counterparties (" in run.stdout and first["file"] in run.stdout
