"""Benchmark of the fault proxy with no toxics: added latency per JSON-RPC round trip, bulk throughput.

Runs ``python -m harness.proxy`` as its own process (as ``drill proxy`` would run), anvil as the
JSON-RPC upstream, and a byte sink for bulk TCP. Each measurement is repeated and the medians are
printed. Targets: <= 0.3 ms added median latency, >= 0.8 of direct throughput.

    .venv/bin/python bench/proxy_bench.py [--requests 2000] [--repeats 5] [--megabytes 200]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
ANVIL = ROOT / "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
BODY = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}).encode()
HEADERS = {"Content-Type": "application/json"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            requests.post(url, data=BODY, headers=HEADERS, timeout=1)
            return
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not answer within {timeout:.0f} s") from None
            time.sleep(0.1)


def rtts(port: int, n: int) -> list[float]:
    """``n`` keep-alive eth_blockNumber round trips; seconds each."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            conn.request("POST", "/", body=BODY, headers=HEADERS)
            resp = conn.getresponse()
            resp.read()
            out.append(time.perf_counter() - t0)
            if resp.status != 200:
                raise SystemExit(f"unexpected HTTP {resp.status}")
    finally:
        conn.close()
    return out


class Sink:
    """Reads a length-prefixed stream of bytes, then answers with one byte."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            head = b""
            while len(head) < 8:
                head += c.recv(8 - len(head))
            left = int.from_bytes(head, "big")
            buf = bytearray(1 << 20)
            while left > 0:
                n = c.recv_into(buf)
                if not n:
                    break
                left -= n
            c.sendall(b"k")  # the proxy closes both sides when one ends, so no half-close here
            c.close()

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def throughput(port: int, megabytes: int) -> float:
    """Bytes per second pushed through ``port`` to the sink."""
    chunk = b"\xa5" * (256 * 1024)
    total = megabytes * 1_000_000
    total -= total % len(chunk)
    s = socket.create_connection(("127.0.0.1", port))
    t0 = time.perf_counter()
    s.sendall(total.to_bytes(8, "big"))
    sent = 0
    while sent < total:
        s.sendall(chunk)
        sent += len(chunk)
    if s.recv(1) != b"k":
        raise SystemExit("bulk transfer did not complete")
    elapsed = time.perf_counter() - t0
    s.close()
    return sent / elapsed


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--megabytes", type=int, default=200)
    args = ap.parse_args()
    if not ANVIL.exists():
        print(f"anvil not found at {ANVIL}; run `npm ci`", file=sys.stderr)
        return 2

    anvil_port, api_port = free_port(), free_port()
    procs = [
        subprocess.Popen([str(ANVIL), "--host", "127.0.0.1", "--port", str(anvil_port), "--silent"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True),
        subprocess.Popen([sys.executable, "-m", "harness.proxy", "--port", str(api_port)], cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"}),
    ]
    sink = Sink()
    try:
        wait_http(f"http://127.0.0.1:{anvil_port}")
        api = f"http://127.0.0.1:{api_port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(api + "/version", timeout=1)
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise SystemExit("fault proxy did not start") from None
                time.sleep(0.1)
        rpc_listen = requests.post(api + "/proxies", json={"name": "anvil", "upstream": f"127.0.0.1:{anvil_port}"},
                                   timeout=5).json()["listen"]
        bulk_listen = requests.post(api + "/proxies", json={"name": "bulk", "upstream": f"127.0.0.1:{sink.port}"},
                                    timeout=5).json()["listen"]
        rpc_port, bulk_port = int(rpc_listen.rsplit(":", 1)[1]), int(bulk_listen.rsplit(":", 1)[1])

        rtts(anvil_port, 200)  # warm up both paths
        rtts(rpc_port, 200)
        added_med, added_p99, direct_meds = [], [], []
        for _ in range(args.repeats):
            direct = rtts(anvil_port, args.requests)
            proxied = rtts(rpc_port, args.requests)
            d_med, p_med = statistics.median(direct), statistics.median(proxied)
            q = lambda xs: statistics.quantiles(xs, n=100)[98]
            direct_meds.append(d_med)
            added_med.append(p_med - d_med)
            added_p99.append(q(proxied) - q(direct))

        throughput(sink.port, 20)  # warm up
        throughput(bulk_port, 20)
        ratios, directs, proxieds, cpu_per_gb = [], [], [], []
        for _ in range(args.repeats):
            d = throughput(sink.port, args.megabytes)
            cpu0 = cpu_seconds(procs[1].pid)
            p = throughput(bulk_port, args.megabytes)
            cpu_per_gb.append((cpu_seconds(procs[1].pid) - cpu0) / (args.megabytes / 1000))
            directs.append(d)
            proxieds.append(p)
            ratios.append(p / d)

        ms = 1000.0
        print(f"JSON-RPC round trip (eth_blockNumber to anvil, keep-alive, {args.requests} requests x "
              f"{args.repeats} repeats)")
        print(f"  direct median                 {statistics.median(direct_meds) * ms:7.3f} ms")
        print(f"  added by the proxy, median    {statistics.median(added_med) * ms:7.3f} ms   (target <= 0.300)")
        print(f"  added by the proxy, p99       {statistics.median(added_p99) * ms:7.3f} ms")
        print(f"Bulk TCP ({args.megabytes} MB one way x {args.repeats} repeats)")
        print(f"  direct                        {statistics.median(directs) / 1e6:9.1f} MB/s")
        print(f"  through the proxy             {statistics.median(proxieds) / 1e6:9.1f} MB/s")
        print(f"  ratio                         {statistics.median(ratios):9.2f}      (target >= 0.80)")
        print(f"  proxy CPU per GB relayed      {statistics.median(cpu_per_gb):9.2f} s")
        print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    finally:
        sink.close()
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
