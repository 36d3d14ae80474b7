"""ProxyControl, EmbeddedProxy, proxy_api_from_env and the standalone server process."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests
from proxyfixtures import ROOT, EchoServer, connect, recv_exactly

from harness.errors import (
    ConfigError,
    EnvironmentProblem,
    HarnessError,
    PortInUseError,
    RemoteAddressError,
    UnknownScenarioError,
)
from harness.netutil import free_port
from harness.proxy import EmbeddedProxy, Endpoint, ProxyControl, proxy_api_from_env


def test_control_round_trip(control: ProxyControl, echo: EchoServer) -> None:
    ep = control.create("primary", echo.addr)
    assert isinstance(ep, Endpoint) and ep.host == "127.0.0.1" and ep.url == f"http://127.0.0.1:{ep.port}"
    with pytest.raises(dataclasses.FrozenInstanceError):
        ep.port = 1  # type: ignore[misc]
    assert control.endpoint("primary") == ep
    assert control.version() == "2.12.0"
    name = control.add_toxic("primary", "latency", attributes={"latency": 5})
    assert name == "latency_downstream"
    assert control.add_toxic("primary", "latency", stream="upstream", name="mine", toxicity=0.5) == "mine"
    updated = control.update_toxic("primary", "mine", attributes={"jitter": 2}, toxicity=1.0)
    assert updated["attributes"] == {"latency": 0, "jitter": 2} and updated["toxicity"] == 1
    assert [t["name"] for t in control.toxics("primary")] == ["mine", "latency_downstream"]
    control.remove_toxic("primary", "mine")
    control.set_enabled("primary", False)
    assert control.proxies()["primary"]["enabled"] is False
    control.reset()
    assert control.proxies()["primary"] == {"name": "primary", "listen": f"127.0.0.1:{ep.port}",
                                            "upstream": echo.addr, "enabled": True, "toxics": []}
    s = connect(f"127.0.0.1:{ep.port}")
    s.sendall(b"abc")
    assert recv_exactly(s, 3) == b"abc"
    s.close()
    assert "toxiproxy_proxy_received_bytes_total" in control.metrics_text()
    control.create("backup-1", echo.addr)
    control.delete("primary")
    assert list(control.proxies()) == ["backup-1"]
    control.delete_all()
    assert control.proxies() == {}


def test_control_errors_are_clear(control: ProxyControl, echo: EchoServer) -> None:
    control.create("p", echo.addr)
    with pytest.raises(ConfigError, match="proxy already exists"):
        control.create("p", echo.addr)
    with pytest.raises(UnknownScenarioError, match="toxic not found"):
        control.remove_toxic("p", "ghost")
    with pytest.raises(UnknownScenarioError, match="proxy not found"):
        control.set_enabled("ghost", True)
    with pytest.raises(ConfigError, match="average_size must be greater than 0"):
        control.add_toxic("p", "slicer")
    with pytest.raises(ConfigError, match="invalid toxic type"):
        control.add_toxic("p", "lag")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        with pytest.raises(PortInUseError, match="address already in use"):
            control.create("q", echo.addr, listen=f"127.0.0.1:{busy.getsockname()[1]}")
    finally:
        busy.close()
    with pytest.raises(RemoteAddressError):
        control.create("r", "10.1.2.3:8545")
    with pytest.raises(RemoteAddressError):
        ProxyControl("http://192.0.2.1:8474")
    with pytest.raises(EnvironmentProblem, match="did not answer"):
        ProxyControl(f"http://127.0.0.1:{free_port()}", timeout=2).proxies()


def test_embedded_proxy_stop_closes_everything(echo: EchoServer) -> None:
    proxy = EmbeddedProxy()
    url = proxy.start()
    with pytest.raises(HarnessError):
        proxy.start()
    control = ProxyControl(url)
    ep = control.create("p", echo.addr)
    s = connect(f"127.0.0.1:{ep.port}")
    s.sendall(b"x")
    assert recv_exactly(s, 1) == b"x"
    proxy.stop()
    s.settimeout(5)
    assert s.recv(1) == b""  # the open connection was closed
    s.close()
    for port in (ep.port, int(url.rsplit(":", 1)[1])):
        with pytest.raises(ConnectionRefusedError):
            connect(f"127.0.0.1:{port}", timeout=1)
    assert [t for t in threading.enumerate() if t.name == "fault-proxy"] == []  # its thread was joined
    proxy.stop()  # idempotent


def test_embedded_proxy_port_in_use_and_config(tmp_path: Path, echo: EchoServer) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        with pytest.raises(PortInUseError, match="already in use"):
            EmbeddedProxy(port=busy.getsockname()[1]).start()
    finally:
        busy.close()
    with pytest.raises(RemoteAddressError):
        EmbeddedProxy(host="0.0.0.0").start()
    cfg = tmp_path / "proxies.json"
    cfg.write_text(json.dumps([{"name": "from-file", "upstream": echo.addr}]))
    with EmbeddedProxy(config=str(cfg)) as proxy:
        assert proxy.url is not None
        assert list(ProxyControl(proxy.url).proxies()) == ["from-file"]


def test_proxy_api_from_env(echo: EchoServer) -> None:
    with proxy_api_from_env({}) as url:
        ProxyControl(url).create("e", echo.addr)
        port = int(url.rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError):
        connect(f"127.0.0.1:{port}", timeout=1)  # the embedded proxy was stopped
    with EmbeddedProxy() as outside:
        assert outside.url is not None
        with proxy_api_from_env({"TOXIPROXY_URL": outside.url + "/"}) as url:
            assert url == outside.url
            ProxyControl(url).create("x", echo.addr)
        assert list(ProxyControl(outside.url).proxies()) == ["x"]  # an outside server is left running
    with pytest.raises(RemoteAddressError), proxy_api_from_env({"TOXIPROXY_URL": "http://203.0.113.5:8474"}):
        pass


def _run_server(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "harness.proxy", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_standalone_server_process(tmp_path: Path, echo: EchoServer) -> None:
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps([{"name": "a", "upstream": echo.addr, "listen": "127.0.0.1:0"}]))
    proc = _run_server("-port", "0", "-config", str(cfg))
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        assert "loaded 1 proxies" in lines[0]
        url = lines[1].strip().rsplit(" ", 1)[1]
        assert requests.get(url + "/proxies", timeout=5).json()["a"]["upstream"] == echo.addr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def _outcome(proc: subprocess.Popen[str]) -> str:
    """Wait for a server that should refuse to start; kill it if it does start. Returns stderr."""
    try:
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    return err


def test_standalone_server_refusals() -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        proc = _run_server("--port", str(busy.getsockname()[1]))
        err = _outcome(proc)
    finally:
        busy.close()
    assert proc.returncode == 2
    assert "already in use" in err and "Traceback" not in err
    proc = _run_server("--host", "0.0.0.0", "--port", "0")
    err = _outcome(proc)
    assert proc.returncode == 2 and "not a loopback address" in err and "Traceback" not in err
    proc = _run_server("--port", "0", "--config", "/nonexistent/cfg.json")
    err = _outcome(proc)
    assert proc.returncode == 2 and "not found" in err and "Traceback" not in err
