"""The one clock of the harness.

Every duration the harness measures (MTTD, MTTR, waits, budgets) is taken from ``now()``, a
monotonic clock, so a wall-clock jump during a drill cannot bend a measurement. ``wall()`` is only
for stamping records that humans read.
"""

from __future__ import annotations

import time

__all__ = ["now", "wall"]


def now() -> float:
    """Monotonic seconds; compare only with other ``now()`` values."""
    return time.monotonic()


def wall() -> float:
    """Unix time in seconds, for records shown to people."""
    return time.time()
