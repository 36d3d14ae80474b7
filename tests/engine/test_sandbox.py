"""The runtime's bounds one at a time: kept output, limit options, the alert sink's limits."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.observe.alerts import AlertSink, SinkLimits
from harness.observe.timeline import Timeline
from harness.runtime.limits import AgentLimits, CappedOutput, parse_limits


def test_output_keeps_head_and_tail_with_a_marker_and_secrets_from_the_middle(tmp_path: Path) -> None:
    out = CappedOutput(tmp_path / "out.log", head=1000, tail=500, watch=["deadbeef" * 8])
    out.feed(b"H" * 1000)
    for i in range(200):
        out.feed(b"m" * 1000 + (b"key DEADBEEF" + b"deadbeef" * 7 + b"\n" if i == 100 else b""))
    out.feed(b"T" * 500)
    text = out.text()
    assert text.startswith("H" * 1000) and text.endswith("T" * 500)
    assert "bytes of output cut here" in text and "deadbeef" * 8 in text.lower()
    assert out.truncated and out.total == 1000 + 200_000 + 69 + 500
    out.close()
    assert (tmp_path / "out.log").stat().st_size < 3000
    assert (tmp_path / "out.log").read_text().endswith("T" * 500)


def test_limits_parse_and_refuse_with_the_way_out() -> None:
    lim = parse_limits(["memory=2G", "files=1024", "output=4M", "processes=0"])
    assert (lim.memory, lim.files, lim.output_head, lim.output_tail) == (2 * 1024**3, 1024, 4 * 1024**2, 1024**2)
    assert "nproc" not in lim.rlimits()
    with pytest.raises(UsageError, match="NAME one of memory, files, processes, output"):
        parse_limits(["ram=2G"])
    with pytest.raises(UsageError, match="memory='lots' is not a size; write e.g. memory=4G"):
        parse_limits(["memory=lots"])
    with pytest.raises(UsageError, match="at least 64"):
        AgentLimits(files=3)


def post(url: str, body: bytes) -> tuple[int, str]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_sink_refuses_big_bodies_and_floods_and_counts_them() -> None:
    tl = Timeline()
    sink = AlertSink(tl, limits=SinkLimits(max_body=2048, rate=1, burst=3, examples=2))
    url = sink.start()
    try:
        code, text = post(url, b"{" + b" " * 5000 + b"}")
        assert code == 413 and "over the sink's limit of 2048" in text
        codes = [post(url, json.dumps({"n": i}).encode())[0] for i in range(10)]
        assert codes[:3] == [400, 400, 400] and set(codes[3:]) == {429}
        totals = sink.summarize()
    finally:
        sink.stop()
    assert totals == {"oversized event": 1, "malformed event": 3, "events over the rate": 7}
    violations = [e.data for e in tl.events("contract.violation")]
    assert sum(1 for v in violations if v["what"] == "events over the rate") == 2  # examples, then counted only
    assert violations[-1]["what"] == "alert sink totals" and violations[-1]["count"] == 11
