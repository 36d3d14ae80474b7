"""``drill init``: a starter ``drills.toml`` and an example drill in the current project.

Nothing is overwritten without ``force``: when a file exists, nothing at all is written and the
error names it. The starter lists every budget key with its default (commented out), the agent
command, the container alternative and the chain, so a user edits rather than looks up.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from harness.checks.budgets import Budget
from harness.errors import UsageError

__all__ = ["CONFIG_FILE", "EXAMPLE_DRILL", "Written", "init_project"]

CONFIG_FILE = Path("drills.toml")
EXAMPLE_DRILL = Path("drills") / "test_my_drill.py"

#: what each budget key means, in the starter's comments
_BUDGET_NOTES = {
    "detect": "seconds from the injection to the first matching alert",
    "contain": "seconds from the injection to containment (checked on the chain)",
    "recover": "seconds from the injection to recovery on the chain",
    "deadline_misses": "escrows the agent may let expire in one drill",
    "value_at_risk_share": "fail and stop the drill once more than this share of the agent's ETH is lost",
    "value_at_risk_eth": "or a fixed loss limit in ETH; when set it replaces the share",
    "time_limit": "abort a drill after this many seconds",
}


@dataclass(frozen=True)
class Written:
    """What ``init_project`` wrote, and the command to run next."""

    files: tuple[Path, ...]
    next_command: str


def _budget_lines() -> list[str]:
    defaults = Budget()
    lines = []
    for f in fields(Budget):
        if f.name == "scale":
            continue
        value = getattr(defaults, f.name)
        shown = "2.0" if value is None else repr(value)  # value_at_risk_eth has no default: show an example
        lines.append(f"# {f.name} = {shown}".ljust(34) + f"# {_BUDGET_NOTES[f.name]}")
    return lines


def config_text(agent_cmd: str | None) -> str:
    """The starter drills.toml (``agent_cmd`` set when given, else shown commented out)."""
    agent = (f"agent_cmd = {_toml_string(agent_cmd)}" if agent_cmd
             else '# agent_cmd = "python -m my_agent"')
    return "\n".join([
        "# agent-drills configuration for this project (written by `drill init`; docs/drills.md in agent-drills).",
        "# Run the built-in drills and those under drills/:  pytest -m drill",
        "# These keys may sit under [tool.drills] in pyproject.toml instead; while this file exists, that",
        "# table is not read.",
        "",
        "# The agent under test: the command that starts it, split like a shell command (never run through",
        "# one); {python} is pytest's interpreter, {rootdir} this directory. --agent-cmd on the command line",
        "# wins. To drill a container of a local Docker image instead, run pytest -m drill --agent-image IMAGE.",
        agent,
        "",
        '# The chain the drills start: "pyevm" (embedded, the default) or "anvil" (Foundry\'s; --chain wins).',
        '# chain = "pyevm"',
        "",
        "# Budgets of every drill (the defaults shown); --drill-budget-scale F multiplies the seconds.",
        *_budget_lines(),
        "",
        "# One drill's budget, by its test function's name (built-in or yours): it overrides the drill's own",
        "# budget and the defaults above. A name that matches no drill stops the run with a suggestion.",
        "# [scenarios.test_primary_rpc_down_fails_over_to_backup]",
        "# deadline_misses = 1",
        "",
    ])


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


EXAMPLE_TEXT = '''\
"""An example drill of this project's own: it runs beside the built-in ones (pytest -m drill).

A drill is a pytest test that takes the `drill` fixture and is marked `drill`. The fixture starts a
chain, the fault proxies and your agent; the phases below wait on what the chain and the proxies
show. Everything it needs comes from one import: `from harness import ...` (faults, predicates).
"""

import pytest

from harness import Outage, failed_over, no_nonce_gap, proofs_landing


# playbook and family label the report and become markers: pytest -m "drill and my_playbook".
# budget sets what this drill needs beyond the defaults (drills.toml can still override it by name).
@pytest.mark.drill(playbook="my-playbook", incident="rpc_failure", family="network", budget={"contain": 12})
def test_my_agent_keeps_proving_through_a_primary_rpc_outage(drill):
    drill.steady_state()                          # the agent healthy and proving escrows
    drill.inject(Outage("primary"))               # t0: the primary RPC endpoint refuses connections
    drill.expect_detection("rpc_failure", severity="SEV-3")
    drill.expect_containment(failed_over("backup-1"), proofs_landing(2), no_nonce_gap())
    drill.heal()                                  # the primary is back
    drill.expect_recovery()                       # backlog cleared and new proofs on time, on the chain
    drill.verify()                                # the invariants: funds, no double proof, no key leaked, ...
'''


def init_project(directory: Path, *, agent_cmd: str | None = None, force: bool = False) -> Written:
    """Write drills.toml and drills/test_my_drill.py under ``directory``; refuse to overwrite unless ``force``."""
    directory = Path(directory)
    if agent_cmd is not None:
        try:
            if not shlex.split(agent_cmd):
                raise ValueError("it is empty")
        except ValueError as exc:
            raise UsageError(f"--agent-cmd {agent_cmd!r} is not a command: {exc}; give the command that starts "
                             'your agent, e.g. --agent-cmd "python -m my_agent"') from None
    targets = {CONFIG_FILE: config_text(agent_cmd), EXAMPLE_DRILL: EXAMPLE_TEXT}
    existing = [path for path in targets if (directory / path).exists()]
    if existing and not force:
        names = " and ".join(str(p) for p in existing)
        one = len(existing) == 1
        raise UsageError(f"{names} already exist{'s' if one else ''} in {directory.resolve()}; nothing was written. "
                         f"Move {'it' if one else 'them'} away, or run `drill init --force` to overwrite")
    for path in targets:
        if (directory / path).is_dir():
            raise UsageError(f"{directory / path} is a directory; nothing was written")
    for path, text in targets.items():
        (directory / path).parent.mkdir(parents=True, exist_ok=True)
        (directory / path).write_text(text, encoding="utf-8")
    run = ["pytest", "-m", "drill"] if agent_cmd else ["pytest", "-m", "drill", "--agent-cmd", "python -m my_agent"]
    return Written(files=tuple(targets), next_command=shlex.join(run))


def render_next_steps(written: Written, *, agent_cmd: str | None) -> Sequence[str]:
    """What ``drill init`` prints after writing."""
    lines = [f"wrote {path}" for path in written.files]
    if not agent_cmd:
        lines.append("set agent_cmd in drills.toml to the command that starts your agent, or pass --agent-cmd:")
    lines.append("next, run the built-in drills and drills/test_my_drill.py against your agent:")
    lines.append(f"    {written.next_command}")
    return lines
