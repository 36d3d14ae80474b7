"""The alert sink under a flood: its p99 latency and the engine's poll lag at 2000 events/s.

A separate process (the "agent") POSTs malformed events to the sink at a fixed rate over a few
keep-alive connections and times every answer; meanwhile, in the harness's process, a thread polls
every 50 ms the way the drill engine waits for a predicate and measures how late it wakes. Prints
the numbers; run with `.venv/bin/python bench/sink_flood_bench.py [--rate 2000] [--seconds 5]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time

from harness.observe.alerts import AlertSink
from harness.observe.timeline import Timeline

CLIENT = r"""
import asyncio, json, sys, time
import aiohttp
url, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
lat, codes = [], {}
async def main():
    conn = aiohttp.TCPConnector(limit=16)
    async with aiohttp.ClientSession(connector=conn) as s:
        async def one(i):
            t = time.perf_counter()
            async with s.post(url, data=json.dumps({"flood": i}), headers={"Content-Type": "application/json"}) as r:
                await r.read()
                codes[r.status] = codes.get(r.status, 0) + 1
            lat.append(time.perf_counter() - t)
        start, tasks, i = time.perf_counter(), [], 0
        while (now := time.perf_counter() - start) < seconds:
            due = int(now * rate)
            while i < due:
                tasks.append(asyncio.ensure_future(one(i))); i += 1
            await asyncio.sleep(0.001)
        await asyncio.gather(*tasks, return_exceptions=True)
        print(json.dumps({"sent": i, "lat": sorted(lat), "codes": codes, "took": time.perf_counter() - start}))
asyncio.run(main())
"""


def pct(xs: list[float], q: float) -> float:
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=2000)
    ap.add_argument("--seconds", type=float, default=5)
    args = ap.parse_args()
    sink = AlertSink(Timeline())
    url = sink.start()
    lags: list[float] = []
    stop = threading.Event()

    def poller() -> None:  # the engine's wait loop: check, sleep 50 ms, check again
        while not stop.is_set():
            t = time.perf_counter()
            time.sleep(0.05)
            lags.append(time.perf_counter() - t - 0.05)

    th = threading.Thread(target=poller, daemon=True)
    th.start()
    done = subprocess.run([sys.executable, "-c", CLIENT, url, str(args.rate), str(args.seconds)],
                          capture_output=True, text=True, timeout=args.seconds + 120)
    stop.set()
    th.join()
    sink.stop()
    if done.returncode != 0:
        sys.exit(f"the flood client failed: {done.stderr[-2000:]}")
    res = json.loads(done.stdout)
    lat = res["lat"]
    lags.sort()
    print(f"flood: {res['sent']} events in {res['took']:.1f} s ({res['sent'] / res['took']:.0f}/s asked {args.rate:g}/s); "
          f"answers {res['codes']}")
    print(f"sink latency: p50 {pct(lat, 0.5) * 1000:.1f} ms, p99 {pct(lat, 0.99) * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms")
    print(f"engine poll lag (50 ms sleeps, {len(lags)} samples): p50 {pct(lags, 0.5) * 1000:.1f} ms, "
          f"p99 {pct(lags, 0.99) * 1000:.1f} ms, max {lags[-1] * 1000:.1f} ms")
    print(f"sink counted: {sink.violations} violations {json.dumps(sink.dropped)}, accepted {sink.accepted}; "
          f"mean latency {statistics.fmean(lat) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
