"""JSON-RPC 2.0 over the embedded node: method table, batches, and error objects as geth shapes them.

No Python traceback ever reaches a client: node errors carry their JSON-RPC code and message
(``RpcError``), bad params are -32602, unknown methods -32601, unparsable bodies -32700, and
anything unexpected is logged here and answered as -32603 with the exception's one-line summary.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable
from typing import Any

from eth_hash.auto import keccak
from eth_utils import to_checksum_address

from harness.errors import RpcError

from . import encode as enc
from . import params as P
from .node import PyEvmNode
from .params import Params

__all__ = ["CLIENT_VERSION", "RpcDispatcher"]

log = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
MAX_BLOCKS_PER_CALL = 10_000


def _client_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        evm = version("py-evm")
    except PackageNotFoundError:  # running from a source tree without metadata
        evm = "unknown"
    return f"agent-drills-pyevm/v0.1.0/py-evm-{evm}"


CLIENT_VERSION = _client_version()

Handler = Callable[[Params], Any]


def _error(req_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": req_id, "error": err}


class RpcDispatcher:
    """Turns request bodies into response bodies for one node. Not thread-safe (neither is the node)."""

    def __init__(self, node: PyEvmNode) -> None:
        self.node = node
        self._methods: dict[str, tuple[Handler, int]] = {}
        self._register()

    @property
    def methods(self) -> list[str]:
        return sorted(self._methods)

    # ------------------------------------------------------------------ entry points
    def handle_body(self, body: bytes) -> bytes:
        """One HTTP body in, one HTTP body out (empty when it held only notifications)."""
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return json.dumps(_error(None, PARSE_ERROR, "parse error")).encode()
        if isinstance(payload, list):
            if not payload:
                return json.dumps(_error(None, INVALID_REQUEST, "empty batch")).encode()
            answers = []
            for request in payload:
                answer = self.handle(request)
                # later requests of a batch must see the blocks earlier ones caused
                self.node.flush_automine()
                if answer is not None:
                    answers.append(answer)
            return json.dumps(answers).encode() if answers else b""
        answer = self.handle(payload)
        return json.dumps(answer).encode() if answer is not None else b""

    def handle(self, request: Any) -> dict[str, Any] | None:
        """One request object in, one response object out (None for a notification)."""
        if not isinstance(request, dict):
            return _error(None, INVALID_REQUEST, "invalid request")
        req_id = request.get("id")
        method = request.get("method")
        if not isinstance(method, str):
            return _error(req_id, INVALID_REQUEST, "invalid request")
        result = self.call(method, request.get("params"), req_id)
        return result if "id" in request else None

    def call(self, method: str, params: Any, req_id: Any = None) -> dict[str, Any]:
        entry = self._methods.get(method)
        if entry is None:
            return _error(
                req_id,
                METHOD_NOT_FOUND,
                f"the method {method} does not exist/is not available",
            )
        if params is None:
            params = []
        if not isinstance(params, list):
            return _error(req_id, INVALID_PARAMS, "non-array args")
        handler, most = entry
        try:
            result = handler(Params(params, most))
        except RpcError as exc:
            return _error(req_id, exc.code, exc.message, exc.data)
        except (
            Exception
        ) as exc:  # a bug in the node; the client gets a summary, the log the trace
            log.exception("pyevm node failed on %s", method)
            return _error(
                req_id, INTERNAL_ERROR, f"internal error: {type(exc).__name__}: {exc}"
            )
        return {"jsonrpc": "2.0", "id": req_id, "result": result}

    # ------------------------------------------------------------------ the method table
    def _add(self, handler: Handler, most: int, *names: str) -> None:
        for name in names:
            self._methods[name] = (handler, most)

    def _register(self) -> None:
        n = self.node
        add = self._add
        # identity and status
        add(lambda p: CLIENT_VERSION, 0, "web3_clientVersion")
        add(lambda p: enc.data(keccak(p.get(0, P.data))), 1, "web3_sha3")
        add(lambda p: str(n.chain_id), 0, "net_version")
        add(lambda p: True, 0, "net_listening")
        add(lambda p: "0x0", 0, "net_peerCount")
        add(lambda p: enc.qty(n.chain_id), 0, "eth_chainId")
        add(lambda p: enc.qty(n.head_number), 0, "eth_blockNumber")
        add(lambda p: False, 0, "eth_syncing")
        add(lambda p: n.automine or n.interval is not None, 0, "eth_mining")
        add(lambda p: "0x0", 0, "eth_hashrate")
        add(lambda p: enc.addr(enc.ZERO_ADDRESS), 0, "eth_coinbase")
        add(lambda p: [enc.addr(a) for a in n.accounts], 0, "eth_accounts")
        # fees
        add(lambda p: enc.qty(n.gas_price()), 0, "eth_gasPrice")
        add(lambda p: enc.qty(n.suggested_tip()), 0, "eth_maxPriorityFeePerGas")
        add(lambda p: "0x1", 0, "eth_blobBaseFee")
        add(self._fee_history, 3, "eth_feeHistory")
        # state
        add(
            lambda p: enc.qty(
                n.balance(p.get(0, P.address), p.get(1, P.block_ref, "latest"))
            ),
            2,
            "eth_getBalance",
        )
        add(
            lambda p: enc.qty(
                n.transaction_count(
                    p.get(0, P.address), p.get(1, P.block_ref, "latest")
                )
            ),
            2,
            "eth_getTransactionCount",
        )
        add(
            lambda p: enc.data(
                n.code(p.get(0, P.address), p.get(1, P.block_ref, "latest"))
            ),
            2,
            "eth_getCode",
        )
        add(self._storage_at, 3, "eth_getStorageAt")
        # blocks
        add(
            lambda p: n.block(p.get(0, P.block_ref), p.get(1, P.boolean, False)),
            2,
            "eth_getBlockByNumber",
        )
        add(
            lambda p: n.block(p.get(0, P.hash32), p.get(1, P.boolean, False)),
            2,
            "eth_getBlockByHash",
        )
        add(
            self._tx_count_in_block(P.block_ref),
            1,
            "eth_getBlockTransactionCountByNumber",
        )
        add(self._tx_count_in_block(P.hash32), 1, "eth_getBlockTransactionCountByHash")
        add(
            lambda p: "0x0",
            1,
            "eth_getUncleCountByBlockNumber",
            "eth_getUncleCountByBlockHash",
        )
        add(
            lambda p: n.block_receipts(p.get(0, P.block_ref)), 1, "eth_getBlockReceipts"
        )
        # transactions
        add(lambda p: n.transaction(p.get(0, P.hash32)), 1, "eth_getTransactionByHash")
        add(
            self._tx_by_index(P.block_ref), 2, "eth_getTransactionByBlockNumberAndIndex"
        )
        add(self._tx_by_index(P.hash32), 2, "eth_getTransactionByBlockHashAndIndex")
        add(lambda p: n.receipt(p.get(0, P.hash32)), 1, "eth_getTransactionReceipt")
        add(
            lambda p: enc.data(n.send_raw_transaction(p.get(0, P.data))),
            1,
            "eth_sendRawTransaction",
        )
        add(
            lambda p: enc.data(n.send_transaction(p.get(0, P.call_args))),
            1,
            "eth_sendTransaction",
        )
        add(self._call, 3, "eth_call")
        add(self._estimate, 3, "eth_estimateGas")
        # logs and filters
        add(lambda p: n.logs(p.get(0, P.log_filter)), 1, "eth_getLogs")
        add(
            lambda p: n.new_filter(
                "logs", p.get(0, P.log_filter, None) or P.log_filter({})
            ),
            1,
            "eth_newFilter",
        )
        add(lambda p: n.new_filter("blocks"), 0, "eth_newBlockFilter")
        add(lambda p: n.new_filter("pending"), 1, "eth_newPendingTransactionFilter")
        add(lambda p: n.filter_changes(p.get(0, _filter_id)), 1, "eth_getFilterChanges")
        add(lambda p: n.filter_logs(p.get(0, _filter_id)), 1, "eth_getFilterLogs")
        add(
            lambda p: n.uninstall_filter(p.get(0, _filter_id)), 1, "eth_uninstallFilter"
        )
        # the pool
        add(self._txpool_content, 0, "txpool_content")
        add(self._txpool_status, 0, "txpool_status")
        add(self._txpool_inspect, 0, "txpool_inspect")
        # mining
        add(self._evm_mine, 1, "evm_mine")
        add(self._anvil_mine, 2, "anvil_mine", "hardhat_mine")
        add(self._set_automine, 1, "evm_setAutomine", "anvil_setAutomine")
        add(lambda p: n.automine, 0, "anvil_getAutomine", "hardhat_getAutomine")
        add(self._set_interval, 1, "evm_setIntervalMining", "anvil_setIntervalMining")
        add(lambda p: _seconds(n.interval), 0, "anvil_getIntervalMining")
        # cheats
        add(
            self._set_base_fee,
            1,
            "anvil_setNextBlockBaseFeePerGas",
            "hardhat_setNextBlockBaseFeePerGas",
        )
        add(self._set_gas_limit, 1, "evm_setBlockGasLimit", "anvil_setBlockGasLimit")
        add(self._drop, 1, "anvil_dropTransaction", "hardhat_dropTransaction")
        add(self._drop_all, 0, "anvil_dropAllTransactions")
        add(
            self._set(lambda a, v: n.set_balance(a, v), P.quantity),
            2,
            "anvil_setBalance",
            "hardhat_setBalance",
        )
        add(
            self._set(lambda a, v: n.set_nonce(a, v), P.quantity),
            2,
            "anvil_setNonce",
            "hardhat_setNonce",
        )
        add(
            self._set(lambda a, v: n.set_code(a, v), P.data),
            2,
            "anvil_setCode",
            "hardhat_setCode",
        )
        add(self._set_storage, 3, "anvil_setStorageAt", "hardhat_setStorageAt")
        add(lambda p: enc.qty(n.snapshot()), 0, "evm_snapshot", "anvil_snapshot")
        add(lambda p: n.revert(p.get(0, P.quantity)), 1, "evm_revert", "anvil_revert")
        add(
            lambda p: n.increase_time(int(p.get(0, P.number_or_quantity))),
            1,
            "evm_increaseTime",
            "anvil_increaseTime",
        )
        add(
            self._set_next_timestamp,
            1,
            "evm_setNextBlockTimestamp",
            "anvil_setNextBlockTimestamp",
        )
        add(self._reorg, 2, "anvil_reorg")
        add(self._node_info, 0, "anvil_nodeInfo")

    # ------------------------------------------------------------------ handlers with some logic
    def _fee_history(self, p: Params) -> Any:
        count = p.get(0, P.quantity)
        if not 1 <= count <= 1024:
            raise RpcError(
                INVALID_PARAMS,
                f"invalid argument 0: block count must be between 1 and 1024, got {count}",
            )
        newest = p.get(1, P.block_ref)
        percentiles = p.get(2, _percentiles, None)
        return self.node.fee_history(count, newest, percentiles)

    def _storage_at(self, p: Params) -> str:
        slot = p.get(1, P.quantity)
        value = self.node.storage(
            p.get(0, P.address), slot, p.get(2, P.block_ref, "latest")
        )
        return "0x" + value.to_bytes(32, "big").hex()

    def _tx_count_in_block(self, conv: Any) -> Handler:
        def handler(p: Params) -> Any:
            block = self.node.block(p.get(0, conv), False)
            return None if block is None else enc.qty(len(block["transactions"]))

        return handler

    def _tx_by_index(self, conv: Any) -> Handler:
        def handler(p: Params) -> Any:
            block = self.node.block(p.get(0, conv), True)
            index = p.get(1, P.quantity)
            if block is None or index >= len(block["transactions"]):
                return None
            return block["transactions"][index]

        return handler

    def _call(self, p: Params) -> str:
        args = p.get(0, P.call_args)
        ref = p.get(1, P.block_ref, "latest")
        if p.raw(2):
            raise RpcError(
                INVALID_PARAMS,
                "invalid argument 2: state overrides are not supported by the embedded pyevm node",
            )
        return enc.data(self.node.call(args, ref))

    def _estimate(self, p: Params) -> str:
        args = p.get(0, P.call_args)
        ref = p.get(1, P.block_ref, "latest")
        if p.raw(2):
            raise RpcError(
                INVALID_PARAMS,
                "invalid argument 2: state overrides are not supported by the embedded pyevm node",
            )
        return enc.qty(self.node.estimate_gas(args, ref))

    def _pool_map(self, render: Callable[[Any], Any]) -> dict[str, Any]:
        pending, queued = self.node.pool_content()
        return {
            name: {
                to_checksum_address(sender): {
                    str(ptx.nonce): render(ptx) for ptx in txs
                }
                for sender, txs in group.items()
            }
            for name, group in (("pending", pending), ("queued", queued))
        }

    def _txpool_content(self, p: Params) -> Any:
        return self._pool_map(self.node.pool_tx_json)

    def _txpool_inspect(self, p: Params) -> Any:
        def summary(ptx: Any) -> str:
            tx = ptx.tx
            where = to_checksum_address(tx.to) if tx.to else "contract creation"
            return f"{where}: {tx.value} wei + {tx.gas} gas × {ptx.fee_cap} wei"

        return self._pool_map(summary)

    def _txpool_status(self, p: Params) -> Any:
        pending, queued = self.node.pool_content()
        return {
            "pending": enc.qty(sum(len(v) for v in pending.values())),
            "queued": enc.qty(sum(len(v) for v in queued.values())),
        }

    def _evm_mine(self, p: Params) -> str:
        option = p.raw(0)
        if isinstance(option, dict):  # {"timestamp": T, "blocks": N}
            blocks = _arg(option.get("blocks"), P.quantity, 1)
            timestamp = _arg(option.get("timestamp"), P.number_or_quantity, None)
        else:
            blocks, timestamp = 1, p.get(0, P.number_or_quantity, None)
        _check_block_count(blocks)
        if timestamp is not None:
            self.node.set_next_timestamp(int(timestamp))
        self.node.mine(blocks)
        return "0x0"

    def _anvil_mine(self, p: Params) -> None:
        count = p.get(0, P.quantity, 1)
        interval = p.get(1, P.quantity, None)
        _check_block_count(count)
        self.node.mine(count, interval)

    def _set_automine(self, p: Params) -> None:
        self.node.set_automine(p.get(0, P.boolean))

    def _set_interval(self, p: Params) -> None:
        self.node.set_interval_mining(float(p.get(0, P.number_or_quantity)))

    def _set_base_fee(self, p: Params) -> None:
        self.node.set_next_base_fee(p.get(0, P.quantity))

    def _set_gas_limit(self, p: Params) -> bool:
        self.node.set_block_gas_limit(p.get(0, P.quantity))
        return True

    def _drop(self, p: Params) -> str | None:
        tx_hash = p.get(0, P.hash32)
        return enc.data(tx_hash) if self.node.drop_transaction(tx_hash) else None

    def _drop_all(self, p: Params) -> None:
        self.node.drop_all_transactions()

    def _set(self, setter: Callable[[bytes, Any], None], conv: Any) -> Handler:
        def handler(p: Params) -> None:
            setter(p.get(0, P.address), p.get(1, conv))

        return handler

    def _set_storage(self, p: Params) -> bool:
        value = int.from_bytes(p.get(2, P.data), "big")
        self.node.set_storage(p.get(0, P.address), p.get(1, P.quantity), value)
        return True

    def _set_next_timestamp(self, p: Params) -> None:
        self.node.set_next_timestamp(int(p.get(0, P.number_or_quantity)))

    def _reorg(self, p: Params) -> None:
        first = p.raw(0)
        if isinstance(first, dict):  # {"depth": N, "txBlockPairs": [[tx, offset], ...]}
            depth = P.quantity(first.get("depth"))
            pairs = first.get("txBlockPairs") or []
        else:
            depth = p.get(0, P.quantity)
            pairs = p.raw(1) or []
        if not isinstance(pairs, list):
            raise RpcError(
                INVALID_PARAMS,
                "invalid argument 1: expected a list of [rawTransaction, blockOffset] pairs",
            )
        txs = []
        for pair in pairs:
            if not (
                isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)
            ):
                raise RpcError(
                    INVALID_PARAMS,
                    "invalid argument 1: each entry must be [signed raw transaction hex, block offset]; "
                    "transaction objects are not supported by the embedded pyevm node",
                )
            txs.append((_arg(pair[0], P.data, None), _arg(pair[1], P.quantity, None)))
        self.node.reorg(depth, txs)

    def _node_info(self, p: Params) -> dict[str, Any]:
        n = self.node
        head = n.block("latest", False)
        assert head is not None
        return {
            "currentBlockNumber": enc.qty(n.head_number),
            "currentBlockTimestamp": int(head["timestamp"], 16),
            "currentBlockHash": head["hash"],
            "hardFork": n.vm_class.fork,
            "transactionOrder": "fees",
            "environment": {
                "baseFee": enc.qty(n.pending_base_fee()),
                "chainId": n.chain_id,
                "gasLimit": enc.qty(n.pending_gas_limit()),
                "gasPrice": enc.qty(n.gas_price()),
            },
            "forkConfig": {},
        }


def _check_block_count(count: int) -> None:
    if count > MAX_BLOCKS_PER_CALL:
        raise RpcError(
            INVALID_PARAMS,
            f"invalid argument 0: the embedded node mines at most {MAX_BLOCKS_PER_CALL} blocks per call "
            f"(a few ms each, and it serves nothing meanwhile), not {count}; call it again",
        )


def _seconds(value: float | None) -> float | int | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value


def _arg(value: Any, conv: Any, default: Any) -> Any:
    return Params([value], 1).get(0, conv, default)


def _filter_id(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise P._Bad(f"expected a filter id (0x-prefixed hex), got {value!r}")
    return value


def _percentiles(value: Any) -> list[float]:
    if not isinstance(value, list) or not all(
        isinstance(x, (int, float)) and not isinstance(x, bool) for x in value
    ):
        raise P._Bad("reward percentiles must be a list of numbers")
    for prev, cur in itertools.pairwise(value):
        if cur < prev:
            raise P._Bad(f"reward percentiles must be ascending, got {value}")
    if value and not (0 <= value[0] and value[-1] <= 100):
        raise P._Bad(f"reward percentiles must be between 0 and 100, got {value}")
    return [float(x) for x in value]
