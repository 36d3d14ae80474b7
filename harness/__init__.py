"""agent-drills: incident-response drills for autonomous on-chain agents.

What a drill of your own needs comes from this one import::

    from harness import Outage, failed_over, proofs_landing

The faults, the predicates, ``Drill``, ``Budget`` and the classes to write a fault or a predicate
of your own. They are loaded on first use, so ``import harness`` stays cheap; the modules they come
from (``harness.faults.*``, ``harness.drill.predicates``, ...) remain importable as before.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: module -> the names this package re-exports from it
_EXPORTS: dict[str, tuple[str, ...]] = {
    "harness.drill.api": ("Drill",),
    "harness.checks.budgets": ("Budget",),
    "harness.errors": ("UsageError", "NothingTested"),
    "harness.faults.base": ("Fault",),
    "harness.faults.auth": ("AuthAttack", "MistypedToken", "control_request"),
    "harness.faults.balance": ("BalanceDepletion",),
    "harness.faults.chainfaults": ("BlockTime", "ChainStall", "Reorg"),
    "harness.faults.contract": ("RevertBlip", "RevertStorm"),
    "harness.faults.gas": ("GasSpike",),
    "harness.faults.key": ("KeyLeak",),
    "harness.faults.network": ("Bandwidth", "DroppedSends", "Latency", "NetworkFault", "Outage", "ResetPeer",
                               "RpcErrors", "Slicer", "StaleHead", "Timeout", "WrongChain"),
    "harness.faults.operator": ("OperatorHalt",),
    "harness.faults.process": ("CrashLoop", "Freeze", "ProcessKill"),
    "harness.faults.state": ("StateCorruption", "StateLoss"),
    "harness.faults.txs": ("DroppedTransaction", "NonceCollision"),
    "harness.drill.predicates": (
        "Predicate", "Probe", "Seen",
        "allowance_revoked", "backlog_at_least", "failed_over", "halted", "healthy", "in_mode", "key_retired",
        "new_address_announced", "no_nonce_gap", "no_outgoing_from", "one_proof_at_a_time", "pending_queue_drained",
        "proofs_landing", "replaced_with_fee_bump", "restarted", "reverts_at_most", "sends_on", "silent_while",
        "swept_to_cold_wallet", "traffic_on",
    ),
    "harness.drill.playbook_predicates": ("attacker_blocked", "attempts_reported", "collided_nonce_settled", "config_intact",
                                          "dropped_txs_resent", "no_work_lost", "not_halted", "reorged_proofs_redone",
                                          "stuck_nonce_cancelled", "using_endpoint"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = ["__version__", *_WHERE]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
