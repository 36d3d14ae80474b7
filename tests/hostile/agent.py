"""A hostile agent: the minimal agent's duties, plus everything a broken agent does to its harness.

On its first start (a marker in AGENT_STATE_DIR) it:

- leaves an escapee: a double-forked child that calls setsid, ignores SIGTERM and sleeps forever,
  named with HOSTILE_TOKEN in its command line so a test can look for it;
- floods the alert sink: HOSTILE_ALERTS malformed events (default 2000) as fast as it can, and one
  body of 5 MB;
- floods its output: HOSTILE_OUTPUT_MB megabytes (default 48), partly without a newline;
- goes around its contract (HOSTILE_PROBE, default 1): every loopback port it sees listening in
  /proc/net/tcp that the contract did not give it (the chain's own port among them, when the agent
  shares the machine's network) gets a JSON-RPC call, as an agent skipping the fault proxies would.

Then (and on every later start) it runs tests/minimal_agent/agent.py in the same process, or, with
HOSTILE_INNER_MODULE set, that module (an image of the reference agent has no web3 for the minimal
one: its test sets ``reference_agent``). Each flood can be turned off with 0, so the cleanup test can
use the escapee alone.
"""

from __future__ import annotations

import json
import os
import runpy
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

MINIMAL = Path(__file__).resolve().parents[1] / "minimal_agent" / "agent.py"
TOKEN = os.environ.get("HOSTILE_TOKEN", "hostile-escapee")


def escape() -> None:
    if os.fork() != 0:
        return
    os.setsid()
    if os.fork() != 0:
        os._exit(0)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.execv(sys.executable, [sys.executable, "-c", "import signal, time\n"
              "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: time.sleep(1)", TOKEN])


def post(url: str, body: bytes) -> int:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return 0


def flood_alerts(url: str, count: int) -> None:
    big = json.dumps({"incident_id": "INC-2026-01-01-001", "summary": "x" * (5 * 1024 * 1024)}).encode()
    post(url, big)
    for i in range(count):
        post(url, json.dumps({"flood": i, "summary": "not an incident event"}).encode())


def flood_output(megabytes: int) -> None:
    line = b"hostile agent output " * 50 + b"\n"
    chunk = line * (1024 * 1024 // len(line) + 1)
    for i in range(megabytes):
        os.write(1, chunk[: 1024 * 1024] if i % 2 else b"y" * (1024 * 1024))  # every other MB has no newline


def listening_ports() -> set[int]:
    """Ports listening on 127.0.0.1 in this process's network namespace."""
    ports = set()
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return ports
    for line in lines:
        fields = line.split()
        addr, port = fields[1].split(":")
        if fields[3] == "0A" and addr == "0100007F":  # LISTEN on 127.0.0.1
            ports.add(int(port, 16))
    return ports


def probe_around_contract() -> None:
    given = {int(u.rsplit(":", 1)[1].split("/")[0]) for u in os.environ["AGENT_RPC_URLS"].split(",")}
    given.add(int(os.environ["AGENT_ALERT_URL"].rsplit(":", 1)[1].split("/")[0]))
    given.add(int(os.environ["AGENT_CONTROL_ADDR"].rsplit(":", 1)[1]))
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    for port in sorted(p for p in listening_ports() - given if p >= 1024)[:20]:
        post(f"http://127.0.0.1:{port}/", body)


def main() -> None:
    marker = Path(os.environ["AGENT_STATE_DIR"]) / "hostile-started"
    if not marker.exists():
        marker.write_text(str(time.time()))
        escape()
        alerts = int(os.environ.get("HOSTILE_ALERTS", "2000"))
        if alerts:
            threading.Thread(target=flood_alerts, args=(os.environ["AGENT_ALERT_URL"], alerts), daemon=True).start()
        if os.environ.get("HOSTILE_PROBE", "1") != "0":
            threading.Thread(target=probe_around_contract, daemon=True).start()
        output = int(os.environ.get("HOSTILE_OUTPUT_MB", "48"))
        if output:
            threading.Thread(target=flood_output, args=(output,), daemon=True).start()
    inner = os.environ.get("HOSTILE_INNER_MODULE")
    if inner:
        sys.argv = [inner]
        runpy.run_module(inner, run_name="__main__", alter_sys=True)
    else:
        sys.argv = [str(MINIMAL)]
        runpy.run_path(str(MINIMAL), run_name="__main__")


if __name__ == "__main__":
    main()
