"""Amounts as people read them: wei shown as ETH (the engine's messages and the reports share it)."""

from __future__ import annotations

__all__ = ["fmt_eth"]


def fmt_eth(wei: int, digits: int = 4) -> str:
    """``wei`` in ETH to ``digits`` significant digits; amounts under a microether stay in wei."""
    if wei == 0:
        return "0 ETH"
    if abs(wei) < 10**12:
        return f"{wei} wei"
    return f"{wei / 10**18:.{digits}g} ETH"
