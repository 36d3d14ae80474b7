"""Secrets — the hot wallet's private key never shows up in anything the agent prints.

Every drill's ``verify`` scans the agent's output for the key; this drill makes that its only
question, over a start, steady work and a restart (a crash is where keys tend to leak: dumps,
tracebacks, "starting with key ..." lines).
"""

from __future__ import annotations

import pytest

from harness.drill.predicates import proofs_landing, restarted
from harness.faults.process import ProcessKill


@pytest.mark.drill(playbook="wallet-compromise", family="secrets")
def test_agent_output_never_contains_the_private_key(drill):
    drill.steady_state()
    drill.inject(ProcessKill())
    drill.wait_until(restarted(), proofs_landing(1), within=drill.budget.recover)
    key = drill.ctx.hot_wallet.key.lower().removeprefix("0x")
    assert key not in drill.ctx.agent.output_text().lower(), "the agent printed its private key"
    drill.verify()
