"""One interface over both chain backends.

Both backends are JSON-RPC nodes on loopback (anvil as a child process, py-evm served by the harness
in a thread), so ``Chain`` is one class talking JSON-RPC; only how the node is started and stopped
differs (``NodeHandle``). Cheat methods use anvil's names on both backends.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests
from web3 import Web3

from harness.accounts import DevAccount, dev_accounts
from harness.errors import ChainStartError, RpcError, UnknownScenarioError
from harness.safety import check_loopback_host

__all__ = ["BACKENDS", "Chain", "ChainSettings", "NodeHandle", "start_chain", "running_chain"]

BACKENDS = ("pyevm", "anvil")
DEV_CHAIN_ID = 31337


@dataclass(frozen=True, kw_only=True)
class ChainSettings:
    """How to start a chain. Validated on construction."""

    backend: str = "pyevm"
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port
    block_time: float | None = None  # None: automine; S: a block every S seconds
    chain_id: int = DEV_CHAIN_ID
    start_timeout: float = 15.0
    allow_remote: bool = False

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise UnknownScenarioError(
                f"unknown chain backend {self.backend!r}; choose one of {', '.join(BACKENDS)}"
            )
        if not 0 <= self.port <= 65535:
            raise ChainStartError(f"port {self.port} is outside 0..65535")
        if self.block_time is not None and self.block_time <= 0:
            raise ChainStartError(f"block_time must be > 0 seconds or None (automine), not {self.block_time}")


class NodeHandle(Protocol):
    """The running node behind a Chain: how to reach it and how to stop it."""

    url: str

    def stop(self) -> None: ...

    def logs(self) -> str: ...


@dataclass
class Chain:
    """A running local chain reached over JSON-RPC HTTP."""

    backend: str
    rpc_url: str
    chain_id: int
    node: NodeHandle = field(repr=False)
    accounts: tuple[DevAccount, ...] = field(default_factory=dev_accounts, repr=False)

    def __post_init__(self) -> None:
        self._session = requests.Session()
        self._ids = itertools.count(1)
        self._w3: Web3 | None = None
        self._anvil_fee_state: dict[str, tuple[int, int]] = {}
        self.stopped = False

    # -- plumbing ----------------------------------------------------------------------------
    @property
    def w3(self) -> Web3:
        if self._w3 is None:
            self._w3 = Web3(Web3.HTTPProvider(self.rpc_url, request_kwargs={"timeout": 30}))
        return self._w3

    def rpc(self, method: str, *params: Any, timeout: float = 30.0) -> Any:
        """Call ``method``; return its result or raise RpcError with the node's code and message."""
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        resp = self._session.post(self.rpc_url, json=body, timeout=timeout)
        resp.raise_for_status()
        payload = resp.json()
        if "error" in payload and payload["error"] is not None:
            err = payload["error"]
            raise RpcError(int(err.get("code", 0)), str(err.get("message", "")), err.get("data"), method=method)
        return payload.get("result")

    def logs(self) -> str:
        """What the node printed (anvil's output); kept for reports."""
        return self.node.logs()

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        try:
            self._session.close()
        finally:
            self.node.stop()

    def __enter__(self) -> "Chain":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- reads -------------------------------------------------------------------------------
    def block_number(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def balance(self, address: str, block: str = "latest") -> int:
        return int(self.rpc("eth_getBalance", address, block), 16)

    def nonce(self, address: str, block: str = "latest") -> int:
        return int(self.rpc("eth_getTransactionCount", address, block), 16)

    def base_fee(self, block: str = "latest") -> int:
        return int(self.rpc("eth_getBlockByNumber", block, False)["baseFeePerGas"], 16)

    # -- cheats (anvil's names on both backends) ----------------------------------------------
    def mine(self, blocks: int = 1) -> None:
        self.rpc("anvil_mine", hex(blocks))

    def set_automine(self, on: bool) -> None:
        self.rpc("evm_setAutomine", on)

    def set_interval_mining(self, seconds: float) -> None:
        """Mine a block every ``seconds`` (0 turns interval mining off)."""
        self.rpc("evm_setIntervalMining", seconds if seconds != int(seconds) else int(seconds))

    def set_next_base_fee(self, wei: int) -> None:
        self.rpc("anvil_setNextBlockBaseFeePerGas", hex(wei))

    def set_block_gas_limit(self, gas: int) -> None:
        self.rpc("evm_setBlockGasLimit", hex(gas))

    def drop_transaction(self, tx_hash: str) -> None:
        self.rpc("anvil_dropTransaction", tx_hash)

    def snapshot(self) -> str:
        snap = self.rpc("evm_snapshot")
        if self.backend == "anvil":
            # anvil's revert restores blocks and state but not its fee settings (the next base fee
            # and the block gas limit live outside the snapshot); remember them to restore them too.
            pending = self.rpc("eth_getBlockByNumber", "pending", False)
            self._anvil_fee_state[snap] = (int(pending["baseFeePerGas"], 16), int(pending["gasLimit"], 16))
        return snap

    def revert(self, snapshot_id: str) -> bool:
        ok = bool(self.rpc("evm_revert", snapshot_id))
        saved = self._anvil_fee_state.pop(snapshot_id, None)
        if ok and saved is not None:
            base_fee, gas_limit = saved
            self.set_next_base_fee(base_fee)
            self.set_block_gas_limit(gas_limit)
        return ok

    def set_balance(self, address: str, wei: int) -> None:
        self.rpc("anvil_setBalance", address, hex(wei))

    def txpool_content(self) -> dict[str, Any]:
        return self.rpc("txpool_content")

    def txpool_status(self) -> dict[str, int]:
        st = self.rpc("txpool_status")
        return {k: int(v, 16) if isinstance(v, str) else int(v) for k, v in st.items()}


def start_chain(settings: ChainSettings | None = None, /, **kw: Any) -> Chain:
    """Start a chain of the chosen backend on loopback and return it once it answers."""
    settings = settings or ChainSettings(**kw)
    check_loopback_host(settings.host, what="chain listen address", allow_remote=settings.allow_remote)
    if settings.backend == "anvil":
        from harness.chain.anvil import start_anvil

        node: NodeHandle = start_anvil(settings)
    else:
        from harness.chain.pyevm_backend import start_pyevm

        node = start_pyevm(settings)
    chain = Chain(backend=settings.backend, rpc_url=node.url, chain_id=settings.chain_id, node=node)
    try:
        got = int(chain.rpc("eth_chainId"), 16)
    except Exception as exc:
        chain.stop()
        raise ChainStartError(f"{settings.backend} started but does not answer eth_chainId at {node.url}: {exc}") from exc
    if got != settings.chain_id:
        chain.stop()
        raise ChainStartError(f"{settings.backend} answers chain id {got}, expected {settings.chain_id}")
    return chain


@contextmanager
def running_chain(settings: ChainSettings | None = None, /, **kw: Any) -> Iterator[Chain]:
    chain = start_chain(settings, **kw)
    try:
        yield chain
    finally:
        chain.stop()
