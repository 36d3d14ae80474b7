"""Small socket helpers shared by the chain, proxy and runtime modules."""

from __future__ import annotations

import errno
import socket

from harness.errors import PortInUseError

__all__ = ["free_port", "ensure_port_free"]


#: the lowest port free_port hands out (below it sit well-known and registered services)
_LOWEST = 15000
_handed_out: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for automatically assigned local ports (outgoing connections, bind to 0)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host`` (the caller binds it next).

    Picked at random *below* the kernel's ephemeral range, not by binding port 0: a port from that
    range is released when this returns and the kernel may give it to the next outgoing connection
    (the proxy's upstream, an HTTP keep-alive), which then holds it for as long as it lives, so the
    agent's later bind fails with "address already in use". Ports below the range are only taken
    by a program that asks for them by number. (Libraries such as portpicker bind port 0 and have
    the same race, hence this small function.) Never the same port twice in one process.
    """
    import random

    low, _high = _ephemeral_range()
    if low - _LOWEST >= 1000:
        rng = random.SystemRandom()
        for _ in range(200):
            port = rng.randrange(_LOWEST, low)
            if port in _handed_out:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # an unusual range: let the kernel choose
        s.bind((host, 0))
        return int(s.getsockname()[1])


def ensure_port_free(host: str, port: int, *, what: str) -> None:
    """Raise PortInUseError with a hint if ``host:port`` cannot be bound right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(
                    f"{what}: {host}:{port} is already in use; stop what listens there "
                    f"(e.g. `ss -ltnp 'sport = :{port}'`) or choose another port (port 0 picks a free one)"
                ) from exc
            raise
