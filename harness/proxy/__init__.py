"""The fault proxy: a Toxiproxy-compatible server with extra JSON-RPC toxics, and its client.

``EmbeddedProxy`` runs the server in-process; ``ProxyControl`` drives any Toxiproxy API (the
embedded one or a real Toxiproxy named by ``TOXIPROXY_URL``); ``serve`` runs it in the foreground.
"""

from __future__ import annotations

from harness.proxy.control import Endpoint, ProxyControl, proxy_api_from_env
from harness.proxy.embedded import EmbeddedProxy
from harness.proxy.server import VERSION, ToxiproxyServer, serve

__all__ = ["VERSION", "EmbeddedProxy", "Endpoint", "ProxyControl", "ToxiproxyServer", "proxy_api_from_env", "serve"]

