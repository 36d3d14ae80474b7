"""The exceptions of agent-drills.

Three kinds of trouble, kept apart because users act differently on each::

    DrillsError                      root of everything the harness raises on purpose
    ├── UsageError                   the drill definition, config or command line is wrong (fix your input)
    │   ├── ConfigError              malformed or inconsistent configuration
    │   ├── UnknownScenarioError     a scenario, fault or backend name that does not exist
    │   └── RemoteAddressError       an address off 127.0.0.0/8 without --allow-remote
    ├── EnvironmentProblem           the world the harness needs is missing or broken (install or free it)
    │   ├── ToolMissingError         anvil, solc, ... not installed
    │   ├── ChainStartError          a chain that would not start or answer
    │   ├── PortInUseError           a listen address already taken
    │   └── AgentStartError          the agent never became healthy
    ├── HarnessError                 the harness itself failed (a bug: report it)
    │   └── NothingTested            the fault did not create what the drill checks (a reorg that orphaned no proof)
    └── DrillFailure                 the agent under test did not do what the drill expects
        ├── DetectionMissed          no expected alert within budget
        ├── WrongSeverity            the incident came at another severity than the drill expects, or was never escalated
        ├── ContainmentFailed        a ground-truth predicate did not hold within budget
        ├── OverReaction             a minor fault met with a failover, pause, halt or an incident above SEV-4
        ├── RecoveryFailed           no resolution / steady state within budget
        └── InvariantBroken          a whole-run invariant was violated

``DrillAborted`` (hard time limit, or value at risk passed before any fault) sits beside
``DrillFailure``: the drill was stopped, not judged. Value at risk passed after the injection is a
``ContainmentFailed``: the agent let more leave than the drill allows.
"""

from __future__ import annotations

__all__ = [
    "DrillsError",
    "UsageError",
    "ConfigError",
    "UnknownScenarioError",
    "RemoteAddressError",
    "EnvironmentProblem",
    "ToolMissingError",
    "ChainStartError",
    "PortInUseError",
    "AgentStartError",
    "HarnessError",
    "NothingTested",
    "RpcError",
    "DrillFailure",
    "DetectionMissed",
    "WrongSeverity",
    "ContainmentFailed",
    "OverReaction",
    "RecoveryFailed",
    "InvariantBroken",
    "DrillAborted",
]


class DrillsError(Exception):
    """Root of the exceptions agent-drills raises on purpose."""


class UsageError(DrillsError, ValueError):
    """The input (drill definition, config, command line) is wrong; the message says how to fix it."""


class ConfigError(UsageError):
    """Configuration that cannot be used as written."""


class UnknownScenarioError(UsageError, LookupError):
    """A name (scenario, fault, backend, defect) that does not exist."""


class RemoteAddressError(UsageError):
    """An address off the loopback network while remote addresses are not allowed."""


class EnvironmentProblem(DrillsError, RuntimeError):
    """Something the harness needs from the machine is missing or broken."""


class ToolMissingError(EnvironmentProblem):
    """An external tool (anvil, solc, allure, ...) is not installed."""


class ChainStartError(EnvironmentProblem):
    """A chain backend did not start or did not answer in time."""


class PortInUseError(EnvironmentProblem, OSError):
    """A listen address is already in use."""


class AgentStartError(EnvironmentProblem):
    """The agent under test never became healthy."""


class HarnessError(DrillsError, RuntimeError):
    """The harness itself failed; a bug to report, not a verdict on the agent."""


class NothingTested(HarnessError):
    """The fault did not create the situation a check is aimed at, so the check proves nothing.

    A reorg that orphaned no proof of the agent leaves "orphaned proofs are proven again" true of
    nothing. That is no verdict on the agent (not a failure) and no pass either: the drill ends as
    an error. It usually depends on timing (what the replaced blocks held), so the remedy is on the
    drill's side: re-run it, or make the fault reach further (a deeper reorg).
    """


class RpcError(DrillsError):
    """A JSON-RPC error object answered by a node (code and message as the node gave them)."""

    def __init__(self, code: int, message: str, data: object = None, *, method: str = "") -> None:
        self.code = code
        self.message = message
        self.data = data
        self.method = method
        where = f" ({method})" if method else ""
        super().__init__(f"JSON-RPC error {code}{where}: {message}")


class DrillFailure(DrillsError, AssertionError):
    """The agent under test did not meet an expectation of the drill."""

    category = "failed"


class DetectionMissed(DrillFailure):
    category = "missed_detection"


class WrongSeverity(DrillFailure):
    """The agent reported the incident, at another severity than the drill expects (both are named),
    or did not raise its severity once the incident outlived its escalation time."""

    category = "wrong_severity"


class ContainmentFailed(DrillFailure):
    category = "late_containment"


class OverReaction(DrillFailure):
    """A minor fault (a one-second blip, one failed transaction) met with more than it deserves."""

    category = "over_reaction"


class RecoveryFailed(DrillFailure):
    category = "no_recovery"


class InvariantBroken(DrillFailure):
    category = "invariant_broken"


class DrillAborted(DrillsError):
    """The drill was stopped by a stop condition (value at risk, hard time limit)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"drill aborted: {reason}")
