"""Keeping the run's private keys out of every artifact the report writes.

The engine registers each key it holds (the agent's hot key, keys it generates for faults) in the
run's ``SecretRegistry``. Every artifact goes through ``write_text``/``write_bytes`` (or ``check``
before it is handed to another writer such as Allure): the content is searched for every key, with
or without ``0x``, in any letter case; on a hit ``SecretLeak`` is raised, nothing is written and the
run fails. Messages name the artifact and the key's label, never the key.

``redact`` is for one attachment only, the agent's own log: it replaces keys with ``[REDACTED]`` so
the log can still be read, while the engine's no-secret invariant fails the drill for the leak.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from harness.errors import DrillsError, UsageError

__all__ = ["SecretLeak", "SecretHit", "SecretRegistry", "REDACTED", "write_text", "write_bytes"]

REDACTED = "[REDACTED]"
_KEY_RE = re.compile(r"^(?:0[xX])?([0-9a-fA-F]{64})$")


class SecretLeak(DrillsError):
    """An artifact about to be written contains one of the run's private keys; it was not written."""

    def __init__(self, artifact: str, labels: list[str]) -> None:
        self.artifact = artifact
        self.labels = labels
        super().__init__(
            f"refused to write {artifact}: it contains the private key of {', '.join(labels)}. "
            "The artifact was not written and the run fails; find what put the key into it "
            "(an agent or fault logging its key, a key passed in a fault's parameters)."
        )


@dataclass(frozen=True)
class SecretHit:
    label: str
    offset: int  # where the key starts in the scanned text or bytes (after any 0x)


class SecretRegistry:
    """The private keys of one run, searchable in text and bytes. Thread-safe."""

    def __init__(self) -> None:
        self._keys: dict[str, str] = {}  # 64 lowercase hex digits -> label
        self._lock = threading.Lock()
        self._text_re: re.Pattern[str] | None = None
        self._bytes_re: re.Pattern[bytes] | None = None

    def add(self, key: str | bytes, label: str = "a harness key") -> None:
        """Register ``key`` (``0x`` + 64 hex digits, 64 hex digits, or 32 raw bytes)."""
        if isinstance(key, (bytes, bytearray)):
            if len(key) != 32:
                raise UsageError(f"a private key as bytes must be 32 bytes long, got {len(key)} (label {label!r})")
            digits = bytes(key).hex()
        else:
            m = _KEY_RE.match(key.strip()) if isinstance(key, str) else None
            if m is None:
                # Never echo the value: it may be a malformed key.
                raise UsageError(f"the secret registered as {label!r} is not a private key "
                                 "(expected 0x followed by 64 hex digits, or 64 hex digits)")
            digits = m.group(1).lower()
        with self._lock:
            self._keys.setdefault(digits, label)
            self._text_re = self._bytes_re = None

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)

    def __repr__(self) -> str:
        return f"SecretRegistry({len(self)} key(s))"

    def _patterns(self) -> tuple[re.Pattern[str] | None, re.Pattern[bytes] | None, dict[str, str]]:
        with self._lock:
            if not self._keys:
                return None, None, {}
            if self._text_re is None or self._bytes_re is None:
                # The key without 0x also matches inside "0x<key>"; IGNORECASE covers any spelling.
                alternatives = "|".join(sorted(self._keys))
                self._text_re = re.compile(f"(?:0[xX])?({alternatives})", re.IGNORECASE)
                self._bytes_re = re.compile(f"(?:0[xX])?({alternatives})".encode(), re.IGNORECASE)
            return self._text_re, self._bytes_re, dict(self._keys)

    def find(self, content: str | bytes) -> list[SecretHit]:
        """Every occurrence of a registered key in ``content``."""
        text_re, bytes_re, keys = self._patterns()
        if text_re is None or bytes_re is None:
            return []
        if isinstance(content, (bytes, bytearray)):
            return [SecretHit(keys[m.group(1).decode().lower()], m.start(1)) for m in bytes_re.finditer(content)]
        return [SecretHit(keys[m.group(1).lower()], m.start(1)) for m in text_re.finditer(content)]

    def check(self, content: str | bytes, artifact: str) -> None:
        """Raise ``SecretLeak`` if ``content`` (destined for ``artifact``) holds a registered key."""
        hits = self.find(content)
        if hits:
            raise SecretLeak(artifact, sorted({h.label for h in hits}))

    def redact(self, text: str) -> str:
        """``text`` with every registered key (and its 0x) replaced by ``[REDACTED]``."""
        text_re, _, _ = self._patterns()
        return text if text_re is None else text_re.sub(REDACTED, text)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path: Path | str, data: bytes, registry: SecretRegistry, *, artifact: str | None = None) -> Path:
    """Scan ``data`` for the run's keys, then write it to ``path`` in one step (nothing on a hit)."""
    path = Path(path)
    registry.check(data, artifact or str(path))
    _atomic_write(path, data)
    return path


def write_text(path: Path | str, text: str, registry: SecretRegistry, *, artifact: str | None = None) -> Path:
    """Scan ``text`` for the run's keys, then write it as UTF-8 (nothing on a hit)."""
    path = Path(path)
    registry.check(text, artifact or str(path))
    _atomic_write(path, text.encode("utf-8"))
    return path
