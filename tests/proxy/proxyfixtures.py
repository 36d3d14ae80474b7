"""Real upstreams for the fault proxy tests: a TCP echo server and a small JSON-RPC HTTP server."""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from harness.netutil import free_port
from harness.proxy.control import ProxyControl
from harness.proxy.embedded import EmbeddedProxy

ROOT = Path(__file__).resolve().parents[2]
ANVIL = ROOT / "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"


class EchoServer:
    """Threaded TCP server that sends back what it receives; remembers its open connections."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        self.conns: set[socket.socket] = set()
        self.accepted = 0
        self.received = bytearray()  # everything any client sent, in arrival order
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.conns.add(c)
                self.accepted += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c: socket.socket) -> None:
        try:
            while True:
                data = c.recv(65536)
                if not data:
                    break
                with self._lock:
                    self.received += data
                c.sendall(data)
        except OSError as exc:
            self.errors.append(exc)
        finally:
            with self._lock:
                self.conns.discard(c)
            c.close()

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self.sock.close()
        with self._lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(5)


class RpcBackend:
    """State of the fake node: a head block number, a chain id, and every call it received."""

    def __init__(self) -> None:
        self.head = 100
        self.chain_id = 31337
        self.calls: list[dict[str, Any]] = []
        self.connections = 0
        self.lock = threading.Lock()

    def answer(self, call: dict[str, Any]) -> dict[str, Any] | None:
        with self.lock:
            self.calls.append(call)
        method, params = call.get("method"), call.get("params") or []
        result: Any
        if method == "eth_blockNumber":
            result = hex(self.head)
        elif method == "eth_chainId":
            result = hex(self.chain_id)
        elif method == "net_version":
            result = str(self.chain_id)
        elif method == "eth_getBlockByNumber":
            tag = params[0]
            n = self.head if tag in ("latest", "pending") else int(tag, 16)
            result = None if n > self.head else {"number": hex(n), "hash": "0x" + f"{n:064x}"}
        elif method == "eth_getBalance":
            result = params[1] if len(params) > 1 else "latest"  # echo the block asked for
        elif method == "eth_sendRawTransaction":
            result = "0x" + "ab" * 32
        elif method == "test_big":
            result = "x" * int(params[0])
        else:
            return {"jsonrpc": "2.0", "id": call.get("id"), "error": {"code": -32601, "message": "method not found"}}
        if "id" not in call:
            return None
        return {"jsonrpc": "2.0", "id": call["id"], "result": result}

    def methods(self) -> list[str]:
        with self.lock:
            return [c.get("method", "") for c in self.calls]


class _RpcHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True  # headers and body are separate writes
    backend: RpcBackend

    def setup(self) -> None:
        super().setup()
        with self.backend.lock:
            self.backend.connections += 1

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            payload = json.loads(body)
        except ValueError:
            self._send(400, b'{"error":"bad json"}')
            return
        if isinstance(payload, list):
            out: Any = [r for r in (self.backend.answer(c) for c in payload) if r is not None]
        else:
            out = self.backend.answer(payload)
        self._send(200, json.dumps(out).encode())

    def do_GET(self) -> None:
        self._send(200, b'{"ok":true}')

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if self.headers.get("X-Test-Encoding") == "gzip-chunked":  # like a node that compresses and streams
            body = gzip.compress(body)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            half = len(body) // 2
            for part in (body[:half], body[half:], b""):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


class RpcServer:
    def __init__(self) -> None:
        self.backend = RpcBackend()
        handler = type("Handler", (_RpcHandler,), {"backend": self.backend})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.addr = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    srv = EchoServer()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
def rpc_server() -> Iterator[RpcServer]:
    srv = RpcServer()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
def api_url() -> Iterator[str]:
    with EmbeddedProxy() as proxy:
        assert proxy.url is not None
        yield proxy.url


@pytest.fixture
def control(api_url: str) -> ProxyControl:
    return ProxyControl(api_url)


@pytest.fixture(scope="module")
def anvil() -> Iterator[str]:
    if not ANVIL.exists():
        pytest.fail(f"anvil not installed at {ANVIL}; run `npm ci` in the repository root")
    port = free_port()
    proc = subprocess.Popen([str(ANVIL), "--host", "127.0.0.1", "--port", str(port), "--silent"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, timeout=1)
                break
            except requests.RequestException:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("anvil did not start")
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def connect(listen: str, timeout: float = 5.0) -> socket.socket:
    host, _, port = listen.rpartition(":")
    s = socket.create_connection((host, int(port)), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exactly(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        part = s.recv(n - len(buf))
        if not part:
            break
        buf += part
    return buf


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))
