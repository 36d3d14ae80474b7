"""Gas spike and congestion: the base fee jumps and stays high; blocks come at an interval.

While the fault is active the harness mines the chain itself, one block every ``block_time``
seconds, and sets the next block's base fee before each block. So every block of the spike has the
fee the fault chose (``base_fee_gwei``, reached at once or climbing by ``growth`` per block), and a
transaction priced for the old fee sits in the pool (or, on anvil, is evicted once a block's base
fee passes its cap: the agent sees it vanish). ``gas_limit`` squeezes the block gas limit on top,
so only a few transactions fit in a block (congestion).

The first spiked block comes ``block_time`` after injection, not at once: transactions the agent
sends in that window are priced for the old fee and get stuck, which is the situation the
playbook is about.

Heal: the next block's base fee goes back to what it was before the spike, the gas limit back to
its old value, and the node mines as before (automine, or its old interval).
"""

from __future__ import annotations

from typing import Any

from harness.errors import ConfigError
from harness.faults._chainops import GWEI, FaultLoop, MiningState, check_positive
from harness.faults.base import Fault

__all__ = ["GasSpike"]


class GasSpike(Fault):
    family = "gas"
    name = "gas_spike"
    paced = ("block_time",)

    def __init__(
        self,
        *,
        base_fee_gwei: float = 100.0,
        block_time: float = 1.0,
        growth: float | None = None,
        start_gwei: float | None = None,
        gas_limit: int | None = None,
    ) -> None:
        """``base_fee_gwei``: the peak base fee. ``growth``: None to jump to the peak at once, or a
        factor > 1 by which the fee climbs per block from ``start_gwei`` (default: twice the fee
        before the spike). ``gas_limit``: a block gas limit to squeeze to (>= 21000), or None."""
        super().__init__()
        check_positive("GasSpike", "base_fee_gwei", base_fee_gwei)
        check_positive("GasSpike", "block_time", block_time)
        if growth is not None and (not isinstance(growth, (int, float)) or growth <= 1.0):
            raise ConfigError(f"GasSpike: growth must be a factor > 1 (e.g. 1.5) or None for a step, not {growth!r}")
        if start_gwei is not None:
            check_positive("GasSpike", "start_gwei", start_gwei)
        if gas_limit is not None and (not isinstance(gas_limit, int) or gas_limit < 21_000):
            raise ConfigError(f"GasSpike: gas_limit must be an int >= 21000 (one transfer), not {gas_limit!r}")
        self.peak = int(base_fee_gwei * GWEI)
        self.block_time = float(block_time)
        self.growth = growth
        self.start = int(start_gwei * GWEI) if start_gwei is not None else None
        self.gas_limit = gas_limit
        self.blocks = 0
        self._fee = 0
        self._before: MiningState | None = None
        self._normal_fee = 0
        self._normal_gas_limit = 0
        self._loop: FaultLoop | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "base_fee_gwei": self.peak / GWEI,
            "block_time": self.block_time,
            "growth": self.growth,
            "gas_limit": self.gas_limit,
            "normal_base_fee_gwei": self._normal_fee / GWEI if self._normal_fee else None,
            "spiked_blocks": self.blocks,
        }

    @property
    def current_fee(self) -> int:
        return self._fee

    def _inject(self) -> None:
        chain = self.ctx.chain
        self._before = MiningState.capture(chain)
        latest = chain.rpc("eth_getBlockByNumber", "latest", False)
        self._normal_fee = int(latest["baseFeePerGas"], 16)
        self._normal_gas_limit = int(latest["gasLimit"], 16)
        if self.growth is None:
            self._fee = self.peak
        else:
            self._fee = min(self.start or 2 * max(self._normal_fee, 1), self.peak)
        chain.set_automine(False)
        chain.set_interval_mining(0)
        try:
            if self.gas_limit is not None:
                chain.set_block_gas_limit(self.gas_limit)
            self._loop = FaultLoop(
                self.name, self.block_time, self._next_block, timeline=self.ctx.timeline, source=f"fault:{self.name}"
            )
            # The loop's first round waits one block time, so the first spiked block is not instant.
            self._loop_started = False
            self._loop.start()
        except Exception:
            self._restore()
            raise

    def _next_block(self) -> None:
        if not self._loop_started:
            self._loop_started = True
            return
        chain = self.ctx.chain
        chain.set_next_base_fee(self._fee)
        chain.mine(1)
        self.blocks += 1
        if self.growth is not None:
            self._fee = min(int(self._fee * self.growth), self.peak)

    def _heal(self) -> None:
        if self._loop is not None:
            self._loop.stop()
        self._restore()

    def _restore(self) -> None:
        chain = self.ctx.chain
        try:
            chain.set_next_base_fee(self._normal_fee)
            if self.gas_limit is not None and self._normal_gas_limit:
                chain.set_block_gas_limit(self._normal_gas_limit)
        finally:
            if self._before is not None:
                self._before.restore(chain)
