"""AuthAttack hammers a control API from 127.0.0.2 with wrong tokens and records the answers.

The control API here is a small real HTTP server that applies the contract's rule (401 for a bad
token, 429 once a source failed 5 times) and remembers which source address each request came from.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness.errors import UsageError
from harness.faults.auth import AuthAttack
from harness.observe.control import control_request
from harness.observe.timeline import Timeline

TOKEN = "the-operator-token"


class _ControlApi(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.failures: Counter[str] = Counter()
        self.sources: Counter[str] = Counter()
        self.executed: list[tuple[str, str]] = []


class _Handler(BaseHTTPRequestHandler):
    server: _ControlApi

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        src = self.client_address[0]
        self.server.sources[src] += 1
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.server.failures[src] >= 5:
            code = 429
        elif self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.server.failures[src] += 1
            code = 401
        else:
            self.server.executed.append((src, self.path))
            code = 200
        body = json.dumps({"code": code}).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def api() -> Iterator[_ControlApi]:
    srv = _ControlApi()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)


class _Ctx:
    def __init__(self, url: str) -> None:
        self.timeline = Timeline()
        self.control_url = url
        self.operator_token = TOKEN


def test_auth_attack_comes_from_its_own_source_and_records_401_then_429(api, until):
    ctx = _Ctx(f"http://127.0.0.1:{api.server_address[1]}")
    attack = AuthAttack(rate=50, attempts=12).bind(ctx)
    try:
        attack.inject()
        until(lambda: attack.sent >= 12, 10, "twelve attempts")
    finally:
        attack.heal()
    assert set(api.sources) == {"127.0.0.2"}
    assert [e.data["status"] for e in ctx.timeline.events("auth.attempt")] == [401] * 5 + [429] * 7
    assert api.executed == []
    # The operator, from 127.0.0.1, is not affected by the attacker's block.
    status, _ = control_request(ctx.control_url, "/operator/resume", token=TOKEN)
    assert status == 200 and api.executed == [("127.0.0.1", "/operator/resume")]
    # The attacker's source stays refused even with the right token.
    assert attack.probe(TOKEN) == 429
    assert ctx.timeline.events("auth.probe")[-1].data["right_token"] is True  # the right token, refused


def test_auth_attack_records_an_unreachable_api_as_an_error(until):
    from harness.netutil import free_port

    ctx = _Ctx(f"http://127.0.0.1:{free_port()}")
    attack = AuthAttack(rate=20, attempts=3).bind(ctx)
    try:
        attack.inject()
        until(lambda: attack.sent >= 3, 5, "three attempts")
    finally:
        attack.heal()
    assert {e.data["status"] for e in ctx.timeline.events("auth.attempt")} == {"error:ConnectionRefusedError"}


@pytest.mark.parametrize("kw", [{"source": "127.0.0.1"}, {"source": "10.0.0.1"}, {"rate": 0},
                                {"path": "/health"}, {"attempts": 0}])
def test_auth_attack_rejects_bad_parameters(kw):
    with pytest.raises(UsageError):
        AuthAttack(**kw)
