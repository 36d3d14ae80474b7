"""A fault schedule as data: which faults, with which parameters, injected when and healed when.

A ``Schedule`` is an ordered tuple of ``Step``s. Each step names a fault of a registry of
``FaultSpec``s (``FAULTS`` by default; users add their own with ``register_fault``), its parameters,
the second it is injected (``at``, counted from the moment the agent reached steady state) and how
long it is held before it is healed (``hold``). A step is always healed: there is no heal of a fault
that was not injected, and no fault left behind. Schedules go to and from JSON
(``FORMAT = "agent-drills/schedule/1"``) so that a failure found by the search can be committed and
replayed as a regression drill.

What makes sense together is the registry's to say: a ``FaultSpec`` names the resources its fault
takes over while it is active (``holds``: the node's mining, an RPC endpoint's proxy, ...). Two
steps holding one resource never overlap: the second could only undo what the first did, or be
undone by it. ``Schedule.check`` refuses such a schedule; the strategies never draw one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import UsageError

if TYPE_CHECKING:
    from harness.faults.base import Fault

__all__ = ["FORMAT", "FAULTS", "FaultSpec", "Schedule", "Step", "register_fault"]

FORMAT = "agent-drills/schedule/1"


@dataclass(frozen=True, kw_only=True)
class FaultSpec:
    """How a schedule uses one kind of fault.

    ``make(params)`` builds the fault; ``params`` lists the parameters a step may set, each with the
    values the search draws from (the first is the simplest: what shrinking moves towards);
    ``incident`` is the incident kind an agent must report for it; ``holds(params)`` the resources
    it takes over while active; ``instant`` says it acts once at injection (a kill), its hold being
    only the time before the next step may take its resources; ``shown(fault, drill, t_inject, t_heal)``
    when the fault first did, on evidence the harness saw, something an agent could detect (the
    injection for most; the first transaction dropped; the first one stranded by a gas spike), or
    None when it did nothing (a kill while the agent was already down; a spike while another fault
    kept the agent from sending): its detection budget counts from then;
    ``min_hold`` the shortest hold the search draws (the time the fault needs to show: a gas spike
    climbs for a few blocks before anything is stuck); ``detect`` the seconds an agent has to report
    it (None: the drill's detection budget); ``busy`` when, after injection, the fault is at work (see
    the field).
    """

    name: str
    make: Callable[[Mapping[str, Any]], Fault]
    incident: str
    params: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    holds: Callable[[Mapping[str, Any]], tuple[str, ...]] = lambda params: ()
    instant: bool = False
    shown: Callable[[Fault, Any, float, float], float | None] = lambda fault, drill, t_inject, t_heal: t_inject
    min_hold: float = 1.0
    #: the longest hold that leaves the agent a fair chance (a revert storm longer than an escrow's slack
    #: makes a missed deadline the fault's doing); None: no bound
    max_hold: float | None = None
    detect: float | None = None
    #: seconds after its injection while the fault is at work on the agent (a climbing gas spike: from
    #: the first stranded transaction to the peak that lets them through): a later step the strategies
    #: draw over this one starts inside this window; None: anywhere in its hold
    busy: tuple[float, float] | None = None
    #: seconds between this fault's heal and the next step on one of its resources: a revert storm right
    #: after another is one storm longer than max_hold, whose missed deadlines are the fault's doing
    rest: float = 0.0
    doc: str = ""

    def check_params(self, params: Mapping[str, Any]) -> None:
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise UsageError(f"fault {self.name!r} has no parameter(s) {', '.join(unknown)}; "
                             f"it takes {', '.join(self.params) or 'none'}")
        for key, value in params.items():
            allowed = self.params[key]
            if value not in allowed:
                raise UsageError(f"fault {self.name!r}: {key}={value!r} is not one of {list(allowed)}")


FAULTS: dict[str, FaultSpec] = {}


def register_fault(spec: FaultSpec, *, registry: dict[str, FaultSpec] | None = None) -> FaultSpec:
    """Add ``spec`` to ``registry`` (``FAULTS`` by default) so schedules and strategies can use it."""
    target = FAULTS if registry is None else registry
    if not spec.name or not spec.name.replace("_", "").isalnum():
        raise UsageError(f"a schedule fault's name is a word of letters, digits and _, got {spec.name!r}")
    if spec.name in target:
        raise UsageError(f"a schedule fault named {spec.name!r} is registered already")
    if spec.busy is not None and not (len(spec.busy) == 2 and 0 <= spec.busy[0] <= spec.busy[1]):
        raise UsageError(f"fault {spec.name!r}: busy is (start, end) in seconds after its injection with "
                         f"0 <= start <= end, got {spec.busy!r}")
    target[spec.name] = spec
    return spec


@dataclass(frozen=True, kw_only=True)
class Step:
    """Inject ``fault`` with ``params`` ``at`` seconds after steady state; heal it ``hold`` seconds later."""

    fault: str
    at: float
    hold: float
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", dict(self.params))
        for name in ("at", "hold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise UsageError(f"a schedule step's {name} is a number of seconds >= 0, got {value!r} ({self.fault})")
        if self.hold <= 0:
            raise UsageError(f"a schedule step's hold must be > 0 seconds (the fault is healed after it), "
                             f"got {self.hold!r} ({self.fault})")

    @property
    def heal_at(self) -> float:
        return self.at + self.hold

    def to_json(self) -> dict[str, Any]:
        return {"fault": self.fault, "params": dict(self.params), "at": self.at, "hold": self.hold}

    def label(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.fault}({params}) at +{self.at:g} s, healed at +{self.heal_at:g} s"


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """Steps in the order of their injection (see the module docstring)."""

    steps: tuple[Step, ...]
    note: str = ""

    def __post_init__(self) -> None:
        steps = tuple(sorted(self.steps, key=lambda s: (s.at, s.heal_at, s.fault)))
        object.__setattr__(self, "steps", steps)

    def check(self, registry: Mapping[str, FaultSpec] | None = None) -> Schedule:
        """Raise a ``UsageError`` naming the step unless every step's fault, parameters and timing make sense."""
        registry = FAULTS if registry is None else registry
        if not self.steps:
            raise UsageError("a schedule needs at least one step")
        for step in self.steps:
            spec = registry.get(step.fault)
            if spec is None:
                raise UsageError(f"unknown fault {step.fault!r} in a schedule; known: {', '.join(sorted(registry))}")
            spec.check_params(step.params)
            if step.hold < spec.min_hold:
                raise UsageError(f"{step.label()}: {step.fault} needs a hold of at least {spec.min_hold:g} s to show "
                                 f"(its FaultSpec.min_hold)")
            if spec.max_hold is not None and step.hold > spec.max_hold:
                raise UsageError(f"{step.label()}: {step.fault} holds {spec.max_hold:g} s at most (its FaultSpec.max_hold: "
                                 "longer, a missed deadline would be the fault's doing, not the agent's)")
        for i, a in enumerate(self.steps):
            for b in self.steps[i + 1:]:
                shared = set(registry[a.fault].holds(a.params)) & set(registry[b.fault].holds(b.params))
                if shared and b.at < a.heal_at:
                    raise UsageError(f"schedule steps overlap on {', '.join(sorted(shared))}: {a.label()} and "
                                     f"{b.label()}; start the second after the first is healed")
                rest = max(registry[a.fault].rest, registry[b.fault].rest)
                if shared and b.at < a.heal_at + rest:
                    raise UsageError(f"{b.label()} starts {b.at - a.heal_at:g} s after {a.label()} is healed, on "
                                     f"{', '.join(sorted(shared))}; leave {rest:g} s between them (FaultSpec.rest: "
                                     "back to back they are one longer fault)")
        return self

    @property
    def end(self) -> float:
        """When the last heal is due (seconds after steady state)."""
        return max((s.heal_at for s in self.steps), default=0.0)

    def actions(self) -> list[tuple[float, str, int]]:
        """(offset, "inject"|"heal", step index), in the order they are carried out (heals first at a tie)."""
        out = [(s.at, "inject", i) for i, s in enumerate(self.steps)]
        out += [(s.heal_at, "heal", i) for i, s in enumerate(self.steps)]
        return sorted(out, key=lambda a: (a[0], a[1] != "heal", a[2]))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": FORMAT, "steps": [s.to_json() for s in self.steps]}
        if self.note:
            out["note"] = self.note
        return out

    @classmethod
    def from_json(cls, doc: Any, *, where: str = "schedule") -> Schedule:
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise UsageError(f"{where} is not a fault schedule: expected a JSON object with \"format\": \"{FORMAT}\"")
        steps = doc.get("steps")
        if not isinstance(steps, list):
            raise UsageError(f"{where}: \"steps\" must be a list of {{fault, params, at, hold}}")
        out = []
        for n, raw in enumerate(steps, 1):
            if not isinstance(raw, dict) or not {"fault", "at", "hold"} <= set(raw):
                raise UsageError(f"{where}: step {n} needs \"fault\", \"at\" and \"hold\" (and optional \"params\"), got {raw!r}")
            extra = sorted(set(raw) - {"fault", "params", "at", "hold"})
            if extra:
                raise UsageError(f"{where}: step {n} has unknown key(s) {', '.join(extra)}")
            out.append(Step(fault=str(raw["fault"]), params=raw.get("params") or {}, at=raw["at"], hold=raw["hold"]))
        return cls(steps=tuple(out), note=str(doc.get("note", "")))

    @classmethod
    def load(cls, path: str | Path, registry: Mapping[str, FaultSpec] | None = None) -> Schedule:
        p = Path(path)
        try:
            doc = json.loads(p.read_text())
        except FileNotFoundError:
            raise UsageError(f"no schedule file at {p}") from None
        except json.JSONDecodeError as exc:
            raise UsageError(f"{p} is not JSON: {exc}") from None
        return cls.from_json(doc, where=str(p)).check(registry)

    def dump(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return p

    def label(self) -> str:
        return "; ".join(s.label() for s in self.steps)

    def faults(self) -> list[str]:
        return [s.fault for s in self.steps]

