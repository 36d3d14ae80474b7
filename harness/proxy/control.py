"""The harness's client for a Toxiproxy API (its own embedded proxy, or a real Toxiproxy).

Every call goes through the toxiproxy-python package's ``APIConsumer`` (its request helpers and its
response checks), so the harness drives its proxies exactly as a third-party client would. The
package keeps the server address in class attributes, so calls are serialised under a lock and
the address is set for each one. Its higher-level ``Toxiproxy``/``Proxy`` methods are not used
because they cannot pass a timeout (a network call without one can hang a drill forever) and have
no toxic update; ``APIConsumer.get/post/delete`` forward keyword arguments to ``requests``, and
Toxiproxy accepts POST for updates, so no other HTTP path is needed.

With ``TOXIPROXY_URL`` set, :func:`proxy_api_from_env` hands out that server instead of starting
an embedded one; the JSON-RPC toxic types exist only in the embedded proxy.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from harness.errors import (
    ConfigError,
    EnvironmentProblem,
    PortInUseError,
    UnknownScenarioError,
)
from harness.proxy.embedded import EmbeddedProxy
from harness.safety import check_loopback_host, check_loopback_url

__all__ = ["Endpoint", "ProxyControl", "proxy_api_from_env"]

_LOCK = threading.RLock()  # APIConsumer.host/port are process-wide


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """Where clients reach a proxy."""

    name: str
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _endpoint(data: Mapping[str, Any]) -> Endpoint:
    host, _, port = str(data["listen"]).rpartition(":")
    return Endpoint(name=str(data["name"]), host=host.strip("[]") or "127.0.0.1", port=int(port))


def _message(exc_or_body: Any) -> str:
    raw = exc_or_body.args[0] if isinstance(exc_or_body, Exception) and exc_or_body.args else exc_or_body
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    try:
        import json

        return str(json.loads(raw)["error"])
    except (ValueError, KeyError, TypeError):
        return str(raw).strip()


class ProxyControl:
    """Creates proxies and adds, updates and removes toxics through a Toxiproxy HTTP API."""

    def __init__(self, api_url: str, *, timeout: float = 10.0, allow_remote: bool = False) -> None:
        check_loopback_url(api_url, what="Toxiproxy API URL", allow_remote=allow_remote)
        parts = urlsplit(api_url)
        if parts.path not in ("", "/"):
            raise ConfigError(f"Toxiproxy API URL {api_url!r} has a path; toxiproxy-python only "
                              "talks to http://HOST:PORT")
        self.api_url = api_url.rstrip("/")
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 8474
        self._timeout = timeout
        self._allow_remote = allow_remote

    # -- transport --------------------------------------------------------------------------
    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        with _LOCK:
            APIConsumer.host, APIConsumer.port = self._host, self._port
            try:
                resp = getattr(APIConsumer, method)(path, timeout=self._timeout, **kwargs)
            except NotFound as exc:
                raise UnknownScenarioError(f"fault proxy API {path}: {_message(exc)}") from None
            except ProxyExists as exc:
                raise ConfigError(f"fault proxy API {path}: {_message(exc)}") from None
            except InvalidToxic as exc:
                raise ConfigError(f"fault proxy API {path}: {_message(exc)}") from None
            except requests.RequestException as exc:
                raise EnvironmentProblem(
                    f"fault proxy API at {self.api_url} did not answer ({type(exc).__name__}: {exc}); "
                    "is it running? (`drill proxy`, or unset TOXIPROXY_URL to use the embedded one)"
                ) from None
        if resp.status_code >= 500:
            msg = _message(resp.content)
            if "address already in use" in msg:
                raise PortInUseError(f"fault proxy could not listen: {msg}; choose another listen port (0: any)")
            raise EnvironmentProblem(f"fault proxy API {path} failed with {resp.status_code}: {msg}")
        if resp.status_code >= 400:
            raise ConfigError(f"fault proxy API {path} refused the request ({resp.status_code}): "
                              f"{_message(resp.content)}")
        return resp

    @staticmethod
    def _p(name: str) -> str:
        return quote(name, safe="")

    # -- proxies ----------------------------------------------------------------------------
    def create(self, name: str, upstream: str, *, listen: str = "127.0.0.1:0", enabled: bool = True) -> Endpoint:
        """Create a proxy in front of ``upstream`` (``host:port``); return where to reach it."""
        uhost = upstream.rpartition(":")[0]
        check_loopback_host(uhost or upstream, what=f"upstream {upstream!r}", allow_remote=self._allow_remote)
        resp = self._call("post", "/proxies", json={"name": name, "upstream": upstream, "listen": listen,
                                                    "enabled": enabled})
        return _endpoint(resp.json())

    def endpoint(self, name: str) -> Endpoint:
        return _endpoint(self._call("get", f"/proxies/{self._p(name)}").json())

    def proxies(self) -> dict[str, dict[str, Any]]:
        return dict(self._call("get", "/proxies").json())

    def set_enabled(self, proxy: str, enabled: bool) -> None:
        self._call("post", f"/proxies/{self._p(proxy)}", json={"enabled": enabled})

    def delete(self, proxy: str) -> None:
        self._call("delete", f"/proxies/{self._p(proxy)}")

    def delete_all(self) -> None:
        for name in self.proxies():
            self.delete(name)

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        self._call("post", "/reset")

    # -- toxics -----------------------------------------------------------------------------
    def add_toxic(self, proxy: str, type: str, *, stream: str = "downstream", toxicity: float = 1.0,
                  attributes: Mapping[str, Any] | None = None, name: str | None = None) -> str:
        """Add a toxic; return its name (``<type>_<stream>`` unless given)."""
        body: dict[str, Any] = {"type": type, "stream": stream, "toxicity": toxicity,
                                "attributes": dict(attributes or {})}
        if name is not None:
            body["name"] = name
        try:
            resp = self._call("post", f"/proxies/{self._p(proxy)}/toxics", json=body)
        except ConfigError as exc:
            if type.startswith("rpc_") and "invalid toxic type" in str(exc):
                raise ConfigError(
                    f"toxic type {type!r} exists only in agent-drills' own fault proxy, and "
                    f"{self.api_url} does not know it; unset TOXIPROXY_URL to use the embedded proxy"
                ) from None
            raise
        return str(resp.json()["name"])

    def update_toxic(self, proxy: str, toxic_name: str, *, attributes: Mapping[str, Any] | None = None,
                     toxicity: float | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if attributes is not None:
            body["attributes"] = dict(attributes)
        if toxicity is not None:
            body["toxicity"] = toxicity
        return dict(self._call("post", f"/proxies/{self._p(proxy)}/toxics/{self._p(toxic_name)}", json=body).json())

    def remove_toxic(self, proxy: str, toxic_name: str) -> None:
        self._call("delete", f"/proxies/{self._p(proxy)}/toxics/{self._p(toxic_name)}")

    def toxics(self, proxy: str) -> list[dict[str, Any]]:
        return list(self._call("get", f"/proxies/{self._p(proxy)}/toxics").json())

    # -- server -----------------------------------------------------------------------------
    def version(self) -> str:
        text = self._call("get", "/version").text.strip()
        try:
            import json

            return str(json.loads(text)["version"])
        except (ValueError, KeyError, TypeError):
            return text

    def metrics_text(self) -> str:
        return self._call("get", "/metrics").text


@contextmanager
def proxy_api_from_env(env: Mapping[str, str] | None = None, *, allow_remote: bool = False) -> Iterator[str]:
    """Yield a Toxiproxy API URL: ``TOXIPROXY_URL`` if set, else an embedded proxy's (stopped after)."""
    env = os.environ if env is None else env
    url = env.get("TOXIPROXY_URL", "").strip()
    if url:
        yield check_loopback_url(url, what="TOXIPROXY_URL", allow_remote=allow_remote).rstrip("/")
        return
    with EmbeddedProxy(allow_remote=allow_remote) as proxy:
        assert proxy.url is not None
        yield proxy.url
