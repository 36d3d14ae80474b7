"""A real run: pytest drives the engine's drills against the minimal agent with the report plugin on.

One subprocess run (the way users run drills) with ``--alluredir`` and the regression gate, a
history seeded so that one drill has fast past runs; then every artifact is checked: summary.json
against the schema, README sections, pictures, Allure results with labels, steps and attachments,
the history, and the gate's failure with its numbers. The Chromium test opens the HTML report built
from the same results.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.report.cli import build_allure_report
from harness.record.model import validate_summary

ROOT = Path(__file__).resolve().parents[2]
DRILLS = ROOT / "tests" / "engine" / "minimal_drills.py"
AGENT = ROOT / "tests" / "minimal_agent" / "agent.py"
KILLED = "tests/engine/minimal_drills.py::test_killed_agent_reports_crash_after_restart"
FAILOVER = "tests/engine/minimal_drills.py::test_primary_rpc_down_fails_over_to_backup"
RUN_ID = "e2e-run"
CHROMIUM = Path("/usr/bin/chromium")


@dataclass
class Run:
    proc: subprocess.CompletedProcess[str]
    reports: Path
    results: Path

    @property
    def run_dir(self) -> Path:
        return self.reports / RUN_ID

    def summary(self) -> dict:
        return json.loads((self.run_dir / "summary.json").read_text())


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    base = tmp_path_factory.mktemp("e2e")
    reports, results = base / "reports", base / "allure-results"
    reports.mkdir()
    # Three fast past runs of the kill drill: this run's MTTD (seconds: the minimal agent reports the
    # crash after its restart) is far above 1.5x their median, so the gate must fail it.
    seeded = [{"run_id": f"past-{i}", "ts": 1.0 + i, "name": KILLED, "scenario": KILLED.split("::")[1],
               "chain_backend": None, "status": "passed", "failure_category": None, "mttd_s": 0.2 + i / 100,
               "contain_s": 0.3, "mttr_s": 0.5, "budgets": {}, "regressed": False} for i in range(3)]
    (reports / "history.jsonl").write_text("".join(json.dumps(e) + "\n" for e in seeded))
    cmd = [
        sys.executable, "-m", "pytest", "-p", "harness.drill.pytest_plugin", "-p", "harness.report.pytest_plugin",
        str(DRILLS), "-rA", "-q", "--agent-cmd", f"{{python}} {AGENT}",
        "-k", "steady_state_holds or killed_agent or fails_over_to_backup",
        "--basetemp", str(base / "inner"), "--alluredir", str(results), "--drill-report-dir", str(reports),
        "--drill-run-id", RUN_ID, "--drill-gate", "regression", "--drill-gate-factor", "1.5",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=540, env=dict(os.environ))
    return Run(proc, reports, results)


@pytest.mark.slow
def test_the_run_fails_and_says_why(run: Run) -> None:
    out = run.proc.stdout
    assert run.proc.returncode == 1, out[-3000:]
    assert "PASSED tests/engine/minimal_drills.py::test_steady_state_holds" in out, out[-3000:]
    assert f"FAILED {FAILOVER}" in out
    assert f"ERROR {KILLED} - drill regression gate: MTTD" in out or (
        "drill regression gate: MTTD" in out and f"ERROR {KILLED}" in out), out[-3000:]
    assert f"report: {run.run_dir / 'README.md'}" in out


@pytest.mark.slow
def test_summary_validates_and_records_each_drill(run: Run) -> None:
    summary = run.summary()
    validate_summary(summary)
    drills = {d["name"]: d for d in summary["drills"]}
    assert set(drills) == {"tests/engine/minimal_drills.py::test_steady_state_holds", KILLED, FAILOVER}
    assert summary["run_id"] == RUN_ID and summary["chain_backend"] and summary["agent_command"][-1] == str(AGENT)
    assert summary["gate"] == {"mode": "regression", "factor": 1.5, "min_history": 3}
    killed = drills[KILLED]
    assert (killed["status"], killed["failure_category"]) == ("failed", "regression")
    assert killed["regression"]["regressed"] and killed["regression"]["history_runs"] == 3
    assert "x the median 0.21 s of the last 3 passing run(s) (limit 1.5x = 0.32 s)" in killed["failure_message"]
    assert killed["incidents"][0]["kind"] == "process_crash" and killed["restarts"] >= 1
    # the drill's own within=10 and severity="SEV-2", not the configured detect budget of 5 s
    assert killed["budgets"]["detect_s"] == 10.0 and killed["expected_incident"]["min_severity"] == "SEV-2"
    failover = drills[FAILOVER]
    assert (failover["status"], failover["failure_category"]) == ("failed", "missed_detection")
    assert failover["mttd_s"] is None and failover["budgets"]["detect_s"] == 5.0
    assert summary["metrics"]["drills"] == 3 and summary["metrics"]["failed"] == 2


@pytest.mark.slow
def test_readme_pictures_and_history(run: Run) -> None:
    readme = (run.run_dir / "README.md").read_text()
    assert "## Incident metrics" in readme and "## Drills" in readme
    assert "Slower than this drill's own history allows: regression gate: MTTD" in readme
    assert "The agent did not raise the expected incident in time: no rpc_failure alert at exactly SEV-3 within 5.0 s" in readme
    assert "#### Status update: INC-" in readme and "### Post-mortem (draft): test_killed_agent_reports_crash_after_restart" in readme
    assert "- [ ] Investigate the slowdown: MTTD" in readme
    for kind in ("charts/*.timeline", "trends/*.trend"):
        assert len(list(run.run_dir.glob(f"{kind}.png"))) == 3 and len(list(run.run_dir.glob(f"{kind}.svg"))) == 3
    lines = [json.loads(line) for line in (run.reports / "history.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and {e["run_id"] for e in lines[3:]} == {RUN_ID}
    assert [e for e in lines[3:] if e["name"] == KILLED][0]["regressed"] is True


@pytest.mark.slow
def test_allure_results_carry_labels_steps_attachments_and_extras(run: Run) -> None:
    tests = {}
    for path in run.results.glob("*-result.json"):
        data = json.loads(path.read_text())
        tests[data["name"]] = data
    killed = tests["test_killed_agent_reports_crash_after_restart"]
    labels = {(label["name"], label["value"]) for label in killed["labels"]}
    assert {("epic", "process-crash"), ("feature", "process"), ("severity", "critical"),
            ("drill_category", "regression")} <= labels
    steps = [s["name"] for s in killed["steps"]]
    assert [s.split(" (")[0] for s in steps] == ["set up", "steady state", "inject process_kill", "detect", "contain",
                                                 "recover", "verify"]
    names = {a["name"] for a in killed["attachments"]}
    assert {"timeline", "events", "agent log (scrubbed)", "status updates", "post-mortem draft"} <= names
    failover = tests["test_primary_rpc_down_fails_over_to_backup"]
    detect = [s for s in failover["steps"] if s["name"].startswith("detect")][0]
    assert detect["status"] == "failed" and "no rpc_failure alert" in detect["statusDetails"]["message"]
    categories = json.loads((run.results / "categories.json").read_text())
    assert [c["name"] for c in categories] == ["missed detection", "wrong severity", "late containment", "over-reaction",
                                               "no recovery", "invariant broken", "regression", "harness error"]
    env = (run.results / "environment.properties").read_text()
    assert f"run_id={RUN_ID}" in env and "gate=regression" in env


@pytest.fixture
def served(run: Run) -> Iterator[tuple[str, Path]]:
    """The Allure HTML report built by `drill report --allure`'s builder, served on loopback."""
    report = run.run_dir / "allure-report"
    build_allure_report(run.results, report)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(report)))
    thread = threading.Thread(target=server.serve_forever, name="allure-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/index.html", report
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.slow
def test_chromium_shows_the_drills_and_an_attachment(run: Run, served: tuple[str, Path]) -> None:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.is_file(), "Debian's chromium is needed: apt-get install -y chromium"
    url, _ = served
    profile = run.run_dir / ".chromium-profile"
    shot = run.run_dir / "allure-screenshot.png"
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, viewport={"width": 1400, "height": 1600},
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )
        try:
            page = browser.new_page()
            page.goto(url, wait_until="networkidle")
            for name in ("test_steady_state_holds", "test_killed_agent_reports_crash_after_restart",
                         "test_primary_rpc_down_fails_over_to_backup"):
                page.get_by_text(name, exact=True).first.wait_for(timeout=30_000)
            page.get_by_text("test_primary_rpc_down_fails_over_to_backup", exact=True).first.click()
            page.get_by_text("timeline", exact=True).first.wait_for(timeout=30_000)
            page.get_by_text("timeline", exact=True).first.click()
            image = page.locator("img[src^='blob:']").first
            image.wait_for(timeout=30_000)
            width = image.evaluate("img => img.complete ? img.naturalWidth : 0")
            body = page.inner_text("body")
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert width > 500, "the timeline attachment did not render as a picture"
    assert "no rpc_failure alert at exactly SEV-3" in body
    assert "Category: missed detection" in body
    assert "detect (" in body and "network-issues" in body
    assert shot.read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_the_logs_key_defect_fails_the_drill_and_no_report_file_holds_the_key(tmp_path: Path) -> None:
    """The reference agent's ``logs_key`` variant prints its key: the drill fails, the reports stay clean."""
    reports, results = tmp_path / "reports", tmp_path / "allure-results"
    cmd = [
        sys.executable, "-m", "pytest", "-p", "harness.drill.pytest_plugin", "-p", "harness.report.pytest_plugin",
        str(DRILLS), "-rA", "-q", "--agent-cmd", "{python} -m reference_agent",
        "--agent-env", "PYTHONPATH={rootdir}/fixtures", "--agent-env", "AGENT_DEFECTS=logs_key",
        "-k", "steady_state_holds", "--basetemp", str(tmp_path / "inner"), "--alluredir", str(results),
        "--drill-report-dir", str(reports), "--drill-run-id", "leak",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert proc.returncode == 1, proc.stdout[-3000:]
    outputs = list((tmp_path / "inner").rglob("agent-output.log"))
    assert outputs, "the engine kept no agent output"
    import re

    keys = {m.lower()[2:] for p in outputs for m in re.findall(r"0x[0-9a-fA-F]{64}", p.read_text())}
    assert keys, "the logs_key agent printed no key (is the defect still there?)"
    summary = json.loads((reports / "leak" / "summary.json").read_text())
    drill = summary["drills"][0]
    assert (drill["status"], drill["failure_category"]) == ("failed", "invariant_broken")
    assert "private key appears in the agent's output" in drill["failure_message"]
    log = (reports / "leak" / drill["agent_log"]).read_text()
    assert "hot wallet private key: [REDACTED]" in log
    scanned = 0
    for path in [*reports.rglob("*"), *results.rglob("*")]:
        if path.is_file():
            text = path.read_bytes().decode("latin-1").lower()
            assert not any(k in text for k in keys), f"{path} holds the agent's key"
            scanned += 1
    assert scanned > 10
    assert not any(k in (proc.stdout + proc.stderr).lower() for k in keys)
