"""Chain benchmark: start time, snapshot/revert time and transaction rate, per backend.

    .venv/bin/python bench/chain_bench.py [--repeat 5] [--txs 200] [--backend pyevm --backend anvil]

Transaction rate: a signed raw transfer sent with web3 over HTTP and its receipt awaited, one after
the other (automine), as an agent would. For pyevm the same loop also runs in-process, against the
node object without HTTP, so the HTTP server's share shows as a ratio. Every figure is the median of
``--repeat`` runs; the machine is shared, so compare ratios rather than absolute numbers.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from eth_account import Account
from web3 import Web3

from harness.accounts import dev_accounts
from harness.chain.base import BACKENDS, start_chain


def median_of(fn: Callable[[], float], repeat: int) -> float:
    return statistics.median(fn() for _ in range(repeat))


def signed_transfers(count: int, *, chain_id: int, start_nonce: int, base_fee_cap: int) -> list[bytes]:
    sender = dev_accounts()[1]
    to = dev_accounts()[2].address
    return [
        Account.sign_transaction(
            {"chainId": chain_id, "nonce": start_nonce + i, "to": to, "value": 1, "gas": 21_000,
             "maxFeePerGas": base_fee_cap, "maxPriorityFeePerGas": 10**9, "type": 2},
            sender.key,
        ).raw_transaction
        for i in range(count)
    ]


def http_tps(backend: str, txs: int) -> float:
    with start_chain(backend=backend) as chain:
        w3 = Web3(Web3.HTTPProvider(chain.rpc_url))
        raws = signed_transfers(txs, chain_id=chain.chain_id, start_nonce=0, base_fee_cap=50 * 10**9)
        t = time.perf_counter()
        for raw in raws:
            h = w3.eth.send_raw_transaction(raw)
            w3.eth.wait_for_transaction_receipt(h, poll_latency=0.001)
        return txs / (time.perf_counter() - t)


def inprocess_tps(txs: int) -> float:
    """The pyevm node driven directly through its JSON-RPC dispatcher: same work, no HTTP."""
    from harness.chain.pyevm.rpc import InProcessNode  # the node plus its method table

    node = InProcessNode()
    raws = signed_transfers(txs, chain_id=31337, start_nonce=0, base_fee_cap=50 * 10**9)
    t = time.perf_counter()
    for raw in raws:
        h = node.call("eth_sendRawTransaction", ["0x" + raw.hex()])
        while node.call("eth_getTransactionReceipt", [h]) is None:
            pass
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
        start_chain(backend="pyevm").stop()  # import the node's modules once; start time is the warm figure
    print(f"{'backend':8} {'start (ms)':>11} {'snap+mine+revert (ms)':>22} {'tx/s HTTP':>10} {'tx/s in-process':>16} {'ratio':>6}")
    for backend in backends:
        start = median_of(lambda: start_time(backend), args.repeat) * 1000
        snap = median_of(lambda: snapshot_revert_time(backend), 3) * 1000
        tps = median_of(lambda: http_tps(backend, args.txs), args.repeat)
        if backend == "pyevm":
            local = median_of(lambda: inprocess_tps(args.txs), args.repeat)
            extra = f"{local:16.1f} {tps / local:6.2f}"
        else:
            extra = f"{'-':>16} {'-':>6}"
        print(f"{backend:8} {start:11.1f} {snap:22.2f} {tps:10.1f} {extra}", flush=True)


if __name__ == "__main__":
    main()
