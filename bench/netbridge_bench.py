"""Benchmark of the agent's network bridge: latency it adds per JSON-RPC round trip.

anvil is the JSON-RPC upstream on the machine's loopback. A client process (the same script for
both paths) makes ``--requests`` eth_blockNumber calls to it, once on the machine's network (direct)
and once from inside a loopback-only namespace through ``NetBridge`` (running in this process, as it
runs in the harness), over one keep-alive connection and with a new connection per call. The paths
alternate ``--repeats`` times; medians are printed. Needs root and util-linux nsenter.

    .venv/bin/python bench/netbridge_bench.py [--requests 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.netutil import free_port  # noqa: E402
from harness.observe.timeline import Timeline  # noqa: E402
from harness.runtime.netbridge import BridgePlan, NetBridge, isolation_unavailable  # noqa: E402

ANVIL = ROOT / "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"

CLIENT = r"""
import http.client, json, sys, time
port, n, fresh = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "fresh"
body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}).encode()
headers = {"Content-Type": "application/json"}
conn = None
out = []
for i in range(n + 100):  # the first 100 warm up
    t0 = time.perf_counter()
    if conn is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/", body=body, headers=headers)
    resp = conn.getresponse()
    resp.read()
    if fresh:
        conn.close()
        conn = None
    if resp.status != 200:
        raise SystemExit(f"HTTP {resp.status}")
    if i >= 100:
        out.append(time.perf_counter() - t0)
print(json.dumps(out))
"""


def run_client(prefix: list[str], port: int, n: int, mode: str) -> list[float]:
    done = subprocess.run([*prefix, sys.executable, "-c", CLIENT, str(port), str(n), mode], capture_output=True,
                          text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"the client failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    why = isolation_unavailable()
    if why is not None:
        print(f"no network namespace here: {why}", file=sys.stderr)
        return 2
    if not ANVIL.exists():
        print(f"anvil not found at {ANVIL}; run `npm ci`", file=sys.stderr)
        return 2
    port = free_port()
    anvil = subprocess.Popen([str(ANVIL), "--host", "127.0.0.1", "--port", str(port), "--silent"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    bridge = NetBridge(BridgePlan(outbound=(port,)), timeline=Timeline(), name="bench")
    try:
        time.sleep(0.5)
        bridge.start()
        inside = ["nsenter", f"--net={bridge.netns_path}"]
        run_client([], port, 200, "keep")  # anvil up and warm
        ms = 1000.0
        q99 = lambda xs: statistics.quantiles(xs, n=100)[98]  # noqa: E731
        print(f"eth_blockNumber to anvil, {args.requests} calls x {args.repeats} repeats, medians over repeats")
        for mode, label in (("keep", "one keep-alive connection"), ("fresh", "a new connection per call")):
            direct_med, bridged_med, added_med, added_p99 = [], [], [], []
            for _ in range(args.repeats):
                direct = run_client([], port, args.requests, mode)
                bridged = run_client(inside, port, args.requests, mode)
                d, b = statistics.median(direct), statistics.median(bridged)
                direct_med.append(d)
                bridged_med.append(b)
                added_med.append(b - d)
                added_p99.append(q99(bridged) - q99(direct))
            print(f"{label}:")
            print(f"  direct median                {statistics.median(direct_med) * ms:7.3f} ms")
            print(f"  through the bridge median    {statistics.median(bridged_med) * ms:7.3f} ms")
            print(f"  added, median                {statistics.median(added_med) * ms:7.3f} ms")
            print(f"  added, p99                   {statistics.median(added_p99) * ms:7.3f} ms")
        print(f"connections relayed: {bridge.relayed['outbound']}")
    finally:
        bridge.stop()
        anvil.terminate()
        anvil.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
