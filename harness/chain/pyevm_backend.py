"""The pyevm backend: the harness's own py-evm node, served over HTTP from a thread of this process."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.errors import ChainStartError, PortInUseError
from harness.netutil import ensure_port_free

__all__ = ["start_pyevm", "PyEvmNode"]


@dataclass
class PyEvmNode:
    url: str
    server: Any = field(repr=False)

    def stop(self) -> None:
        self.server.stop()

    def logs(self) -> str:
        return ""  # the embedded node reports through exceptions, not a log


def start_pyevm(settings: Any) -> PyEvmNode:
    from harness.chain.pyevm.server import PyEvmServer

    if settings.port:
        ensure_port_free(settings.host, settings.port, what="pyevm chain")
    server = PyEvmServer(settings.host, settings.port, block_time=settings.block_time)
    try:
        url = server.start()
    except PortInUseError:
        raise
    except Exception as exc:  # the embedded node failed to build its genesis or bind
        server.stop()
        raise ChainStartError(f"the embedded py-evm chain did not start: {exc}") from exc
    return PyEvmNode(url=url, server=server)
