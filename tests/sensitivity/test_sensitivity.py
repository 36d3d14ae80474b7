"""Every defect variant of the reference agent is caught by the drills aimed at it.

For each defect, the aimed drills and one unrelated drill run in a pytest subprocess with
``--agent-env AGENT_DEFECTS=<defect>`` (see scripts/sensitivity.py). The aimed drills must fail
with a drill failure that names the broken expectation, the unrelated one must pass. The
defect x drill table is printed in the terminal summary at the end of the session.

Slow: about half a minute per defect, three defects at a time (SENSITIVITY_WORKERS, default 3). Extra
pytest arguments for the inner runs can be given in the environment variable SENSITIVITY_PYTEST_ARGS
(split like a shell line).
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import sensitivity

pytestmark = [pytest.mark.slow, pytest.mark.sensitivity]

DEFECTS = list(sensitivity.aims())


@pytest.fixture(scope="module")
def rows(pytestconfig: pytest.Config, summary_lines: list[str]) -> dict[str, sensitivity.Row]:
    extra = shlex.split(os.environ.get("SENSITIVITY_PYTEST_ARGS", ""))
    chain = pytestconfig.getoption("--chain", None)
    workers = int(os.environ.get("SENSITIVITY_WORKERS", "3"))  # three defects' runs at a time, as `-n 3` drills
    got = sensitivity.run(sensitivity.aims(DEFECTS), chain=chain, extra=extra, timeout=300.0, workers=workers)
    text = sensitivity.table(got) + "\n\n" + sensitivity.details(got)
    summary_lines.extend(text.splitlines())  # conftest.py prints them in the terminal summary
    return {r.defect: r for r in got}


@pytest.mark.parametrize("defect", DEFECTS)
def test_defect_is_caught_by_its_drill_and_spares_an_unrelated_one(rows: dict[str, sensitivity.Row], defect: str) -> None:
    row = rows[defect]
    for test in row.aimed:
        o = row.outcomes.get(test, sensitivity.Outcome(test, "not run"))
        assert o.names_expectation, (
            f"defect {defect}: drill {test} should fail naming the broken expectation, "
            f"but it {o.status}: {o.message[:500] or '(no message)'}"
        )
    if row.control is not None:  # None: the defect touches every drill (see GLOBAL_DEFECTS)
        c = row.outcomes.get(row.control, sensitivity.Outcome(row.control, "not run"))
        assert c.status == "passed", f"defect {defect}: the unrelated drill {row.control} {c.status}: {c.message[:500]}"


def test_aims_cover_every_defect_of_the_reference_agent() -> None:
    """The table of aimed drills names every defect the reference agent knows, and only drills that exist.

    Each defect is in exactly one table: aimed at single-fault drills, a timing variant, or a
    combination defect aimed at a two-fault drill (run by tests/reference_agent/test_combination_defects.py).
    """
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fixtures"))
    from reference_agent.config import KNOWN_DEFECTS

    tables = [set(sensitivity.aims()), set(sensitivity.TIMING_DEFECTS), set(sensitivity.COMBINATION_DEFECTS)]
    assert set().union(*tables) == set(KNOWN_DEFECTS)
    assert sum(len(t) for t in tables) == len(KNOWN_DEFECTS), "a defect is in more than one table"
    combination = sensitivity.COMBINATION_DRILLS.read_text()
    for defect, drill in sensitivity.COMBINATION_DEFECTS.items():
        assert f"def {drill}(drill):" in combination, f"defect {defect} aims at {drill}, not in {sensitivity.COMBINATION_DRILLS.name}"
    scenarios = Path(__file__).resolve().parents[2] / "scenarios"
    names = {line.split("(")[0].removeprefix("def ").strip()
             for f in scenarios.glob("test_*.py") for line in f.read_text().splitlines() if line.startswith("def test_")}
    for defect, tests in sensitivity.aims().items():
        missing = [t for t in tests if t not in names]
        assert not missing, f"defect {defect} aims at drills that do not exist: {missing}"
    assert all(c in names for c in sensitivity.CONTROLS)
