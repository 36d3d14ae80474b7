"""Playbook 3: process crash — the agent is killed once, or at every start.

Killed once. Detect: the agent reports ``process_crash`` itself, after the supervisor restarted it.
Contain: it picks up where it left off: escrows opened while it was down are proven, none twice,
no nonce left behind. Recover: proofs on time again, the incident resolved.

Killed at every start. Detect: ``crash_loop`` at SEV-2 once the short lives add up. Contain: it
starts in a safe mode instead of thrashing. Recover: the kills stop, it leaves safe mode.
"""

from __future__ import annotations

import pytest

from harness.drill.playbook_predicates import no_work_lost
from harness.drill.predicates import no_nonce_gap, proofs_landing, restarted, silent_while
from harness.faults.process import CrashLoop, ProcessKill

# The agent is restarted: detection waits for the new process to start (4-5 s on a busy machine).
process_crash = pytest.mark.drill(playbook="process-crash", incident="process_crash", family="process",
                                  budget={"detect": 10, "contain": 15})


@process_crash
def test_process_killed_reports_process_crash(drill):
    drill.steady_state()
    drill.inject(ProcessKill())
    drill.expect_detection("process_crash", severity="SEV-2")
    drill.expect_recovery()
    drill.verify()


@process_crash
def test_process_killed_restarts_without_duplicate_or_lost_work(drill):
    drill.steady_state()
    drill.inject(ProcessKill(down=3.0))  # down long enough for escrows to be opened meanwhile
    drill.expect_containment(restarted(), no_nonce_gap(), no_work_lost(), proofs_landing(1))
    drill.verify()  # no escrow proven or proof attempted twice


# Four lives, the supervisor's backoff between them, then the agent's own start; down or in safe mode
# for ~15 s, so escrows opened meanwhile may expire.
@pytest.mark.drill(playbook="process-crash", incident="crash_loop", family="process",
                   budget={"detect": 15, "contain": 15, "deadline_misses": 20})
def test_crash_loop_enters_safe_mode(drill):
    drill.steady_state()
    drill.inject(CrashLoop(starts=4, after=0.5))  # the first life killed is a long one
    drill.expect_detection("crash_loop", severity="SEV-2")
    drill.expect_containment(silent_while("safe", quiet=2.0))
    drill.heal()
    drill.expect_recovery()
    drill.verify()
