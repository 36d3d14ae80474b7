"""Playbook 6: unauthorised access — someone keeps calling the control API with wrong tokens.

The attacker sends from 127.0.0.2 (see harness.faults.auth), the operator from 127.0.0.1.
Detect: ``auth_failures``. Contain: the attacker's source answered 429 (blocked), none of its
commands ran (it tries the kill switch), and the right token from the blocked source is still
refused. Recover: the attack stops, the block expires and the operator's commands work.
"""

from __future__ import annotations

import pytest

from harness.drill.playbook_predicates import attacker_blocked, not_halted
from harness.faults.auth import AuthAttack
from harness.observe.control import control_request


@pytest.mark.drill(playbook="unauthorized-access", incident="auth_failures", family="auth")
def test_bad_operator_tokens_block_the_source(drill):
    drill.steady_state()
    attack = drill.inject(AuthAttack(rate=10, path="/operator/halt"))
    drill.expect_detection("auth_failures", severity="SEV-3")
    drill.expect_containment(attacker_blocked(attack), not_halted())
    assert attack.probe(drill.ctx.operator_token) == 429, "a blocked source was let in with the right token"
    drill.heal()
    drill.expect_recovery()
    status, body = control_request(drill.ctx.control_url, "/operator/incident", token=drill.ctx.operator_token,
                                   body={"summary": "operator check after the attack", "severity": "SEV-4"})
    assert status == 201, f"the operator's own command was refused after the attack: HTTP {status} {body}"
    drill.verify()
