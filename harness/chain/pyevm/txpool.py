"""The transaction pool of the embedded node: per-sender nonce lists, geth's replacement rule, block order.

eth-tester applies a transaction to the pending block the moment it is sent, so it has no pool at
all. What a drill needs of a node (several pending transactions per sender, future nonces waiting
for their gap to fill, fee bumps replacing a stuck transaction) is kept here, apart from the EVM.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "PRICE_BUMP_PERCENT",
    "BlockCandidates",
    "PoolTx",
    "TxPool",
    "replacement_allowed",
]

PRICE_BUMP_PERCENT = 10  # geth's default --txpool.pricebump


@dataclass(frozen=True, slots=True)
class PoolTx:
    """A signed transaction waiting in the pool, with the fields the pool sorts on."""

    tx: Any  # py-evm SignedTransactionAPI (decoded once, sender already recovered)
    hash: bytes
    sender: bytes
    nonce: int
    fee_cap: int  # max fee per gas (gas price for legacy transactions)
    tip_cap: int  # max priority fee per gas (gas price for legacy transactions)
    gas: int
    seq: int  # arrival order, the tie-break between equal tips

    def effective_tip(self, base_fee: int) -> int:
        return min(self.tip_cap, self.fee_cap - base_fee)


def replacement_allowed(
    old: PoolTx, new: PoolTx, bump_percent: int = PRICE_BUMP_PERCENT
) -> bool:
    """geth's rule: both fee cap and tip strictly higher and each at least ``bump_percent`` higher."""
    if new.fee_cap <= old.fee_cap or new.tip_cap <= old.tip_cap:
        return False
    factor = 100 + bump_percent
    return (
        new.fee_cap >= old.fee_cap * factor // 100
        and new.tip_cap >= old.tip_cap * factor // 100
    )


PoolState = tuple[dict[bytes, dict[int, PoolTx]], int]


class TxPool:
    """All transactions not yet mined, by sender and nonce; whether one is pending or queued depends
    on the sender's nonce in the current state, so it is decided when asked (``split``)."""

    def __init__(self) -> None:
        self._by_sender: dict[bytes, dict[int, PoolTx]] = {}
        self._by_hash: dict[bytes, PoolTx] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._by_hash)

    def __contains__(self, tx_hash: bytes) -> bool:
        return tx_hash in self._by_hash

    def get(self, tx_hash: bytes) -> PoolTx | None:
        return self._by_hash.get(tx_hash)

    def at(self, sender: bytes, nonce: int) -> PoolTx | None:
        return self._by_sender.get(sender, {}).get(nonce)

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def add(self, ptx: PoolTx) -> PoolTx | None:
        """Put ``ptx`` in; return the transaction it replaced (same sender and nonce), if any.

        The caller has already checked the replacement rule.
        """
        slots = self._by_sender.setdefault(ptx.sender, {})
        old = slots.get(ptx.nonce)
        if old is not None:
            del self._by_hash[old.hash]
        slots[ptx.nonce] = ptx
        self._by_hash[ptx.hash] = ptx
        return old

    def remove(self, tx_hash: bytes) -> PoolTx | None:
        ptx = self._by_hash.pop(tx_hash, None)
        if ptx is None:
            return None
        slots = self._by_sender[ptx.sender]
        del slots[ptx.nonce]
        if not slots:
            del self._by_sender[ptx.sender]
        return ptx

    def clear(self) -> int:
        count = len(self._by_hash)
        self._by_sender.clear()
        self._by_hash.clear()
        return count

    def prune_stale(self, nonce_of: Callable[[bytes], int]) -> list[PoolTx]:
        """Drop every transaction whose nonce is already used in the current state."""
        dropped: list[PoolTx] = []
        for sender in list(self._by_sender):
            current = nonce_of(sender)
            for nonce in [n for n in self._by_sender[sender] if n < current]:
                dropped.append(self._by_sender[sender][nonce])
        for ptx in dropped:
            self.remove(ptx.hash)
        return dropped

    def next_nonce(self, sender: bytes, state_nonce: int) -> int:
        """The nonce after the sender's contiguous run of pool transactions (geth's pending nonce)."""
        slots = self._by_sender.get(sender)
        nonce = state_nonce
        if slots:
            while nonce in slots:
                nonce += 1
        return nonce

    def split(
        self, nonce_of: Callable[[bytes], int]
    ) -> tuple[dict[bytes, list[PoolTx]], dict[bytes, list[PoolTx]]]:
        """(pending, queued) per sender: pending is the contiguous run from the state nonce."""
        pending: dict[bytes, list[PoolTx]] = {}
        queued: dict[bytes, list[PoolTx]] = {}
        for sender, slots in self._by_sender.items():
            expected = nonce_of(sender)
            for nonce in sorted(slots):
                ptx = slots[nonce]
                if nonce == expected:
                    pending.setdefault(sender, []).append(ptx)
                    expected += 1
                elif nonce > expected:
                    queued.setdefault(sender, []).append(ptx)
        return pending, queued

    def all(self) -> Iterator[PoolTx]:
        return iter(self._by_hash.values())

    def snapshot(self) -> PoolState:
        return {s: dict(slots) for s, slots in self._by_sender.items()}, self._seq

    def restore(self, state: PoolState) -> None:
        by_sender, seq = state
        self._by_sender = {s: dict(slots) for s, slots in by_sender.items()}
        self._by_hash = {
            p.hash: p for slots in self._by_sender.values() for p in slots.values()
        }
        self._seq = max(self._seq, seq)


class BlockCandidates:
    """The order a block is filled in, as geth's miner does it: each sender's transactions by nonce,
    across senders the highest effective tip first (then the earliest arrival). A sender's run stops
    at its first transaction whose fee cap is below the block's base fee: it and the ones after it
    wait in the pool."""

    def __init__(self, ready: dict[bytes, list[PoolTx]], base_fee: int) -> None:
        self._base_fee = base_fee
        self._runs: dict[bytes, list[PoolTx]] = {}
        self._pos: dict[bytes, int] = {}
        self._heap: list[tuple[int, int, bytes]] = []
        for sender, run in ready.items():
            usable: list[PoolTx] = []
            for ptx in run:
                if ptx.fee_cap < base_fee:
                    break
                usable.append(ptx)
            if usable:
                self._runs[sender] = usable
                self._pos[sender] = 0
                self._push(sender)

    def _push(self, sender: bytes) -> None:
        ptx = self._runs[sender][self._pos[sender]]
        heapq.heappush(
            self._heap, (-ptx.effective_tip(self._base_fee), ptx.seq, sender)
        )

    def peek(self) -> PoolTx | None:
        if not self._heap:
            return None
        _, _, sender = self._heap[0]
        return self._runs[sender][self._pos[sender]]

    def shift(self) -> None:
        """The head was used (or skipped alone): move on to that sender's next nonce."""
        _, _, sender = heapq.heappop(self._heap)
        self._pos[sender] += 1
        if self._pos[sender] < len(self._runs[sender]):
            self._push(sender)

    def pop(self) -> None:
        """Drop the head's sender for this block (its later nonces cannot come before it)."""
        heapq.heappop(self._heap)
