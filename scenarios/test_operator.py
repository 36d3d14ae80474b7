"""Operator's kill switch — halt, then resume.

Halted, the agent sends nothing (health says halted, no transaction from its addresses). Resumed,
it comes back gradually: it reports mode ``resuming`` and ramps up instead of sending its whole
backlog at once (the gradual-resumption invariant of ``verify`` checks the chain).
"""

from __future__ import annotations

import pytest

from harness.drill.predicates import halted, healthy, in_mode, proofs_landing
from harness.faults.operator import OperatorHalt


@pytest.mark.drill(playbook="operator-halt", family="operator")
def test_resume_after_halt_is_gradual(drill):
    drill.steady_state()
    drill.inject(OperatorHalt())
    drill.expect_containment(halted(quiet=2.0))
    drill.heal()
    drill.wait_until(in_mode("resuming"), within=drill.budget.detect)
    drill.wait_until(healthy(), in_mode("normal"), proofs_landing(3), within=drill.budget.recover)
    drill.verify()
