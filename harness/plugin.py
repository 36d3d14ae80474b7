"""The agent-drills pytest plugin (entry point ``pytest11: agent_drills``).

Installing agent-drills gives any repository the ``drill`` marker, the options and the fixtures;
each concern lives in its own module, listed here.
"""

from __future__ import annotations

pytest_plugins = [
    "harness.pytest_chain",  # --chain, --allow-remote, the session chain
    "harness.drill.pytest_plugin",  # --agent-cmd, --agent-env, budgets, the drill fixture
    "harness.drill.catalogue",  # --drill-catalogue: the built-in drills, family and playbook markers
    "harness.drill.shard",  # --drill-shard I/N: one part of the drills, even by recorded duration
    "harness.schedule.pytest_plugin",  # --drill-search, --drill-schedule: fault schedules searched and replayed
    "harness.report.pytest_plugin",  # --drill-report-dir, the regression gate, Allure
]

