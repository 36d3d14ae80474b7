"""The embedded node: py-evm's chain plus what a node adds around it (pool, mining, cheats).

eth-tester provides the genesis conventions (funded accounts, post-merge header fields); the node
drives py-evm's VM itself because eth-tester applies every transaction to the pending block as it
arrives and derives each header from its parent with no way to hold a base fee or a gas limit.

Single-threaded by design: the server calls every method from its one event-loop thread.

Choices where a node has freedom (each also answered the same way by anvil unless said):
- ``anvil_setNextBlockBaseFeePerGas(x)`` holds: every block mined while it is set has base fee
  ``x``. Setting 0 clears it; the block after that follows EIP-1559 from its parent (so the spike
  decays by at most 12.5% a block). anvil applies the value to one block only.
- A transaction whose fee cap is under the pending block's base fee is refused on submission; one
  already in the pool when the base fee rises stays there (as in geth) and is mined once it fits.
- State cheats (balance, nonce, code, storage) change the latest state at once, without a block.
- ``evm_snapshot``/``evm_revert`` restore the chain head, the state, the pool, the clock offset,
  the base-fee override and the block gas limit (what the next block is built from); the mining
  mode (automine, interval) stays as it is. Reverting to a snapshot drops it and every later one.
- "pending" state reads are the latest state, except the nonce, which counts pool transactions.
- Pre-EIP-155 legacy transactions (no chain id) are accepted, as anvil does (geth refuses them).
- No minimum tip and no pool size limits.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import rlp
from eth._utils.address import generate_contract_address
from eth.chains.base import Chain
from eth.constants import (
    BLANK_ROOT_HASH,
    EMPTY_SHA256,
    EMPTY_UNCLE_HASH,
    GENESIS_PARENT_HASH,
    POST_MERGE_DIFFICULTY,
    POST_MERGE_NONCE,
)
from eth.db.atomic import AtomicDB
from eth.exceptions import Revert
from eth.vm.forks import PragueVM
from eth.vm.forks.london.headers import calculate_expected_base_fee_per_gas
from eth.vm.forks.prague.blocks import PragueBlockHeader
from eth.vm.forks.prague.headers import calc_excess_blob_gas_prague
from eth.vm.spoof import SpoofTransaction
from eth_keys import keys as eth_keys_api
from eth_tester.backends.pyevm.main import (
    generate_genesis_state_for_keys,
    get_default_genesis_params,
)
from eth_utils import ValidationError, to_checksum_address

from harness.clock import wall
from harness.errors import RpcError

from . import encode as enc
from .genesis import NodeConfig, dev_keys
from .txpool import BlockCandidates, PoolTx, TxPool, replacement_allowed

__all__ = ["BlockRef", "CallArgs", "LogFilter", "PyEvmNode", "revert_error"]

log = logging.getLogger(__name__)

SERVER_ERROR = -32000
INVALID_PARAMS = -32602
REVERT_CODE = 3
SAFE_DEPTH = 32  # anvil: safe = head - 32, finalized = head - 64
_UNSUPPORTED_TX_TYPES = frozenset({3, 4})
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_ERROR_SELECTOR = bytes.fromhex("08c379a0")
_PANIC_SELECTOR = bytes.fromhex("4e487b71")
_PANIC_REASONS = {
    0x00: "generic panic",
    0x01: "assert(false)",
    0x11: "arithmetic underflow or overflow",
    0x12: "division or modulo by zero",
    0x21: "enum overflow",
    0x22: "invalid encoded storage byte array accessed",
    0x31: "out-of-bounds array access; popping on an empty array",
    0x32: "out-of-bounds access of an array or bytesN",
    0x41: "out of memory",
    0x51: "uninitialized function",
}
_VM_ERROR_WORDS = {
    "OutOfGas": "out of gas",
    "InsufficientStack": "stack underflow",
    "FullStack": "stack limit reached",
    "InvalidJumpDestination": "invalid jump destination",
    "InvalidInstruction": "invalid opcode",
    "StackDepthLimit": "max call depth exceeded",
    "WriteProtection": "write protection",
    "ContractCreationCollision": "contract address collision",
    "InsufficientFunds": "insufficient balance for transfer",
    "OutOfBoundsRead": "return data out of bounds",
    "ReservedBytesInCode": "invalid code: must not begin with 0xef",
}

BlockRef = int | str | bytes  # number, tag ("latest", "pending", ...) or block hash


def _fail(message: str, code: int = SERVER_ERROR, data: object = None) -> RpcError:
    return RpcError(code, message, data)


def revert_error(output: bytes) -> RpcError:
    """The error geth answers for a reverted call: code 3, the reason decoded, the raw data."""
    reason = ""
    if output[:4] == _ERROR_SELECTOR:
        try:
            from eth_abi import decode

            reason = decode(["string"], output[4:])[0]
        except Exception:  # noqa: BLE001 (undecodable payload: the raw data still goes back)
            reason = ""
    elif output[:4] == _PANIC_SELECTOR and len(output) == 36:
        code = int.from_bytes(output[4:], "big")
        reason = _PANIC_REASONS.get(code, f"unknown panic code: {code:#x}")
    message = f"execution reverted: {reason}" if reason else "execution reverted"
    return RpcError(REVERT_CODE, message, enc.data(output))


@dataclass(frozen=True, kw_only=True)
class CallArgs:
    """A transaction object as eth_call, eth_estimateGas and eth_sendTransaction take it."""

    sender: bytes | None = None
    to: bytes | None = None  # None: contract creation
    gas: int | None = None
    gas_price: int | None = None
    max_fee: int | None = None
    max_tip: int | None = None
    value: int = 0
    data: bytes = b""
    nonce: int | None = None
    access_list: tuple[tuple[bytes, tuple[int, ...]], ...] | None = None
    tx_type: int | None = None

    @property
    def has_fee(self) -> bool:
        return (
            self.gas_price is not None
            or self.max_fee is not None
            or self.max_tip is not None
        )


@dataclass(frozen=True, kw_only=True)
class LogFilter:
    from_block: BlockRef = "latest"
    to_block: BlockRef = "latest"
    block_hash: bytes | None = None
    addresses: frozenset[bytes] | None = None
    topics: tuple[frozenset[bytes] | None, ...] = ()

    def matches(self, address: bytes, topics: tuple[bytes, ...]) -> bool:
        if self.addresses is not None and address not in self.addresses:
            return False
        if len(self.topics) > len(topics):
            return False
        for wanted, got in zip(self.topics, topics):
            if wanted is not None and got not in wanted:
                return False
        return True


@dataclass(slots=True)
class _LogEntry:
    address: bytes
    topics: tuple[bytes, ...]
    json: dict[str, Any]


@dataclass(slots=True)
class _BlockRecord:
    """A mined block and everything the RPC answers about it, built once when it is mined."""

    block: Any
    header_json: dict[str, Any]
    tx_hashes: list[bytes]
    txs_json: list[dict[str, Any]]
    receipts_json: list[dict[str, Any]]
    logs: list[_LogEntry]
    tips: list[
        tuple[int, int]
    ]  # (effective tip, gas used) per transaction, for eth_feeHistory

    @property
    def header(self) -> Any:
        return self.block.header


@dataclass(slots=True)
class _Snapshot:
    head_number: int
    state_root: bytes
    pool: Any
    time_offset: int
    next_timestamp: int | None
    base_fee_override: int | None
    gas_limit: int


@dataclass(slots=True)
class _Filter:
    kind: str  # "logs", "blocks" or "pending"
    next_block: int
    logs: LogFilter | None = None
    pending: list[bytes] = field(default_factory=list)


class PyEvmNode:
    """A development node on py-evm: the state machine behind the JSON-RPC server."""

    vm_class = PragueVM

    def __init__(
        self,
        config: NodeConfig | None = None,
        *,
        on_interval_change: Callable[[float | None], None] | None = None,
    ) -> None:
        self.config = config or NodeConfig()
        cfg = self.config
        self._on_interval_change = on_interval_change
        self._keys = {}
        for raw in dev_keys(cfg.mnemonic, cfg.accounts):
            key = eth_keys_api.PrivateKey(raw)
            self._keys[key.public_key.to_canonical_address()] = key
        params = get_default_genesis_params(
            {"gas_limit": cfg.gas_limit, "timestamp": int(wall())}
        )
        params["base_fee_per_gas"] = cfg.base_fee_wei
        genesis_state = generate_genesis_state_for_keys(
            tuple(self._keys.values()), overrides={"balance": cfg.balance_wei}
        )
        chain_class = type(
            "DrillsDevChain",
            (Chain,),
            {"chain_id": cfg.chain_id, "vm_configuration": ((0, self.vm_class),)},
        )
        self._chain = chain_class.from_genesis(AtomicDB(), params, genesis_state)
        self._chaindb = self._chain.chaindb
        self._builder = self.vm_class.get_transaction_builder()
        self._account_db_class = self.vm_class.get_state_class().get_account_db_class()
        genesis = self._chain.get_canonical_block_by_number(0)
        self._records: list[_BlockRecord] = [self._make_record(genesis, [], [])]
        self._by_hash: dict[bytes, int] = {genesis.hash: 0}
        self._tx_index: dict[bytes, tuple[int, int]] = {}
        self._head = genesis.header
        self._state_root = genesis.header.state_root
        self._reader: Any = None
        self._reader_root = b""
        self._pool = TxPool()
        self._automine = cfg.automine
        self._interval: float | None = cfg.block_time
        if self._interval is not None:
            self._automine = False
        self._gas_limit = cfg.gas_limit
        self._base_fee_override: int | None = None
        self._time_offset = 0
        self._next_timestamp: int | None = None
        self._snapshots: dict[int, _Snapshot] = {}
        self._next_snapshot_id = 0
        self._filters: dict[str, _Filter] = {}
        # When set (by the server, around one request), automine waits for ``flush_automine()``,
        # which the server calls right after the response is on the wire.
        self.defer_automine = False
        self._mine_due = False

    # ------------------------------------------------------------------ accounts and settings
    @property
    def accounts(self) -> list[bytes]:
        return list(self._keys)

    @property
    def chain_id(self) -> int:
        return self.config.chain_id

    @property
    def interval(self) -> float | None:
        return self._interval

    @property
    def automine(self) -> bool:
        return self._automine

    @property
    def head_number(self) -> int:
        return self._head.block_number

    def pending_base_fee(self) -> int:
        if self._base_fee_override is not None:
            return self._base_fee_override
        return calculate_expected_base_fee_per_gas(self._head)

    def pending_gas_limit(self) -> int:
        return self._gas_limit

    # ------------------------------------------------------------------ state access
    def _state_reader(self, root: bytes) -> Any:
        if root == self._reader_root:
            return self._reader
        reader = self._account_db_class(self._chaindb.db, root)
        if root == self._state_root:
            self._reader, self._reader_root = reader, root
        return reader

    def _nonce(self, address: bytes) -> int:
        return self._state_reader(self._state_root).get_nonce(address)

    def _root_at(self, ref: BlockRef) -> bytes:
        number = self.resolve_number(ref)
        if number is None:
            raise _fail("header not found")
        if number == "pending" or number == self.head_number:
            return self._state_root
        return self._records[number].header.state_root

    def balance(self, address: bytes, ref: BlockRef = "latest") -> int:
        return self._state_reader(self._root_at(ref)).get_balance(address)

    def code(self, address: bytes, ref: BlockRef = "latest") -> bytes:
        return self._state_reader(self._root_at(ref)).get_code(address)

    def storage(self, address: bytes, slot: int, ref: BlockRef = "latest") -> int:
        return self._state_reader(self._root_at(ref)).get_storage(address, slot)

    def transaction_count(self, address: bytes, ref: BlockRef = "latest") -> int:
        if ref == "pending":
            return self._pool.next_nonce(address, self._nonce(address))
        return self._state_reader(self._root_at(ref)).get_nonce(address)

    def _mutate_state(self, change: Callable[[Any], None]) -> None:
        db = self._account_db_class(self._chaindb.db, self._state_root)
        change(db)
        db.persist()
        self._state_root = db.state_root

    def set_balance(self, address: bytes, wei: int) -> None:
        self._mutate_state(lambda db: db.set_balance(address, wei))

    def set_nonce(self, address: bytes, nonce: int) -> None:
        self._mutate_state(lambda db: db.set_nonce(address, nonce))
        self._pool.prune_stale(self._nonce)

    def set_code(self, address: bytes, code: bytes) -> None:
        self._mutate_state(lambda db: db.set_code(address, code))

    def set_storage(self, address: bytes, slot: int, value: int) -> None:
        self._mutate_state(lambda db: db.set_storage(address, slot, value))

    # ------------------------------------------------------------------ blocks
    def resolve_number(self, ref: BlockRef) -> int | str | None:
        """A block number, "pending", or None when no such block exists (yet)."""
        head = self.head_number
        if isinstance(ref, int):
            return ref if 0 <= ref <= head else None
        if isinstance(ref, bytes):
            return self._by_hash.get(ref)
        if ref == "latest":
            return head
        if ref == "pending":
            return "pending"
        if ref == "earliest":
            return 0
        if ref == "safe":
            return max(0, head - SAFE_DEPTH)
        if ref == "finalized":
            return max(0, head - 2 * SAFE_DEPTH)
        raise _fail(f"unknown block tag {ref!r}", INVALID_PARAMS)

    def block(self, ref: BlockRef, full: bool) -> dict[str, Any] | None:
        number = self.resolve_number(ref)
        if number is None:
            return None
        if number == "pending":
            return self._pending_block(full)
        record = self._records[number]
        if record.header_json["size"] is None:
            record.header_json["size"] = enc.qty(len(rlp.encode(record.block)))
        txs = record.txs_json if full else [enc.data(h) for h in record.tx_hashes]
        return {**record.header_json, "transactions": txs}

    def _pending_block(self, full: bool) -> dict[str, Any]:
        header = self._next_header(self._peek_timestamp())
        picked = self._select(header)
        out = enc.header_json(header, size=None, pending=True)
        if full:
            out["transactions"] = [
                enc.tx_json(enc.tx_fields(p.tx, p.sender), block_number=None)
                for p in picked
            ]
        else:
            out["transactions"] = [enc.data(p.hash) for p in picked]
        return out

    def _select(self, header: Any) -> list[PoolTx]:
        """What the next block would hold (without running it: gas by each transaction's limit)."""
        candidates = BlockCandidates(
            self._pool.split(self._nonce)[0], header.base_fee_per_gas
        )
        room = header.gas_limit
        picked: list[PoolTx] = []
        while (ptx := candidates.peek()) is not None:
            if ptx.gas > room:
                candidates.pop()
                continue
            picked.append(ptx)
            room -= ptx.gas
            candidates.shift()
        return picked

    # ------------------------------------------------------------------ transactions and receipts
    def transaction(self, tx_hash: bytes) -> dict[str, Any] | None:
        where = self._tx_index.get(tx_hash)
        if where is not None:
            number, index = where
            return self._records[number].txs_json[index]
        ptx = self._pool.get(tx_hash)
        if ptx is not None:
            return enc.tx_json(enc.tx_fields(ptx.tx, ptx.sender))
        return None

    def receipt(self, tx_hash: bytes) -> dict[str, Any] | None:
        where = self._tx_index.get(tx_hash)
        if where is None:
            return None
        number, index = where
        return self._records[number].receipts_json[index]

    def block_receipts(self, ref: BlockRef) -> list[dict[str, Any]] | None:
        number = self.resolve_number(ref)
        if number is None or number == "pending":
            return None
        return list(self._records[number].receipts_json)

    # ------------------------------------------------------------------ submission
    def send_raw_transaction(self, raw: bytes) -> bytes:
        return self._admit(self._decode(raw)).hash

    def _decode(self, raw: bytes) -> Any:
        if not raw:
            raise _fail("transaction decoding failed: empty input")
        if raw[0] in _UNSUPPORTED_TX_TYPES:
            # blob transactions need a sidecar and a consensus layer; set-code (EIP-7702) ones
            # would run, but this node does not render their authorization lists
            raise _fail("transaction type not supported")
        try:
            tx = self._builder.decode(raw)
        except Exception as exc:  # noqa: BLE001 (py-evm raises several kinds; all mean bad bytes)
            raise _fail(
                f"rlp: transaction decoding failed ({type(exc).__name__}: {exc})"
            ) from None
        try:
            if not (0 < tx.r < _SECP256K1_N and 0 < tx.s <= _SECP256K1_N // 2):
                raise ValueError("signature values out of range")  # EIP-2: low s only
            _ = (
                tx.sender
            )  # recovers the signer; fails on a signature that recovers no key
        except Exception:  # noqa: BLE001 (any failure to recover is a bad signature)
            raise _fail("invalid sender: invalid transaction v, r, s values") from None
        return tx

    def _admit(self, tx: Any) -> PoolTx:
        """geth's pool checks, in geth's order, then into the pool (and mined if automine is on)."""
        tx_hash = tx.hash
        if tx_hash in self._pool:
            raise _fail("already known")
        chain_id = tx.chain_id
        if chain_id is not None and chain_id != self.config.chain_id:
            raise _fail(
                f"invalid sender: invalid chain id for signer: have {chain_id} want {self.config.chain_id}"
            )
        if tx.gas > self.pending_gas_limit():
            raise _fail("exceeds block gas limit")
        fee_cap, tip_cap = tx.max_fee_per_gas, tx.max_priority_fee_per_gas
        if tip_cap > fee_cap:
            raise _fail("max priority fee per gas higher than max fee per gas")
        sender = tx.sender
        intrinsic = tx.intrinsic_gas
        if tx.gas < intrinsic:
            raise _fail(
                f"intrinsic gas too low: gas {tx.gas}, minimum needed {intrinsic}"
            )
        base_fee = self.pending_base_fee()
        if fee_cap < base_fee:
            raise _fail(
                f"max fee per gas less than block base fee: address {to_checksum_address(sender)}, "
                f"maxFeePerGas: {fee_cap}, baseFee: {base_fee}"
            )
        next_nonce = self._nonce(sender)
        if tx.nonce < next_nonce:
            raise _fail(f"nonce too low: next nonce {next_nonce}, tx nonce {tx.nonce}")
        balance = self._state_reader(self._state_root).get_balance(sender)
        cost = tx.gas * fee_cap + tx.value
        if balance < cost:
            raise _fail(
                f"insufficient funds for gas * price + value: balance {balance}, tx cost {cost}, "
                f"overshot {cost - balance}"
            )
        ptx = PoolTx(
            tx=tx,
            hash=tx_hash,
            sender=sender,
            nonce=tx.nonce,
            fee_cap=fee_cap,
            tip_cap=tip_cap,
            gas=tx.gas,
            seq=self._pool.next_seq(),
        )
        old = self._pool.at(sender, tx.nonce)
        if old is not None and not replacement_allowed(old, ptx):
            raise _fail("replacement transaction underpriced")
        self._pool.add(ptx)
        for flt in self._filters.values():
            if flt.kind == "pending":
                flt.pending.append(tx_hash)
        if self._automine:
            if self.defer_automine:
                self._mine_due = True
            else:
                self._mine_ready()
        return ptx

    def send_transaction(self, args: CallArgs) -> bytes:
        """Sign ``args`` with the dev account it names and submit it like a raw transaction."""
        if args.sender is None or args.sender not in self._keys:
            raise _fail("unknown account")
        key = self._keys[args.sender]
        nonce = (
            args.nonce
            if args.nonce is not None
            else self.transaction_count(args.sender, "pending")
        )
        gas = args.gas if args.gas is not None else self.estimate_gas(args, "pending")
        to = args.to or b""
        cid = self.config.chain_id
        if args.gas_price is not None and args.max_fee is None and args.max_tip is None:
            if args.access_list is not None or args.tx_type == 1:
                unsigned = self._builder.new_unsigned_access_list_transaction(
                    cid,
                    nonce,
                    args.gas_price,
                    gas,
                    to,
                    args.value,
                    args.data,
                    args.access_list or (),
                )
            else:
                unsigned = self.vm_class.create_unsigned_transaction(
                    nonce=nonce,
                    gas_price=args.gas_price,
                    gas=gas,
                    to=to,
                    value=args.value,
                    data=args.data,
                )
            signed = unsigned.as_signed_transaction(key, chain_id=cid)
        else:
            tip = (
                args.max_tip
                if args.max_tip is not None
                else self.config.suggested_tip_wei
            )
            fee = (
                args.max_fee
                if args.max_fee is not None
                else 2 * self.pending_base_fee() + tip
            )
            if args.max_tip is None:
                tip = min(tip, fee)
            unsigned = self._builder.new_unsigned_dynamic_fee_transaction(
                cid,
                nonce,
                tip,
                fee,
                gas,
                to,
                args.value,
                args.data,
                args.access_list or (),
            )
            signed = unsigned.as_signed_transaction(key)
        # py-evm signs into its London classes; the wire form decoded by this fork's builder is
        # exactly what a client would have sent as a raw transaction.
        return self._admit(self._builder.decode(signed.encode())).hash

    # ------------------------------------------------------------------ the pool
    def drop_transaction(self, tx_hash: bytes) -> bool:
        return self._pool.remove(tx_hash) is not None

    def drop_all_transactions(self) -> int:
        return self._pool.clear()

    def pool_content(
        self,
    ) -> tuple[dict[bytes, list[PoolTx]], dict[bytes, list[PoolTx]]]:
        return self._pool.split(self._nonce)

    def pool_tx_json(self, ptx: PoolTx) -> dict[str, Any]:
        return enc.tx_json(enc.tx_fields(ptx.tx, ptx.sender))

    # ------------------------------------------------------------------ mining
    def _peek_timestamp(self) -> int:
        if self._next_timestamp is not None:
            return self._next_timestamp
        # Like anvil, blocks mined within the same second share its timestamp: the chain clock
        # must not run ahead of the wall clock when every transaction gets its own block, or
        # escrow deadlines (compared with block.timestamp) would expire early.
        return max(int(wall()) + self._time_offset, self._head.timestamp)

    def _next_header(self, timestamp: int) -> Any:
        """The header the next block starts from, as Prague's ``create_header_from_parent`` makes
        it (a test holds the two equal) but built in one step: py-evm's version goes through
        every fork's constructor in turn, a noticeable share of the cost of a one-transaction
        block. This is also where the node takes over the base fee while an override is set."""
        parent = self._head
        if self._base_fee_override is not None:
            base_fee = self._base_fee_override
        else:
            base_fee = calculate_expected_base_fee_per_gas(parent)
        return PragueBlockHeader(
            parent_hash=parent.hash,
            uncles_hash=EMPTY_UNCLE_HASH,
            coinbase=enc.ZERO_ADDRESS,
            state_root=self._state_root,
            transaction_root=BLANK_ROOT_HASH,
            receipt_root=BLANK_ROOT_HASH,
            bloom=0,
            difficulty=POST_MERGE_DIFFICULTY,
            block_number=parent.block_number + 1,
            gas_limit=self._gas_limit,
            gas_used=0,
            timestamp=timestamp,
            extra_data=b"",
            mix_hash=os.urandom(32),
            nonce=POST_MERGE_NONCE,
            base_fee_per_gas=base_fee,
            withdrawals_root=BLANK_ROOT_HASH,
            blob_gas_used=0,
            excess_blob_gas=calc_excess_blob_gas_prague(parent),
            parent_beacon_block_root=BLANK_ROOT_HASH,
            requests_hash=EMPTY_SHA256,
        )

    def mine(self, count: int = 1, interval: int | None = None) -> None:
        """Mine ``count`` blocks (empty ones too); with ``interval``, that many seconds apart."""
        for i in range(count):
            if i > 0 and interval:
                self._next_timestamp = self._head.timestamp + interval
            self._mine_block()

    def mine_at(self, timestamp: int) -> None:
        self.set_next_timestamp(timestamp)
        self._mine_block()

    def flush_automine(self) -> None:
        """Mine what automine deferred (see ``defer_automine``)."""
        if self._mine_due:
            self._mine_due = False
            if self._automine:
                self._mine_ready()

    def _mine_ready(self) -> None:
        """Automine: mine while some pool transaction can go into a block."""
        while self._select_any():
            if not self._mine_block().tx_hashes:
                break

    def _select_any(self) -> bool:
        candidates = BlockCandidates(
            self._pool.split(self._nonce)[0], self.pending_base_fee()
        )
        while (ptx := candidates.peek()) is not None:
            if ptx.gas <= self._gas_limit:
                return True
            candidates.pop()
        return False

    def _mine_block(self) -> _BlockRecord:
        timestamp = self._peek_timestamp()
        header = self._next_header(timestamp)
        vm = self._chain.get_vm(header)
        base_fee = header.base_fee_per_gas
        candidates = BlockCandidates(self._pool.split(self._nonce)[0], base_fee)
        picked: list[PoolTx] = []
        receipts: list[Any] = []
        current = header
        while (ptx := candidates.peek()) is not None:
            if ptx.gas > current.gas_limit - current.gas_used:
                candidates.pop()
                continue
            try:
                receipt, _computation = vm.apply_transaction(current, ptx.tx)
            except ValidationError as exc:
                # Checked on admission, but state may have moved since (a cheat, an earlier tx of
                # this block): such a transaction can never be mined, so it leaves the pool.
                log.info(
                    "dropping unminable pool transaction %s: %s",
                    enc.data(ptx.hash),
                    exc,
                )
                self._pool.remove(ptx.hash)
                candidates.pop()
                continue
            current = vm.add_receipt_to_header(current, receipt)
            picked.append(ptx)
            receipts.append(receipt)
            candidates.shift()
        txs = [p.tx for p in picked]
        block = vm.set_block_transactions_and_withdrawals(
            vm.get_block(), current, txs, receipts
        )
        block = vm.finalize_block(block).block
        self._chaindb.persist_block(block)
        record = self._make_record(block, picked, receipts)
        self._records.append(record)
        self._by_hash[block.hash] = block.number
        for index, h in enumerate(record.tx_hashes):
            self._tx_index[h] = (block.number, index)
        self._head = block.header
        self._state_root = block.header.state_root
        # the block's own account db has the new state's trie nodes cached: reads start warm
        self._reader, self._reader_root = vm.state._account_db, self._state_root
        for ptx in picked:
            self._pool.remove(ptx.hash)
        self._pool.prune_stale(self._nonce)
        if self._next_timestamp is not None:
            self._time_offset = timestamp - int(wall())
            self._next_timestamp = None
        return record

    def _make_record(
        self, block: Any, picked: list[PoolTx], receipts: list[Any]
    ) -> _BlockRecord:
        header = block.header
        number, block_hash = header.block_number, header.hash
        base_fee = header.base_fee_per_gas
        header_json = enc.header_json(header, size=None)  # size: filled on first read
        txs_json: list[dict[str, Any]] = []
        receipts_json: list[dict[str, Any]] = []
        logs: list[_LogEntry] = []
        tips: list[tuple[int, int]] = []
        cumulative = 0
        for index, (ptx, receipt) in enumerate(zip(picked, receipts)):
            tx = ptx.tx
            gas_used = receipt.gas_used - cumulative
            cumulative = receipt.gas_used
            price = enc.effective_gas_price(tx, base_fee)
            tx_logs = []
            for raw_log in receipt.logs:
                entry = _LogEntry(
                    address=raw_log.address,
                    topics=tuple(t.to_bytes(32, "big") for t in raw_log.topics),
                    json=enc.log_json(
                        raw_log,
                        block_hash=block_hash,
                        block_number=number,
                        tx_hash=ptx.hash,
                        tx_index=index,
                        log_index=len(logs),
                    ),
                )
                logs.append(entry)
                tx_logs.append(entry.json)
            created = (
                generate_contract_address(ptx.sender, tx.nonce) if not tx.to else None
            )
            txs_json.append(
                enc.tx_json(
                    enc.tx_fields(tx, ptx.sender),
                    block_hash=block_hash,
                    block_number=number,
                    index=index,
                    gas_price=price,
                )
            )
            receipts_json.append(
                enc.receipt_json(
                    tx=tx,
                    sender=ptx.sender,
                    receipt=receipt,
                    gas_used=gas_used,
                    logs=tx_logs,
                    block_hash=block_hash,
                    block_number=number,
                    index=index,
                    gas_price=price,
                    contract_address=created,
                )
            )
            tips.append((price - base_fee, gas_used))
        return _BlockRecord(
            block=block,
            header_json=header_json,
            tx_hashes=[p.hash for p in picked],
            txs_json=txs_json,
            receipts_json=receipts_json,
            logs=logs,
            tips=tips,
        )

    # ------------------------------------------------------------------ mining mode and cheats
    def set_automine(self, enabled: bool) -> None:
        if enabled:
            self._automine = True
            self._set_interval(None)
            self._mine_ready()
        elif self._automine:
            self._automine = False

    def set_interval_mining(self, seconds: float) -> None:
        """A block every ``seconds`` (driven by the server's timer); 0 stops mining altogether."""
        self._automine = False
        self._set_interval(seconds if seconds > 0 else None)

    def _set_interval(self, seconds: float | None) -> None:
        if seconds == self._interval:
            return
        self._interval = seconds
        if self._on_interval_change is not None:
            self._on_interval_change(seconds)

    def interval_tick(self) -> None:
        """One block of interval mining."""
        self._mine_block()

    def set_next_base_fee(self, wei: int) -> None:
        self._base_fee_override = wei if wei > 0 else None

    @property
    def base_fee_override(self) -> int | None:
        return self._base_fee_override

    def set_block_gas_limit(self, gas: int) -> None:
        if gas < 21_000:
            raise _fail(
                f"block gas limit {gas} is below 21000, the cost of one transfer",
                INVALID_PARAMS,
            )
        self._gas_limit = gas

    def increase_time(self, seconds: int) -> int:
        self._time_offset += seconds
        return self._time_offset

    def set_next_timestamp(self, timestamp: int) -> None:
        if timestamp <= self._head.timestamp:
            raise _fail(
                f"timestamp error: {timestamp} is lower than or equal to previous block's timestamp "
                f"{self._head.timestamp}"
            )
        self._next_timestamp = timestamp

    def snapshot(self) -> int:
        sid = self._next_snapshot_id
        self._next_snapshot_id += 1
        self._snapshots[sid] = _Snapshot(
            head_number=self.head_number,
            state_root=self._state_root,
            pool=self._pool.snapshot(),
            time_offset=self._time_offset,
            next_timestamp=self._next_timestamp,
            base_fee_override=self._base_fee_override,
            gas_limit=self._gas_limit,
        )
        return sid

    def revert(self, sid: int) -> bool:
        snap = self._snapshots.get(sid)
        if snap is None:
            return False
        for later in [s for s in self._snapshots if s >= sid]:
            del self._snapshots[later]
        self._rewind_to(snap.head_number)
        self._state_root = snap.state_root
        self._pool.restore(snap.pool)
        self._time_offset = snap.time_offset
        self._next_timestamp = snap.next_timestamp
        self._base_fee_override = snap.base_fee_override
        self._gas_limit = snap.gas_limit
        return True

    def _rewind_to(self, number: int) -> list[_BlockRecord]:
        removed = self._records[number + 1 :]
        del self._records[number + 1 :]
        for record in removed:
            self._by_hash.pop(record.block.hash, None)
            for h in record.tx_hashes:
                self._tx_index.pop(h, None)
        header = self._records[number].header
        self._chaindb._set_as_canonical_chain_head(
            self._chaindb.db, header, GENESIS_PARENT_HASH
        )
        self._head = header
        self._state_root = header.state_root
        for flt in self._filters.values():
            flt.next_block = min(flt.next_block, number + 1)
        return removed

    def reorg(self, depth: int, txs: Iterable[tuple[bytes, int]]) -> None:
        """anvil_reorg: replace the last ``depth`` blocks by ``depth`` new ones; the raw signed
        transactions in ``txs`` go into the block at their offset (0 = first new block). The
        transactions of the replaced blocks are gone (as in anvil)."""
        if not 0 < depth <= self.head_number:
            raise _fail(
                f"reorg depth must be between 1 and the head number {self.head_number}, not {depth}"
            )
        placed: dict[int, list[Any]] = {}
        for raw, offset in txs:
            if not 0 <= offset < depth:
                raise _fail(
                    f"reorg transaction offset {offset} is outside 0..{depth - 1}",
                    INVALID_PARAMS,
                )
            placed.setdefault(offset, []).append(self._decode(raw))
        fork_point = self.head_number - depth
        saved_pool, saved_root = self._pool.snapshot(), self._state_root
        saved_automine, self._automine = self._automine, False
        removed = self._rewind_to(fork_point)
        try:
            self._pool.clear()
            for offset in range(depth):
                for tx in placed.get(offset, []):
                    self._admit(tx)
                self._mine_block()
        except BaseException:
            # all or nothing: a refused transaction leaves the chain as it was
            self._rewind_to(fork_point)
            self._reattach(removed)
            self._state_root = saved_root
            raise
        finally:
            self._automine = saved_automine
            self._pool.restore(saved_pool)
            self._pool.prune_stale(self._nonce)

    def _reattach(self, records: list[_BlockRecord]) -> None:
        """Put back blocks ``_rewind_to`` took off (they are still in py-evm's database)."""
        for record in records:
            self._records.append(record)
            self._by_hash[record.block.hash] = record.block.number
            for index, h in enumerate(record.tx_hashes):
                self._tx_index[h] = (record.block.number, index)
        if records:
            header = records[-1].header
            self._chaindb._set_as_canonical_chain_head(
                self._chaindb.db, header, GENESIS_PARENT_HASH
            )
            self._head = header
            self._state_root = header.state_root

    # ------------------------------------------------------------------ execution without a block
    def _call_header(self, ref: BlockRef, args: CallArgs) -> Any:
        number = self.resolve_number(ref)
        if number is None:
            raise _fail("header not found")
        if number == "pending":
            header = self._next_header(self._peek_timestamp())
        elif number == self.head_number:
            header = self._head.copy(state_root=self._state_root)
        else:
            header = self._records[number].header
        if not args.has_fee:
            # Like geth: a call that names no fee runs with base fee 0, so it costs nothing.
            header = header.copy(base_fee_per_gas=0)
        return header

    def _spoof(self, args: CallArgs, gas: int, nonce: int) -> Any:
        to = args.to or b""
        if args.gas_price is not None and args.max_fee is None and args.max_tip is None:
            if args.access_list:
                unsigned = self._builder.new_unsigned_access_list_transaction(
                    self.config.chain_id,
                    nonce,
                    args.gas_price,
                    gas,
                    to,
                    args.value,
                    args.data,
                    args.access_list,
                )
            else:
                unsigned = self.vm_class.create_unsigned_transaction(
                    nonce=nonce,
                    gas_price=args.gas_price,
                    gas=gas,
                    to=to,
                    value=args.value,
                    data=args.data,
                )
        else:
            fee = args.max_fee if args.max_fee is not None else (args.max_tip or 0)
            tip = args.max_tip if args.max_tip is not None else 0
            unsigned = self._builder.new_unsigned_dynamic_fee_transaction(
                self.config.chain_id,
                nonce,
                min(tip, fee),
                fee,
                gas,
                to,
                args.value,
                args.data,
                args.access_list or (),
            )
        return SpoofTransaction(unsigned, from_=args.sender or enc.ZERO_ADDRESS)

    def _run(self, state: Any, args: CallArgs, gas: int) -> Any:
        """Execute once on ``state`` and roll back; the computation, or RpcError for an invalid tx."""
        sender = args.sender or enc.ZERO_ADDRESS
        spoof = self._spoof(args, gas, state.get_nonce(sender))
        if spoof.gas < spoof.intrinsic_gas:
            raise _fail(
                f"intrinsic gas too low: gas {gas}, minimum needed {spoof.intrinsic_gas}"
            )
        base_fee = state.execution_context.base_fee_per_gas
        if args.has_fee and spoof.max_fee_per_gas < base_fee:
            raise _fail(
                f"max fee per gas less than block base fee: address {to_checksum_address(sender)}, "
                f"maxFeePerGas: {spoof.max_fee_per_gas}, baseFee: {base_fee}"
            )
        balance = state.get_balance(sender)
        want = gas * state.get_gas_price(spoof) + args.value
        if balance < want:
            raise _fail(
                f"insufficient funds for gas * price + value: address {to_checksum_address(sender)} "
                f"have {balance} want {want}"
            )
        snapshot = state.snapshot()
        try:
            return state.apply_transaction(spoof)
        except ValidationError as exc:
            raise _fail(str(exc)) from None
        finally:
            state.revert(snapshot)

    def _gas_cap(self, args: CallArgs, header: Any) -> int:
        return args.gas if args.gas is not None else header.gas_limit

    def call(self, args: CallArgs, ref: BlockRef = "latest") -> bytes:
        header = self._call_header(ref, args)
        state = self._chain.get_vm(header).state
        computation = self._run(state, args, self._gas_cap(args, header))
        if computation.is_error:
            raise self._execution_error(computation)
        return computation.output

    def _execution_error(self, computation: Any) -> RpcError:
        error = computation.error
        if isinstance(error, Revert):
            return revert_error(computation.output)
        word = _VM_ERROR_WORDS.get(type(error).__name__)
        return _fail(word or f"execution failed: {type(error).__name__}: {error}")

    def estimate_gas(self, args: CallArgs, ref: BlockRef = "latest") -> int:
        """The least gas that makes ``args`` succeed, searched as geth does (within 1.5%)."""
        header = self._call_header(ref, args)
        state = self._chain.get_vm(header).state
        sender = args.sender or enc.ZERO_ADDRESS
        hi = self._gas_cap(args, header)
        fee_cap = args.gas_price if args.gas_price is not None else (args.max_fee or 0)
        if fee_cap > 0:
            balance = state.get_balance(sender)
            if args.value > balance:
                raise _fail("insufficient funds for transfer")
            hi = min(hi, (balance - args.value) // fee_cap)
        if args.to and not args.data and not state.get_code(args.to):
            plain = self._run(state, args, 21_000)
            if not plain.is_error:
                return 21_000
        first = self._run(state, args, hi)
        if first.is_error:
            if isinstance(first.error, Revert):
                raise revert_error(first.output)
            raise _fail(f"gas required exceeds allowance ({hi})")
        used = hi - first.get_gas_remaining()
        lo = used - 1
        optimistic = (used + first.get_gas_refund() + 2300) * 64 // 63
        if optimistic < hi:
            if self._succeeds(state, args, optimistic):
                hi = optimistic
            else:
                lo = optimistic
        while lo + 1 < hi:
            if (hi - lo) / hi < 0.015:
                break
            mid = (hi + lo) // 2
            mid = min(mid, lo * 2)
            if self._succeeds(state, args, mid):
                hi = mid
            else:
                lo = mid
        return hi

    def _succeeds(self, state: Any, args: CallArgs, gas: int) -> bool:
        try:
            return not self._run(state, args, gas).is_error
        except RpcError:
            return False

    # ------------------------------------------------------------------ fees
    def suggested_tip(self) -> int:
        return self.config.suggested_tip_wei

    def gas_price(self) -> int:
        return self.pending_base_fee() + self.suggested_tip()

    def fee_history(
        self, count: int, newest: BlockRef, percentiles: list[float] | None
    ) -> dict[str, Any]:
        number = self.resolve_number(newest)
        if number == "pending":
            number = self.head_number
        if number is None:
            raise _fail("header not found")
        count = min(count, number + 1)
        oldest = number - count + 1
        records = self._records[oldest : number + 1]
        base_fees = [r.header.base_fee_per_gas for r in records]
        if number == self.head_number:
            base_fees.append(self.pending_base_fee())
        else:
            base_fees.append(self._records[number + 1].header.base_fee_per_gas)
        out: dict[str, Any] = {
            "oldestBlock": enc.qty(oldest),
            "baseFeePerGas": [enc.qty(b) for b in base_fees],
            "gasUsedRatio": [r.header.gas_used / r.header.gas_limit for r in records],
            "baseFeePerBlobGas": ["0x1"] * (count + 1),
            "blobGasUsedRatio": [0.0] * count,
        }
        if percentiles is not None:
            out["reward"] = [
                [enc.qty(x) for x in _rewards(r, percentiles)] for r in records
            ]
        return out

    # ------------------------------------------------------------------ logs and filters
    def _log_range(self, flt: LogFilter) -> tuple[int, int]:
        if flt.block_hash is not None:
            number = self._by_hash.get(flt.block_hash)
            if number is None:
                raise _fail("unknown block")
            return number, number
        lo = self._range_end(flt.from_block)
        hi = self._range_end(flt.to_block)
        return lo, hi

    def _range_end(self, ref: BlockRef) -> int:
        if isinstance(ref, int):
            return ref
        number = self.resolve_number(ref)
        if number == "pending" or number is None:
            return self.head_number
        return int(number)

    def _collect_logs(self, flt: LogFilter, lo: int, hi: int) -> list[dict[str, Any]]:
        hi = min(hi, self.head_number)
        found: list[dict[str, Any]] = []
        for number in range(max(lo, 0), hi + 1):
            for entry in self._records[number].logs:
                if flt.matches(entry.address, entry.topics):
                    found.append(entry.json)
        return found

    def logs(self, flt: LogFilter) -> list[dict[str, Any]]:
        lo, hi = self._log_range(flt)
        if lo > hi:
            raise _fail("invalid block range params", INVALID_PARAMS)
        return self._collect_logs(flt, lo, hi)

    def new_filter(self, kind: str, flt: LogFilter | None = None) -> str:
        fid = "0x" + secrets.token_hex(16)
        self._filters[fid] = _Filter(
            kind=kind, next_block=self.head_number + 1, logs=flt
        )
        return fid

    def filter_changes(self, fid: str) -> list[Any]:
        flt = self._filters.get(fid)
        if flt is None:
            raise _fail("filter not found")
        head = self.head_number
        if flt.kind == "pending":
            out: list[Any] = [enc.data(h) for h in flt.pending]
            flt.pending.clear()
            return out
        start, flt.next_block = flt.next_block, head + 1
        if flt.kind == "blocks":
            return [
                enc.data(self._records[n].block.hash) for n in range(start, head + 1)
            ]
        assert flt.logs is not None
        if flt.logs.block_hash is not None:
            lo, hi = self._log_range(flt.logs)
        else:
            # tags are read as "from when the filter was made" / "up to the head", numbers as given
            lo = flt.logs.from_block if isinstance(flt.logs.from_block, int) else start
            hi = flt.logs.to_block if isinstance(flt.logs.to_block, int) else head
        return self._collect_logs(flt.logs, max(lo, start), hi)

    def filter_logs(self, fid: str) -> list[dict[str, Any]]:
        flt = self._filters.get(fid)
        if flt is None or flt.logs is None:
            raise _fail("filter not found")
        return self.logs(flt.logs)

    def uninstall_filter(self, fid: str) -> bool:
        return self._filters.pop(fid, None) is not None


def _rewards(record: _BlockRecord, percentiles: list[float]) -> list[int]:
    """geth's reward percentiles: effective tips weighted by the gas each transaction used."""
    if not record.tips:
        return [0] * len(percentiles)
    ordered = sorted(record.tips)
    total = record.header.gas_used
    out: list[int] = []
    index, spent = 0, ordered[0][1]
    for p in percentiles:
        threshold = total * p / 100
        while spent < threshold and index < len(ordered) - 1:
            index += 1
            spent += ordered[index][1]
        out.append(ordered[index][0])
    return out
