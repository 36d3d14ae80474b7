"""The secret scanner: an artifact holding a run key in any spelling is refused and nothing is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from drilldata import KEY, wallet_compromise

from harness.errors import DrillsError, UsageError
from harness.record.build import record_from_result
from harness.record.model import RunRecord
from harness.report.secrets import SecretLeak, SecretRegistry, write_bytes, write_text
from harness.report.writer import RunWriter

BARE = KEY[2:]
SPELLINGS = {
    "0x lower": KEY,
    "0x upper digits": "0x" + BARE.upper(),
    "0X prefix": "0X" + BARE,
    "bare lower": BARE,
    "bare upper": BARE.upper(),
    "mixed case": "".join(c.upper() if i % 2 else c for i, c in enumerate(BARE)),
}


@pytest.fixture
def registry() -> SecretRegistry:
    reg = SecretRegistry()
    reg.add(KEY, "the agent's hot wallet")
    return reg


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_each_spelling_of_the_key_is_refused_and_nothing_is_written(tmp_path: Path, registry: SecretRegistry, spelling: str) -> None:
    target = tmp_path / "out" / "README.md"
    with pytest.raises(SecretLeak) as info:
        write_text(target, f"agent said: key={SPELLINGS[spelling]} done", registry)
    assert not target.exists() and not any(tmp_path.rglob("*.md"))
    message = str(info.value)
    assert "the agent's hot wallet" in message and str(target) in message
    assert BARE not in message.lower()
    assert isinstance(info.value, DrillsError)


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_binary_artifacts_are_scanned_too(tmp_path: Path, registry: SecretRegistry, spelling: str) -> None:
    target = tmp_path / "chart.svg"
    with pytest.raises(SecretLeak):
        write_bytes(target, b"<svg><text>" + SPELLINGS[spelling].encode() + b"</text></svg>", registry)
    assert not target.exists()


def test_clean_artifacts_are_written_and_other_hex_is_not_mistaken_for_the_key(tmp_path: Path, registry: SecretRegistry) -> None:
    other = "0x" + "ab" * 32
    target = write_text(tmp_path / "ok.md", f"tx {other} from 0x{'11' * 20}", registry)
    assert target.read_text() == f"tx {other} from 0x{'11' * 20}"
    assert not list(tmp_path.glob(".ok.md.*"))  # no temporary file left behind


def test_redaction_replaces_every_spelling(registry: SecretRegistry) -> None:
    text = " | ".join(SPELLINGS.values())
    redacted = registry.redact(text)
    assert redacted == " | ".join(["[REDACTED]"] * len(SPELLINGS))
    assert registry.find(redacted) == []


def test_registering_something_that_is_not_a_key_says_so_without_echoing_it() -> None:
    reg = SecretRegistry()
    with pytest.raises(UsageError) as info:
        reg.add("0x1234-not-a-key", "operator token")
    assert "operator token" in str(info.value) and "1234-not-a-key" not in str(info.value)
    assert "SecretRegistry(0 key(s))" == repr(reg)


def test_a_run_whose_records_hold_a_key_writes_neither_summary_nor_readme(tmp_path: Path, registry: SecretRegistry) -> None:
    # The agent put its key into an incident summary: every file that would show it is refused.
    result = wallet_compromise()
    leaky = result.incidents[0]
    events = [dict(leaky["events"][0], summary=f"my key is {KEY}")] + list(leaky["events"][1:])
    from dataclasses import replace
    result = replace(result, incidents=(dict(leaky, events=events),))
    record = record_from_result(result)
    run = RunRecord(run_id="leak", started_at=record.started_at, ended_at=record.started_at + 30, drills=(record,))
    writer = RunWriter(tmp_path, "leak", registry)
    writer.write_drill(record, agent_output=f"starting with key {KEY}\n")
    writer.finish(run, [])
    assert writer.leaks, "the leak was not reported"
    run_dir = tmp_path / "leak"
    assert not (run_dir / "summary.json").exists() and not (run_dir / "README.md").exists()
    log = (run_dir / "logs").glob("*.agent.log")
    assert [p.read_text() for p in log] == ["starting with key [REDACTED]\n"]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert BARE not in path.read_bytes().decode("latin-1").lower(), path
    history = (tmp_path / "history.jsonl").read_text()
    assert json.loads(history)["name"] == record.name  # the history line holds no key, so it is kept


def test_allure_files_written_by_others_are_swept_when_they_hold_a_key(tmp_path: Path, registry: SecretRegistry) -> None:
    from harness.report.allure import sweep_results_dir

    (tmp_path / "a-result.json").write_text('{"name": "test_x", "status": "passed"}')
    (tmp_path / "b-attachment.txt").write_text(f"stdout: {KEY.upper()[2:]}")
    assert sweep_results_dir(tmp_path, registry) == ["b-attachment.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["a-result.json"]
