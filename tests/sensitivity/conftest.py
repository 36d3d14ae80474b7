"""Shows the sensitivity table at the end of the session, also when output is captured (CI)."""

from __future__ import annotations

import pytest

_TABLE = pytest.StashKey[list[str]]()


@pytest.fixture(scope="session")
def summary_lines(pytestconfig: pytest.Config) -> list[str]:
    """Lines appended here are printed in the terminal summary, under "sensitivity"."""
    return pytestconfig.stash.setdefault(_TABLE, [])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    lines = config.stash.get(_TABLE, [])
    if lines:
        terminalreporter.write_sep("=", "sensitivity: defect x drill")
        for line in lines:
            terminalreporter.write_line(line)
