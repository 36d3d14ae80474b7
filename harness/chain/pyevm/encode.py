"""The JSON shapes a node answers: blocks, transactions, receipts and logs as geth writes them.

Quantities are 0x-prefixed hex without leading zeros, byte strings 0x-prefixed hex, addresses
lower-case, missing values ``null``. Written by hand because eth-tester's serializers produce Python
values for its own normalisation layer, not the wire format a JSON-RPC client parses.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ZERO_ADDRESS",
    "addr",
    "data",
    "effective_gas_price",
    "header_json",
    "log_json",
    "qty",
    "receipt_json",
    "tx_fields",
    "tx_json",
]

ZERO_ADDRESS = b"\x00" * 20
_EMPTY_NONCE = "0x0000000000000000"


def qty(value: int) -> str:
    return hex(value)


def data(value: bytes) -> str:
    return "0x" + value.hex()


def addr(value: bytes) -> str:
    return "0x" + value.hex()


def effective_gas_price(tx: Any, base_fee: int) -> int:
    if tx.type_id == 2 or tx.type_id == 4:
        return min(tx.max_fee_per_gas, tx.max_priority_fee_per_gas + base_fee)
    return tx.gas_price


def _access_list(tx: Any) -> list[dict[str, Any]]:
    return [
        {
            "address": addr(a),
            "storageKeys": ["0x" + k.to_bytes(32, "big").hex() for k in keys],
        }
        for a, keys in tx.access_list
    ]


def tx_fields(tx: Any, sender: bytes) -> dict[str, Any]:
    """The fields of a transaction that do not depend on where (or whether) it was mined."""
    type_id = tx.type_id or 0
    out: dict[str, Any] = {
        "type": qty(type_id),
        "hash": data(tx.hash),
        "nonce": qty(tx.nonce),
        "from": addr(sender),
        "to": addr(tx.to) if tx.to else None,
        "gas": qty(tx.gas),
        "value": qty(tx.value),
        "input": data(tx.data),
        "r": qty(tx.r),
        "s": qty(tx.s),
    }
    if type_id == 0:
        out["gasPrice"] = qty(tx.gas_price)
        out["v"] = qty(tx.v)
        if tx.chain_id is not None:
            out["chainId"] = qty(tx.chain_id)
    else:
        out["chainId"] = qty(tx.chain_id)
        out["accessList"] = _access_list(tx)
        out["v"] = qty(tx.y_parity)
        out["yParity"] = qty(tx.y_parity)
        if type_id == 1:
            out["gasPrice"] = qty(tx.gas_price)
        else:
            out["maxFeePerGas"] = qty(tx.max_fee_per_gas)
            out["maxPriorityFeePerGas"] = qty(tx.max_priority_fee_per_gas)
            # a pending dynamic-fee transaction shows its fee cap as gas price, as geth does
            out["gasPrice"] = qty(tx.max_fee_per_gas)
    return out


def tx_json(
    fields: dict[str, Any],
    *,
    block_hash: bytes | None = None,
    block_number: int | None = None,
    index: int | None = None,
    gas_price: int | None = None,
) -> dict[str, Any]:
    """``fields`` placed in a block (or pending when ``block_hash`` is None)."""
    out = dict(fields)
    out["blockHash"] = data(block_hash) if block_hash is not None else None
    out["blockNumber"] = qty(block_number) if block_number is not None else None
    out["transactionIndex"] = qty(index) if index is not None else None
    if gas_price is not None:
        out["gasPrice"] = qty(gas_price)
    return out


def log_json(
    log: Any,
    *,
    block_hash: bytes,
    block_number: int,
    tx_hash: bytes,
    tx_index: int,
    log_index: int,
) -> dict[str, Any]:
    return {
        "address": addr(log.address),
        "topics": ["0x" + t.to_bytes(32, "big").hex() for t in log.topics],
        "data": data(log.data),
        "blockNumber": qty(block_number),
        "blockHash": data(block_hash),
        "transactionHash": data(tx_hash),
        "transactionIndex": qty(tx_index),
        "logIndex": qty(log_index),
        "removed": False,
    }


def receipt_json(
    *,
    tx: Any,
    sender: bytes,
    receipt: Any,
    gas_used: int,
    logs: list[dict[str, Any]],
    block_hash: bytes,
    block_number: int,
    index: int,
    gas_price: int,
    contract_address: bytes | None,
) -> dict[str, Any]:
    return {
        "type": qty(tx.type_id or 0),
        "status": "0x1" if receipt.state_root == b"\x01" else "0x0",
        "cumulativeGasUsed": qty(receipt.gas_used),
        "logs": logs,
        "logsBloom": data(receipt.bloom.to_bytes(256, "big")),
        "transactionHash": data(tx.hash),
        "transactionIndex": qty(index),
        "blockHash": data(block_hash),
        "blockNumber": qty(block_number),
        "gasUsed": qty(gas_used),
        "effectiveGasPrice": qty(gas_price),
        "from": addr(sender),
        "to": addr(tx.to) if tx.to else None,
        "contractAddress": addr(contract_address) if contract_address else None,
    }


_OPTIONAL_HEADER_FIELDS = (
    ("base_fee_per_gas", "baseFeePerGas", qty),
    ("withdrawals_root", "withdrawalsRoot", data),
    ("blob_gas_used", "blobGasUsed", qty),
    ("excess_blob_gas", "excessBlobGas", qty),
    ("parent_beacon_block_root", "parentBeaconBlockRoot", data),
    ("requests_hash", "requestsHash", data),
)


def header_json(
    header: Any, *, size: int | None, pending: bool = False
) -> dict[str, Any]:
    """A block without its ``transactions``; ``pending`` blanks what only sealing fixes."""
    out: dict[str, Any] = {
        "number": qty(header.block_number),
        "hash": None if pending else data(header.hash),
        "parentHash": data(header.parent_hash),
        "nonce": None
        if pending
        else (data(header.nonce) if header.nonce else _EMPTY_NONCE),
        "mixHash": data(header.mix_hash),
        "sha3Uncles": data(header.uncles_hash),
        "logsBloom": data(header.bloom.to_bytes(256, "big")),
        "transactionsRoot": data(header.transaction_root),
        "stateRoot": data(header.state_root),
        "receiptsRoot": data(header.receipt_root),
        "miner": addr(header.coinbase),
        "difficulty": qty(header.difficulty),
        "totalDifficulty": "0x0",
        "extraData": data(header.extra_data),
        "size": qty(size) if size is not None else None,
        "gasLimit": qty(header.gas_limit),
        "gasUsed": qty(header.gas_used),
        "timestamp": qty(header.timestamp),
        "uncles": [],
    }
    for attr, key, conv in _OPTIONAL_HEADER_FIELDS:
        value = getattr(header, attr, None)
        if value is not None:
            out[key] = conv(value)
    if hasattr(header, "withdrawals_root"):
        out["withdrawals"] = []
    return out
