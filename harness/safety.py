"""Loopback-only guard rails for every address the harness uses."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from harness.errors import RemoteAddressError

__all__ = ["check_loopback_host", "check_loopback_url", "check_listen_addr"]

_HINT = (
    "agent-drills only talks to 127.0.0.0/8 so a drill can never touch a real network; "
    "pass --allow-remote if you really mean a remote address (TOXIPROXY_URL stays loopback-only)"
)


def _is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if ip.version == 6:
        return ip == ipaddress.IPv6Address("::1") or (
            ip.ipv4_mapped is not None and ip.ipv4_mapped in ipaddress.ip_network("127.0.0.0/8")
        )
    return ip in ipaddress.ip_network("127.0.0.0/8")


def check_loopback_host(host: str, *, what: str = "address", allow_remote: bool = False) -> str:
    """Return ``host`` if it is on loopback (or remote is allowed); raise RemoteAddressError if not.

    Host names other than ``localhost`` are refused without being resolved: resolving them would
    already be traffic off the machine.
    """
    if allow_remote or _is_loopback(host):
        return host
    raise RemoteAddressError(f"{what} {host!r} is not a loopback address; {_HINT}")


def check_loopback_url(url: str, *, what: str = "RPC URL", allow_remote: bool = False) -> str:
    """Return ``url`` if its host is on loopback; raise RemoteAddressError with a hint if not."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        raise RemoteAddressError(
            f"{what} {url!r} is not an http(s)/ws(s) URL with a host; expected e.g. http://127.0.0.1:8545"
        )
    if not (allow_remote or _is_loopback(parts.hostname)):
        raise RemoteAddressError(f"{what} {url!r} points at {parts.hostname!r}, which is not a loopback address; {_HINT}")
    return url


def check_listen_addr(addr: str, *, what: str = "listen address", allow_remote: bool = False) -> tuple[str, int]:
    """Parse ``host:port`` and check the host; return (host, port)."""
    host, sep, port_s = addr.rpartition(":")
    if not sep or not port_s.isdigit() or not host:
        raise RemoteAddressError(f"{what} {addr!r} is not of the form HOST:PORT, e.g. 127.0.0.1:8474")
    port = int(port_s)
    if not 0 <= port <= 65535:
        raise RemoteAddressError(f"{what} {addr!r} has port {port} outside 0..65535")
    check_loopback_host(host, what=what, allow_remote=allow_remote)
    return host, port

