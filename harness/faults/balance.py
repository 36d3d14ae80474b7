"""Balance depletion: the hot wallet's ETH is taken down to almost nothing.

The node's ``anvil_setBalance`` cheat sets the balance to ``leave_wei``; heal gives back what was
taken (the wallet's balance at heal time plus the amount removed). Both moves are recorded as
``cheat.set_balance`` (address, before, after) so the funds invariant can account for wei that
left or entered the wallet without a transaction.
"""

from __future__ import annotations

from typing import Any

from harness.errors import ConfigError
from harness.faults.base import Fault

__all__ = ["BalanceDepletion"]


class BalanceDepletion(Fault):
    family = "balance"
    name = "balance_depletion"

    def __init__(self, *, leave_wei: int = 2 * 10**14) -> None:
        """``leave_wei``: what stays in the wallet (default 0.0002 ETH: a handful of proofs at 1 gwei)."""
        super().__init__()
        if not isinstance(leave_wei, int) or isinstance(leave_wei, bool) or leave_wei < 0:
            raise ConfigError(f"BalanceDepletion: leave_wei must be an int >= 0, not {leave_wei!r}")
        self.leave_wei = leave_wei
        self.address: str | None = None
        self.removed_wei = 0

    def describe(self) -> dict[str, Any]:
        return {"family": self.family, "leave_wei": str(self.leave_wei), "address": self.address,
                "removed_wei": str(self.removed_wei)}

    def _set_balance(self, wei: int) -> None:
        chain = self.ctx.chain
        assert self.address is not None
        before = chain.balance(self.address)
        chain.set_balance(self.address, wei)
        self.ctx.timeline.record("cheat.set_balance", f"fault:{self.name}", address=self.address,
                                 before=str(before), after=str(wei))

    def _inject(self) -> None:
        self.address = self.ctx.hot_wallet.address
        before = self.ctx.chain.balance(self.address)
        if before <= self.leave_wei:
            raise ConfigError(
                f"BalanceDepletion: the hot wallet holds {before} wei, not more than leave_wei={self.leave_wei}; "
                "fund it first or lower leave_wei"
            )
        self.removed_wei = before - self.leave_wei
        self._set_balance(self.leave_wei)

    def _heal(self) -> None:
        assert self.address is not None  # set by _inject, and heal acts only on an injected fault
        now = self.ctx.chain.balance(self.address)
        self._set_balance(now + self.removed_wei)
