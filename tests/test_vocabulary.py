"""The summary's JSON Schema speaks the vocabulary of harness.vocabulary, and the modules that check
or render those words use the same lists (one definition, no drift)."""

from __future__ import annotations

import json
from importlib import resources

from harness import vocabulary as v
from harness.checks import invariants
from harness.drill import result
from harness.observe import alerts
from harness.record import model


def _schema() -> dict:
    return json.loads(resources.files("harness.record").joinpath("schema/summary.schema.json").read_text())


def test_the_schema_enums_are_the_vocabulary() -> None:
    s = _schema()
    drill = s["$defs"]["drill"]["properties"]
    assert s["$defs"]["severity"]["enum"] == list(v.SEVERITIES)
    assert drill["status"]["enum"] == list(v.DRILL_STATUSES)
    assert [c for c in drill["failure_category"]["enum"] if c is not None] == list(v.REPORT_CATEGORIES)
    assert drill["incidents"]["items"]["properties"]["events"]["items"]["properties"]["status"]["enum"] == list(v.INCIDENT_STATUSES)
    assert set(drill["invariants"]["items"]["properties"]["verdict"]["enum"]) == set(v.VERDICTS)


def test_engine_and_report_use_the_same_lists() -> None:
    assert alerts.KINDS == v.INCIDENT_KINDS and alerts.SEVERITIES == v.SEVERITIES
    assert alerts.STATUSES == frozenset(v.INCIDENT_STATUSES)
    assert result.STATUSES == model.STATUSES == v.DRILL_STATUSES
    assert set(result.CATEGORIES) | {"regression"} == set(model.CATEGORIES) == set(v.REPORT_CATEGORIES)
    assert invariants.VERDICTS == model.VERDICTS == v.VERDICTS
    assert result.REAL_TIME_PROFILE == model.REAL_TIME_PROFILE == v.REAL_TIME_PROFILE
