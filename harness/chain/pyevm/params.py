"""Reading JSON-RPC params: hex quantities, addresses, hashes, block tags, call and filter objects.

Every bad value becomes a -32602 error that names the argument and says what was expected, in
geth's wording where geth has one ("invalid argument 0: hex string without 0x prefix").
"""

from __future__ import annotations

from typing import Any

from harness.errors import RpcError

from .node import BlockRef, CallArgs, LogFilter

__all__ = ["INVALID_PARAMS", "Params"]

INVALID_PARAMS = -32602
_TAGS = frozenset({"latest", "earliest", "pending", "safe", "finalized"})
_UNSET = object()


class _Bad(Exception):
    """A value that is not what the argument needs; the caller adds the argument index."""


def _hex_body(value: Any) -> str:
    if not isinstance(value, str):
        raise _Bad(
            f"expected a 0x-prefixed hex string, got {type(value).__name__} {value!r}"
        )
    if not value.startswith(("0x", "0X")):
        raise _Bad("hex string without 0x prefix")
    return value[2:]


def quantity(value: Any) -> int:
    """A non-negative integer as hex string (numbers are accepted too, as anvil does)."""
    if isinstance(value, bool):
        raise _Bad(f"expected a hex quantity, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise _Bad(f"quantity must not be negative, got {value}")
        return value
    body = _hex_body(value)
    if not body:
        raise _Bad('hex string "0x"')
    try:
        return int(body, 16)
    except ValueError:
        raise _Bad(f"invalid hex string {value!r}") from None


def number_or_quantity(value: Any) -> float:
    """Seconds given as a JSON number (int or float) or a hex quantity."""
    if isinstance(value, bool):
        raise _Bad(f"expected a number of seconds, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise _Bad(f"seconds must not be negative, got {value}")
        return value
    return quantity(value)


def data(value: Any) -> bytes:
    body = _hex_body(value)
    if len(body) % 2:
        raise _Bad("hex string of odd length")
    try:
        return bytes.fromhex(body)
    except ValueError:
        raise _Bad(f"invalid hex string {value!r}") from None


def fixed(value: Any, size: int, what: str) -> bytes:
    raw = data(value)
    if len(raw) != size:
        raise _Bad(f"hex string has length {len(raw) * 2}, want {size * 2} for {what}")
    return raw


def address(value: Any) -> bytes:
    return fixed(value, 20, "common.Address")


def hash32(value: Any) -> bytes:
    return fixed(value, 32, "common.Hash")


def block_ref(value: Any) -> BlockRef:
    """A tag, a number, or an EIP-1898 object ({"blockHash": ...} or {"blockNumber": ...})."""
    if isinstance(value, str) and value in _TAGS:
        return value
    if isinstance(value, dict):
        if "blockHash" in value:
            return hash32(value["blockHash"])
        if "blockNumber" in value:
            return block_ref(value["blockNumber"])
        raise _Bad("block object needs blockHash or blockNumber")
    try:
        return quantity(value)
    except _Bad:
        raise _Bad(
            f"expected a block number (hex) or one of {', '.join(sorted(_TAGS))}, got {value!r}"
        ) from None


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Bad(f"expected true or false, got {value!r}")
    return value


def _opt(obj: dict[str, Any], key: str, conv: Any) -> Any:
    value = obj.get(key)
    if value is None:
        return None
    try:
        return conv(value)
    except _Bad as exc:
        raise _Bad(f"field {key}: {exc}") from None


def access_list(value: Any) -> tuple[tuple[bytes, tuple[int, ...]], ...]:
    if not isinstance(value, list):
        raise _Bad("accessList must be a list of {address, storageKeys}")
    out = []
    for item in value:
        if not isinstance(item, dict):
            raise _Bad("accessList entries must be objects {address, storageKeys}")
        keys = tuple(
            int.from_bytes(hash32(k), "big") for k in item.get("storageKeys") or []
        )
        out.append((address(item.get("address")), keys))
    return tuple(out)


def call_args(value: Any) -> CallArgs:
    if not isinstance(value, dict):
        raise _Bad(f"expected a transaction object, got {value!r}")
    input_data = _opt(value, "input", data)
    plain_data = _opt(value, "data", data)
    if input_data is not None and plain_data is not None and input_data != plain_data:
        raise _Bad(
            'both "data" and "input" are set and not equal. Please use "input" to pass transaction call data'
        )
    return CallArgs(
        sender=_opt(value, "from", address),
        to=_opt(value, "to", address),
        gas=_opt(value, "gas", quantity),
        gas_price=_opt(value, "gasPrice", quantity),
        max_fee=_opt(value, "maxFeePerGas", quantity),
        max_tip=_opt(value, "maxPriorityFeePerGas", quantity),
        value=_opt(value, "value", quantity) or 0,
        data=input_data if input_data is not None else (plain_data or b""),
        nonce=_opt(value, "nonce", quantity),
        access_list=_opt(value, "accessList", access_list),
        tx_type=_opt(value, "type", quantity),
    )


def _topics(value: Any) -> tuple[frozenset[bytes] | None, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _Bad("topics must be a list")
    out: list[frozenset[bytes] | None] = []
    for position in value:
        if position is None:
            out.append(None)
        elif isinstance(position, list):
            out.append(
                None
                if not position
                else frozenset(hash32(t) for t in position if t is not None)
            )
        else:
            out.append(frozenset({hash32(position)}))
    return tuple(out)


def log_filter(value: Any) -> LogFilter:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise _Bad(f"expected a filter object, got {value!r}")
    block_hash = _opt(value, "blockHash", hash32)
    if block_hash is not None and (
        value.get("fromBlock") is not None or value.get("toBlock") is not None
    ):
        raise _Bad(
            "cannot specify both BlockHash and FromBlock/ToBlock, choose one or the other"
        )
    raw_addr = value.get("address")
    if raw_addr is None:
        addresses = None
    elif isinstance(raw_addr, list):
        addresses = frozenset(address(a) for a in raw_addr) if raw_addr else None
    else:
        addresses = frozenset({address(raw_addr)})
    from_block = _opt(value, "fromBlock", block_ref)
    to_block = _opt(value, "toBlock", block_ref)
    return LogFilter(
        from_block="latest" if from_block is None else from_block,
        to_block="latest" if to_block is None else to_block,
        block_hash=block_hash,
        addresses=addresses,
        topics=_topics(value.get("topics")),
    )


class Params:
    """Positional params of one request; each accessor checks one argument."""

    def __init__(self, values: list[Any], most: int) -> None:
        if len(values) > most:
            raise RpcError(INVALID_PARAMS, f"too many arguments, want at most {most}")
        self._values = values

    def get(self, index: int, conv: Any, default: Any = _UNSET) -> Any:
        if index >= len(self._values) or self._values[index] is None:
            if default is _UNSET:
                raise RpcError(
                    INVALID_PARAMS, f"missing value for required argument {index}"
                )
            return default
        try:
            return conv(self._values[index])
        except _Bad as exc:
            raise RpcError(INVALID_PARAMS, f"invalid argument {index}: {exc}") from None

    def raw(self, index: int, default: Any = None) -> Any:
        return self._values[index] if index < len(self._values) else default

    def __len__(self) -> int:
        return len(self._values)
