"""Drills run against the minimal agent by test_minimal_agent.py (not collected on their own).

The faults are defined here, small and self-contained, so these drills test the engine and not
the fault library.
"""

from __future__ import annotations

import json
import os
import signal

import pytest

from harness.drill.api import MISTYPED_TOKEN_DUTY
from harness.drill.playbook_predicates import attempts_reported, config_intact, stuck_nonce_cancelled
from harness.drill.predicates import failed_over, no_nonce_gap, pending_queue_drained, proofs_landing, restarted
from harness.faults.auth import AuthAttack, MistypedToken
from harness.faults.base import Fault
from harness.faults.gas import GasSpike
from harness.faults.network import Latency, Outage


class KillAgent(Fault):
    family = "process"
    name = "process_kill"

    def _inject(self) -> None:
        self.ctx.agent.kill(signal.SIGKILL)

    def _heal(self) -> None:
        pass


class StopMining(Fault):
    family = "chain"
    name = "chain_stall"

    def _inject(self) -> None:
        self.ctx.chain.set_automine(False)

    def _heal(self) -> None:
        self.ctx.chain.set_automine(True)
        self.ctx.chain.mine(1)


class Nothing(Fault):
    family = "none"
    name = "nothing"

    def _inject(self) -> None:
        pass

    def _heal(self) -> None:
        pass


@pytest.mark.drill(playbook="steady-state", family="none")
def test_steady_state_holds(drill):
    drill.steady_state()
    drill.verify()


@pytest.mark.drill(playbook="process-crash", incident="process_crash", family="process")
def test_killed_agent_reports_crash_after_restart(drill):
    drill.steady_state()
    drill.inject(KillAgent())
    drill.expect_detection("process_crash", severity="SEV-2", within=10)
    drill.expect_containment(restarted(), proofs_landing(1), no_nonce_gap())
    drill.expect_recovery()
    drill.verify()


@pytest.mark.drill(playbook="monitoring", incident="chain_stalled", family="chain")
def test_chain_stall_is_detected(drill):
    drill.steady_state()
    drill.inject(StopMining())
    drill.expect_detection("chain_stalled", severity="SEV-2")


@pytest.mark.drill(playbook="network-issues", incident="rpc_failure", family="network")
def test_primary_rpc_down_fails_over_to_backup(drill):
    drill.steady_state()
    outage = drill.inject(Outage("primary"))
    drill.expect_detection("rpc_failure", severity="SEV-3")
    drill.expect_containment(failed_over("backup-1"), proofs_landing(1))
    drill.heal(outage)
    drill.expect_recovery()
    drill.verify()


@pytest.mark.drill(playbook="network-issues", incident="rpc_failure", family="network")
def test_primary_rpc_down_moves_traffic_to_backup(drill):
    drill.steady_state()
    drill.inject(Outage("primary"))
    drill.expect_containment(failed_over("backup-1"), within=4)


@pytest.mark.drill(playbook="network-issues", incident="rpc_failure", family="network")
def test_one_second_rpc_blip_is_no_incident(drill):
    drill.steady_state()
    blip = drill.inject(Outage("primary"))
    drill.pause(1.0)
    drill.heal(blip)
    drill.expect_no_overreaction(hold=6.0, proofs=2)


@pytest.mark.drill(playbook="network-issues", incident="latency_degraded", family="network")
def test_unresolved_latency_incident_is_escalated_to_sev2(drill):
    drill.steady_state()
    drill.inject(Latency("all", latency_ms=500))
    drill.expect_detection("latency_degraded", severity="SEV-3", within=10)  # it polls slowly
    drill.expect_escalation("SEV-2", after=8.0)


@pytest.mark.drill(playbook="unauthorized-access", incident="auth_failures", family="auth")
def test_single_mistyped_token_is_no_attack(drill):
    drill.steady_state()
    typo = drill.inject(MistypedToken())
    drill.pause(1.0)
    status = typo.probe(drill.ctx.operator_token)
    drill.expect_no_overreaction(hold=4.0, proofs=1, duty=MISTYPED_TOKEN_DUTY)
    assert status == 200, f"the right token after a typo was answered HTTP {status}"


@pytest.mark.drill(playbook="unauthorized-access", incident="auth_failures", family="auth")
def test_attack_reported_with_its_attempts_and_configuration_verified(drill):
    drill.steady_state()
    attack = drill.inject(AuthAttack(rate=10))
    drill.wait_until(attempts_reported(attack), config_intact(), within=4.0)


@pytest.mark.drill(playbook="stuck-transactions", incident="stuck_transactions", family="gas")
def test_stuck_nonce_cancelled_past_the_fee_cap(drill):
    drill.steady_state()
    drill.inject(GasSpike(base_fee_gwei=1000, start_gwei=125, growth=3.0, block_time=1.0))  # past the 500 gwei cap
    drill.expect_containment(stuck_nonce_cancelled(), pending_queue_drained(), within=6.0)


@pytest.mark.drill(playbook="interrupt", family="none")
def test_waits_until_interrupted(drill):
    """Used by the Ctrl-C test: says where the drill's pieces are, then waits for a long time."""
    drill.steady_state()
    ctx = drill.ctx
    with open(os.environ["DRILL_INTERRUPT_INFO"], "w") as fh:
        node_proc = getattr(ctx.chain.node, "proc", None)
        json.dump({"agent_pid": ctx.agent.pid, "control_url": ctx.control_url, "alert_url": ctx.alert_url,
                   "proxy": ctx.proxy_api_url, "rpc_urls": ctx.rpc_urls, "chain_url": ctx.chain.rpc_url,
                   "chain_pid": node_proc.pid if node_proc else None}, fh)
    drill.inject(Nothing())
    drill.expect_detection("chain_stalled", within=120)


@pytest.mark.drill(playbook="typo", incident="rpc_failur", family="network")
def test_marker_with_a_misspelt_incident(drill):
    drill.steady_state()
