"""Sharding by recorded duration (``--drill-shard I/N``) and ``drill report merge``, without running drills.

The end-to-end proof (shards as separate pytest processes, merged, compared with one run) is in
test_parallel_run.py; here the split's properties and the merge's checks, on records made here.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.cli import main
from harness.drill.shard import Shard, parse_shard, split, weights_from_history
from harness.errors import UsageError
from harness.record.model import DrillRecord, GateSettings, RunRecord
from harness.report import history
from harness.report.markdown import slug
from harness.report.merge import merge_runs
from harness.report.secrets import SecretRegistry
from harness.report.writer import RunWriter

pytest_plugins = ["pytester"]

names_and_weights = st.dictionaries(
    st.from_regex(r"scenarios/test_[a-z]{1,6}\.py::test_[a-z_]{1,12}", fullmatch=True),
    st.one_of(st.none(), st.floats(min_value=0.5, max_value=30, allow_nan=False)), min_size=0, max_size=40)


@settings(max_examples=150, deadline=None)
@given(drills=names_and_weights, count=st.integers(min_value=1, max_value=6))
def test_every_drill_is_in_exactly_one_part_and_the_parts_are_even(drills: dict[str, float | None], count: int) -> None:
    weights = {n: w for n, w in drills.items() if w is not None}
    names = list(drills)
    parts = split(names, weights, count)
    assert len(parts) == count
    flat = [n for part in parts for n in part]
    assert sorted(flat) == sorted(names)  # none lost, none twice
    assert split(list(reversed(names)), dict(weights), count) == parts  # the order they were collected in is irrelevant
    default = statistics.median(weights.values()) if weights else 1.0  # as split() weighs an unknown drill
    w = {n: weights.get(n, default) for n in names}
    totals = [sum(w[n] for n in part) for part in parts]
    if names:
        # greedy dealing, heaviest first: no part exceeds another by more than the heaviest drill
        assert max(totals) - min(totals) <= max(w.values()) + 1e-9


def test_unknown_durations_split_by_count_and_known_ones_by_time() -> None:
    names = [f"t.py::test_{i}" for i in range(7)]
    assert [len(p) for p in split(names, {}, 2)] == [4, 3]
    weights = {"t.py::test_0": 20.0, **{f"t.py::test_{i}": 4.0 for i in range(1, 7)}}
    parts = split(names, weights, 2)
    assert parts[0] == ["t.py::test_0"] or parts[1] == ["t.py::test_0"] or sorted(map(len, parts)) == [2, 5]
    assert sorted(sum(weights[n] for n in p) for p in parts) == [20.0, 24.0]


def test_weights_are_the_median_recorded_wall_time_on_the_backend() -> None:
    entries = [
        {"name": "a", "chain_backend": "pyevm", "wall_s": 4.0}, {"name": "a", "chain_backend": "pyevm", "wall_s": 6.0},
        {"name": "a", "chain_backend": "pyevm", "wall_s": 100.0}, {"name": "a", "chain_backend": "anvil", "wall_s": 1.0},
        {"name": "b", "chain_backend": "pyevm"},  # recorded before wall_s existed: no weight
    ]
    assert weights_from_history(entries, "pyevm") == {"a": 6.0}
    assert weights_from_history(entries, "anvil") == {"a": 1.0}


def test_history_entries_carry_the_wall_time() -> None:
    d = DrillRecord(name="t.py::test_x", status="passed", started_at=1.0, duration_s=3.5, harness_overhead_s=0.25)
    run = RunRecord(run_id="r", started_at=1.0, ended_at=5.0, chain_backend="pyevm", drills=(d,))
    assert history.history_entry(run, d)["wall_s"] == 3.75
    # measured around the whole test item (a search: all its examples), it is the weight instead
    searched = d.with_(item_wall_s=120.5)
    assert history.history_entry(run, searched)["wall_s"] == 120.5


@pytest.mark.parametrize("text, message", [
    ("2", "expects I/N"), ("0/2", "the part must be 1..N"), ("3/2", "the part must be 1..N"), ("a/b", "expects I/N"),
])
def test_a_bad_shard_says_what_the_form_is(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_shard(text)


def test_a_shard_parses() -> None:
    assert parse_shard(" 2/3 ") == Shard(index=2, count=3) and str(parse_shard("1/1")) == "1/1"


def test_a_bad_shard_option_stops_pytest_before_any_drill(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("--drill-shard", "3/2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--drill-shard 3/2: the part must be 1..N*"])


def test_shards_of_plain_tests_cover_the_selection_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("\n".join(f"def test_{i}():\n    pass\n" for i in range(5)))
    ran = []
    for part in ("1/2", "2/2"):
        result = pytester.runpytest("--drill-shard", part, "-v",
                                    "--drill-report-dir", str(pytester.path / "reports"))
        result.stdout.fnmatch_lines([f"agent-drills: shard {part}: * of 5 selected test(s)*"])
        ran += [line.split(" ")[0] for line in result.stdout.lines if " PASSED" in line]
    assert sorted(ran) == sorted(f"test_shards_of_plain_tests_cover_the_selection_once.py::test_{i}" for i in range(5))


def _shard(root: Path, run_id: str, drills: list[DrillRecord], *, backend: str = "pyevm") -> Path:
    writer = RunWriter(root, run_id, SecretRegistry())
    for d in drills:
        writer.files[d.name] = [writer.text(f"events/{slug(d.name)}.events.json", "[]\n")]
    run = RunRecord(run_id=run_id, started_at=10.0, ended_at=20.0, chain_backend=backend, agent_command=("agent",),
                    drills=tuple(drills))
    writer.finish(run, [], append_history=False)
    assert not (root / "history.jsonl").exists()
    return root / run_id


def _drill(test: str, status: str = "passed", mttd: float | None = 1.0) -> DrillRecord:
    return DrillRecord(name=f"t.py::{test}", status=status, started_at=10.0, duration_s=2.0, mttd_s=mttd,
                       failure_category=None if status == "passed" else "missed_detection")


def test_merge_joins_shards_gates_them_and_writes_one_history_line_per_drill(tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    a = _shard(shards, "s1", [_drill("test_a"), _drill("test_c", "failed", None)])
    b = _shard(shards, "s2", [_drill("test_b", mttd=9.0)])
    reports = tmp_path / "reports"
    past = [{"run_id": f"p{i}", "name": "t.py::test_b", "chain_backend": "pyevm", "status": "passed", "mttd_s": 1.0}
            for i in range(3)]
    reports.mkdir()
    (reports / "history.jsonl").write_text("".join(json.dumps(e) + "\n" for e in past))
    result = merge_runs([a, b], reports, run_id="merged", gate=GateSettings(mode="regression"))
    by_name = {d.name: d for d in result.run.drills}
    assert [d.name for d in result.run.drills] == ["t.py::test_a", "t.py::test_b", "t.py::test_c"]
    assert by_name["t.py::test_a"].status == "passed"
    assert (by_name["t.py::test_b"].status, by_name["t.py::test_b"].failure_category) == ("failed", "regression")
    assert by_name["t.py::test_c"].failure_category == "missed_detection" and not result.ok
    summary = json.loads((reports / "merged" / "summary.json").read_text())
    assert summary["metrics"]["drills"] == 3 and summary["gate"]["mode"] == "regression"
    assert (reports / "merged" / "events" / "t-test_b.events.json").is_file()
    assert "events/t-test_a.events.json" in (reports / "merged" / "README.md").read_text()
    lines = history.load_history(reports / "history.jsonl")
    assert [e["name"] for e in lines[3:]] == ["t.py::test_a", "t.py::test_b", "t.py::test_c"]


def test_merge_refuses_overlapping_or_foreign_shards(tmp_path: Path) -> None:
    a = _shard(tmp_path, "s1", [_drill("test_a")])
    twice = _shard(tmp_path, "s2", [_drill("test_a")])
    other = _shard(tmp_path, "s3", [_drill("test_b")], backend="anvil")
    with pytest.raises(UsageError, match=r"t.py::test_a is in both .*s1 and .*s2: the shards overlap"):
        merge_runs([a, twice], tmp_path / "out", run_id="m")
    with pytest.raises(UsageError, match=r"are not shards of one run: chain backend 'anvil' vs 'pyevm'"):
        merge_runs([a, other], tmp_path / "out", run_id="m")
    with pytest.raises(UsageError, match=r"holds no summary.json"):
        merge_runs([tmp_path], tmp_path / "out", run_id="m")


def test_the_merge_command_prints_each_verdict_and_fails_when_one_did_not_pass(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _shard(tmp_path / "s", "s1", [_drill("test_a")])
    b = _shard(tmp_path / "s", "s2", [_drill("test_c", "failed", None)])
    assert main(["report", "merge", str(a), "--report-dir", str(tmp_path / "r"), "--run-id", "one"]) == 0
    assert main(["report", "merge", str(a), str(b), "--report-dir", str(tmp_path / "r"), "--run-id", "two"]) == 1
    out = capsys.readouterr().out
    assert "failed   t.py::test_c (missed_detection" in out
    assert "merged 2 shard(s): 2 drill(s), 1 failed, 1 passed; gate off" in out
    assert main(["report", "merge", str(a), "--report-dir", str(tmp_path / "r"), "--run-id", "two"]) == 2
    assert "exists already" in capsys.readouterr().err
