"""Thousands of connections through toxics leave no socket behind, and bad input never stops the server."""

from __future__ import annotations

import socket
import struct
import time

import pytest
import requests
from proxyfixtures import EchoServer, RpcServer, connect, open_fds

from harness.netutil import free_port
from harness.proxy.control import ProxyControl

_BODY = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}'
_HTTP = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(_BODY), _BODY)


def _use(listen: str, payload: bytes, mode: int) -> None:
    try:
        s = connect(listen, timeout=2)
    except OSError:
        return
    try:
        s.sendall(payload)
        if mode == 0:
            s.recv(1024)
        elif mode == 1:  # vanish with a RST, data maybe still in flight
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    finally:
        s.close()


def _wait_for_fds(target: int, timeout: float = 15.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        n = open_fds()
        if n <= target or time.monotonic() > deadline:
            return n
        time.sleep(0.1)


@pytest.mark.slow
def test_no_fd_leak_through_toxics(control: ProxyControl, echo: EchoServer, rpc_server: RpcServer) -> None:
    setups = {
        "plain": [],
        "slow": [("latency", {"latency": 2}), ("slicer", {"average_size": 3, "size_variation": 1, "delay": 10})],
        "reset": [("reset_peer", {"timeout": 0})],
        "timeout": [("timeout", {"timeout": 20})],
        "limit": [("limit_data", {"bytes": 3})],
        "bw": [("bandwidth", {"rate": 50}), ("slow_close", {"delay": 5})],
    }
    listens = {}
    for name, toxics in setups.items():
        ep = control.create(name, echo.addr)
        listens[name] = f"{ep.host}:{ep.port}"
        for ttype, attrs in toxics:
            control.add_toxic(name, ttype, attributes=attrs)
            control.add_toxic(name, ttype, stream="upstream", attributes=attrs)
    ep = control.create("rpc", rpc_server.addr)
    control.add_toxic("rpc", "rpc_error", toxicity=0.5)
    listens["rpc"] = f"{ep.host}:{ep.port}"
    ep = control.create("refused", f"127.0.0.1:{free_port()}")
    listens["refused"] = f"{ep.host}:{ep.port}"

    _use(listens["plain"], b"warm-up", 0)
    before = _wait_for_fds(open_fds())
    count = 0
    for round_ in range(45):
        for name, listen in listens.items():
            payload = _HTTP if name == "rpc" else b"hello through the toxics"
            for k in range(8):
                _use(listen, payload, (round_ + k) % 3)
                count += 1
    assert count > 2500
    after = _wait_for_fds(before)
    assert after <= before, f"{after - before} file descriptors left open after {count} connections"
    assert requests.get(control.api_url + "/version", timeout=5).status_code == 200
