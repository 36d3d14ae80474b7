"""The health poller against a real HTTP endpoint: records changes only, and outages once each."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from harness.observe.health import HealthPoller
from harness.observe.timeline import Timeline

STATE: dict[str, Any] = {"status": "ok", "mode": "normal", "rpc": "http://127.0.0.1:1", "last_block": 1}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        STATE["last_block"] += 1  # changes on every poll, and must not make an event
        body = json.dumps(STATE).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_changes_and_outages_are_recorded_once(server: ThreadingHTTPServer) -> None:
    tl = Timeline()
    port = server.server_address[1]
    poller = HealthPoller(f"http://127.0.0.1:{port}", tl, interval=0.05)
    poller.start()
    try:
        assert tl.wait_for(lambda e: e.kind == "health", timeout=5)
        tl.wait_for(lambda e: False, timeout=0.3)
        assert len(tl.events("health")) == 1  # last_block moved, nothing else did
        STATE["mode"] = "safe"
        ev = tl.wait_for(lambda e: e.kind == "health" and e.data["mode"] == "safe", timeout=5)
        assert ev is not None and poller.last is not None and poller.last["mode"] == "safe"
        server.shutdown()
        server.server_close()
        assert tl.wait_for(lambda e: e.kind == "health.unreachable", timeout=5)
        tl.wait_for(lambda e: False, timeout=0.3)
        assert len(tl.events("health.unreachable")) == 1 and poller.last is None
    finally:
        poller.stop()
        STATE["mode"] = "normal"
