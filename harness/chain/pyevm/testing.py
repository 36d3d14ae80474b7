"""Helpers for tests against a JSON-RPC node: a raw client that keeps errors as data, and tiny
hand-assembled contracts (no compiler needed) for logs, reverts and storage."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests

__all__ = [
    "LOGGER_CODE",
    "REVERTER_CODE",
    "STORE_CODE",
    "RawRpc",
    "RpcAnswerError",
    "Served",
    "initcode",
    "revert_payload",
    "serving",
]


class RpcAnswerError(AssertionError):
    """The node answered with an error where a result was expected (or the other way round)."""


@dataclass
class RawRpc:
    """JSON-RPC over a requests session, returning the node's exact answer objects."""

    url: str

    def __post_init__(self) -> None:
        self.session = requests.Session()
        self._ids = itertools.count(1)

    def close(self) -> None:
        self.session.close()

    def request(self, method: str, *params: Any) -> dict[str, Any]:
        body = {
            "jsonrpc": "2.0",
            "id": next(self._ids),
            "method": method,
            "params": list(params),
        }
        response = self.session.post(self.url, json=body, timeout=60)
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    def __call__(self, method: str, *params: Any) -> Any:
        """The result; RpcAnswerError (with the node's error) if there is none."""
        answer = self.request(method, *params)
        if "error" in answer:
            raise RpcAnswerError(f"{method} failed: {answer['error']}")
        return answer["result"]

    def error(self, method: str, *params: Any) -> dict[str, Any]:
        """The error object; RpcAnswerError if the call succeeded."""
        answer = self.request(method, *params)
        if "error" not in answer:
            raise RpcAnswerError(
                f"{method} succeeded with {answer.get('result')!r}, expected an error"
            )
        error: dict[str, Any] = answer["error"]
        return error

    def post_raw(self, body: bytes | str) -> requests.Response:
        return self.session.post(
            self.url,
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=60,
        )


def initcode(runtime: bytes) -> bytes:
    """Creation code that returns ``runtime`` (CODECOPY the tail, RETURN it)."""
    n = len(runtime)
    assert n < 256
    prefix = bytes([0x60, n, 0x60, 12, 0x60, 0, 0x39, 0x60, n, 0x60, 0, 0xF3])
    return prefix + runtime


# LOG2(data = calldata[32:64], topic0 = calldata[0:32], topic1 = caller); STOP
LOGGER_CODE = bytes.fromhex("6020356000523360003560206000a200")

# SSTORE(slot 0, calldata[0:32]); STOP
STORE_CODE = bytes.fromhex("60003560005500")


def revert_payload(reason: str) -> bytes:
    """ABI encoding of Error(string) with ``reason``."""
    text = reason.encode()
    assert len(text) <= 32
    return (
        bytes.fromhex("08c379a0")
        + (32).to_bytes(32, "big")
        + len(text).to_bytes(32, "big")
        + text.ljust(32, b"\x00")
    )


def _reverter(reason: str) -> bytes:
    payload = revert_payload(reason)
    n = len(payload)
    # PUSH1 n PUSH1 off PUSH1 0 CODECOPY PUSH1 n PUSH1 0 REVERT, then the payload
    head = bytes([0x60, n, 0x60, 12, 0x60, 0, 0x39, 0x60, n, 0x60, 0, 0xFD])
    return head + payload


# Always reverts with Error("nope").
REVERTER_CODE = _reverter("nope")


@dataclass
class Served:
    server: Any  # PyEvmServer
    url: str
    rpc: RawRpc


@contextmanager
def serving(**server_kwargs: Any) -> Iterator[Served]:
    """A started PyEvmServer and a raw client on it, both closed on exit."""
    from .server import PyEvmServer

    server = PyEvmServer(**server_kwargs)
    url = server.start()
    rpc = RawRpc(url)
    try:
        yield Served(server=server, url=url, rpc=rpc)
    finally:
        rpc.close()
        server.stop()
