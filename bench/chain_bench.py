"""Chain benchmark: start time, snapshot/revert time and transaction rate, per backend.

    .venv/bin/python bench/chain_bench.py [--repeat 5] [--txs 200] [--backend pyevm|anvil ...]

Transaction rate: a signed raw transfer sent with web3 over HTTP and its receipt awaited, one after
the other (automine), as an agent does. For pyevm the same transfers also run in-process, through
eth-tester's own API without HTTP (the baseline the issue names) and through our node without HTTP,
so the HTTP server's share shows as a ratio. Rates are counted on this process's CPU clock as well
as the wall clock, because the machine is shared: CPU time is what the server itself costs.
Every figure is the median of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from web3 import Web3

from harness.chain.base import BACKENDS, start_chain
from harness.chain.pyevm import measure


def median_of(fn: Callable[[], float], repeat: int) -> float:
    return statistics.median(fn() for _ in range(repeat))


def anvil_http_tps(txs: int) -> float:
    with start_chain(backend="anvil") as chain:
        w3 = Web3(Web3.HTTPProvider(chain.rpc_url))
        raws = measure.signed_transfers(txs, chain.chain_id)
        t = time.perf_counter()
        for raw in raws:
            w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(raw), poll_latency=0.001)
        return txs / (time.perf_counter() - t)


def start_time(backend: str) -> float:
    t = time.perf_counter()
    chain = start_chain(backend=backend)
    elapsed = time.perf_counter() - t
    chain.stop()
    return elapsed


def snapshot_revert_time(backend: str, rounds: int = 20) -> float:
    with start_chain(backend=backend) as chain:
        samples = []
        for _ in range(rounds):
            t = time.perf_counter()
            snap = chain.snapshot()
            chain.mine(1)
            chain.revert(snap)
            samples.append(time.perf_counter() - t)
        return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--txs", type=int, default=200)
    parser.add_argument("--backend", action="append", choices=BACKENDS)
    args = parser.parse_args()
    backends = args.backend or list(BACKENDS)
    if "pyevm" in backends:
        start_chain(backend="pyevm").stop()  # import the node's modules once: start time is the warm figure

    print("start: start_chain() until eth_chainId answers; snapshot: evm_snapshot + anvil_mine + evm_revert")
    for backend in backends:
        start = median_of(lambda: start_time(backend), args.repeat) * 1000
        snap = median_of(lambda: snapshot_revert_time(backend), 3) * 1000
        print(f"{backend:6} start {start:7.1f} ms   snapshot/mine/revert {snap:6.2f} ms", flush=True)

    for backend in backends:
        if backend == "anvil":
            tps = median_of(lambda: anvil_http_tps(args.txs), args.repeat)
            print(f"anvil  HTTP + web3: {tps:7.1f} tx/s (wall)", flush=True)
            continue
        for label, clock in (("wall", time.perf_counter), ("cpu", time.process_time)):
            base = median_of(lambda: measure.eth_tester_tps(args.txs, clock), args.repeat)
            node = median_of(lambda: measure.node_tps(args.txs, clock), args.repeat)
            http = median_of(lambda: measure.http_tps(args.txs, clock), args.repeat)
            print(f"pyevm  [{label:4}] eth-tester in-process {base:7.1f} tx/s | our node in-process {node:7.1f} tx/s"
                  f" | HTTP + web3 {http:7.1f} tx/s | HTTP / eth-tester {http / base:4.2f}", flush=True)
        sep = median_of(lambda: measure.http_tps_separate_client(args.txs), args.repeat)
        print(f"pyevm  HTTP + web3 from a separate client process: {sep:7.1f} tx/s (wall)", flush=True)


if __name__ == "__main__":
    main()
