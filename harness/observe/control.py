"""The harness's one client of the agent's control API (docs/contract.md, section 3).

Everything the harness asks the agent goes through ``control_request``: the health poller's
``GET /health``, the operator's commands (halt, resume, incident, the end-of-drill probe) and the
attacker's forged ones. It is written on ``http.client`` rather than requests because the attacker
must send from another loopback address (``source``), which requests cannot bind without an extra
adapter package.
"""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

from harness.errors import ConfigError

__all__ = ["control_request"]


def control_request(
    control_url: str, path: str, *, token: str | None, method: str = "POST", source: str = "127.0.0.1",
    body: dict[str, Any] | None = None, timeout: float = 3.0,
) -> tuple[int, Any]:
    """Send ``method path`` (POST with ``body`` as JSON) from the local address ``source``.

    Returns (status, the JSON value answered, or None when the body is empty or not JSON). Raises
    an OSError (refused, reset, timed out) when the agent does not answer.
    """
    parts = urlsplit(control_url)
    if not parts.hostname or not parts.port:
        raise ConfigError(f"control URL {control_url!r} has no host:port; expected http://127.0.0.1:PORT")
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout, source_address=(source, 0))
    try:
        headers = {}
        payload = None
        if method == "POST":
            payload = json.dumps(body or {}).encode()
            headers["Content-Type"] = "application/json"
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        conn.request(method, path, body=payload, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            return resp.status, json.loads(raw) if raw else None
        except ValueError:
            return resp.status, None
    finally:
        conn.close()
