"""The agent-drills pytest plugin (entry point ``pytest11: agent_drills``).

Installing agent-drills gives any repository the ``drill`` marker, the options and the fixtures;
each concern lives in its own module, listed here.
"""

from __future__ import annotations

import pytest

pytest_plugins = [
    "harness.pytest_chain",
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "drill(playbook, incident, family): an incident-response drill against the agent under test; "
        "select with -m drill",
    )
