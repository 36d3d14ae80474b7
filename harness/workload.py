"""The counterparty: the steady flow of work the agent must keep up with.

A thread opens escrows assigned to the agent's current address at a steady rate, each with a
deadline a fixed number of seconds past the chain's latest timestamp, and expires the ones whose
deadline passed unproven so the chain itself records the miss. When the agent announces a new
address (after a key rotation) it reassigns the open escrows to it and tops it up with a little ETH
and DRILL tokens for its fees. Everything it does is recorded as ``workload.*`` events.

It signs with a development account of its own (not the contracts' owner, which faults may use to
flip the escrow's switches), so its nonces are never raced; only ``reassign`` needs the owner.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from web3 import Web3

from harness import clock
from harness.accounts import DevAccount
from harness.chain.base import Chain
from harness.contracts import Deployment, harness_fees
from harness.errors import RpcError, UsageError
from harness.observe.timeline import Timeline

__all__ = ["WorkloadSettings", "Workload"]


@dataclass(frozen=True, kw_only=True)
class WorkloadSettings:
    interval: float = 1.0  # seconds between two escrows
    deadline: int = 15  # seconds past the chain's latest timestamp
    amount: int = 10**16  # wei locked in each escrow (0.01 ETH)
    topup_eth: int = 10**18  # sent to a newly announced address
    topup_tokens: int = 100 * 10**18

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise UsageError(f"WorkloadSettings.interval must be > 0 seconds, got {self.interval}")
        if self.deadline < 2:
            raise UsageError(f"WorkloadSettings.deadline must be >= 2 seconds, got {self.deadline}")


class Workload:
    def __init__(
        self,
        chain: Chain,
        deployment: Deployment,
        timeline: Timeline,
        *,
        counterparty: DevAccount,
        owner: DevAccount,
        agent_address: str,
        settings: WorkloadSettings | None = None,
    ) -> None:
        self.chain = chain
        self.w3: Web3 = chain.w3
        self.deployment = deployment
        self.timeline = timeline
        self.counterparty = counterparty
        self.owner = owner
        self.settings = settings or WorkloadSettings()
        self.agent_address = agent_address
        self.opened = 0
        self.expired = 0
        self.errors = 0
        self._escrow = deployment.escrow_contract(self.w3)
        self._token = deployment.token_contract(self.w3)
        self._nonce: int | None = None
        self._owner_nonce: int | None = None
        self._paused = threading.Event()
        self._stop = threading.Event()
        self._requests: queue.Queue[str] = queue.Queue()
        self._batches: queue.Queue[tuple[int, ...]] = queue.Queue()
        self._open_ids: dict[int, int] = {}  # id -> deadline
        self._retired: set[str] = set()  # addresses the agent moved away from
        self._known_count = 0
        self._thread: threading.Thread | None = None

    # -- control ---------------------------------------------------------------------------------
    def start(self) -> None:
        self._known_count = self._escrow.functions.escrowCount().call()
        self._thread = threading.Thread(target=self._run, name="workload", daemon=True)
        self._thread.start()
        self.timeline.record("workload.start", "workload", interval=self.settings.interval, deadline=self.settings.deadline)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def pause(self) -> None:
        """Stop opening escrows (expiring overdue ones goes on)."""
        if not self._paused.is_set():
            self._paused.set()
            self.timeline.record("workload.pause", "workload")

    def resume(self) -> None:
        if self._paused.is_set():
            self._paused.clear()
            self.timeline.record("workload.resume", "workload")

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def open_batch(self, deadlines: tuple[int, ...]) -> None:
        """Open one escrow per entry of ``deadlines`` (seconds past the chain's time) at once, in that
        order (done in the thread, between two regular escrows): work of mixed urgency arriving together."""
        if not deadlines or any(not isinstance(d, int) or isinstance(d, bool) or d < 2 for d in deadlines):
            raise UsageError(f"open_batch needs whole numbers of seconds >= 2, got {deadlines!r}")
        self._batches.put(tuple(deadlines))

    def retarget(self, new_address: str) -> None:
        """The agent announced ``new_address``: move open escrows there and fund it (done in the thread)."""
        self._requests.put(new_address)

    # -- the loop ----------------------------------------------------------------------------------
    def _run(self) -> None:
        next_open = clock.now()
        while not self._stop.is_set():
            try:
                while not self._requests.empty():
                    self._do_retarget(self._requests.get_nowait())
                while not self._batches.empty():
                    for seconds in self._batches.get_nowait():
                        self._open_one(seconds, batch=True)
                if not self._paused.is_set() and clock.now() >= next_open:
                    next_open = clock.now() + self.settings.interval
                    self._open_one()
                self._expire_overdue()
            except Exception as exc:  # a stalled or faulted chain: note it and keep the rhythm
                self.errors += 1
                self._nonce = self._owner_nonce = None
                if self.errors <= 3 or self.errors % 20 == 0:
                    self.timeline.record("workload.error", "workload", error=repr(exc)[:300], count=self.errors)
            self._stop.wait(min(0.2, max(0.01, next_open - clock.now())))

    def _fees(self) -> dict[str, int]:
        """The counterparty's work must never be the transaction that gets stuck (``harness_fees``)."""
        return harness_fees(int(self.chain.rpc("eth_getBlockByNumber", "latest", False)["baseFeePerGas"], 16))

    def _send(self, sender: DevAccount, tx: dict[str, Any], *, owner: bool = False) -> str:
        """Sign and send without waiting for the receipt (the chain watcher sees the result)."""
        attr = "_owner_nonce" if owner else "_nonce"
        pending = self.chain.nonce(sender.address, "pending")
        if getattr(self, attr) is None or pending < getattr(self, attr):
            setattr(self, attr, pending)  # first use, or a transaction of ours was dropped from the pool
        tx = {**tx, "from": sender.address, "chainId": self.chain.chain_id, "nonce": getattr(self, attr), **self._fees()}
        tx.setdefault("gas", 200_000)
        signed = Account.sign_transaction(tx, sender.key)
        try:
            tx_hash = self.chain.rpc("eth_sendRawTransaction", "0x" + signed.raw_transaction.hex().removeprefix("0x"))
        except RpcError:
            setattr(self, attr, None)
            raise
        setattr(self, attr, getattr(self, attr) + 1)
        return tx_hash

    def _chain_time(self) -> int:
        return int(self.chain.rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16)

    def _open_one(self, seconds: int | None = None, *, batch: bool = False) -> None:
        deadline = self._chain_time() + (self.settings.deadline if seconds is None else seconds)
        agent = self.agent_address
        data = self._escrow.functions.open(agent, deadline)._encode_transaction_data()
        tx_hash = self._send(self.counterparty, {"to": self.deployment.escrow, "data": data, "value": self.settings.amount, "gas": 200_000})
        self.opened += 1
        extra = {"batch": True} if batch else {}
        self.timeline.record("workload.open", "workload", agent=agent, deadline=deadline, amount=self.settings.amount, tx=tx_hash, **extra)

    def _expire_overdue(self) -> None:
        count = self._escrow.functions.escrowCount().call()
        for esc_id in range(self._known_count + 1, count + 1):
            agent, deadline, _amount, state = self._escrow.functions.escrows(esc_id).call()
            self._open_ids[esc_id] = deadline
            if state == 1 and agent in self._retired:
                # opened for an address the agent had already retired (sent before the announcement)
                self._reassign([esc_id], self.agent_address)
        self._known_count = max(self._known_count, count)
        if not self._open_ids:
            return
        now_ts = self._chain_time()
        for esc_id, deadline in sorted(self._open_ids.items()):
            if deadline >= now_ts:
                continue
            _agent, _deadline, _amount, state = self._escrow.functions.escrows(esc_id).call()
            if state == 1:
                data = self._escrow.functions.expire(esc_id)._encode_transaction_data()
                tx_hash = self._send(self.counterparty, {"to": self.deployment.escrow, "data": data, "value": 0, "gas": 120_000})
                self.expired += 1
                self.timeline.record("workload.expire", "workload", id=esc_id, deadline=deadline, tx=tx_hash)
            self._open_ids.pop(esc_id, None)

    def _reassign(self, ids: list[int], to: str) -> None:
        for esc_id in ids:
            data = self._escrow.functions.reassign(esc_id, to)._encode_transaction_data()
            self._send(self.owner, {"to": self.deployment.escrow, "data": data, "value": 0, "gas": 100_000}, owner=True)
        if ids:
            self.timeline.record("workload.reassign", "workload", ids=ids, to=to)

    def _do_retarget(self, new_address: str) -> None:
        new_address = Web3.to_checksum_address(new_address)
        if new_address == self.agent_address:
            return
        old = self.agent_address
        self.agent_address = new_address
        self.timeline.record("workload.retarget", "workload", old=old, new=new_address)
        self._retired.add(old)
        moved = []
        for esc_id in sorted(self._open_ids):
            agent, _deadline, _amount, state = self._escrow.functions.escrows(esc_id).call()
            if state == 1 and agent != new_address:
                moved.append(esc_id)
        self._reassign(moved, new_address)
        self._send(self.counterparty, {"to": new_address, "value": self.settings.topup_eth, "gas": 21_000})
        data = self._token.functions.transfer(new_address, self.settings.topup_tokens)._encode_transaction_data()
        self._send(self.counterparty, {"to": self.deployment.token, "data": data, "value": 0, "gas": 100_000})
        self.timeline.record("workload.topup", "workload", address=new_address, eth=self.settings.topup_eth, tokens=self.settings.topup_tokens)
