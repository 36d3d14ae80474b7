"""Playbook 6: unauthorised access — someone keeps calling the control API with wrong tokens.

The attacker sends from 127.0.0.2 (see harness.faults.auth), the operator from 127.0.0.1.
Detect: ``auth_failures``, its details naming the source, the count of failed attempts and the
window, held against the attempts the harness made. Contain: the attacker's source answered 429
(blocked), none of its commands ran (it tries the kill switch), the right token from the blocked
source is still refused, and ``/health``'s configuration hash is the one the harness computed over
what it wrote. Recover: the attack stops, the block expires and the operator's commands work.

A single mistyped token is no attack: the source is not blocked (the right token from it is served)
and no incident above SEV-4 is raised.
"""

from __future__ import annotations

import pytest

from harness.drill.api import MISTYPED_TOKEN_DUTY
from harness.drill.playbook_predicates import attacker_blocked, attempts_reported, config_intact, not_halted
from harness.faults.auth import AuthAttack, MistypedToken
from harness.observe.control import control_request


@pytest.mark.drill(playbook="unauthorized-access", incident="auth_failures", family="auth")
def test_bad_operator_tokens_block_the_source(drill):
    drill.steady_state()
    attack = drill.inject(AuthAttack(rate=10, path="/operator/halt"))
    drill.expect_detection("auth_failures", severity="SEV-3")
    drill.expect_containment(attacker_blocked(attack), not_halted())
    assert attack.probe(drill.ctx.operator_token) == 429, "a blocked source was let in with the right token"
    drill.wait_until(attempts_reported(attack), config_intact(), within=5.0)
    drill.heal()
    drill.expect_recovery()
    status, body = control_request(drill.ctx.control_url, "/operator/incident", token=drill.ctx.operator_token,
                                   body={"summary": "operator check after the attack", "severity": "SEV-4"})
    assert status == 201, f"the operator's own command was refused after the attack: HTTP {status} {body}"
    drill.verify()


@pytest.mark.drill(playbook="unauthorized-access", incident="auth_failures", family="auth")
def test_single_mistyped_token_is_no_attack(drill):
    drill.steady_state()
    typo = drill.inject(MistypedToken())
    drill.pause(1.0)
    status = typo.probe(drill.ctx.operator_token)  # typed again, right this time
    drill.expect_no_overreaction(hold=6.0, proofs=2, duty=MISTYPED_TOKEN_DUTY)
    assert status == 200, (f"the operator's right token, sent after one typo from {typo.source}, was answered "
                           f"HTTP {status}, not 200 ({MISTYPED_TOKEN_DUTY})")
    drill.verify()
