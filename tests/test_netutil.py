"""free_port: ports for the agent and the chain that no outgoing connection can be holding."""

from __future__ import annotations

import socket

from harness.netutil import _ephemeral_range, free_port


def test_ports_are_bindable_distinct_and_below_the_ephemeral_range() -> None:
    low, _ = _ephemeral_range()
    ports = [free_port() for _ in range(100)]
    assert len(set(ports)) == 100
    assert all(p < low for p in ports)
    for p in ports[:10]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))


def test_never_a_port_an_open_connection_holds() -> None:
    # Outgoing connections get their local port from the ephemeral range; a port picked by binding
    # port 0 could be one of those a moment later, and the agent's bind would then fail.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(256)
        clients = [socket.create_connection(server.getsockname()) for _ in range(100)]
        try:
            held = {c.getsockname()[1] for c in clients}
            picked = {free_port() for _ in range(200)}
            assert not picked & held
        finally:
            for c in clients:
                c.close()
