"""Reading API request bodies the way Toxiproxy's Go server reads them.

Clients depend on how the real server treats a body: only the first JSON value is read (trailing
bytes are ignored), object keys match field names case-insensitively, unknown keys are ignored,
``null`` leaves a field as it was, and a value of the wrong JSON kind is a 400 whose message names
the field and its Go type. This module reproduces those rules and messages for the few structs the
API decodes.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["BadBody", "check_value", "decode_fields", "first_value"]

_DECODER = json.JSONDecoder()


class BadBody(ValueError):
    """The body could not be decoded; ``str()`` is the text after ``bad request body: ``."""


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


def first_value(body: bytes) -> Any:
    """Decode the first JSON value of ``body`` (Go's ``json.Decoder.Decode``)."""
    text = body.decode("utf-8", errors="replace").lstrip(" \t\r\n")
    if not text:
        raise BadBody("EOF")
    try:
        value, _ = _DECODER.raw_decode(text)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text):
            raise BadBody("unexpected EOF") from exc
        raise BadBody(f"invalid character {text[exc.pos]!r} looking for beginning of value"
                      if exc.msg.startswith("Expecting value") else f"invalid JSON: {exc.msg} at offset {exc.pos}") from exc
    return value


def check_value(value: Any, gotype: str, where: str) -> Any:
    """Return ``value`` if it fits ``gotype``; raise BadBody with Go's wording if it does not.

    ``where`` is Go's description of the destination, e.g. ``Go struct field Proxy.enabled``.
    """
    k = _kind(value)
    ok: bool
    if gotype == "string":
        ok = k == "string"
    elif gotype == "bool":
        ok = k == "bool"
    elif gotype == "float32":
        ok = k == "number"
    elif gotype in ("int", "int64"):
        if k == "number" and not isinstance(value, int):
            raise BadBody(f"json: cannot unmarshal number {json.dumps(value)} into {where} of type {gotype}")
        ok = k == "number"
    elif gotype == "[]string":
        if k == "array":
            for item in value:
                if _kind(item) not in ("string", "null"):
                    raise BadBody(f"json: cannot unmarshal {_kind(item)} into {where} of type string")
            return [item if item is not None else "" for item in value]
        ok = False
    else:  # pragma: no cover - programming error
        raise AssertionError(gotype)
    if not ok:
        raise BadBody(f"json: cannot unmarshal {k} into {where} of type {gotype}")
    return value


def decode_fields(obj: Any, fields: dict[str, str], struct: str, *, go_value: str | None = None,
                  prefix: str = "") -> dict[str, Any]:
    """Pick the known ``fields`` (name -> Go type) out of a decoded object.

    Returns only the fields present and not null. ``struct`` names the Go struct for messages
    (``Proxy``, ``ToxicWrapper``); ``go_value`` is the Go type named when ``obj`` is not an object.
    """
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise BadBody(f"json: cannot unmarshal {_kind(obj)} into Go value of type {go_value or struct}")
    out: dict[str, Any] = {}
    lower = {name.lower(): name for name in fields}
    # an exact key wins over a case-insensitive one; the last of equal keys wins
    for key, value in obj.items():
        name = key if key in fields else lower.get(key.lower())
        if name is None:
            continue
        if key != name and name in obj:
            continue
        if value is None:
            out.pop(name, None)
            continue
        out[name] = check_value(value, fields[name], f"Go struct field {struct}.{prefix}{name}")
    return out
