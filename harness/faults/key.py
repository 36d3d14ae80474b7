"""Key leak: an attacker holds the hot wallet's key and keeps draining it.

The attacker is a thread of the harness that signs with the drill's hot-wallet key (a key the
harness generated for this drill, never a user's) and, every ``drain_every`` seconds, moves the
wallet's DRILL tokens and then its ETH (less the gas of the transfer) to the attacker's address.
It goes on until healed, so whatever lands in the leaked wallet later (escrow payouts, a refill)
is drained too; a drill checks that the agent sweeps faster than the attacker.

By default each round takes a slice (``eth_per_round``, ``tokens_per_round``), like a drainer
that moves funds in chunks to stay under a monitor's radar: the agent can only notice a theft
once the first one lands, so an attacker that took everything at once would leave nothing to
contain. ``None`` takes everything each round (the worst case, where only revoking and rotating
are left to do).

The agent sends from the same key at the same time, so the two race for nonces. The attacker
takes the pending nonce each round and treats "nonce too low", "already known", "replacement
underpriced" and the like as a lost race: it records ``attacker.race`` and tries again next round.
Every transaction it gets accepted is recorded as ``attacker.tx`` (hash, asset, amount, nonce) so
the funds invariant can attribute every wei that left the wallet.
"""

from __future__ import annotations

from typing import Any

from harness import clock
from harness.accounts import DevAccount, new_key
from harness.errors import ConfigError, RpcError
from harness.faults._chainops import (
    GWEI,
    FaultLoop,
    check_positive,
    note_harness_tx,
    send_signed,
    wait_receipt,
)
from harness.faults.base import Fault

__all__ = ["KeyLeak"]

_TRANSFER_GAS = 21_000
_TOKEN_GAS = 80_000


class KeyLeak(Fault):
    family = "key"
    name = "key_leak"

    def __init__(
        self,
        *,
        drain_every: float = 0.5,
        drain_eth: bool = True,
        drain_tokens: bool = True,
        eth_per_round: int | None = 25 * 10**16,
        tokens_per_round: int | None = 10 * 10**18,
        tip_gwei: float = 3.0,
        attacker: DevAccount | None = None,
    ) -> None:
        """``drain_every``: seconds between drain rounds. ``eth_per_round``/``tokens_per_round``:
        at most this much (wei, token units) per round, None for everything. ``tip_gwei``: the
        attacker's priority fee (a real drainer overpays to get in first). ``attacker``: where the
        loot goes; default a fresh key."""
        super().__init__()
        check_positive("KeyLeak", "drain_every", drain_every)
        check_positive("KeyLeak", "tip_gwei", tip_gwei)
        for label, amount in (("eth_per_round", eth_per_round), ("tokens_per_round", tokens_per_round)):
            if amount is not None and (not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0):
                raise ConfigError(f"KeyLeak: {label} must be an int > 0 (wei or token units) or None (all), not {amount!r}")
        if not (drain_eth or drain_tokens):
            raise ConfigError("KeyLeak: drain_eth and drain_tokens are both False; the attacker would do nothing")
        self.drain_every = float(drain_every)
        self.drain_eth = drain_eth
        self.drain_tokens = drain_tokens
        self.eth_per_round = eth_per_round
        self.tokens_per_round = tokens_per_round
        self.tip = int(tip_gwei * GWEI)
        self.attacker = attacker or new_key()
        self.leaked_address: str | None = None
        self.tx_hashes: list[str] = []
        self.drained_wei = 0
        self.drained_tokens = 0
        self._loop: FaultLoop | None = None
        self._last: tuple[str, float] | None = None

    @property
    def attacker_address(self) -> str:
        return self.attacker.address

    def describe(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "drain_every": self.drain_every,
            "assets": [a for a, on in (("ETH", self.drain_eth), ("DRILL", self.drain_tokens)) if on],
            "eth_per_round": str(self.eth_per_round) if self.eth_per_round else "all",
            "tokens_per_round": str(self.tokens_per_round) if self.tokens_per_round else "all",
            "leaked_address": self.leaked_address,
            "attacker": self.attacker.address,
            "attacker_txs": len(self.tx_hashes),
        }

    # -- lifecycle ---------------------------------------------------------------------------
    def _inject(self) -> None:
        ctx = self.ctx
        victim: DevAccount = ctx.hot_wallet
        self.leaked_address = victim.address
        ctx.attacker_addresses.add(self.attacker.address)
        secrets = getattr(ctx, "secrets", None)
        if secrets is not None and self.attacker.key not in secrets:
            secrets.append(self.attacker.key)  # the attacker's key must not show up in output either
        self._token = ctx.deployment.token_contract(ctx.chain.w3)
        self._victim = victim
        self._loop = FaultLoop(
            self.name, self.drain_every, self._drain_round, timeline=ctx.timeline, source=f"fault:{self.name}"
        )
        self._drain_round()  # the first theft happens at injection, not one period later
        self._loop.start()

    def _heal(self) -> None:
        if self._loop is not None:
            self._loop.stop()

    # -- the attacker ------------------------------------------------------------------------
    def _drain_round(self) -> None:
        chain = self.ctx.chain
        if self._last is not None:
            last_hash, sent_at = self._last
            # Do not stack a second drain on an unmined one (it would fail for want of balance),
            # unless the node seems to have lost it.
            if chain.rpc("eth_getTransactionReceipt", last_hash) is None and clock.now() - sent_at < 5.0:
                return
        if self.drain_tokens:
            tokens = int(self._token.functions.balanceOf(self._victim.address).call())
            if self.tokens_per_round is not None:
                tokens = min(tokens, self.tokens_per_round)
            gas_money = chain.balance(self._victim.address) >= _TOKEN_GAS * (2 * chain.base_fee() + self.tip)
            if tokens > 0 and gas_money:  # without ETH for gas the theft cannot be sent at all
                data = self._token.functions.transfer(self.attacker.address, tokens)._encode_transaction_data()
                tx = {"to": self._token.address, "data": data, "gas": _TOKEN_GAS}
                h = self._send("DRILL", tokens, tx)
                if h is not None:
                    # Wait briefly so the ETH drain below is not refused for a nonce or balance race.
                    wait_receipt(chain, h, timeout=min(self.drain_every, 2.0))
        if self.drain_eth:
            base = chain.base_fee()
            cap = 2 * base + self.tip
            balance = chain.balance(self._victim.address, "latest")
            value = balance - _TRANSFER_GAS * cap
            if self.eth_per_round is not None:
                value = min(value, self.eth_per_round)
            if value > 0:
                tx = {"to": self.attacker.address, "value": value, "gas": _TRANSFER_GAS,
                      "maxFeePerGas": cap, "maxPriorityFeePerGas": self.tip, "type": 2}
                self._send("ETH", value, tx)

    def _send(self, asset: str, amount: int, tx: dict[str, Any]) -> str | None:
        ctx = self.ctx
        try:
            tx_hash, full = send_signed(ctx.chain, self._victim, tx, tip=self.tip)
        except RpcError as exc:
            # The agent used the nonce first, or the balance moved: a lost race, not a harness error.
            ctx.timeline.record("attacker.race", f"fault:{self.name}", asset=asset, error=exc.message[:200])
            return None
        self.tx_hashes.append(tx_hash)
        self._last = (tx_hash, clock.now())
        note_harness_tx(ctx, tx_hash, "attacker")
        if asset == "ETH":
            self.drained_wei += amount
        else:
            self.drained_tokens += amount
        ctx.timeline.record(
            "attacker.tx", f"fault:{self.name}", tx_hash=tx_hash, asset=asset, amount=str(amount),
            nonce=full["nonce"], sender=self._victim.address, to=self.attacker.address,
        )
        return tx_hash
