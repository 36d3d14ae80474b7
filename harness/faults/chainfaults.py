"""Faults of the chain itself: it stops producing blocks, or rewrites its recent history.

``ChainStall``: automine and interval mining off; transactions wait in the pool and the head does
not move. Heal: mining as before (the pool is then mined).

``Reorg``: the last ``depth`` blocks are replaced by a different branch of the same height plus
one. With ``anvil_reorg`` where the node has it (anvil and the harness's py-evm node); on a node
without it, the fault snapshots the chain, lets
``window`` seconds of activity happen, reverts to the snapshot and mines the new branch itself.
Either way the counterparty's transactions from the orphaned blocks are replayed into the new
branch (``replay="others"``: as on a real chain, where most of them are mined again), while the
agent's are not: its proofs vanish, its escrows are open again and its nonce goes back, which is
what the agent must notice. ``replay="none"`` replays nothing, ``"all"`` everything.
The reorg is recorded as ``fault.reorg`` with the old head, the new head and the orphaned
transactions. Heal has nothing to undo.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import rlp
from eth_account.typed_transactions import TypedTransaction
from eth_utils import to_checksum_address

from harness import clock
from harness.errors import ConfigError, HarnessError, RpcError
from harness.faults._chainops import FaultLoop, MiningState, check_positive, in_addresses
from harness.faults.base import Fault

if TYPE_CHECKING:
    from harness.chain.base import Chain

__all__ = ["BlockTime", "ChainStall", "Reorg"]


def _int(v: Any) -> int:
    return int(v, 16) if isinstance(v, str) else int(v)


def raw_transaction(chain: Chain, tx: dict[str, Any]) -> str:
    """The signed bytes of a mined transaction, from the node or rebuilt from its fields.

    The py-evm node has no ``eth_getRawTransactionByHash``; a transaction's JSON carries every
    signed field, so re-encoding it gives the same bytes (and hash).
    """
    try:
        return str(chain.rpc("eth_getRawTransactionByHash", tx["hash"]))
    except RpcError as exc:
        if exc.code != -32601:
            raise
    to = to_checksum_address(tx["to"]) if tx.get("to") else None
    kind = _int(tx.get("type", 0))
    if kind == 0:
        fields = [_int(tx["nonce"]), _int(tx["gasPrice"]), _int(tx["gas"]), bytes.fromhex(to[2:]) if to else b"",
                  _int(tx["value"]), bytes.fromhex(tx["input"][2:]), _int(tx["v"]), _int(tx["r"]), _int(tx["s"])]
        return "0x" + rlp.encode(fields).hex()
    d: dict[str, Any] = {
        "type": kind, "chainId": _int(tx["chainId"]), "nonce": _int(tx["nonce"]), "gas": _int(tx["gas"]),
        "value": _int(tx["value"]), "data": tx["input"], "accessList": tx.get("accessList") or [],
        "v": _int(tx.get("yParity", tx.get("v"))), "r": _int(tx["r"]), "s": _int(tx["s"]),
    }
    if to:
        d["to"] = to
    if kind == 1:
        d["gasPrice"] = _int(tx["gasPrice"])
    else:
        d["maxFeePerGas"] = _int(tx["maxFeePerGas"])
        d["maxPriorityFeePerGas"] = _int(tx["maxPriorityFeePerGas"])
    return "0x" + TypedTransaction.from_dict(d).encode().hex()


class BlockTime(Fault):
    """Blocks every ``seconds`` instead of one per transaction (automine off, the harness mines).

    Not an incident by itself: it lets the chain show what the agent sends together. Transactions
    sent at once land in the same block, so "one at a time" can be judged on chain. The harness
    mines the blocks itself (``anvil_mine`` on a timer) rather than through the node's interval
    mining, because anvil's ``evm_setIntervalMining`` takes whole seconds only: one way, the same
    on both backends, and sub-second intervals work everywhere.
    """

    family = "chain"
    name = "block_time"

    def __init__(self, seconds: float = 0.5) -> None:
        super().__init__()
        check_positive("BlockTime", "seconds", seconds)
        self.seconds = seconds
        self._before: MiningState | None = None
        self._loop: FaultLoop | None = None

    def describe(self) -> dict[str, Any]:
        return {"family": self.family, "seconds": self.seconds}

    def _inject(self) -> None:
        chain = self.ctx.chain
        self._before = MiningState.capture(chain)
        chain.set_interval_mining(0)
        chain.set_automine(False)
        self._loop = FaultLoop(self.name, self.seconds, lambda: chain.mine(1), timeline=self.ctx.timeline,
                               source=f"fault:{self.name}").start()

    def _heal(self) -> None:
        assert self._before is not None
        if self._loop is not None:
            self._loop.stop()
            self._loop = None
        self._before.restore(self.ctx.chain)


class ChainStall(Fault):
    family = "chain"
    name = "chain_stall"

    def __init__(self) -> None:
        super().__init__()
        self._before: MiningState | None = None
        self.head: int | None = None

    def describe(self) -> dict[str, Any]:
        return {"family": self.family, "head": self.head}

    def _inject(self) -> None:
        chain = self.ctx.chain
        self._before = MiningState.capture(chain)
        chain.set_automine(False)
        chain.set_interval_mining(0)
        self.head = chain.block_number()

    def _heal(self) -> None:
        chain = self.ctx.chain
        assert self._before is not None
        self._before.restore(chain)
        if self._before.automine:
            chain.mine(1)  # what queued up during the stall goes out now, not with the next transaction


_REPLAY = ("others", "none", "all")


class _NoReorgMethod(Exception):
    """The node does not know anvil_reorg."""


class Reorg(Fault):
    family = "chain"
    name = "reorg"

    def __init__(self, *, depth: int = 3, replay: str = "others", window: float = 3.0, mode: str = "auto") -> None:
        """``depth``: blocks replaced (anvil_reorg mode). ``window``: seconds of history that the
        snapshot mode orphans. ``replay``: whose orphaned transactions go into the new branch.
        ``mode``: "anvil" (anvil_reorg), "snapshot" (snapshot and revert) or "auto"."""
        super().__init__()
        if not isinstance(depth, int) or depth < 1:
            raise ConfigError(f"Reorg: depth must be an int >= 1, not {depth!r}")
        check_positive("Reorg", "window", window)
        if replay not in _REPLAY:
            raise ConfigError(f"Reorg: replay must be one of {', '.join(_REPLAY)}, not {replay!r}")
        if mode not in ("auto", "anvil", "snapshot"):
            raise ConfigError(f"Reorg: mode must be auto, anvil or snapshot, not {mode!r}")
        self.depth = depth
        self.replay = replay
        self.window = float(window)
        self.mode = mode
        self.used_mode: str | None = None
        self.orphaned: list[str] = []
        self.orphaned_agent_txs: list[str] = []
        #: hash, sender, nonce, to and input of each orphaned agent transaction (gone from the chain after)
        self.orphaned_agent_tx_data: list[dict[str, Any]] = []
        self.replayed: list[str] = []
        self.old_head: tuple[int, str] | None = None
        self.new_head: tuple[int, str] | None = None

    def describe(self) -> dict[str, Any]:
        return {"family": self.family, "depth": self.depth, "replay": self.replay, "mode": self.used_mode or self.mode,
                "orphaned_txs": len(self.orphaned), "orphaned_agent_txs": list(self.orphaned_agent_txs),
                "old_head": self.old_head[0] if self.old_head else None}

    def _head(self) -> tuple[int, str]:
        blk = self.ctx.chain.rpc("eth_getBlockByNumber", "latest", False)
        return int(blk["number"], 16), blk["hash"]

    def _collect(self, first: int, last: int) -> list[tuple[int, dict[str, Any]]]:
        """(block offset from ``first``, tx) for every transaction in blocks first..last."""
        out = []
        for n in range(first, last + 1):
            blk = self.ctx.chain.rpc("eth_getBlockByNumber", hex(n), True)
            for tx in blk["transactions"]:
                out.append((n - first, tx))
        return out

    def _keep(self, tx: dict[str, Any]) -> bool:
        if self.replay == "all":
            return True
        if self.replay == "none":
            return False
        return not in_addresses(tx["from"], self.ctx.agent_addresses)

    def _note_orphans(self, txs: list[tuple[int, dict[str, Any]]]) -> list[tuple[int, str]]:
        """Record what is orphaned; return (offset, raw) of what is replayed."""
        chain = self.ctx.chain
        replay = []
        for offset, tx in txs:
            self.orphaned.append(tx["hash"])
            if in_addresses(tx["from"], self.ctx.agent_addresses):
                self.orphaned_agent_txs.append(tx["hash"])
                self.orphaned_agent_tx_data.append({k: tx.get(k) for k in ("hash", "from", "nonce", "to", "input")})
            if self._keep(tx):
                raw = raw_transaction(chain, tx)
                if raw:
                    replay.append((offset, raw))
                    self.replayed.append(tx["hash"])
        return replay

    def _inject(self) -> None:
        mode = "anvil" if self.mode == "auto" else self.mode
        if mode == "anvil":
            try:
                self._anvil_reorg()
            except _NoReorgMethod:
                if self.mode != "auto":
                    raise HarnessError("this node has no anvil_reorg; use Reorg(mode='snapshot')") from None
                for kept in (self.orphaned, self.orphaned_agent_txs, self.orphaned_agent_tx_data, self.replayed):
                    kept.clear()
                mode = "snapshot"
        if mode == "snapshot":
            self._snapshot_reorg()
        self.used_mode = mode
        self.new_head = self._head()
        self.ctx.timeline.record(
            "fault.reorg", f"fault:{self.name}", old_head=self.old_head[0] if self.old_head else None,
            old_hash=self.old_head[1] if self.old_head else None, new_head=self.new_head[0],
            new_hash=self.new_head[1], orphaned=list(self.orphaned), orphaned_agent_txs=list(self.orphaned_agent_txs),
            replayed=list(self.replayed), mode=mode,
        )

    def _anvil_reorg(self) -> None:
        chain = self.ctx.chain
        self.old_head = self._head()
        height = self.old_head[0]
        if height < self.depth + 1:
            chain.mine(self.depth + 1 - height)
            self.old_head = self._head()
            height = self.old_head[0]
        self._wait_agent_saw(height - self.depth + 1)
        self.old_head = self._head()
        height = self.old_head[0]
        replay = self._note_orphans(self._collect(height - self.depth + 1, height))
        try:
            chain.rpc("anvil_reorg", self.depth, [[raw, offset] for offset, raw in replay])
        except RpcError as exc:
            if exc.code == -32601:  # method not found
                raise _NoReorgMethod() from exc
            raise HarnessError(f"anvil_reorg failed ({exc.message}); try Reorg(mode='snapshot')") from exc
        # One more block so the new branch is strictly longer than the old one, as a real reorg is.
        chain.mine(1)

    def _wait_agent_saw(self, block: int, timeout: float = 3.0) -> None:
        """Wait (briefly) until the agent's /health says it has seen ``block``.

        A reorg of blocks the agent never looked at is no reorg to it: it would only see its
        transactions vanish. Replacing at least one block it has seen makes the drill about
        noticing a reorg. Without a health poller (a unit test), there is nothing to wait for.
        """
        health = getattr(self.ctx, "health", None)
        if health is None:
            return
        deadline = clock.now() + timeout
        while clock.now() < deadline:
            last = health.last or {}
            try:
                if int(last.get("last_block", -1)) >= block:
                    return
            except (TypeError, ValueError):
                return
            threading.Event().wait(0.05)
        self.ctx.timeline.record("fault.warning", f"fault:{self.name}",
                                 warning=f"the agent had not reported block {block} within {timeout}s; reorging anyway")

    def _snapshot_reorg(self) -> None:
        chain = self.ctx.chain
        fork = chain.block_number()
        snap = chain.snapshot()
        threading.Event().wait(self.window)  # history happens on the branch that will be orphaned
        self.old_head = self._head()
        txs = self._collect(fork + 1, self.old_head[0]) if self.old_head[0] > fork else []
        replay = self._note_orphans(txs)
        if not chain.revert(snap):
            raise HarnessError(f"evm_revert({snap}) failed; the chain could not be rolled back")
        for _, raw in replay:
            try:
                chain.rpc("eth_sendRawTransaction", raw)
            except RpcError as exc:
                self.ctx.timeline.record("fault.error", f"fault:{self.name}", error=f"replay refused: {exc.message}"[:300])
        # Mine until the new branch is longer than the orphaned one.
        while chain.block_number() <= self.old_head[0]:
            chain.mine(1)

    def _heal(self) -> None:
        """A reorg is done once injected: nothing to undo."""
