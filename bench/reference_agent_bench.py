"""Reference agent in steady state: how many escrows it proves, how fast, and what it misses.

    .venv/bin/python bench/reference_agent_bench.py [--backend anvil|pyevm] [--block-time 0|S] [--seconds 60]
                                                    [--every 0.5] [--ahead 12]

A real chain, the drill contracts, the agent as a process (drill profile) and a counterparty that
opens an escrow every ``--every`` seconds with a deadline ``--ahead`` seconds past the chain's
time. Prints counts (opened, proven, expired, reverted, proven twice, nonce gap), the delay from
an escrow's opening block to its proof block (median and worst, in chain seconds and blocks) and
the smallest margin left to a deadline.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "reference_agent"))

from eth_utils import keccak
from ra_world import make_world


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="anvil", choices=["anvil", "pyevm"])
    ap.add_argument("--block-time", type=float, default=0.0, help="0: automine")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--every", type=float, default=0.5)
    ap.add_argument("--ahead", type=int, default=12)
    args = ap.parse_args()
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        world = make_world(tmp, args.backend, stack, block_time=args.block_time or None)
        chain, dep, hot = world.chain, world.deployment, world.hot
        agent = world.start_agent()
        t0 = time.monotonic()
        agent.wait_healthy(60)
        ready = time.monotonic() - t0
        first_block = chain.block_number()
        cp = world.open_escrows(every=args.every, ahead=args.ahead)
        time.sleep(args.seconds)
        cp.stop()
        time.sleep(args.ahead + 2)

        esc = dep.escrow_contract(chain.w3)
        opened: dict[int, tuple[int, int]] = {}  # id -> (block, timestamp)
        proved: dict[int, list[tuple[int, int, int]]] = {}  # id -> [(block, timestamp, status)]
        gap = chain.nonce(hot.address, "pending") - chain.nonce(hot.address, "latest")
        open_topic = "0x" + keccak(text="EscrowOpened(uint256,address,uint64,uint256)").hex()
        proof_sel = esc.encode_abi("submitProof", [0, b"\0" * 32])[:10]
        for n in range(first_block, chain.block_number() + 1):
            blk = chain.rpc("eth_getBlockByNumber", hex(n), True)
            ts = int(blk["timestamp"], 16)
            for tx in blk["transactions"]:
                rcpt = chain.rpc("eth_getTransactionReceipt", tx["hash"])
                if tx["from"].lower() == hot.address.lower() and tx["input"].startswith(proof_sel):
                    proved.setdefault(int(tx["input"][10:74], 16), []).append((n, ts, int(rcpt["status"], 16)))
                for lg in rcpt["logs"]:
                    if (lg["address"].lower() == dep.escrow.lower() and lg["topics"][0] == open_topic
                            and int(lg["topics"][2][-40:], 16) == int(hot.address, 16)):
                        opened[int(lg["topics"][1], 16)] = (n, ts)
        states = Counter(esc.functions.escrows(i).call()[3] for i in opened)
        delays_s = [proved[i][-1][1] - opened[i][1] for i in opened if i in proved]
        delays_b = [proved[i][-1][0] - opened[i][0] for i in opened if i in proved]
        deadlines = {i: esc.functions.escrows(i).call()[1] for i in opened}
        margins = [deadlines[i] - proved[i][-1][1] for i in opened if i in proved]
        print(f"backend={args.backend} block_time={args.block_time or 'automine'} seconds={args.seconds:g} "
              f"every={args.every:g} ahead={args.ahead}")
        print(f"agent ready after       {ready:.2f} s")
        print(f"escrows opened          {len(opened)}")
        print(f"proven / expired / open {states.get(2, 0)} / {states.get(3, 0)} / {states.get(1, 0)}")
        print(f"reverted proof txs      {sum(1 for v in proved.values() for p in v if p[2] != 1)}")
        print(f"escrows sent twice      {sum(1 for v in proved.values() if len(v) > 1)}")
        print(f"nonce gap at the end    {gap}")
        if delays_s:
            print(f"open->proof, chain s    median {statistics.median(delays_s):.1f}, worst {max(delays_s)}")
            print(f"open->proof, blocks     median {statistics.median(delays_b):.1f}, worst {max(delays_b)}")
            print(f"smallest deadline margin {min(margins)} s")
        print(f"incident events         {len(world.alerts.events)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
