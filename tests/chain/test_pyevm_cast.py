"""Foundry's cast (from the npm package) works against the pyevm chain: it is strict about the
JSON shapes of blocks, transactions and receipts, so this is a conformance check of our answers."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.accounts import dev_accounts
from harness.chain.pyevm.testing import Served, serving

ROOT = Path(__file__).resolve().parents[2]
CAST = ROOT / "node_modules" / "@foundry-rs" / "cast-linux-amd64" / "bin" / "cast"


@pytest.fixture
def chain() -> Iterator[Served]:
    assert CAST.exists(), f"cast is not installed at {CAST}; run `npm ci` in {ROOT}"
    with serving() as served:
        yield served


def cast(url: str, *args: str, secret: str | None = None) -> str:
    cmd = [str(CAST), *args, "--rpc-url", url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        shown = " ".join("<key>" if a == secret else a for a in cmd)
        raise AssertionError(
            f"`{shown}` failed ({done.returncode}): {done.stderr.strip()[-2000:]}"
        )
    return done.stdout.strip()


def test_cast_reads_chain_facts(chain: Served) -> None:
    first = dev_accounts()[0].address
    assert cast(chain.url, "chain-id") == "31337"
    assert cast(chain.url, "block-number") == "0"
    assert cast(chain.url, "balance", first) == str(10_000 * 10**18)
    block = json.loads(cast(chain.url, "block", "latest", "--json"))
    assert block["number"] == "0x0"
    assert int(cast(chain.url, "gas-price")) > 0
    assert cast(chain.url, "nonce", first) == "0"


def test_cast_sends_a_signed_transaction_and_reads_its_receipt(chain: Served) -> None:
    sender, receiver = dev_accounts()[0], dev_accounts()[5]
    sent = json.loads(
        cast(
            chain.url,
            "send",
            "--private-key",
            sender.key,
            receiver.address,
            "--value",
            "12345",
            "--json",
            secret=sender.key,
        )
    )
    assert sent["status"] == "0x1"
    tx_hash = sent["transactionHash"]
    assert cast(chain.url, "block-number") == "1"
    receipt = json.loads(cast(chain.url, "receipt", tx_hash, "--json"))
    assert receipt["transactionHash"] == tx_hash
    assert receipt["blockNumber"] == "0x1"
    assert cast(chain.url, "balance", receiver.address) == str(10_000 * 10**18 + 12345)
    tx = json.loads(cast(chain.url, "tx", tx_hash, "--json"))
    assert tx["from"].lower() == sender.address.lower()
    assert json.loads(cast(chain.url, "block", "1", "--json"))["transactions"] == [
        tx_hash
    ]


def test_cast_legacy_send_and_call(chain: Served) -> None:
    sender = dev_accounts()[1]
    sent = json.loads(
        cast(
            chain.url,
            "send",
            "--legacy",
            "--private-key",
            sender.key,
            dev_accounts()[2].address,
            "--value",
            "1",
            "--json",
            secret=sender.key,
        )
    )
    assert sent["status"] == "0x1" and sent["type"] == "0x0"
    # a contract-less call answers empty data
    assert cast(chain.url, "call", dev_accounts()[3].address, "0x") == "0x"
