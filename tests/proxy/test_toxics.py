"""Each standard toxic's behaviour, through real sockets and a real echo server."""

from __future__ import annotations

import errno
import socket
import statistics
import time

import pytest
from proxyfixtures import EchoServer, connect, recv_exactly

from harness.proxy.control import ProxyControl


def _rtt(s: socket.socket, payload: bytes = b"0123456789") -> float:
    t0 = time.perf_counter()
    s.sendall(payload)
    assert recv_exactly(s, len(payload)) == payload
    return time.perf_counter() - t0


def _median_rtt_ms(listen: str, n: int = 100) -> float:
    s = connect(listen)
    try:
        return statistics.median(_rtt(s) for _ in range(n)) * 1000
    finally:
        s.close()


@pytest.mark.parametrize(("up", "down"), [(0, 40), (40, 0), (25, 25)])
def test_latency_holds_per_direction(control: ProxyControl, echo: EchoServer, up: int, down: int) -> None:
    ep = control.create("lat", echo.addr)
    listen = f"{ep.host}:{ep.port}"
    base = _median_rtt_ms(listen)
    if up:
        control.add_toxic("lat", "latency", stream="upstream", attributes={"latency": up})
    if down:
        control.add_toxic("lat", "latency", stream="downstream", attributes={"latency": down})
    added = _median_rtt_ms(listen) - base
    assert abs(added - (up + down)) <= 5 * (bool(up) + bool(down)), f"added {added:.1f} ms, want {up + down}"


def test_latency_jitter_stays_in_band(control: ProxyControl, echo: EchoServer) -> None:
    ep = control.create("jit", echo.addr)
    control.add_toxic("jit", "latency", attributes={"latency": 30, "jitter": 10})
    s = connect(f"{ep.host}:{ep.port}")
    samples = [_rtt(s) * 1000 for _ in range(40)]
    s.close()
    assert min(samples) >= 19 and statistics.median(samples) <= 45
    assert max(samples) - min(samples) > 4  # it does vary


def test_latency_does_not_limit_throughput(control: ProxyControl, echo: EchoServer) -> None:
    ep = control.create("pipe", echo.addr)
    control.add_toxic("pipe", "latency", attributes={"latency": 150})
    s = connect(f"{ep.host}:{ep.port}")
    t0 = time.perf_counter()
    for i in range(10):  # ten writes spaced out: each is delayed, none waits for the one before
        s.sendall(bytes([65 + i]) * 100)
        time.sleep(0.02)
    assert len(recv_exactly(s, 1000)) == 1000
    elapsed = time.perf_counter() - t0
    s.close()
    assert 0.3 < elapsed < 1.0, elapsed  # serialised it would take 1.5 s


def test_bandwidth_paces_to_rate(control: ProxyControl, echo: EchoServer) -> None:
    ep = control.create("bw", echo.addr)
    control.add_toxic("bw", "bandwidth", attributes={"rate": 100})  # 100 KB/s
    s = connect(f"{ep.host}:{ep.port}")
    t0 = time.perf_counter()
    s.sendall(b"b" * 50_000)
    assert len(recv_exactly(s, 50_000)) == 50_000
    elapsed = time.perf_counter() - t0
    s.close()
    assert 0.4 <= elapsed <= 1.5, elapsed


def test_slow_close_delays_the_close(control: ProxyControl, echo: EchoServer) -> None:
    ep = control.create("sc", echo.addr)
    control.add_toxic("sc", "slow_close", attributes={"delay": 300})
    s = connect(f"{ep.host}:{ep.port}")
    assert _rtt(s) < 0.2  # data passes
    t0 = time.perf_counter()
    s.shutdown(socket.SHUT_WR)
    assert s.recv(10) == b""
    assert time.perf_counter() - t0 >= 0.28
    s.close()


def test_timeout_drops_data_then_closes(control: ProxyControl, echo: EchoServer) -> None:
    ep = control.create("to", echo.addr)
    control.add_toxic("to", "timeout", attributes={"timeout": 200})
    s = connect(f"{ep.host}:{ep.port}")
    t0 = time.perf_counter()
    s.sendall(b"lost")
    assert s.recv(10) == b""  # nothing comes back, then the close
    assert 0.18 <= time.perf_counter() - t0 < 2
    s.close()


def test_timeout_zero_hangs_until_removed(control: ProxyControl, echo: EchoServer) -> None:
    ep = control.create("hang", echo.addr)
    name = control.add_toxic("hang", "timeout", attributes={"timeout": 0})
    s = connect(f"{ep.host}:{ep.port}")
    s.sendall(b"lost")
    s.settimeout(0.5)
    with pytest.raises(socket.timeout):
        s.recv(10)
    s.settimeout(5)
    control.remove_toxic("hang", name)  # removing a timeout toxic closes the connection
    assert s.recv(10) == b""
    s.close()
    s2 = connect(f"{ep.host}:{ep.port}")
    assert _rtt(s2) < 0.5  # new connections are fine again
    s2.close()


@pytest.mark.parametrize("wait_ms", [0, 200])
def test_reset_peer_gives_econnreset(control: ProxyControl, echo: EchoServer, wait_ms: int) -> None:
    ep = control.create("rst", echo.addr)
    control.add_toxic("rst", "reset_peer", attributes={"timeout": wait_ms})
    s = connect(f"{ep.host}:{ep.port}")
    t0 = time.perf_counter()
    s.sendall(b"hello")
    with pytest.raises(ConnectionResetError) as info:
        while s.recv(10):
            pass
    assert info.value.errno == errno.ECONNRESET
    assert time.perf_counter() - t0 >= wait_ms / 1000 - 0.02
    s.close()


def test_slicer_cuts_into_pieces(control: ProxyControl, echo: EchoServer) -> None:
    ep = control.create("sl", echo.addr)
    control.add_toxic("sl", "slicer", attributes={"average_size": 10, "size_variation": 3, "delay": 3000})
    s = connect(f"{ep.host}:{ep.port}")
    payload = bytes(range(256)) * 2
    s.sendall(payload)
    got, reads = b"", 0
    while len(got) < len(payload):
        part = s.recv(4096)
        assert part
        got += part
        reads += 1
    s.close()
    assert got == payload
    assert reads >= 10  # 512 bytes in ~10-byte pieces 3 ms apart arrive in many reads


def test_limit_data_closes_after_bytes(control: ProxyControl, echo: EchoServer) -> None:
    ep = control.create("lim", echo.addr)
    control.add_toxic("lim", "limit_data", attributes={"bytes": 10})
    s = connect(f"{ep.host}:{ep.port}")
    s.sendall(b"x" * 100)
    got = b""
    while True:
        part = s.recv(100)
        if not part:
            break
        got += part
    assert got == b"x" * 10
    s.close()


def test_upstream_toxics_act_on_client_data(control: ProxyControl, echo: EchoServer) -> None:
    ep = control.create("up", echo.addr)
    control.add_toxic("up", "limit_data", stream="upstream", attributes={"bytes": 4})
    s = connect(f"{ep.host}:{ep.port}")
    s.sendall(b"abcdefgh")
    s.settimeout(5)
    try:
        while s.recv(100):  # the proxy closes the whole connection after the fourth byte
            pass
    except ConnectionResetError:
        pass
    s.close()
    deadline = time.monotonic() + 3
    while len(echo.received) < 4 and time.monotonic() < deadline:  # the server thread may lag the close
        time.sleep(0.01)
    time.sleep(0.1)
    assert bytes(echo.received) == b"abcd"  # the server only ever saw four bytes


def test_noop_and_zero_toxicity_pass_data(control: ProxyControl, echo: EchoServer) -> None:
    ep = control.create("np", echo.addr)
    control.add_toxic("np", "noop")
    control.add_toxic("np", "timeout", toxicity=0.0, attributes={"timeout": 10})
    s = connect(f"{ep.host}:{ep.port}")
    for _ in range(5):
        assert _rtt(s) < 0.5
    s.close()


def test_toxicity_rolled_per_connection(control: ProxyControl, echo: EchoServer) -> None:
    ep = control.create("half", echo.addr)
    control.add_toxic("half", "latency", toxicity=0.5, attributes={"latency": 150})
    slow = fast = 0
    for _ in range(30):
        s = connect(f"{ep.host}:{ep.port}")
        first = _rtt(s)
        second = _rtt(s)
        s.close()
        assert (first > 0.075) == (second > 0.075)  # the roll holds for the whole connection
        slow += first > 0.075
        fast += first <= 0.075
    assert slow and fast


def test_changes_reach_open_connections(control: ProxyControl, echo: EchoServer) -> None:
    ep = control.create("live", echo.addr)
    s = connect(f"{ep.host}:{ep.port}")
    assert _rtt(s) < 0.1
    name = control.add_toxic("live", "latency", attributes={"latency": 120})
    assert _rtt(s) >= 0.11
    control.update_toxic("live", name, attributes={"latency": 0})
    assert _rtt(s) < 0.1
    control.update_toxic("live", name, attributes={"latency": 200})
    assert _rtt(s) >= 0.19
    control.remove_toxic("live", name)
    assert _rtt(s) < 0.1
    s.close()


def test_disabled_proxy_refuses_at_once_and_closes_open(control: ProxyControl, echo: EchoServer) -> None:
    ep = control.create("off", echo.addr)
    s = connect(f"{ep.host}:{ep.port}")
    assert _rtt(s) < 0.5
    control.set_enabled("off", False)
    s.settimeout(2)
    assert s.recv(10) == b""  # open connections are closed
    s.close()
    t0 = time.perf_counter()
    with pytest.raises(ConnectionRefusedError):
        connect(f"{ep.host}:{ep.port}", timeout=2)
    assert time.perf_counter() - t0 < 0.5
    control.set_enabled("off", True)
    s = connect(f"{ep.host}:{ep.port}")
    assert _rtt(s) < 0.5
    s.close()


def test_server_side_close_closes_client(control: ProxyControl, echo: EchoServer) -> None:
    ep = control.create("srvclose", echo.addr)
    s = connect(f"{ep.host}:{ep.port}")
    assert _rtt(s) < 0.5
    deadline = time.monotonic() + 2
    while not echo.conns and time.monotonic() < deadline:
        time.sleep(0.01)
    for c in list(echo.conns):
        c.shutdown(socket.SHUT_RDWR)
    s.settimeout(2)
    assert s.recv(10) == b""
    s.close()
