"""Revert storm: the escrow refuses proofs, so the agent's transactions revert.

The owner (the counterparty) switches ``setRejecting(true)`` on the escrow. With ``share=1`` it
stays on until healed: every proof fails, in simulation and on chain. With a ``share`` below 1 the
fault flips it on for that fraction of every ``period`` seconds and off for the rest, so some
proofs succeed and some revert, and a proof that simulated fine can still revert when mined.
Heal: rejecting off.

``RevertBlip`` is the minor version: rejecting on for ``hold`` seconds once, then off by itself, so
one proof (or two) fails and the rest land: a single failed transaction, not a failure rate.
"""

from __future__ import annotations

from typing import Any

from web3.types import Nonce, TxParams

from harness.contracts import harness_fees, send_tx
from harness.errors import ConfigError
from harness.faults._chainops import FaultLoop, check_positive, owner_account
from harness.faults.base import Fault

__all__ = ["RevertBlip", "RevertStorm"]


class RevertStorm(Fault):
    family = "contract"
    name = "revert_storm"

    def __init__(self, *, share: float = 1.0, period: float = 2.0) -> None:
        """``share``: the fraction of time (0 < share <= 1) during which proofs are rejected.
        ``period``: seconds of one on/off cycle when share < 1."""
        super().__init__()
        if not isinstance(share, (int, float)) or not 0 < share <= 1:
            raise ConfigError(f"RevertStorm: share must be in (0, 1] (1: every proof fails), not {share!r}")
        check_positive("RevertStorm", "period", period)
        self.share = float(share)
        self.period = float(period)
        self.toggles = 0
        self._loop: FaultLoop | None = None
        self._on = False

    def describe(self) -> dict[str, Any]:
        return {"family": self.family, "share": self.share, "period": self.period if self.share < 1 else None}

    def _set(self, on: bool) -> None:
        ctx = self.ctx
        escrow = ctx.deployment.escrow_contract(ctx.chain.w3)
        owner = owner_account(ctx)
        params: TxParams = {"from": owner.address, "nonce": Nonce(ctx.chain.nonce(owner.address, "pending")), "gas": 60_000}
        # priced over any gas spike of the same schedule: the switch is the harness's, not the agent's, to strand
        params.update(harness_fees(ctx.chain.w3.eth.get_block("latest")["baseFeePerGas"]))  # type: ignore[typeddict-item]
        tx = escrow.functions.setRejecting(on).build_transaction(params)
        send_tx(ctx.chain.w3, owner, tx, timeout=15.0)
        self._on = on
        self.toggles += 1
        ctx.timeline.record("fault.rejecting", f"fault:{self.name}", on=on)

    def _inject(self) -> None:
        self._set(True)
        if self.share < 1:
            self._phase = 0
            self._loop = FaultLoop(self.name, self.period / 2, self._cycle, timeline=self.ctx.timeline,
                                   source=f"fault:{self.name}")
            self._loop.start()

    def _cycle(self) -> None:
        # Sleep in the right proportions inside one round: on for share*period, off for the rest.
        assert self._loop is not None
        if not self._loop.sleep(self.share * self.period):
            return
        self._set(False)
        if not self._loop.sleep((1 - self.share) * self.period):
            return
        self._set(True)

    def _heal(self) -> None:
        if self._loop is not None:
            self._loop.stop()
        self._set(False)


class RevertBlip(RevertStorm):
    """The escrow rejects proofs for ``hold`` seconds, once, then accepts them again by itself."""

    name = "revert_blip"

    def __init__(self, *, hold: float = 1.0) -> None:
        super().__init__(share=1.0)
        check_positive("RevertBlip", "hold", hold)
        self.hold = float(hold)

    def describe(self) -> dict[str, Any]:
        return {"family": self.family, "hold": self.hold}

    def _inject(self) -> None:
        self._set(True)
        self._loop = FaultLoop(self.name, self.hold, self._end, timeline=self.ctx.timeline, source=f"fault:{self.name}")
        self._loop.start()

    def _end(self) -> None:
        assert self._loop is not None
        if self._loop.sleep(self.hold) and self._on:
            self._set(False)
            self._loop.stop()  # one blip only

    def _heal(self) -> None:
        if self._loop is not None:
            self._loop.stop()
        if self._on:
            self._set(False)
