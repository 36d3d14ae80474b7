"""Faults on the agent's own transactions: a node that loses them, another sender that takes a nonce.

``DroppedTransaction`` needs the agent's transactions to sit in the pool for a while, so it turns
automine off and mines a block every ``block_time`` seconds itself; a watcher polls the node's
pool (``txpool_content``) and removes every pending transaction from an agent address with
``anvil_dropTransaction`` the moment it appears, ``count`` of them (or all until healed). The
agent sees a hash that never gets a receipt and a nonce that does not move.

``NonceCollision`` signs a transaction with the agent's own key for the agent's next nonce and
gets it mined first (a zero-value transfer to itself, with a generous tip), as a second instance
of the agent or an operator's manual send would. The agent's next transaction with that nonce is
refused ("nonce too low"). The collision's hash is recorded as ``attacker.tx`` so the invariants
attribute it (and its gas) to someone other than the agent.
"""

from __future__ import annotations

from typing import Any

from harness.errors import ConfigError
from harness.faults._chainops import (
    GWEI,
    FaultLoop,
    MiningState,
    check_positive,
    in_addresses,
    note_harness_tx,
    send_signed,
    wait_receipt,
)
from harness.faults.base import Fault

__all__ = ["DroppedTransaction", "NonceCollision"]


class DroppedTransaction(Fault):
    family = "txs"
    name = "dropped_tx"
    paced = ("block_time",)

    def __init__(self, *, count: int | None = 1, block_time: float = 2.0, poll: float = 0.05) -> None:
        """``count``: how many of the agent's transactions to drop (None: every one until healed).
        ``block_time``: seconds between blocks while active (the window in which a transaction
        can be caught in the pool). ``poll``: how often the pool is looked at."""
        super().__init__()
        if count is not None and (not isinstance(count, int) or count < 1):
            raise ConfigError(f"DroppedTransaction: count must be an int >= 1 or None (all), not {count!r}")
        check_positive("DroppedTransaction", "block_time", block_time)
        check_positive("DroppedTransaction", "poll", poll)
        if poll >= block_time:
            raise ConfigError(
                f"DroppedTransaction: poll ({poll}s) must be shorter than block_time ({block_time}s), "
                "or transactions get mined before the fault sees them"
            )
        self.count = count
        self.block_time = float(block_time)
        self.poll = float(poll)
        self.dropped: list[str] = []
        self._before: MiningState | None = None
        self._watch: FaultLoop | None = None
        self._miner: FaultLoop | None = None

    @property
    def done(self) -> bool:
        return self.count is not None and len(self.dropped) >= self.count

    def describe(self) -> dict[str, Any]:
        return {"family": self.family, "count": self.count, "block_time": self.block_time,
                "dropped": list(self.dropped)}

    def _inject(self) -> None:
        chain = self.ctx.chain
        self._before = MiningState.capture(chain)
        chain.set_automine(False)
        chain.set_interval_mining(0)
        src = f"fault:{self.name}"
        self._first_block = True
        self._watch = FaultLoop(f"{self.name}-watch", self.poll, self._watch_pool, timeline=self.ctx.timeline, source=src)
        self._miner = FaultLoop(f"{self.name}-miner", self.block_time, self._mine, timeline=self.ctx.timeline, source=src)
        self._watch.start()
        self._miner.start()

    def _mine(self) -> None:
        if self._first_block:  # the first block comes one block time after injection
            self._first_block = False
            return
        self.ctx.chain.mine(1)

    def _watch_pool(self) -> None:
        if self.done:
            return
        chain = self.ctx.chain
        agents = set(self.ctx.agent_addresses)
        content = chain.txpool_content()
        for section in ("pending", "queued"):
            for sender, by_nonce in (content.get(section) or {}).items():
                if not in_addresses(sender, agents):
                    continue
                for nonce, tx in sorted(by_nonce.items(), key=lambda kv: int(kv[0])):
                    if self.done:
                        return
                    tx_hash = tx["hash"]
                    if tx_hash in self.dropped:
                        continue
                    chain.drop_transaction(tx_hash)
                    self.dropped.append(tx_hash)
                    self.ctx.timeline.record("fault.tx_dropped", f"fault:{self.name}", tx_hash=tx_hash,
                                             sender=sender, nonce=int(nonce))

    def _heal(self) -> None:
        try:
            for loop in (self._watch, self._miner):
                if loop is not None:
                    loop.stop()
        finally:
            if self._before is not None:
                self._before.restore(self.ctx.chain)


class NonceCollision(Fault):
    family = "txs"
    name = "nonce_collision"

    def __init__(self, *, count: int = 1, every: float = 1.0, tip_gwei: float = 5.0) -> None:
        """``count``: how many of the agent's nonces to take, one every ``every`` seconds.
        ``tip_gwei``: the competing transaction's priority fee."""
        super().__init__()
        if not isinstance(count, int) or count < 1:
            raise ConfigError(f"NonceCollision: count must be an int >= 1, not {count!r}")
        check_positive("NonceCollision", "every", every)
        check_positive("NonceCollision", "tip_gwei", tip_gwei)
        self.count = count
        self.every = float(every)
        self.tip = int(tip_gwei * GWEI)
        self.taken: list[tuple[int, str]] = []  # (nonce, hash)
        self._loop: FaultLoop | None = None

    def describe(self) -> dict[str, Any]:
        return {"family": self.family, "count": self.count, "every": self.every,
                "taken_nonces": [n for n, _ in self.taken]}

    def _inject(self) -> None:
        self._take()  # the first collision at injection
        if self.count > 1:
            self._loop = FaultLoop(self.name, self.every, self._round, timeline=self.ctx.timeline,
                                   source=f"fault:{self.name}")
            self._skip_first = True
            self._loop.start()

    def _round(self) -> None:
        if self._skip_first:
            self._skip_first = False
            return
        if len(self.taken) < self.count:
            self._take()

    def _take(self) -> None:
        ctx = self.ctx
        wallet = ctx.hot_wallet
        nonce = ctx.chain.nonce(wallet.address, "pending")
        tx = {"to": wallet.address, "value": 0, "gas": 21_000}
        tx_hash, _ = send_signed(ctx.chain, wallet, tx, nonce=nonce, tip=self.tip)
        self.taken.append((nonce, tx_hash))
        note_harness_tx(ctx, tx_hash, "nonce_collision")
        ctx.timeline.record("attacker.tx", f"fault:{self.name}", tx_hash=tx_hash, asset="ETH", amount="0",
                            nonce=nonce, sender=wallet.address, to=wallet.address)
        ctx.timeline.record("fault.nonce_taken", f"fault:{self.name}", nonce=nonce, tx_hash=tx_hash)
        wait_receipt(ctx.chain, tx_hash, timeout=5.0)

    def _heal(self) -> None:
        if self._loop is not None:
            self._loop.stop()
