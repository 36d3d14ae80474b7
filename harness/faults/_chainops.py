"""Chain chores shared by the non-network faults.

Capturing and restoring how the node mines, signing and sending a transaction straight to the
chain (faults never go through the agent's proxies), and a background loop that a fault runs while
it is active and that always stops on heal.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eth_account import Account

from harness import clock
from harness.accounts import DevAccount
from harness.errors import ConfigError, HarnessError, RpcError

if TYPE_CHECKING:
    from harness.chain.base import Chain
    from harness.drill.context import DrillContext
    from harness.observe.timeline import Timeline

__all__ = [
    "FaultLoop",
    "MiningState",
    "check_non_negative",
    "check_positive",
    "in_addresses",
    "note_harness_tx",
    "owner_account",
    "same_address",
    "send_signed",
    "wait_receipt",
]

GWEI = 10**9


def check_positive(fault: str, name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{fault}: {name} must be a number > 0, not {value!r}")


def check_non_negative(fault: str, name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{fault}: {name} must be a number >= 0, not {value!r}")


def same_address(a: str, b: str) -> bool:
    return a.lower() == b.lower()


def in_addresses(addr: str, addresses: Iterable[str]) -> bool:
    low = addr.lower()
    return any(low == a.lower() for a in addresses)


@dataclass(frozen=True, kw_only=True)
class MiningState:
    """How the node mined before a fault touched it: automine on/off and the interval (0: none)."""

    automine: bool
    interval: float

    @classmethod
    def capture(cls, chain: Chain) -> MiningState:
        """Ask the node; a node that cannot say is assumed to automine (the drill default)."""
        try:
            automine = bool(chain.rpc("anvil_getAutomine"))
        except RpcError:
            automine = True
        try:
            interval_raw = chain.rpc("anvil_getIntervalMining")
            interval = float(interval_raw) if interval_raw else 0.0
        except RpcError:
            interval = 0.0
        return cls(automine=automine, interval=interval)

    def restore(self, chain: Chain) -> None:
        # The interval first: on anvil, setting it also switches automine off.
        chain.set_interval_mining(self.interval if self.interval else 0)
        chain.set_automine(self.automine)


def note_harness_tx(ctx: DrillContext, tx_hash: str, actor: str) -> None:
    """Tell the drill that the harness (a fault) signed ``tx_hash`` with the agent's key, so the
    invariants do not blame the agent for it. A context without that hook (a unit test's) is fine."""
    note = getattr(ctx, "note_harness_tx", None)
    if note is not None:
        note(tx_hash, actor)


def owner_account(ctx: DrillContext) -> DevAccount:
    """The dev account that deployed the drill contracts (the counterparty, who may call owner-only functions)."""
    owner_acct = getattr(ctx, "owner", None)
    if isinstance(owner_acct, DevAccount):
        return owner_acct
    owner = ctx.deployment.owner
    for acct in ctx.chain.accounts:
        if same_address(acct.address, owner):
            return acct
    raise HarnessError(f"the contracts' owner {owner} is not one of the chain's dev accounts")


def send_signed(
    chain: Chain,
    sender: DevAccount,
    tx: dict[str, Any],
    *,
    nonce: int | None = None,
    tip: int = 2 * GWEI,
    fee_headroom: int = 3,
) -> tuple[str, dict[str, Any]]:
    """Sign ``tx`` with ``sender``'s key and send it raw to the chain; return (hash, the signed fields).

    Fees default to an EIP-1559 cap of ``fee_headroom`` times the latest base fee plus ``tip``.
    The node's error comes back as ``RpcError`` (the caller decides whether a race is fine).
    """
    full = dict(tx)
    full.setdefault("chainId", chain.chain_id)
    full["nonce"] = chain.nonce(sender.address, "pending") if nonce is None else nonce
    if "gasPrice" not in full and "maxFeePerGas" not in full:
        base = chain.base_fee()
        full["maxPriorityFeePerGas"] = tip
        full["maxFeePerGas"] = fee_headroom * base + tip
        full["type"] = 2
    full.setdefault("value", 0)
    signed = Account.sign_transaction(full, sender.key)
    tx_hash = chain.rpc("eth_sendRawTransaction", "0x" + signed.raw_transaction.hex())
    return str(tx_hash), full


def wait_receipt(chain: Chain, tx_hash: str, timeout: float) -> dict[str, Any] | None:
    """Poll for a receipt until ``timeout``; None if it has not been mined by then."""
    deadline = clock.now() + timeout
    while True:
        receipt = chain.rpc("eth_getTransactionReceipt", tx_hash)
        if receipt is not None:
            return receipt
        if clock.now() >= deadline:
            return None
        threading.Event().wait(0.05)


class FaultLoop:
    """A daemon thread that calls ``step()`` every ``every`` seconds until stopped.

    An exception in one step is recorded on the timeline (``fault.error``) and the loop carries
    on: a fault must keep acting (an attacker keeps draining) even when one round races the agent.
    ``stop()`` is idempotent and joins the thread.
    """

    def __init__(self, name: str, every: float, step: Callable[[], None], *, timeline: Timeline, source: str) -> None:
        self._name = name
        self._every = every
        self._step = step
        self._timeline = timeline
        self._source = source
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"fault-{name}", daemon=True)
        self.errors = 0

    def start(self) -> FaultLoop:
        self._thread.start()
        return self

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` unless stopped first; True when the loop should go on."""
        return not self._stop.wait(seconds)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = clock.now()
            try:
                self._step()
            except Exception as exc:  # noqa: BLE001 - one failed round must not end the fault
                self.errors += 1
                if not self._stop.is_set():
                    self._timeline.record("fault.error", self._source, error=f"{type(exc).__name__}: {exc}"[:300])
            left = self._every - (clock.now() - started)
            if self._stop.wait(max(left, 0.0)):
                break

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise HarnessError(f"fault loop {self._name} did not stop within {timeout}s")
