"""The anvil backend: Foundry's node as a child process on a loopback port."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from harness import procs
from harness.accounts import DEV_MNEMONIC
from harness.errors import ChainStartError, ToolMissingError
from harness.netutil import ensure_port_free, free_port

__all__ = ["find_anvil", "start_anvil", "AnvilNode"]

_INSTALL_HINT = (
    "install Foundry's anvil (`curl -L https://foundry.paradigm.xyz | bash && foundryup`, or "
    "`npm install @foundry-rs/anvil` in your project) and put it on PATH or point ANVIL_BIN at the binary; "
    "in a checkout of agent-drills, `npm ci` installs the pinned one; or drill on the embedded chain (--chain pyevm)"
)


def _node_modules_candidates() -> list[Path]:
    roots = [Path.cwd(), Path(__file__).resolve().parent]
    out: list[Path] = []
    for root in roots:
        for d in [root, *root.parents]:
            nm = d / "node_modules" / "@foundry-rs"
            out.append(nm / "anvil-linux-amd64" / "bin" / "anvil")
            out.append(nm / "anvil-linux-arm64" / "bin" / "anvil")
            out.append(nm / "anvil-darwin-arm64" / "bin" / "anvil")
            out.append(nm / "anvil-darwin-amd64" / "bin" / "anvil")
    return out


def find_anvil() -> str:
    """The anvil binary: $ANVIL_BIN, then node_modules of the checkout, then PATH."""
    env = os.environ.get("ANVIL_BIN")
    if env:
        if os.access(env, os.X_OK):
            return env
        raise ToolMissingError(f"ANVIL_BIN={env!r} is not an executable file; {_INSTALL_HINT}")
    for cand in _node_modules_candidates():
        if os.access(cand, os.X_OK):
            return str(cand)
    found = shutil.which("anvil")
    if found:
        return found
    raise ToolMissingError(f"anvil was not found; {_INSTALL_HINT}")


@dataclass
class AnvilNode:
    url: str
    proc: subprocess.Popen[Any] = field(repr=False)
    log_path: Path

    def stop(self) -> None:
        procs.stop_process(self.proc, name="anvil")

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def start_anvil(settings: Any) -> AnvilNode:
    binary = find_anvil()
    attempts = 3 if settings.port == 0 else 1
    last_err = ""
    for _ in range(attempts):
        port = settings.port or free_port(settings.host)
        if settings.port:
            ensure_port_free(settings.host, port, what="anvil")
        argv = [
            binary, "--host", settings.host, "--port", str(port),
            "--chain-id", str(settings.chain_id), "--mnemonic", DEV_MNEMONIC,
            "--accounts", "10", "--balance", "10000",
        ]
        if settings.block_time is not None:
            argv += ["--block-time", f"{settings.block_time:g}"]
        log = tempfile.NamedTemporaryFile(prefix="anvil-", suffix=".log", delete=False)
        proc = procs.spawn(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        node = AnvilNode(url=f"http://{settings.host}:{port}", proc=proc, log_path=Path(log.name))
        deadline = time.monotonic() + settings.start_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                last_err = f"anvil exited with code {proc.returncode}: {node.logs()[-2000:]}"
                break
            try:
                r = requests.post(node.url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=1)
                if r.ok:
                    return node
            except requests.RequestException:
                pass
            time.sleep(0.02)
        else:
            node.stop()
            raise ChainStartError(
                f"anvil did not answer on {node.url} within {settings.start_timeout}s; its output: {node.logs()[-2000:]}"
            )
        node.stop()
        if "Address already in use" not in last_err:
            break
    raise ChainStartError(f"anvil did not start: {last_err}")
