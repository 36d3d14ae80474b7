"""Timeline and trend pictures come out as real PNG and SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from drilldata import rpc_down, wallet_compromise

from harness.report import charts
from harness.record.build import record_from_result
from harness.record.model import RunRecord
from harness.report.secrets import SecretRegistry
from harness.report.writer import RunWriter

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_svg(data: bytes) -> bool:
    return ET.fromstring(data).tag.endswith("svg")


def test_timeline_chart_is_png_and_svg_with_the_marks() -> None:
    d = record_from_result(wallet_compromise())
    out = charts.timeline_chart(d)
    assert out["png"].startswith(PNG_MAGIC) and len(out["png"]) > 10_000
    assert _is_svg(out["svg"])
    svg = out["svg"].decode()
    for label in ("MTTD 1.2 s", "MTTR 9.0 s", "t0 (injection)", "key_leak", "phases", "health", "escrows"):
        assert label in svg, label


def test_trend_chart_from_history_entries() -> None:
    entries = [{"run_id": f"run-{i}", "status": "passed", "mttd_s": 1.0 + i / 10, "contain_s": 2.0, "mttr_s": 5.0 + i,
                "budgets": {"detect_s": 5.0, "recover_s": 30.0}} for i in range(5)]
    entries.append({"run_id": "run-5", "status": "failed", "mttd_s": None, "mttr_s": None, "budgets": {}})
    out = charts.trend_chart("test_x", entries)
    assert out["png"].startswith(PNG_MAGIC) and _is_svg(out["svg"])
    assert "last 6 run(s)" in out["svg"].decode()


def test_the_writer_puts_both_formats_under_the_run(tmp_path: Path) -> None:
    drills = (record_from_result(wallet_compromise()), record_from_result(rpc_down(missed=True)))
    run = RunRecord(run_id="r", started_at=drills[0].started_at, ended_at=drills[0].started_at + 30, drills=drills)
    writer = RunWriter(tmp_path, "r", SecretRegistry())
    for d in drills:
        writer.write_drill(d, None)
    writer.finish(run, [])
    for d in drills:
        for kind in ("charts/*.timeline", "trends/*.trend"):
            pngs = sorted((tmp_path / "r").glob(f"{kind}.png"))
            svgs = sorted((tmp_path / "r").glob(f"{kind}.svg"))
            assert len(pngs) == len(svgs) == 2
            assert all(p.read_bytes().startswith(PNG_MAGIC) for p in pngs) and all(_is_svg(s.read_bytes()) for s in svgs)
    readme = (tmp_path / "r" / "README.md").read_text()
    assert "![timeline of test_leaked_key_is_swept](charts/test_wallet-test_leaked_key_is_swept.timeline.png)" in readme
