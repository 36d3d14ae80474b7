"""Throughput and latency probes for the embedded chain, for benchmark scripts (never timed tests).

Each probe signs its transactions before the clock starts, so only submission and the receipt
wait are measured: a transfer from the first dev account, automine on. ``clock`` may be
``time.process_time`` to count this process's CPU time (all threads) instead of wall time, which
keeps a comparison fair on a machine shared with other work.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from .genesis import DEFAULT_MNEMONIC, dev_keys

__all__ = [
    "eth_tester_tps",
    "http_tps",
    "http_tps_separate_client",
    "node_tps",
    "signed_transfers",
    "snapshot_revert_seconds",
    "start_seconds",
]

_HD_PATH = "m/44'/60'/0'/0"


def signed_transfers(count: int, chain_id: int, *, first_nonce: int = 0) -> list[bytes]:
    """``count`` raw EIP-1559 transfers of 1 wei from dev account 0 to dev account 1."""
    from eth_account import Account

    keys = dev_keys()
    sender, receiver = Account.from_key(keys[0]), Account.from_key(keys[1])
    return [
        bytes(
            sender.sign_transaction(
                {
                    "type": 2,
                    "chainId": chain_id,
                    "nonce": first_nonce + i,
                    "maxFeePerGas": 10**10,
                    "maxPriorityFeePerGas": 10**9,
                    "gas": 21_000,
                    "to": receiver.address,
                    "value": 1,
                }
            ).raw_transaction
        )
        for i in range(count)
    ]


Clock = Callable[[], float]


def _rate(count: int, body: Callable[[], None], clock: Clock) -> float:
    started = clock()
    body()
    return count / (clock() - started)


def eth_tester_tps(count: int = 200, clock: Clock = time.perf_counter) -> float:
    """The in-process baseline: eth-tester's own API (auto-mining), no HTTP, no pool."""
    from eth_tester import EthereumTester, PyEVMBackend

    backend = PyEVMBackend.from_mnemonic(
        DEFAULT_MNEMONIC, genesis_state_overrides={"balance": 10**22}, hd_path=_HD_PATH
    )
    tester = EthereumTester(backend)
    raws = ["0x" + r.hex() for r in signed_transfers(count, backend.chain.chain_id)]

    def run() -> None:
        for raw in raws:
            tester.get_transaction_receipt(tester.send_raw_transaction(raw))

    return _rate(count, run, clock)


def node_tps(count: int = 200, clock: Clock = time.perf_counter) -> float:
    """The embedded node called in-process (pool and automine included), no HTTP."""
    from .node import PyEvmNode

    node = PyEvmNode()
    raws = signed_transfers(count, node.chain_id)

    def run() -> None:
        for raw in raws:
            node.receipt(node.send_raw_transaction(raw))

    return _rate(count, run, clock)


def http_tps(count: int = 200, clock: Clock = time.perf_counter) -> float:
    """Through a started PyEvmServer with web3: send the raw transaction, wait for its receipt."""
    from web3 import Web3

    from .server import PyEvmServer

    with PyEvmServer() as server:
        assert server.url is not None
        w3 = Web3(Web3.HTTPProvider(server.url))
        raws = signed_transfers(count, w3.eth.chain_id)

        def run() -> None:
            for raw in raws:
                w3.eth.wait_for_transaction_receipt(
                    w3.eth.send_raw_transaction(raw), poll_latency=0.01
                )

        return _rate(count, run, clock)


_CLIENT = """
import sys, time
from web3 import Web3
from harness.chain.pyevm.measure import signed_transfers
url, count = sys.argv[1], int(sys.argv[2])
w3 = Web3(Web3.HTTPProvider(url))
raws = signed_transfers(count, w3.eth.chain_id)
started = time.perf_counter()
for raw in raws:
    w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(raw), poll_latency=0.01)
print(count / (time.perf_counter() - started))
"""


def http_tps_separate_client(count: int = 200) -> float:
    """Like ``http_tps`` but with web3 in a child process, as an agent under drill would be."""
    import subprocess
    import sys

    from .server import PyEvmServer

    with PyEvmServer() as server:
        assert server.url is not None
        done = subprocess.run(
            [sys.executable, "-c", _CLIENT, server.url, str(count)],
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        return float(done.stdout.strip().splitlines()[-1])


def start_seconds(repeat: int = 5) -> float:
    """Median time of ``PyEvmServer().start()`` (modules already imported), stop not counted."""
    from .server import PyEvmServer

    PyEvmServer().__enter__().stop()  # warm the per-process caches (key derivation)
    times = []
    for _ in range(repeat):
        server = PyEvmServer()
        started = time.perf_counter()
        server.start()
        times.append(time.perf_counter() - started)
        server.stop()
    return statistics.median(times)


def snapshot_revert_seconds(
    repeat: int = 50, blocks_between: int = 5
) -> tuple[float, float]:
    """Median (snapshot, revert) time in seconds over HTTP, with a few blocks mined in between."""
    import requests

    from .server import PyEvmServer

    snaps, reverts = [], []
    with PyEvmServer() as server, requests.Session() as http:
        assert server.url is not None
        url = server.url

        def rpc(method: str, *params: object) -> object:
            return http.post(
                url,
                json={
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": method,
                    "params": list(params),
                },
            ).json()["result"]

        for _ in range(repeat):
            started = time.perf_counter()
            sid = rpc("evm_snapshot")
            snaps.append(time.perf_counter() - started)
            rpc("anvil_mine", hex(blocks_between))
            started = time.perf_counter()
            assert rpc("evm_revert", sid) is True
            reverts.append(time.perf_counter() - started)
    return statistics.median(snaps), statistics.median(reverts)


def main() -> None:
    print(f"start            {start_seconds() * 1000:.1f} ms (median)")
    snap, rev = snapshot_revert_seconds()
    print(
        f"snapshot/revert  {snap * 1000:.2f} / {rev * 1000:.2f} ms (median, over HTTP)"
    )
    for name, clock in (("wall", time.perf_counter), ("cpu", time.process_time)):
        runs = [
            (eth_tester_tps(clock=clock), node_tps(clock=clock), http_tps(clock=clock))
            for _ in range(3)
        ]
        et, nd, ht = (statistics.median(r[i] for r in runs) for i in range(3))
        print(
            f"tx/s ({name} clock, median of 3): eth-tester in-process {et:.0f} | node in-process {nd:.0f} | "
            f"HTTP+web3 {ht:.0f} = {ht / et:.2f} of eth-tester, {ht / nd:.2f} of the node in-process"
        )
    hs = statistics.median(http_tps_separate_client() for _ in range(3))
    print(f"tx/s (wall clock) HTTP+web3 with the client in another process: {hs:.0f}")


if __name__ == "__main__":
    main()
