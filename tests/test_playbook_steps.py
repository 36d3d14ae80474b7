"""The playbook steps of scenarios/playbook_steps.toml against the drills of scenarios/, read with ast.

Every step names the drills that check it (and the checks, as the drills call them), or says it is
out of a harness's reach, or not drilled yet; docs/catalogue.md renders it (tests/test_docs.py keeps
that current). Here: every drill named exists, every check named is one its drills make, and every
drill of the catalogue is under some step, so a new drill cannot be left out of the map.
"""

from __future__ import annotations

import ast
import fnmatch
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import catalogue  # noqa: E402  (scripts/catalogue.py)

SCENARIOS = ROOT / "scenarios"
#: drills no playbook step is about: the smoke drill drives no agent (docs/contract.md section 5), and
#: the schedule drills check fault combinations, each step's own drill being elsewhere
NOT_A_STEP = {"smoke", "combined-faults"}
#: every drill row of the generated catalogue (a parametrized drill has a row per parameter)
COLLECTED = set(re.findall(r"^\| test_\w+\.py \| (test_\w+(?:\[[^]|]*\])?) \|",
                           (ROOT / "docs" / "catalogue.md").read_text(encoding="utf-8"), re.M))


def _marker_playbook(dec: ast.expr, assigned: dict[str, ast.expr]) -> str | None:
    """The ``playbook`` of a ``pytest.mark.drill(...)`` decorator, or of the module-level marker it names."""
    dec = assigned.get(dec.id, dec) if isinstance(dec, ast.Name) else dec
    if isinstance(dec, ast.Call) and ast.unparse(dec.func) == "pytest.mark.drill":
        for kw in dec.keywords:
            if kw.arg == "playbook" and isinstance(kw.value, ast.Constant):
                return str(kw.value.value)
    return None


def _drills() -> dict[str, tuple[ast.FunctionDef, str | None]]:
    """Each drill function of scenarios/ -> (its definition, its marker's playbook)."""
    out = {}
    for path in sorted(SCENARIOS.glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        assigned = {t.id: n.value for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                playbooks = [p for d in node.decorator_list if (p := _marker_playbook(d, assigned))]
                out[node.name] = (node, playbooks[0] if playbooks else None)
    return out


DRILLS = _drills()
FUNCTIONS = {name: fn for name, (fn, _) in DRILLS.items()}
PLAYBOOKS = catalogue.load_steps()
STEPS = [s for p in PLAYBOOKS for s in p.steps]


def _calls(fn: ast.FunctionDef) -> set[str]:
    """Every call in the drill, written without its receiver: ``drill.expect_recovery()`` -> ``expect_recovery()``."""
    out = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else ast.unparse(node.func)
            out.add(ast.unparse(ast.Call(func=ast.Name(name), args=node.args, keywords=node.keywords)))
    return out


def _invariants() -> set[str]:
    source = (ROOT / "harness" / "checks" / "invariants.py").read_text(encoding="utf-8")
    return set(re.findall(r'^    name = "([^"]+)"', source, re.M))


def _made_by(check: str, drills: list[ast.FunctionDef]) -> bool:
    if check.startswith("invariant:"):
        return check.removeprefix("invariant:").strip() in _invariants() and any("verify()" in _calls(d) for d in drills)
    call = ast.parse(check, mode="eval").body
    assert isinstance(call, ast.Call), f"check {check!r} is neither a call nor \"invariant: <name>\""
    made = set().union(*(_calls(d) for d in drills))
    if [ast.unparse(a) for a in call.args] == ["..."] and not call.keywords:  # name(...): any arguments
        name = ast.unparse(call.func)
        return any(c.startswith(f"{name}(") for c in made)
    return ast.unparse(call) in made


def test_the_shipped_file_has_steps_of_each_kind() -> None:
    kinds = {s.kind for s in STEPS}
    assert kinds == {"checked", "out of reach", "not yet"}, kinds
    names = [p.name for p in PLAYBOOKS]
    assert len(names) == len(set(names)), names
    for p in PLAYBOOKS:
        steps = [s.step for s in p.steps]
        assert len(steps) == len(set(steps)), f"playbook {p.name!r} lists a step twice"


@pytest.mark.parametrize("step", [s for s in STEPS if s.drills], ids=lambda s: s.step[:40])
def test_every_drill_named_exists_and_makes_the_checks_named(step: catalogue.Step) -> None:
    for name in step.drills:
        function = name.partition("[")[0]
        assert function in FUNCTIONS, f"step {step.step!r} names {name}, no drill of scenarios/"
        if "[" in name:
            assert name in COLLECTED, f"step {step.step!r} names {name}, not among the collected drills of docs/catalogue.md"
    drills = [FUNCTIONS[n.partition("[")[0]] for n in step.drills]
    for check in step.checks:
        assert _made_by(check, drills), (
            f"step {step.step!r}: no drill of {', '.join(step.drills)} makes the check {check!r} (write it as the drill "
            "calls it, name(...) for any arguments, or \"invariant: <name>\" with a drill that calls verify())")


@pytest.mark.parametrize("step", [s for s in STEPS if s.not_yet], ids=lambda s: s.step[:40])
def test_a_step_not_yet_drilled_names_the_issue_item_that_asks_for_it(step: catalogue.Step) -> None:
    assert re.fullmatch(r"issue \d+, item \d+", step.not_yet), f"step {step.step!r}: not_yet = {step.not_yet!r}"


def test_every_drill_of_the_catalogue_is_under_a_step() -> None:
    named = {n.partition("[")[0] for s in STEPS for n in s.drills}
    left = sorted(n for n, (_, playbook) in DRILLS.items() if n not in named and playbook not in NOT_A_STEP)
    assert not left, f"drills under no step of scenarios/playbook_steps.toml: {', '.join(left)}"
    assert {n for n, (_, playbook) in DRILLS.items() if playbook in NOT_A_STEP} == {
        "test_chain_deploys_and_a_throwaway_key_proves_one_escrow", "test_schedule_search_finds_no_failing_combination",
        "test_schedule_replay"}


@pytest.mark.parametrize(("entry", "message"), [
    ('step = "Revoke approvals"\nout_of_reach = "people"\nnot_yet = "issue 12, item 3"',
     "step 'Revoke approvals': give exactly one of drills .* it has out_of_reach, not_yet"),
    ('step = "Revoke approvals"', "it has none"),
    ('step = "Revoke approvals"\ndrills = ["test_x"]', "drills and checks go together"),
    ('step = "Revoke approvals"\nnot_yet = "issue 12, item 3"\nwhy = "x"', r"unknown key\(s\) why"),
    ('drills = ["test_x"]', "needs step ="),
])
def test_a_malformed_step_is_refused_saying_where_and_what_to_do(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "steps.toml"
    path.write_text(f'[[playbooks]]\nname = "Wallet compromise"\n[[playbooks.steps]]\n{entry}\n', encoding="utf-8")
    with pytest.raises(catalogue.StepsError, match=f"steps.toml: playbook 'Wallet compromise'.*{message}"
                       if "needs step" not in message else message):
        catalogue.load_steps(path)


def test_the_package_ships_the_steps_beside_the_drills() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["package-data"]
    assert any(fnmatch.fnmatch(catalogue.STEPS.name, pattern) for pattern in data["agent_drills_catalogue"])
    assert catalogue.STEPS.parent == SCENARIOS
