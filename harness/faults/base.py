"""What every fault is: an injector that knows how to undo itself.

A fault is bound to a drill context (the chain, the proxies, the agent runtime, the timeline),
then injected and healed. ``inject`` and ``heal`` record themselves on the timeline; ``heal`` is
idempotent so the drill's cleanup may call it whatever happened before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from harness.errors import HarnessError
from harness.observe.timeline import Event

if TYPE_CHECKING:  # the context imports the runtimes and the chain; a fault only needs its type
    from harness.drill.context import DrillContext

__all__ = ["Fault"]


class Fault:
    """Base class: subclasses implement ``_inject`` and ``_heal`` and describe themselves."""

    #: family of the fault for reports ("network", "key", "gas", "process", ...)
    family: ClassVar[str] = "generic"
    #: short machine name ("rpc_outage", "key_leak", ...)
    name: ClassVar[str] = "fault"
    #: the fault's own clock: attributes in seconds (the interval of the blocks it mines) that a
    #: real-time drill stretches with ``--drill-time-scale`` (``pace``); durations the drill holds
    #: are the scenario's, not listed here
    paced: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self._ctx: DrillContext | None = None
        self.injected_at: Event | None = None
        self.healed_at: Event | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def bind(self, ctx: DrillContext) -> Fault:
        self._ctx = ctx
        return self

    @property
    def ctx(self) -> DrillContext:
        if self._ctx is None:
            raise HarnessError(f"fault {self.name} used before bind(ctx)")
        return self._ctx

    @property
    def active(self) -> bool:
        return self.injected_at is not None and self.healed_at is None

    def inject(self) -> Event:
        if self.active:
            raise HarnessError(f"fault {self.name} injected twice")
        self._inject()
        self.healed_at = None
        self.injected_at = self.ctx.timeline.record("fault.inject", f"fault:{self.name}", **self.describe())
        return self.injected_at

    def heal(self) -> Event | None:
        """Undo the fault; a no-op when it is not active (safe to call from cleanup)."""
        if not self.active:
            return None
        try:
            self._heal()
        finally:
            self.healed_at = self.ctx.timeline.record("fault.heal", f"fault:{self.name}", **self.describe())
        return self.healed_at

    def pace(self, time_scale: float) -> Fault:
        """Stretch the fault's own clock ``time_scale`` times (before ``inject``): at time scale 20 a
        spike that mines a block a second mines one every 20 s, as the escrows come 20 times slower;
        otherwise the whole climb would fall between two escrows and strand nothing."""
        if self.injected_at is not None:
            raise HarnessError(f"fault {self.name} paced after it was injected")
        for attr in self.paced:
            setattr(self, attr, getattr(self, attr) * time_scale)
        return self

    # -- for subclasses ----------------------------------------------------------------------
    def _inject(self) -> None:
        raise NotImplementedError

    def _heal(self) -> None:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Parameters shown on the timeline and in reports (never secrets)."""
        return {"family": self.family}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.describe().items() if k != "family")
        return f"{type(self).__name__}({params})"
