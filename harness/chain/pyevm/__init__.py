"""The embedded chain: py-evm (through eth-tester's genesis) behind a node-like JSON-RPC server.

``PyEvmServer`` is what the harness starts; ``PyEvmNode`` is the node state machine it serves.
"""

from __future__ import annotations

from .genesis import DEFAULT_MNEMONIC, NodeConfig, dev_keys
from .node import PyEvmNode
from .server import PyEvmServer

__all__ = ["DEFAULT_MNEMONIC", "NodeConfig", "PyEvmNode", "PyEvmServer", "dev_keys"]
