"""The alert sink over real HTTP: stamping, validation against the contract, de-duplication."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from harness import clock
from harness.observe.alerts import AlertSink, validate_event
from harness.observe.timeline import Timeline


def event(**over: object) -> dict:
    base = {
        "incident_id": "INC-2026-02-03-001", "kind": "rpc_failure", "severity": "SEV-2", "status": "detected",
        "summary": "primary down", "ts": 1770080400.1, "actions": ["switched"], "details": {"endpoint": "x"},
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


@pytest.fixture
def sink() -> Iterator[AlertSink]:
    s = AlertSink(Timeline())
    s.start()
    yield s
    s.stop()


def test_valid_event_is_recorded_with_the_harness_arrival_time(sink: AlertSink) -> None:
    before = clock.now()
    resp = requests.post(sink.url, json=event(ts=1.0), timeout=5)
    assert resp.status_code == 200
    (alert,) = sink.timeline.events("alert")
    assert before <= alert.t <= clock.now()  # the harness's stamp, not the agent's ts=1.0
    assert alert.data["kind"] == "rpc_failure" and alert.data["details"] == {"endpoint": "x"}


def test_duplicates_are_counted_not_recorded(sink: AlertSink) -> None:
    for _ in range(3):
        assert requests.post(sink.url, json=event(), timeout=5).status_code == 200
    requests.post(sink.url, json=event(severity="SEV-1"), timeout=5)  # a raised severity is news
    requests.post(sink.url, json=event(status="resolved"), timeout=5)
    alerts = sink.timeline.events("alert")
    assert [(a.data["severity"], a.data["status"]) for a in alerts] == [
        ("SEV-2", "detected"), ("SEV-1", "detected"), ("SEV-2", "resolved")
    ]
    assert sink.duplicates == 2


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (event(kind="disk_full"), "kind 'disk_full' is not one of"),
        (event(severity="SEV-9"), "severity 'SEV-9' is not one of"),
        (event(status="done"), "status 'done' is not one of"),
        (event(incident_id="incident-7"), "not of the form INC-YYYY-MM-DD-NNN"),
        (event(summary=None), "missing field 'summary'"),
        (event(ts="now"), "field 'ts' has type str"),
        (event(actions="switched"), "'actions' must be a list of strings"),
    ],
)
def test_malformed_events_get_400_and_a_contract_violation(sink: AlertSink, body: dict, problem: str) -> None:
    resp = requests.post(sink.url, json=body, timeout=5)
    assert resp.status_code == 400
    assert problem in resp.json()["error"]
    (violation,) = sink.timeline.events("contract.violation")
    assert any(problem in p for p in violation.data["problems"])
    assert not sink.timeline.events("alert")


def test_non_json_body_is_a_violation(sink: AlertSink) -> None:
    resp = requests.post(sink.url, data=b"not json", timeout=5)
    assert resp.status_code == 400 and "not JSON" in resp.json()["error"]
    assert sink.violations == 1


def test_listeners_see_each_new_event_once(sink: AlertSink) -> None:
    seen: list[str] = []
    sink.add_listener(lambda e: seen.append(e["details"].get("new_address", "")))
    body = event(kind="wallet_compromise", severity="SEV-1", details={"new_address": "0xabc"})
    requests.post(sink.url, json=body, timeout=5)
    requests.post(sink.url, json=body, timeout=5)
    assert seen == ["0xabc"]


def test_validate_event_lists_every_problem() -> None:
    ev, problems = validate_event({"kind": "nope"})
    assert ev is None
    assert len(problems) >= 6


def test_stop_frees_the_port() -> None:
    s = AlertSink(Timeline())
    s.start()
    port = s.port
    s.stop()
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # would raise if the sink still listened
