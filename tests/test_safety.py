"""Loopback-only guard rails and the errors that teach."""

from __future__ import annotations

import socket

import pytest

from harness.chain.base import ChainSettings, start_chain
from harness.errors import PortInUseError, RemoteAddressError, UnknownScenarioError, UsageError
from harness.netutil import ensure_port_free
from harness.safety import check_listen_addr, check_loopback_host, check_loopback_url


@pytest.mark.parametrize("url", ["http://127.0.0.1:8545", "http://localhost:1", "http://127.3.2.1:80/x", "http://[::1]:8545"])
def test_loopback_urls_are_accepted(url: str) -> None:
    assert check_loopback_url(url) == url


@pytest.mark.parametrize("url", ["http://10.0.0.1:8545", "https://mainnet.example.org", "http://192.168.1.5:8545",
                                 "http://8.8.8.8", "http://[2001:db8::1]:8545", "http://127.0.0.1.nip.io:8545"])
def test_remote_urls_are_refused_with_a_hint(url: str) -> None:
    with pytest.raises(RemoteAddressError) as info:
        check_loopback_url(url)
    msg = str(info.value)
    assert url in msg and "--allow-remote" in msg and "loopback" in msg


def test_allow_remote_lets_a_remote_url_through() -> None:
    assert check_loopback_url("http://10.0.0.1:8545", allow_remote=True)


@pytest.mark.parametrize("url", ["127.0.0.1:8545", "ftp://127.0.0.1/", "http://:80"])
def test_malformed_urls_say_what_is_expected(url: str) -> None:
    with pytest.raises(RemoteAddressError, match="http"):
        check_loopback_url(url)


def test_listen_addresses() -> None:
    assert check_listen_addr("127.0.0.1:8474") == ("127.0.0.1", 8474)
    with pytest.raises(RemoteAddressError, match="HOST:PORT"):
        check_listen_addr("8474")
    with pytest.raises(RemoteAddressError, match="loopback"):
        check_listen_addr("0.0.0.0:8474")
    with pytest.raises(RemoteAddressError):
        check_loopback_host("example.com")


def test_remote_errors_are_usage_errors() -> None:
    # misuse is told apart from a broken world: RemoteAddressError is a UsageError (and a ValueError)
    assert issubclass(RemoteAddressError, UsageError) and issubclass(RemoteAddressError, ValueError)


def test_chain_refuses_remote_listen_address() -> None:
    with pytest.raises(RemoteAddressError):
        start_chain(ChainSettings(backend="anvil", host="0.0.0.0"))


def test_unknown_backend_lists_the_known_ones() -> None:
    with pytest.raises(UnknownScenarioError, match="pyevm, anvil"):
        ChainSettings(backend="ganache")


@pytest.mark.parametrize("backend", ["anvil", "pyevm"])
def test_port_in_use_is_a_clear_error(backend: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"127.0.0.1:{port} is already in use"):
            start_chain(ChainSettings(backend=backend, port=port))
        with pytest.raises(PortInUseError, match="choose another port"):
            ensure_port_free("127.0.0.1", port, what="test")
