"""The ``drill`` command: help, ``drill chain`` serving a usable chain, and Foundry's cast against it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
DRILL = [sys.executable, "-m", "harness.cli"]


def find_cast() -> str:
    for arch in ("linux-amd64", "linux-arm64", "darwin-arm64", "darwin-amd64"):
        cand = ROOT / "node_modules" / "@foundry-rs" / f"cast-{arch}" / "bin" / "cast"
        if os.access(cand, os.X_OK):
            return str(cand)
    raise AssertionError("cast is not installed: run `npm ci` (package.json pins @foundry-rs/cast)")


def test_help_answers() -> None:
    for argv in ([], ["chain"], ["proxy"], ["report"]):
        out = subprocess.run([*DRILL, *argv, "--help"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "usage: drill" in out.stdout


def test_bad_arguments_say_what_is_expected() -> None:
    out = subprocess.run([*DRILL, "chain", "--block-time", "-1"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "positive number of seconds" in out.stderr
    out = subprocess.run([*DRILL, "chain", "--backend", "ganache"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "invalid choice" in out.stderr
    out = subprocess.run([*DRILL, "chain", "--host", "10.1.2.3", "--port", "0"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "not a loopback address" in out.stderr and "Traceback" not in out.stderr


class Served:
    def __init__(self, proc: subprocess.Popen[str], info: dict[str, str]) -> None:
        self.proc, self.info = proc, info

    @property
    def url(self) -> str:
        return self.info["rpc url"]


def serve_chain(backend: str, *extra: str) -> Served:
    proc = subprocess.Popen([*DRILL, "chain", "--backend", backend, "--port", "0", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    info: dict[str, str] = {}
    lines = []
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        m = re.match(r"^(\w[\w ]*?)\s{2,}(\S.*)$", line.rstrip())
        if m:
            info[m.group(1)] = m.group(2)
        if line.startswith("Ctrl-C stops"):
            return Served(proc, info)
    proc.kill()
    raise AssertionError("drill chain did not come up:\n" + "".join(lines))


@pytest.fixture(params=["pyevm", "anvil"])
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    s = serve_chain(request.param)
    try:
        yield s
    finally:
        s.proc.send_signal(signal.SIGINT)
        try:
            s.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            s.proc.kill()
            raise AssertionError("drill chain did not stop on Ctrl-C") from None


def test_drill_chain_prints_what_a_user_needs(served: Served) -> None:
    assert served.info["chain id"] == "31337"
    assert served.url.startswith("http://127.0.0.1:")
    assert re.match(r"0x[0-9a-fA-F]{40}", served.info["escrow"])
    # the deployed contracts are really there
    code = requests.post(served.url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_getCode",
                                           "params": [served.info["escrow"].split()[0], "latest"]}, timeout=10).json()
    assert len(code["result"]) > 100


def test_drill_chain_stops_on_ctrl_c(served: Served) -> None:
    url = served.url
    served.proc.send_signal(signal.SIGINT)
    assert served.proc.wait(timeout=15) in (0, 130)
    with pytest.raises(requests.ConnectionError):
        requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=2)


def test_cast_reads_and_sends_against_drill_chain(served: Served) -> None:
    cast = find_cast()
    url = served.url

    def run(*argv: str) -> str:
        out = subprocess.run([cast, *argv, "--rpc-url", url], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, f"cast {' '.join(argv[:2])} failed: {out.stderr}"
        return out.stdout.strip()

    assert int(run("block-number")) >= 2  # the two contract deployments
    assert run("balance", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8") == str(10_000 * 10**18)
    # the public development key of account 9, as printed by every anvil
    dev_key = "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6"
    to = "0x000000000000000000000000000000000000dEaD"
    out = subprocess.run([cast, "send", "--private-key", dev_key, "--rpc-url", url, to, "--value", "12345", "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    import json

    receipt = json.loads(out.stdout)
    assert receipt["status"] in ("0x1", 1, "1")
    assert run("balance", to) == "12345"
    again = run("receipt", receipt["transactionHash"], "status")
    assert again in ("1", "true", "success", "1 (success)")
