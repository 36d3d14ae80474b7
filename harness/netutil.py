"""Small socket helpers shared by the chain, proxy and runtime modules."""

from __future__ import annotations

import errno
import socket

from harness.errors import PortInUseError

__all__ = ["free_port", "ensure_port_free"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host`` (the caller binds it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


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
