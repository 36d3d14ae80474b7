"""The agent's network namespace and its bridge, with real processes and real sockets.

An agent-like process (``AGENT`` below) runs under ``AgentRuntime`` with ``network="isolated"``: it
must reach the "proxy" and the "sink" (HTTP servers on the machine's loopback, at the same ports as
in its environment), serve its control port to the harness, find the chain's port a trap (reset and
recorded) and any other port of the machine absent (refused). It keeps doing so across restarts, and
a stop leaves no thread, socket or namespace behind.

These tests need root and util-linux nsenter. In CI (``CI`` set) their absence fails them; elsewhere
they are skipped with the reason.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.netutil import free_port
from harness.observe.control import control_request
from harness.observe.timeline import Timeline
from harness.runtime.netbridge import BridgePlan, NetBridge, isolation_unavailable
from harness.runtime.base import RestartPolicy
from harness.runtime.supervisor import AgentRuntime

AGENT = r"""
import http.server, json, os, socket, sys, urllib.request
from pathlib import Path

def fetch(url):
    try:
        return urllib.request.urlopen(url, timeout=5).read().decode()
    except Exception as exc:
        return type(getattr(exc, "reason", exc)).__name__

state = Path(os.environ["AGENT_STATE_DIR"])
start = len(list(state.glob("start-*"))) + 1
seen = {
    "rpc": fetch(os.environ["AGENT_RPC_URLS"].split(",")[0]),
    "sink": fetch(os.environ["AGENT_ALERT_URL"]),
    "chain": fetch(os.environ["CHAIN_URL"]),
    "other": fetch(os.environ["OTHER_URL"]),
    "interfaces": sorted(name for _, name in socket.if_nameindex()),
}
(state / f"start-{start}").write_text(json.dumps(seen))

class Control(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"start": start, "pid": os.getpid(), "peer": self.client_address[0]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

host, port = os.environ["AGENT_CONTROL_ADDR"].rsplit(":", 1)
http.server.ThreadingHTTPServer((host, int(port)), Control).serve_forever()
"""


def _need_isolation() -> None:
    why = isolation_unavailable()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must test the agent's network namespace, but {why}")
        pytest.skip(f"no network namespace here ({why}); run as root with util-linux nsenter")


class _Named(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = self.server.name.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        got = len(self.rfile.read(int(self.headers["Content-Length"])))
        body = f"{self.server.name} read {got}".encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def servers() -> Iterator[dict[str, int]]:
    """HTTP servers on the machine's loopback, each answering its own name: proxy, sink, chain, other."""
    started = []
    ports = {}
    for name in ("proxy", "sink", "chain", "other"):
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Named)
        srv.name = name  # type: ignore[attr-defined]
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        started.append(srv)
        ports[name] = srv.server_address[1]
    yield ports
    for srv in started:
        srv.shutdown()
        srv.server_close()


def _get(url: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return json.loads(urllib.request.urlopen(url, timeout=2).read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _netbridge_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("netbridge:")]


def _holders(ns: str) -> list[str]:
    """Processes, and fds of this process, that still refer to the network namespace ``ns`` ('net:[inode]')."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/net") == ns:
                    found.append(f"pid {entry}")
            except OSError:
                continue
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == ns:
                found.append(f"fd {fd}")
        except OSError:
            continue
    return found


def test_isolated_agent_reaches_its_endpoints_only_across_restarts(tmp_path: Path, servers: dict[str, int]) -> None:
    _need_isolation()
    control = free_port()
    timeline = Timeline()
    state = tmp_path / "state"
    state.mkdir()
    env = {
        **os.environ,
        "AGENT_RPC_URLS": f"http://127.0.0.1:{servers['proxy']}/",
        "AGENT_ALERT_URL": f"http://127.0.0.1:{servers['sink']}/",
        "AGENT_CONTROL_ADDR": f"127.0.0.1:{control}",
        "AGENT_STATE_DIR": str(state),
        "CHAIN_URL": f"http://127.0.0.1:{servers['chain']}/",
        "OTHER_URL": f"http://127.0.0.1:{servers['other']}/",
    }
    plan = BridgePlan(outbound=(servers["proxy"], servers["sink"]), inbound=(control,),
                      traps={servers["chain"]: "the chain's own port"})
    rt = AgentRuntime([sys.executable, "-c", AGENT], env=env, timeline=timeline, output_path=tmp_path / "out.log",
                      policy=RestartPolicy(initial_backoff=0.1, max_backoff=0.1), network="isolated", bridge=plan)
    rt.start()
    try:
        assert rt.network == "isolated"
        assert _get(f"http://127.0.0.1:{control}/")["start"] == 1  # the harness reaches the agent's control port
        # the agent sees each caller's own loopback address (it tells the operator from an attacker by it)
        status, seen = control_request(f"http://127.0.0.1:{control}", "/", token=None, method="GET", source="127.0.0.2")
        assert status == 200 and seen["peer"] == "127.0.0.2", seen
        assert _get(f"http://127.0.0.1:{control}/")["peer"] == "127.0.0.1"
        ns = os.readlink(f"/proc/{rt.pid}/ns/net")
        assert ns != os.readlink("/proc/self/ns/net")
        first = json.loads((state / "start-1").read_text())
        assert first == {"rpc": "proxy", "sink": "sink", "chain": "ConnectionResetError",
                         "other": "ConnectionRefusedError", "interfaces": ["lo"]}, first

        for start in (2, 3):  # the supervisor restarts it; the same namespace and ports serve the new process
            rt.kill()
            assert rt.wait_started(start, timeout=10)
            assert _get(f"http://127.0.0.1:{control}/")["start"] == start
            assert json.loads((state / f"start-{start}").read_text())["rpc"] == "proxy"
            assert os.readlink(f"/proc/{rt.pid}/ns/net") == ns
        rt.census()
    finally:
        rt.stop()

    starts = [e.data for e in timeline.events() if e.kind == "agent.start"]
    assert [s["network"] for s in starts] == ["isolated"] * 3
    trapped = [e.data for e in timeline.events() if e.kind == "contract.violation"]
    assert [(v["what"], v["port"], v["attempt"]) for v in trapped] == [
        ("direct connection to the chain's own port", servers["chain"], n) for n in (1, 2, 3)]
    # nothing left: no relay thread, no listener on the control port, no process or fd in the namespace
    assert _netbridge_threads() == []
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", control)) != 0
    deadline = time.monotonic() + 5
    while _holders(ns) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _holders(ns) == []


def test_bridge_attaches_to_a_namespace_made_elsewhere(servers: dict[str, int]) -> None:
    """The Docker runtime's case: a namespace someone else made (``network_mode="none"``), given by path."""
    _need_isolation()
    holder = subprocess.Popen(["unshare", "--net", "sleep", "60"])
    try:
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{holder.pid}/ns/net") == os.readlink("/proc/self/ns/net"):
            assert time.monotonic() < deadline, "unshare --net did not take effect"
            time.sleep(0.01)
        timeline = Timeline()
        bridge = NetBridge(BridgePlan(outbound=(servers["proxy"],), traps={servers["chain"]: "the chain's own port"}),
                           timeline=timeline, netns=f"/proc/{holder.pid}/ns/net")
        bridge.start()
        try:
            big = 3 * 1024 * 1024  # more than the relay buffers hold: flow control is exercised
            code = (f"import socket, urllib.request\n"
                    f"print(urllib.request.urlopen('http://127.0.0.1:{servers['proxy']}/', timeout=5).read().decode())\n"
                    f"s = socket.create_connection(('127.0.0.1', {servers['proxy']}))\n"
                    f"s.sendall(b'POST / HTTP/1.0\\r\\nContent-Length: {big}\\r\\n\\r\\n' + b'x' * {big})\n"
                    f"print(s.makefile('rb').read().split(b'\\r\\n\\r\\n')[1].decode().replace(' ', '-'))\n"
                    f"for port in ({servers['chain']}, {servers['other']}):\n"
                    f"    try:\n"
                    f"        socket.create_connection(('127.0.0.1', port), timeout=5).recv(1)\n"
                    f"        print('open')\n"
                    f"    except OSError as exc:\n"
                    f"        print(type(exc).__name__)\n")
            done = subprocess.run(["nsenter", f"--net={bridge.netns_path}", sys.executable, "-c", code],
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            assert done.stdout.split() == ["proxy", f"proxy-read-{big}", "ConnectionResetError", "ConnectionRefusedError"]
        finally:
            bridge.stop()
        assert bridge.relayed["outbound"] == 2 and bridge.trapped == {servers["chain"]: 1}
        assert _netbridge_threads() == []
        # the namespace outlives the bridge (its owner holds it); the bridge's listeners do not
        check = subprocess.run(["nsenter", f"--net=/proc/{holder.pid}/ns/net", sys.executable, "-c",
                                f"import socket\nprint(socket.socket().connect_ex(('127.0.0.1', {servers['proxy']})))"],
                               capture_output=True, text=True, timeout=30)
        assert check.stdout.strip() == "111", check  # ECONNREFUSED: nothing listens there any more
    finally:
        holder.kill()
        holder.wait()


def test_an_outage_upstream_resets_the_agent_connection(servers: dict[str, int]) -> None:
    """When nothing listens on the machine's port (a proxy's outage), the agent's connection is reset, not hung."""
    _need_isolation()
    gone = free_port()
    bridge = NetBridge(BridgePlan(outbound=(gone,)), timeline=Timeline())
    bridge.start()
    try:
        code = (f"import socket\ntry:\n    s = socket.create_connection(('127.0.0.1', {gone}), timeout=5)\n"
                "    s.sendall(b'x')\n    print(s.recv(1))\nexcept OSError as exc:\n    print(type(exc).__name__)\n")
        done = subprocess.run(["nsenter", f"--net={bridge.netns_path}", sys.executable, "-c", code],
                              capture_output=True, text=True, timeout=30)
        assert done.stdout.strip() == "ConnectionResetError", done
    finally:
        bridge.stop()
    assert bridge.refused["outbound"] == 1


def test_bad_plans_and_modes_are_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"port\(s\) \[8545\] are given two roles"):
        BridgePlan(outbound=(8545,), traps={8545: "the chain"})
    with pytest.raises(UsageError, match="TCP ports 1..65535, got 70000"):
        BridgePlan(inbound=(70000,))
    with pytest.raises(UsageError, match="network must be one of auto, isolated, host, got 'none'"):
        AgentRuntime(["true"], env={}, timeline=Timeline(), output_path=tmp_path / "o", network="none")
    with pytest.raises(UsageError, match="needs a BridgePlan"):
        AgentRuntime(["true"], env={}, timeline=Timeline(), output_path=tmp_path / "o", network="isolated")
    host = AgentRuntime(["true"], env={}, timeline=Timeline(), output_path=tmp_path / "o", network="host",
                        bridge=BridgePlan(inbound=(free_port(),)))
    assert host.network == "host"
