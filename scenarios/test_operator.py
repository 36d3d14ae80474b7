"""Operator's kill switch — halt, then resume.

Halted, the agent sends nothing (health says halted, no transaction from its addresses). The halt
is held until six proofs wait, more than the five a resumption may send in its first second.
Resumed, it comes back gradually: it ramps up instead of sending its whole backlog at once (the
gradual-resumption invariant of ``verify`` judges the chain), and recovery is read from the chain
(the backlog proven, new escrows proven within the steady-state band).
"""

from __future__ import annotations

import pytest

from harness.drill.predicates import backlog_at_least, halted
from harness.faults.operator import OperatorHalt


@pytest.mark.drill(playbook="operator-halt", family="operator")
def test_resume_after_halt_is_gradual(drill):
    drill.steady_state()
    drill.inject(OperatorHalt())
    drill.expect_containment(halted(quiet=2.0))
    # hold the halt until more proofs wait than a gradual resumption may send in its first second
    drill.wait_until(halted(quiet=2.0), backlog_at_least(6), within=15.0)
    drill.heal()
    drill.expect_recovery()
    drill.verify()
