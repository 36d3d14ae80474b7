"""The words the engine writes and the reports read, defined once.

Incident kinds, severities and statuses come from the agent contract (docs/contract.md); drill
statuses, failure categories and check verdicts are the harness's own. Every module that checks or
renders one of these imports it from here, and tests/test_vocabulary.py holds the JSON Schema of the
summary to the same lists.
"""

from __future__ import annotations

__all__ = [
    "INCIDENT_KINDS", "SEVERITIES", "INCIDENT_STATUSES", "DRILL_STATUSES", "ENGINE_CATEGORIES", "REPORT_CATEGORIES",
    "PASSED", "FAILED", "UNKNOWN", "SKIPPED", "VERDICTS", "REAL_TIME_PROFILE",
]

#: what an incident is about (the contract's ``kind``); ``manual`` is one an operator reported
INCIDENT_KINDS = frozenset({
    "wallet_compromise", "stuck_transactions", "nonce_conflict", "process_crash", "crash_loop",
    "tx_failure_rate", "balance_low", "auth_failures", "rpc_failure", "latency_degraded",
    "chain_stalled", "reorg", "state_corruption", "manual",
})
#: most severe first
SEVERITIES = ("SEV-1", "SEV-2", "SEV-3", "SEV-4")
#: an incident's status in the agent's alerts, in the order an incident goes through them
INCIDENT_STATUSES = ("detected", "investigating", "contained", "recovering", "resolved")

#: how a drill ended
DRILL_STATUSES = ("passed", "failed", "aborted", "error")
#: why a drill did not pass, as the engine classifies it
ENGINE_CATEGORIES = (
    "missed_detection", "wrong_severity", "late_containment", "over_reaction", "no_recovery", "invariant_broken",
    "failed", "not_steady", "aborted", "harness_error",
)
#: the engine's categories plus the history gate's
REPORT_CATEGORIES = (*ENGINE_CATEGORIES[:6], "regression", *ENGINE_CATEGORIES[6:])

#: a check's verdict: skipped = not checkable in this drill (the message says why); unknown = the
#: check was attempted and could not be judged (it fails the drill)
PASSED, FAILED, UNKNOWN, SKIPPED = "passed", "failed", "unknown", "skipped"
VERDICTS = (PASSED, SKIPPED, UNKNOWN, FAILED)  # worst last

#: the AGENT_PROFILE value under which an agent runs its real intervals (the contract's default);
#: only then are the incident guide's policy targets evaluated
REAL_TIME_PROFILE = "production"
