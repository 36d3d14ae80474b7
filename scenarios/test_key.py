"""Playbook 1: wallet compromise — the hot wallet's key leaked and an attacker is draining it.

Detect: ``wallet_compromise`` at SEV-1 as soon as value leaves the wallet in a transaction the
agent did not sign. Contain: what is left goes to the cold wallet, the escrow allowance is revoked,
the agent stops using the leaked key and announces a new address. Recover: escrows (reassigned by
the counterparty) are proven again from the new address. The leak itself is never healed: the
attacker keeps the key, which is why the agent must move away from it.
"""

from __future__ import annotations

import pytest

from harness.drill.predicates import (
    allowance_revoked,
    key_retired,
    swept_to_cold_wallet,
)
from harness.faults.key import KeyLeak


# Escrows assigned to the leaked key wait for the counterparty to reassign them.
@pytest.mark.drill(playbook="wallet-compromise", incident="wallet_compromise", family="key",
                   budget={"deadline_misses": 2})
def test_leaked_key_swept_to_cold_wallet_and_allowance_revoked(drill):
    drill.steady_state()
    leak = drill.inject(KeyLeak(drain_every=0.5))
    drill.expect_detection("wallet_compromise", severity="SEV-1")
    drill.expect_containment(swept_to_cold_wallet(), allowance_revoked(), key_retired(leak))
    drill.expect_recovery()
    drill.verify()
