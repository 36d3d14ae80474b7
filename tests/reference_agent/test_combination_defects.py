"""Defects that only two overlapping faults show are caught by the two-fault drills.

combination_drills.py runs in an inner ``pytest -p harness.drill.pytest_plugin … -m drill`` (as
tests/engine/test_hostile.py runs minimal_drills.py): the sound agent passes both drills; with each
defect of ``COMBINATION_DEFECTS`` (scripts/sensitivity.py) the drill aimed at it fails, naming what
broke, and the other drill still passes. That these defects pass every single-fault drill of
scenarios/ is measured by running the catalogue with them (docs/agent.md, section 5).

Slow: about 1 min 50 s in all (the sound agent 22 s, each defect 40 s).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import sensitivity

pytestmark = pytest.mark.slow

DRILLS = sensitivity.COMBINATION_DRILLS
AIMED = sensitivity.COMBINATION_DEFECTS


def run(tmp_path: Path, chain: str | None, *agent_env: str) -> dict[str, sensitivity.Outcome]:
    extra = [arg for env in agent_env for arg in ("--agent-env", env)]
    outcomes, _seconds, timed_out = sensitivity.run_drills(
        tmp_path, chain=chain, timeout=400.0, path=DRILLS,
        extra=[*extra, "--drill-report-dir", str(tmp_path / "reports")],
    )
    assert not timed_out, f"the inner drill run took over 400 s; finished: {sorted(outcomes)}"
    return outcomes


def outcome(outcomes: dict[str, sensitivity.Outcome], test: str) -> sensitivity.Outcome:
    return outcomes.get(test, sensitivity.Outcome(test, "not run"))


def test_every_combination_defect_has_its_two_fault_drill() -> None:
    text = DRILLS.read_text()
    for defect, drill in AIMED.items():
        assert f"def {drill}(drill):" in text, f"{defect} is aimed at {drill}, which {DRILLS.name} does not define"
        assert f"`{defect}`" in text.split('"""')[1], f"the docstring of {DRILLS.name} gives no schedule for {defect}"


def test_sound_agent_passes_both_two_fault_drills(tmp_path: Path, pytestconfig: pytest.Config) -> None:
    got = run(tmp_path, pytestconfig.getoption("--chain", None))
    for drill in AIMED.values():
        o = outcome(got, drill)
        assert o.status == "passed", f"the sound agent {o.status} {drill}: {o.message[:800]}"


@pytest.mark.parametrize("defect", sorted(AIMED))
def test_defect_fails_its_two_fault_drill_and_passes_the_other(tmp_path: Path, pytestconfig: pytest.Config,
                                                               defect: str) -> None:
    got = run(tmp_path, pytestconfig.getoption("--chain", None), f"AGENT_DEFECTS={defect}")
    aimed = outcome(got, AIMED[defect])
    assert aimed.names_expectation, (
        f"defect {defect}: {AIMED[defect]} should fail naming the broken expectation, "
        f"but it {aimed.status}: {aimed.message[:800] or '(no message)'}"
    )
    # What broke: the queue stopped moving once the second fault came, while the first still held.
    assert "ContainmentFailed" in aimed.message and "proof(s) landed after the second fault" in aimed.message, aimed.message[:800]
    for other in set(AIMED.values()) - {AIMED[defect]}:
        o = outcome(got, other)
        assert o.status == "passed", f"defect {defect} should spare {other}, but it {o.status}: {o.message[:800]}"
