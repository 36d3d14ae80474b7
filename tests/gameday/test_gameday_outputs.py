"""The game day's metrics and JUnit XML, from the outcomes and history lines alone (no drill runs here)."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from pathlib import Path

from harness.gameday.outputs import compute_metrics, junit_xml, render_metrics
from harness.gameday.plan import Item, load_plan
from harness.gameday.runner import GamedayResult, ItemOutcome

ROOT = Path(__file__).resolve().parents[2]
MAY = time.mktime((2026, 5, 10, 12, 0, 0, 0, 0, 0))
JUNE = time.mktime((2026, 6, 10, 12, 0, 0, 0, 0, 0))


def _item(label: str, status: str, kind: str, severity: str, mttd: float | None, mttr: float | None,
          faults=("outage",), failed_check=None, started_at=MAY, incident_ids=("INC-1",)) -> dict:
    return {"label": label, "status": status, "incident_kind": kind, "severity": severity, "mttd_s": mttd, "mttr_s": mttr,
            "faults": list(faults), "failed_check": failed_check, "started_at": started_at,
            "incidents": [{"incident_id": i, "kind": kind, "severity": severity} for i in incident_ids],
            "postmortems": {"required": 1, "complete": 1 if status == "passed" else 0}}


def _gameday(out: str, items: list[dict], profile: str = "drill", started_at: float = MAY) -> dict:
    return {"gameday": "g", "out": out, "profile": profile, "reason": "completed", "started_at": started_at, "items": items}


def test_times_are_grouped_by_incident_kind_and_severity_over_the_game_day_and_the_history() -> None:
    past = _gameday("a", [_item("rpc", "passed", "rpc_failure", "SEV-3", 1.0, 3.0)])
    this = _gameday("b", [_item("rpc", "passed", "rpc_failure", "SEV-3", 2.0, 5.0),
                          _item("key", "passed", "wallet_compromise", "SEV-1", 0.5, 1.5),
                          _item("gone", "skipped", "process_crash", "SEV-2", None, None)])
    m = compute_metrics(this, [past, this])
    assert m["this_gameday"]["by_kind_and_severity"] == {
        "wallet_compromise SEV-1": {"items": 1, "mean_mttd_s": 0.5, "max_mttd_s": 0.5, "mean_mttr_s": 1.5, "max_mttr_s": 1.5},
        "rpc_failure SEV-3": {"items": 1, "mean_mttd_s": 2.0, "max_mttd_s": 2.0, "mean_mttr_s": 5.0, "max_mttr_s": 5.0},
    }
    assert m["history"]["by_kind_and_severity"]["rpc_failure SEV-3"] == {
        "items": 2, "mean_mttd_s": 1.5, "max_mttd_s": 2.0, "mean_mttr_s": 4.0, "max_mttr_s": 5.0}
    assert m["this_gameday"]["policy"]["judged"] is False
    assert m["this_gameday"]["postmortems"] == {"required": 3, "complete": 2, "ratio": 0.667}


def test_frequency_counts_real_time_game_days_and_the_imported_log_per_month_against_the_targets() -> None:
    compressed = _gameday("c", [_item("key", "passed", "wallet_compromise", "SEV-1", 0.5, 1.0)])  # never counted
    real = _gameday("r", [_item("rpc", "passed", "rpc_failure", "SEV-2", 60, 300, incident_ids=("INC-7", "INC-8"))],
                    profile="production")
    log = [{"incident_id": "P-1", "severity": "SEV-2", "ts": JUNE, "status": "detected"},
           {"incident_id": "P-1", "severity": "SEV-1", "ts": JUNE + 60, "status": "investigating"},  # raised: one SEV-1
           {"incident_id": "P-2", "severity": "SEV-2", "ts": MAY}]
    m = compute_metrics(real, [compressed, real], log)
    months = m["history"]["frequency"]["months"]
    assert months == {
        "2026-05": {"counts": {"SEV-1": 0, "SEV-2": 3, "SEV-3": 0, "SEV-4": 0}, "within_targets": True},
        "2026-06": {"counts": {"SEV-1": 1, "SEV-2": 0, "SEV-3": 0, "SEV-4": 0}, "within_targets": False},
    }
    assert m["history"]["imported_incidents"] == 2
    policy = m["this_gameday"]["policy"]
    assert policy["judged"] and policy["items"] == [{"label": "rpc", "mttd_s": 60, "mttr_s": 300, "mttd_ok": True, "mttr_ok": True}]
    text = render_metrics(m)
    assert "| 2026-06 | 1 | 0 | 0 | 0 | NO |" in text and "MTTD 60 s (ok)" in text


def test_a_repeat_incident_is_the_same_faults_and_failed_check_in_two_game_days() -> None:
    gas = dict(faults=("gas_spike",), failed_check="expect_recovery")
    first = _gameday("one", [_item("gas", "failed", "stuck_transactions", "SEV-3", 60, None, **gas)])
    second = _gameday("two", [_item("gas", "failed", "stuck_transactions", "SEV-3", 70, None, **gas),
                              _item("gas2", "failed", "stuck_transactions", "SEV-3", 70, None, faults=("gas_spike",),
                                    failed_check="invariants (deadlines)")])
    m = compute_metrics(second, [first, second])
    assert m["history"]["repeat_incidents"] == [
        {"faults": "gas_spike", "failed_check": "expect_recovery", "game_days": 2, "where": ["one", "two"]}]
    assert "- gas_spike: expect_recovery in 2 game days" in render_metrics(m)


def test_junit_has_one_testcase_per_item_with_the_outcome() -> None:
    plan = load_plan(ROOT / "gamedays" / "sample.toml")

    def item(i: int, label: str) -> Item:
        return Item(index=i, kind="drill", label=label, pytest_args=())

    result = GamedayResult(reason="completed", started_at=MAY, duration_s=42.0, outcomes=(
        ItemOutcome(item=item(1, "a"), status="passed", duration_s=9.0, measured={"mttd_s": 0.4, "mttr_s": 2.0}),
        ItemOutcome(item=item(2, "b"), status="failed", duration_s=8.0, message="no recovery on chain within 30 s",
                    measured={"failure_category": "recovery"}),
        ItemOutcome(item=item(3, "c"), status="skipped", message="alice declined"),
    ))
    suite = ET.fromstring(junit_xml(plan, result))
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["01 a", "02 b", "03 c"]
    assert cases[0].find("properties/property[@name='mttd_s']").get("value") == "0.4"
    assert cases[1].find("failure").get("type") == "recovery" and "no recovery" in cases[1].find("failure").text
    assert cases[2].find("skipped").get("message") == "alice declined"
