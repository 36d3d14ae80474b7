"""Follows the chain and records the ground truth a drill is judged on.

A poller thread reads every new block and records the agent's transactions (from any of its
addresses), the escrow's events, ETH and token balances of the addresses that matter, the escrow
allowance, and the transactions of the agent it sees waiting in the pool, so that a replacement can
be compared with what it replaced (the fee bump ratio). Nothing here trusts the agent's word.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eth_utils import keccak, to_checksum_address

from harness import clock
from harness.chain.base import Chain
from harness.contracts import Deployment
from harness.errors import RpcError
from harness.observe.timeline import Timeline

__all__ = ["TxRecord", "Send", "EscrowRecord", "Replacement", "TokenTransfer", "ChainWatcher", "SELECTORS", "topic"]


def topic(signature: str) -> str:
    return "0x" + keccak(text=signature).hex()


def _selector(signature: str) -> str:
    return "0x" + keccak(text=signature)[:4].hex()


SELECTORS = {
    _selector("submitProof(uint256,bytes32)"): "submitProof",
    _selector("approve(address,uint256)"): "approve",
    _selector("transfer(address,uint256)"): "transfer",
    _selector("transferFrom(address,address,uint256)"): "transferFrom",
    _selector("expire(uint256)"): "expire",
}
T_OPENED = topic("EscrowOpened(uint256,address,uint64,uint256)")
T_PROVEN = topic("ProofSubmitted(uint256,address)")
T_EXPIRED = topic("EscrowExpired(uint256)")
T_REASSIGNED = topic("EscrowReassigned(uint256,address,address)")
T_TRANSFER = topic("Transfer(address,address,uint256)")
_BALANCE_OF = _selector("balanceOf(address)")
_ALLOWANCE = _selector("allowance(address,address)")


def _int(v: Any) -> int:
    if v is None:
        return 0
    return int(v, 16) if isinstance(v, str) else int(v)


def _addr_topic(t: str) -> str:
    return to_checksum_address("0x" + t[-40:])


@dataclass(frozen=True)
class TxRecord:
    """A mined transaction from one of the agent's addresses."""

    hash: str
    sender: str
    nonce: int
    to: str | None
    value: int
    gas_used: int
    effective_gas_price: int
    status: int  # 1 success, 0 reverted
    selector: str | None  # "0x" + 8 hex, None for a plain transfer
    method: str | None  # decoded name when known
    arg0: int | None  # first uint256 argument (the escrow id of submitProof)
    arg_address: str | None  # first address argument (approve/transfer target)
    arg_amount: int | None  # second argument of approve/transfer
    block: int
    t: float  # harness time the watcher saw it mined
    sent_t: float | None = None  # harness time it was first seen pending (None: mined before any pool read)

    @property
    def first_seen(self) -> float:
        """When the agent's transaction was first seen at all: pending if it was, else mined."""
        return self.t if self.sent_t is None else min(self.sent_t, self.t)

    @property
    def gas_cost(self) -> int:
        return self.gas_used * self.effective_gas_price


@dataclass
class EscrowRecord:
    id: int
    agent: str
    deadline: int
    amount: int
    state: str = "open"  # open, proven, expired
    opened_t: float = 0.0
    proven_t: float | None = None
    proven_by: str | None = None
    proven_block: int | None = None
    expired_t: float | None = None
    reassigned_from: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Send:
    """An agent transaction as the harness first saw it (in the pool or, failing that, mined)."""

    hash: str  # lower case
    sender: str  # checksummed
    to: str  # lower case, "" for a contract creation
    t: float
    mined: bool


@dataclass(frozen=True)
class Replacement:
    sender: str
    nonce: int
    old_hash: str
    new_hash: str
    cap_ratio: float
    tip_ratio: float
    t: float


@dataclass(frozen=True)
class TokenTransfer:
    sender: str
    to: str
    amount: int
    block: int
    tx_hash: str
    t: float


def _fees(tx: dict[str, Any]) -> tuple[int, int]:
    """(fee cap, tip) of a transaction; a legacy one pays gasPrice for both."""
    if tx.get("maxFeePerGas") is not None:
        return _int(tx["maxFeePerGas"]), _int(tx.get("maxPriorityFeePerGas"))
    gp = _int(tx.get("gasPrice"))
    return gp, gp


class ChainWatcher:
    """See the module docstring. ``addresses()`` returns the agent's addresses (checksummed)."""

    def __init__(
        self,
        chain: Chain,
        deployment: Deployment,
        timeline: Timeline,
        *,
        agent_addresses: Callable[[], set[str]],
        watched_addresses: Callable[[], set[str]] = set,
        interval: float = 0.2,
        rpc_timeout: float = 5.0,
        max_blocks_per_poll: int = 50,
    ) -> None:
        self.chain = chain
        self.deployment = deployment
        self.timeline = timeline
        self._agent_addresses = agent_addresses
        self._watched = watched_addresses
        self.interval = interval
        self.rpc_timeout = rpc_timeout
        self.max_blocks_per_poll = max_blocks_per_poll
        self.lock = threading.RLock()
        self.txs: list[TxRecord] = []
        self.incoming: list[dict[str, Any]] = []  # plain ETH sent to an agent address
        self.escrows: dict[int, EscrowRecord] = {}
        self.token_transfers: list[TokenTransfer] = []
        self.replacements: list[Replacement] = []
        #: hashes of the agent's transactions that a reorg took out of the chain (they may be mined again)
        self.reorged: set[str] = set()
        self.balances: dict[str, dict[str, int]] = {}
        self.initial_balances: dict[str, dict[str, int]] = {}
        self.pool: dict[str, dict[int, dict[str, Any]]] = {}  # sender -> nonce -> tx (pending)
        self.pool_queued: dict[str, dict[int, dict[str, Any]]] = {}
        self.head = -1
        self.head_ts = 0
        self.head_t = clock.now()  # harness time the head last advanced
        self.errors = 0
        self.last_error = ""
        self._hashes: dict[int, str] = {}
        self._seen_pending: dict[tuple[str, int], dict[str, tuple[int, int]]] = {}
        self._first_pending: dict[str, float] = {}  # tx hash -> harness time first seen in the pool
        #: tx hash -> (sender, to) of every agent transaction ever seen waiting in the pool
        self._pending_info: dict[str, tuple[str, str]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.polls = 0
        self._poll_lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        blk = self.chain.rpc("eth_getBlockByNumber", "latest", False)
        self.head = _int(blk["number"])
        self.head_ts = _int(blk["timestamp"])
        self._hashes[self.head] = blk["hash"]
        self._read_balances()
        self.initial_balances = {a: dict(b) for a, b in self.balances.items()}
        self._thread = threading.Thread(target=self._run, name="chain-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # the chain may be stalled or restarting: count and go on
                self.errors += 1
                self.last_error = repr(exc)
                if self.errors in (1, 10, 100):
                    self.timeline.record("harness.warning", "chainwatch", error=repr(exc), count=self.errors)
            self._stop.wait(self.interval)

    # -- polling -------------------------------------------------------------------------------
    def _rpc(self, method: str, *params: Any) -> Any:
        """A node call with a short timeout: a slow answer must not freeze the watcher for long."""
        return self.chain.rpc(method, *params, timeout=self.rpc_timeout)

    def _call(self, data: str, block: int) -> int:
        to = self.deployment.token
        return int(self._rpc("eth_call", {"to": to, "data": data}, hex(block)), 16)

    def poll_once(self) -> None:
        with self._poll_lock:
            self._poll()

    def _poll(self) -> None:
        self.polls += 1
        agents = {a.lower() for a in self._agent_addresses()}
        head = int(self._rpc("eth_blockNumber"), 16)
        if head < self.head or (self.head in self._hashes and self._block_hash(self.head) != self._hashes[self.head]):
            self._handle_reorg(head)
        if head > self.head:
            # In batches, so a long run of blocks (a node catching up) still yields events as it goes.
            start = self.head + 1
            head = min(head, start + self.max_blocks_per_poll - 1)
            for n in range(start, head + 1):
                self._read_block(n, agents)
            self._read_logs(start, head)
            self.head = head
            self.head_t = clock.now()
            self._read_balances()
        elif self.polls % 10 == 0:
            self._read_balances()  # an address announced between blocks, or a cheat that set a balance
        self._read_pool(agents)

    def _block_hash(self, n: int) -> str | None:
        blk = self._rpc("eth_getBlockByNumber", hex(n), False)
        return blk["hash"] if blk else None

    def _handle_reorg(self, head: int) -> None:
        ancestor = min(head, self.head)
        while ancestor > 0 and ancestor in self._hashes and self._block_hash(ancestor) != self._hashes[ancestor]:
            ancestor -= 1
        with self.lock:
            dropped = [tx.hash for tx in self.txs if tx.block > ancestor]
            self.reorged.update(h.lower() for h in dropped)
            self.txs = [tx for tx in self.txs if tx.block <= ancestor]
            for esc in self.escrows.values():
                if esc.state == "proven" and (esc.proven_block or 0) > ancestor:
                    esc.state, esc.proven_t, esc.proven_by, esc.proven_block = "open", None, None, None
        self.timeline.record("chain.reorg", "chainwatch", old_head=self.head, new_head=head, ancestor=ancestor, dropped=dropped)
        for n in list(self._hashes):
            if n > ancestor:
                del self._hashes[n]
        self.head = ancestor

    def _read_block(self, n: int, agents: set[str]) -> None:
        blk = self._rpc("eth_getBlockByNumber", hex(n), True)
        if blk is None:
            return
        self._hashes[n] = blk["hash"]
        self.head_ts = _int(blk["timestamp"])
        for tx in blk.get("transactions", []):
            sender = (tx.get("from") or "").lower()
            to = (tx.get("to") or "").lower()
            if sender in agents:
                self._record_tx(tx, n)
            elif to in agents and _int(tx.get("value")) > 0:
                with self.lock:
                    self.incoming.append({"hash": tx["hash"], "from": tx["from"], "to": tx["to"], "value": _int(tx["value"]), "block": n})

    def _record_tx(self, tx: dict[str, Any], block: int) -> None:
        rcpt = self._rpc("eth_getTransactionReceipt", tx["hash"])
        data = tx.get("input") or tx.get("data") or "0x"
        selector = data[:10] if len(data) >= 10 else None
        method = SELECTORS.get(selector or "")
        arg0 = arg_addr = arg_amount = None
        if len(data) >= 74:
            word = data[10:74]
            arg0 = int(word, 16)
            if method in ("approve", "transfer"):
                arg_addr = to_checksum_address("0x" + word[-40:])
                if len(data) >= 138:
                    arg_amount = int(data[74:138], 16)
        rec = TxRecord(
            hash=tx["hash"], sender=to_checksum_address(tx["from"]), nonce=_int(tx["nonce"]),
            to=to_checksum_address(tx["to"]) if tx.get("to") else None, value=_int(tx.get("value")),
            gas_used=_int(rcpt["gasUsed"]), effective_gas_price=_int(rcpt.get("effectiveGasPrice") or tx.get("gasPrice")),
            status=_int(rcpt["status"]), selector=selector, method=method, arg0=arg0,
            arg_address=arg_addr, arg_amount=arg_amount, block=block, t=clock.now(),
            sent_t=self._first_pending.get(tx["hash"].lower()),
        )
        key = (rec.sender.lower(), rec.nonce)
        seen = self._seen_pending.get(key, {})
        with self.lock:
            self.txs.append(rec)
        self.timeline.record(
            "chain.tx", "chainwatch", hash=rec.hash, sender=rec.sender, nonce=rec.nonce, to=rec.to, value=rec.value,
            gas_used=rec.gas_used, effective_gas_price=rec.effective_gas_price, status=rec.status,
            selector=rec.selector, method=rec.method, block=block,
            **({"escrow_id": rec.arg0} if rec.method == "submitProof" else {}),  # so a stored run can be judged again
        )
        if seen and rec.hash not in seen:
            self._note_replacement(key, seen, rec.hash, _fees(tx))

    def _read_logs(self, start: int, end: int) -> None:
        logs = self._rpc(
            "eth_getLogs", {"fromBlock": hex(start), "toBlock": hex(end), "address": [self.deployment.escrow, self.deployment.token]}
        )
        watched = {a.lower() for a in self._agent_addresses() | self._watched()}
        for log in logs:
            topics = log.get("topics") or []
            if not topics:
                continue
            t0, addr = topics[0], log["address"].lower()
            block = _int(log["blockNumber"])
            now = clock.now()
            if addr == self.deployment.escrow.lower():
                esc_id = _int(topics[1]) if len(topics) > 1 else 0
                if t0 == T_OPENED:
                    agent = _addr_topic(topics[2])
                    data = log["data"][2:]
                    deadline, amount = int(data[0:64], 16), int(data[64:128], 16)
                    with self.lock:
                        self.escrows[esc_id] = EscrowRecord(id=esc_id, agent=agent, deadline=deadline, amount=amount, opened_t=now)
                    self.timeline.record("escrow.opened", "chainwatch", id=esc_id, agent=agent, deadline=deadline, amount=amount, block=block)
                elif t0 == T_PROVEN:
                    agent = _addr_topic(topics[2])
                    with self.lock:
                        esc = self.escrows.get(esc_id)
                        if esc is not None:
                            esc.state, esc.proven_t, esc.proven_by, esc.proven_block = "proven", now, agent, block
                    self.timeline.record("escrow.proven", "chainwatch", id=esc_id, agent=agent, block=block, tx=log["transactionHash"])
                elif t0 == T_EXPIRED:
                    with self.lock:
                        esc = self.escrows.get(esc_id)
                        if esc is not None:
                            esc.state, esc.expired_t = "expired", now
                    self.timeline.record("escrow.expired", "chainwatch", id=esc_id, agent=esc.agent if esc else None, block=block)
                elif t0 == T_REASSIGNED:
                    old, new = _addr_topic(topics[2]), _addr_topic(topics[3])
                    with self.lock:
                        esc = self.escrows.get(esc_id)
                        if esc is not None:
                            esc.reassigned_from.append(esc.agent)
                            esc.agent = new
                    self.timeline.record("escrow.reassigned", "chainwatch", id=esc_id, old=old, new=new, block=block)
            elif t0 == T_TRANSFER and len(topics) >= 3:
                sender, to = _addr_topic(topics[1]), _addr_topic(topics[2])
                if sender.lower() in watched or to.lower() in watched:
                    tr = TokenTransfer(sender=sender, to=to, amount=int(log["data"][2:66] or "0", 16), block=block, tx_hash=log["transactionHash"], t=now)
                    with self.lock:
                        self.token_transfers.append(tr)

    def _read_balances(self) -> None:
        """Balances at the head just read (not "latest", which may already be a block further)."""
        agents = self._agent_addresses()
        new: dict[str, dict[str, int]] = {}
        at = self.head
        for addr in sorted(agents | self._watched()):
            word = addr.lower().removeprefix("0x").rjust(64, "0")
            entry = {"eth": int(self._rpc("eth_getBalance", addr, hex(at)), 16), "token": self._call(_BALANCE_OF + word, at)}
            if addr in agents:
                spender = self.deployment.escrow.lower().removeprefix("0x").rjust(64, "0")
                entry["allowance"] = self._call(_ALLOWANCE + word + spender, at)
            new[addr] = entry
        with self.lock:
            old = self.balances
            self.balances = new
        if new != old:
            self.timeline.record("chain.balances", "chainwatch", balances={a: dict(b) for a, b in new.items()})
        for addr, entry in new.items():
            if "allowance" in entry and old.get(addr, {}).get("allowance") != entry["allowance"]:
                self.timeline.record("chain.allowance", "chainwatch", owner=addr, spender=self.deployment.escrow, value=entry["allowance"])

    def _read_pool(self, agents: set[str]) -> None:
        try:
            content = self._rpc("txpool_content")
        except RpcError:
            return
        pending: dict[str, dict[int, dict[str, Any]]] = {}
        queued: dict[str, dict[int, dict[str, Any]]] = {}
        for section, out in (("pending", pending), ("queued", queued)):
            for sender, by_nonce in (content.get(section) or {}).items():
                if sender.lower() not in agents:
                    continue
                for nonce_s, tx in by_nonce.items():
                    out.setdefault(sender.lower(), {})[int(nonce_s)] = tx
                    key = (sender.lower(), int(nonce_s))
                    self._first_pending.setdefault(tx["hash"].lower(), clock.now())
                    self._pending_info.setdefault(tx["hash"].lower(), (to_checksum_address(sender), (tx.get("to") or "").lower()))
                    seen = self._seen_pending.setdefault(key, {})
                    if tx["hash"] not in seen:
                        if seen:
                            self._note_replacement(key, seen, tx["hash"], _fees(tx))
                        seen[tx["hash"]] = _fees(tx)
        with self.lock:
            self.pool, self.pool_queued = pending, queued

    def _note_replacement(self, key: tuple[str, int], seen: dict[str, tuple[int, int]], new_hash: str, fees: tuple[int, int]) -> None:
        if any(r.new_hash == new_hash for r in self.replacements):
            return
        old_hash = list(seen)[-1]
        old_cap, old_tip = seen[old_hash]
        cap_ratio = fees[0] / old_cap if old_cap else float("inf")
        tip_ratio = fees[1] / old_tip if old_tip else float("inf")
        rep = Replacement(sender=to_checksum_address(key[0]), nonce=key[1], old_hash=old_hash, new_hash=new_hash,
                          cap_ratio=cap_ratio, tip_ratio=tip_ratio, t=clock.now())
        with self.lock:
            self.replacements.append(rep)
        self.timeline.record("chain.replacement", "chainwatch", sender=rep.sender, nonce=rep.nonce, old=old_hash, new=new_hash,
                             cap_ratio=round(cap_ratio, 4), tip_ratio=round(tip_ratio, 4))

    # -- queries used by predicates and invariants ----------------------------------------------
    def agent_txs(self, since: float | None = None) -> list[TxRecord]:
        with self.lock:
            return [t for t in self.txs if since is None or t.t >= since]

    def sends(self, since: float | None = None) -> list[Send]:
        """Every transaction of the agent's addresses the harness saw, mined or only waiting in the
        pool, dated to when it was first seen. A stalled chain mines nothing, so silence during a
        stall is read from the pool as well as from the blocks."""
        with self.lock:
            mined = {t.hash.lower(): Send(t.hash.lower(), t.sender, (t.to or "").lower(), t.first_seen, True) for t in self.txs}
            for h, (sender, to) in list(self._pending_info.items()):
                if h not in mined:
                    mined[h] = Send(h, sender, to, self._first_pending[h], False)
        return sorted((s for s in mined.values() if since is None or s.t >= since), key=lambda s: s.t)

    def seen_at_nonce(self, sender: str, nonce: int) -> list[str]:
        """Hashes (lower case) of every transaction of ``sender`` the harness saw waiting in the pool
        at ``nonce``, oldest first: a transaction and its replacements or cancel."""
        with self.lock:
            return [h.lower() for h in self._seen_pending.get((sender.lower(), nonce), {})]

    def waited_nonces(self, since: float) -> dict[str, set[int]]:
        """The nonces, by sender (checksummed), at which an agent transaction first seen in the
        pool at or after ``since`` waited."""
        out: dict[str, set[int]] = {}
        with self.lock:
            for (sender, nonce), by_hash in list(self._seen_pending.items()):
                if any(self._first_pending.get(h.lower(), -1.0) >= since for h in by_hash):
                    out.setdefault(to_checksum_address(sender), set()).add(nonce)
        return out

    def proven(self, since: float | None = None) -> list[EscrowRecord]:
        with self.lock:
            return [e for e in self.escrows.values() if e.state == "proven" and (since is None or (e.proven_t or 0) >= since)]

    def expired(self, since: float | None = None) -> list[EscrowRecord]:
        with self.lock:
            return [e for e in self.escrows.values() if e.state == "expired" and (since is None or (e.expired_t or 0) >= since)]

    def eth(self, addr: str) -> int:
        with self.lock:
            return self.balances.get(addr, {}).get("eth", 0)

    def token(self, addr: str) -> int:
        with self.lock:
            return self.balances.get(addr, {}).get("token", 0)
