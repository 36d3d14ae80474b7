"""What the drills demand is what the contract says: docs/contract.md's table against scenarios/.

Every drill in ``scenarios/`` is read (with ``ast``, nothing is run): its ``drill`` marker, the
incident and severity ``expect_detection`` waits for, the predicates it passes to
``expect_containment`` and ``wait_until`` (before the heal: containment; after it: recovery), and
whether it calls ``expect_recovery`` and ``verify``. Section 5 of docs/contract.md has one row per
drill (several drills share a row only when they check exactly the same things); each expectation a
drill checks must be in its row, and a row must claim nothing one of its drills does not check.

Writing the table: name the drills in the "Drills" column as `` `test_…` ``; write the incident as
`` `kind` at SEV-n `` (exactly that severity; `` `kind` at SEV-n or above `` where the drill passes
``at_least=True``; or "not checked"); write each predicate as the drill calls it, in backticks,
in the containment or recovery column (``silent_while("safe", quiet=2.0)``); say "recovered on
chain" or "not measured" in the recovery column, "all" or "not checked" in the invariants column.
"""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.drill import playbook_predicates, predicates
from harness.drill.predicates import Predicate

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
CONTRACT = ROOT / "docs" / "contract.md"
CATALOGUE = ROOT / "docs" / "catalogue.md"
SECTION = "## 5. What the drills expect"

#: the predicate classes a drill can name (a backticked call of one of these in the table is a claim)
PREDICATES = frozenset(
    name for mod in (predicates, playbook_predicates) for name, obj in vars(mod).items()
    if inspect.isclass(obj) and issubclass(obj, Predicate) and obj is not Predicate
)

# A predicate call, normalised so the doc's spelling and the drill's compare: the class name, the
# positional arguments and the keywords, each a literal value or ("name", identifier).
Call = tuple[str, tuple[object, ...], tuple[tuple[str, object], ...]]


def _value(node: ast.expr) -> object:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return ("name", node.id)
    try:
        return ast.literal_eval(node)
    except ValueError:
        return ast.unparse(node)


def _call(node: ast.Call) -> Call | None:
    if not isinstance(node.func, ast.Name):
        return None
    return (node.func.id, tuple(_value(a) for a in node.args),
            tuple(sorted((str(k.arg), _value(k.value)) for k in node.keywords)))


def shown(call: Call) -> str:
    """A call as it would be written in the table."""
    name, args, kwargs = call

    def one(v: object) -> str:
        return v[1] if isinstance(v, tuple) and len(v) == 2 and v[0] == "name" else repr(v).replace("'", '"')

    return f"{name}({', '.join([one(a) for a in args] + [f'{k}={one(v)}' for k, v in kwargs])})"


# -- the drills ----------------------------------------------------------------------------------------

@dataclass
class DrillSpec:
    """What one drill checks, read from its source."""

    file: str
    name: str
    playbook: str | None = None
    incident: str | None = None  # the marker's
    drives_agent: bool = True  # takes the ``drill`` fixture
    detection: set[tuple[str, str]] = field(default_factory=set)  # (kind, "SEV-n" exact or "SEV-n or above")
    contain: set[Call] = field(default_factory=set)  # predicates waited for before the heal
    recover: set[Call] = field(default_factory=set)  # predicates waited for after it
    expects_recovery: bool = False
    verifies: bool = False
    schedule: bool = False  # carries out a fault schedule (run_schedule: each step's detection, recovery, verify)


def _marker(node: ast.expr, module_markers: dict[str, ast.Call]) -> ast.Call | None:
    """The ``pytest.mark.drill(...)`` call a decorator is, or names."""
    if isinstance(node, ast.Name):
        return module_markers.get(node.id)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "drill":
        return node
    return None


def read_drills(path: Path) -> list[DrillSpec]:
    tree = ast.parse(path.read_text(), filename=str(path))
    module_markers: dict[str, ast.Call] = {}
    for stmt in tree.body:  # network = pytest.mark.drill(...), then @network
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            m = _marker(stmt.value, {})
            if m is not None:
                module_markers[stmt.targets[0].id] = m
    out = []
    for fn in tree.body:
        if not isinstance(fn, ast.FunctionDef):
            continue
        marker = next((m for d in fn.decorator_list if (m := _marker(d, module_markers)) is not None), None)
        if marker is None:
            continue
        kw = {k.arg: ast.literal_eval(k.value) for k in marker.keywords}
        spec = DrillSpec(path.name, fn.name, kw.get("playbook"), kw.get("incident"),
                         drives_agent=bool({"drill", "drill_factory"} & {a.arg for a in fn.args.args}))
        if any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "run_schedule"
               for n in ast.walk(fn)):
            spec.schedule = spec.expects_recovery = spec.verifies = True
        calls = sorted((n for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                        and isinstance(n.func.value, ast.Name) and n.func.value.id == "drill"),
                       key=lambda n: (n.lineno, n.col_offset))
        healed = False
        for c in calls:
            what = c.func.attr  # type: ignore[attr-defined]
            if what == "heal":
                healed = True
            elif what == "expect_detection":
                kind = ast.literal_eval(c.args[0])
                sev = next((ast.literal_eval(k.value) for k in c.keywords if k.arg == "severity"),
                           ast.literal_eval(c.args[1]) if len(c.args) > 1 else "SEV-3")
                at_least = next((ast.literal_eval(k.value) for k in c.keywords if k.arg == "at_least"), False)
                spec.detection.add((kind, f"{sev} or above" if at_least else sev))
            elif what in ("expect_containment", "wait_until"):
                for a in c.args:
                    call = _call(a) if isinstance(a, ast.Call) else None
                    if call is None:
                        raise AssertionError(f"{path.name}::{fn.name}: cannot read the predicate {ast.unparse(a)!r}")
                    (spec.recover if healed else spec.contain).add(call)
            elif what == "expect_recovery":
                spec.expects_recovery = True
            elif what == "verify":
                spec.verifies = True
        out.append(spec)
    return out


def all_drills() -> list[DrillSpec]:
    return [d for p in sorted(SCENARIOS.glob("test_*.py")) for d in read_drills(p)]


# -- the table -----------------------------------------------------------------------------------------

@dataclass
class Row:
    line: int
    drills: list[str]
    cells: dict[str, str]  # column -> text

    @property
    def text(self) -> str:
        return " | ".join(self.cells.values())


COLUMNS = ("drills", "fault", "incident", "containment", "recovery", "invariants")


def read_table(text: str) -> list[Row]:
    """The rows of section 5's table, columns named by the first word of their header."""
    lines = text.splitlines()
    try:
        start = lines.index(SECTION)
    except ValueError:
        raise AssertionError(f"docs/contract.md has no section {SECTION!r}") from None
    i = start + 1
    while i < len(lines) and not lines[i].startswith("|"):
        i += 1
    header = [c.strip() for c in lines[i].strip().strip("|").split("|")]
    names = [m.group(0).lower() if (m := re.match(r"\w+", h)) else "" for h in header]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise AssertionError(f"the table of {SECTION!r} needs the columns {COLUMNS} (first word of each header), "
                             f"missing {missing}; it has {header}")
    rows = []
    for j in range(i + 2, len(lines)):
        if not lines[j].startswith("|"):
            break
        cells = [c.strip() for c in lines[j].strip().strip("|").split("|")]
        if len(cells) != len(names):
            raise AssertionError(f"docs/contract.md line {j + 1}: {len(cells)} cells, the header has {len(names)}")
        by = dict(zip(names, cells, strict=True))
        rows.append(Row(j + 1, re.findall(r"`(test_\w+)`", by["drills"]), by))
    return rows


def _pairs(cell: str) -> set[tuple[str, str]]:
    return {(kind, sev + above) for kind, sev, above in re.findall(r"`(\w+)` at (SEV-\d)( or above)?", cell)}


def _claimed(cell: str) -> set[Call]:
    """The predicate calls written in backticks in a cell."""
    out = set()
    for span in re.findall(r"`([^`]+)`", cell):
        try:
            node = ast.parse(span, mode="eval").body
        except SyntaxError:
            continue
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in PREDICATES:
            call = _call(node)
            if call is not None:
                out.add(call)
    return out


# -- the check -----------------------------------------------------------------------------------------

def problems(drills: list[DrillSpec], rows: list[Row]) -> list[str]:
    """Every way the table and the drills disagree, one sentence each (empty: they agree)."""
    out: list[str] = []
    known = {d.name: d for d in drills}
    where: dict[str, list[Row]] = {}
    for row in rows:
        if not row.drills:
            out.append(f"line {row.line}: the row names no drill (write each as `test_…` in the Drills column)")
        for name in row.drills:
            where.setdefault(name, []).append(row)
            if name not in known:
                out.append(f"line {row.line}: the table names {name}, which is no drill in scenarios/")
    for d in drills:
        rows_of = where.get(d.name, [])
        if not d.drives_agent:
            continue  # drives no agent (the smoke drill), so it expects nothing of one
        if not rows_of:
            out.append(f"{d.file}::{d.name} has no row in the table of docs/contract.md")
            continue
        if len(rows_of) > 1:
            out.append(f"{d.name} has {len(rows_of)} rows (lines {', '.join(str(r.line) for r in rows_of)})")
        row = rows_of[0]
        at = f"{d.name} (line {row.line})"
        if d.incident and f"`{d.incident}`" not in row.text:
            out.append(f"{at}: its marker's incident `{d.incident}` is not in its row")
        said = _pairs(row.cells["incident"])
        for kind, sev in sorted(d.detection - said):
            out.append(f"{at}: it expects `{kind}` at {sev}; write \"`{kind}` at {sev}\" in the incident column")
        for kind, sev in sorted(said - d.detection):
            out.append(f"{at}: the incident column claims `{kind}` at {sev}, which the drill does not expect")
        if d.schedule and "each step" not in row.cells["incident"]:
            out.append(f"{at}: it runs a fault schedule; say what \"each step\" must raise in the incident column")
        if not d.detection and not d.schedule and "not checked" not in row.cells["incident"]:
            out.append(f"{at}: it checks no detection; say \"not checked\" in the incident column")
        for column, calls in (("containment", d.contain), ("recovery", d.recover)):
            claimed = _claimed(row.cells[column])
            for call in sorted(calls - claimed, key=str):
                out.append(f"{at}: it checks `{shown(call)}`, missing from the {column} column")
            for call in sorted(claimed - calls, key=str):
                out.append(f"{at}: the {column} column claims `{shown(call)}`, which the drill does not check there")
        rec = row.cells["recovery"]
        if d.expects_recovery and "recovered on chain" not in rec:
            out.append(f"{at}: it calls expect_recovery; the recovery column must say \"recovered on chain\"")
        if not d.expects_recovery and "not measured" not in rec:
            out.append(f"{at}: it does not call expect_recovery; the recovery column must say \"not measured\"")
        inv = row.cells["invariants"]
        if d.verifies and not inv.startswith("all"):
            out.append(f"{at}: it calls verify(); the invariants column must start with \"all\"")
        if not d.verifies and "not checked" not in inv:
            out.append(f"{at}: it does not call verify(); the invariants column must say \"not checked\"")
    return out


# -- the tests -----------------------------------------------------------------------------------------

def test_every_drill_is_read() -> None:
    """The reader finds the drills the catalogue (collected by pytest) lists, no more, no fewer."""
    listed = set(re.findall(r"^\| (test_\w+\.py) \| (test_\w+)(?:\[[^]|]*\])? \|", CATALOGUE.read_text(), re.M))
    read = {(d.file, d.name) for d in all_drills()}
    assert read, "no drill read from scenarios/"
    assert read == listed, (f"read from scenarios/ but not in docs/catalogue.md: {sorted(read - listed)}; "
                            f"in the catalogue but not read: {sorted(listed - read)}")


def test_the_contract_table_matches_the_drills() -> None:
    found = problems(all_drills(), read_table(CONTRACT.read_text()))
    assert not found, "docs/contract.md section 5 disagrees with scenarios/:\n  " + "\n  ".join(found)


# -- the check can fail --------------------------------------------------------------------------------

TABLE = """\
## 5. What the drills expect

| Drills | Fault | Incident expected | Containment | Recovery | Invariants |
|---|---|---|---|---|---|
| `test_a` | stall | `chain_stalled` at SEV-2 | `silent_while("paused")`: quiet | recovered on chain | all |
| `test_b` | kill | not checked (`process_crash`) | `restarted()` | `proofs_landing(1)`; not measured | not checked |
"""


def _drills() -> list[DrillSpec]:
    a = DrillSpec("test_x.py", "test_a", incident="chain_stalled", detection={("chain_stalled", "SEV-2")},
                  contain={("silent_while", ("paused",), ())}, expects_recovery=True, verifies=True)
    b = DrillSpec("test_x.py", "test_b", incident="process_crash", contain={("restarted", (), ())},
                  recover={("proofs_landing", (1,), ())})
    return [a, b]


def test_a_table_that_matches_has_no_problem() -> None:
    assert problems(_drills(), read_table(TABLE)) == []


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda t: t.replace("| `test_a` |", "| `test_gone` |"), "test_gone, which is no drill"),
    (lambda t: t.replace("| `test_a` |", "| `test_gone` |"), "test_x.py::test_a has no row"),
    (lambda t: t.replace("at SEV-2", "at SEV-3"), "it expects `chain_stalled` at SEV-2;"),
    (lambda t: t.replace("at SEV-2", "at SEV-2 or above"), "claims `chain_stalled` at SEV-2 or above"),
    (lambda t: t.replace("at SEV-2", "at SEV-3"), "claims `chain_stalled` at SEV-3"),
    (lambda t: t.replace('`silent_while("paused")`', '`silent_while("safe")`'),
     'it checks `silent_while("paused")`, missing from the containment column'),
    (lambda t: t.replace("`restarted()` |", "`restarted()`, `no_nonce_gap()` |"),
     "claims `no_nonce_gap()`, which the drill does not check there"),
    (lambda t: t.replace("`proofs_landing(1)`; not", "not"), "`proofs_landing(1)`, missing from the recovery column"),
    (lambda t: t.replace("recovered on chain", "resolved"), "it calls expect_recovery"),
    (lambda t: t.replace("| not checked |\n", "| all |\n"), "it does not call verify()"),
    (lambda t: t.replace("not checked (`process_crash`)", "not checked"), "marker's incident `process_crash`"),
])
def test_each_disagreement_is_named(edit, expected) -> None:
    found = problems(_drills(), read_table(edit(TABLE)))
    assert any(expected in p for p in found), f"expected a problem saying {expected!r}, got {found}"


def test_a_table_without_the_columns_is_refused() -> None:
    with pytest.raises(AssertionError, match=r"missing \['invariants'\]"):
        read_table(TABLE.replace(" Invariants |", "").replace("|---|---|---|---|---|---|", "|---|---|---|---|---|"))


def test_the_reader_sees_a_drill_as_written(tmp_path: Path) -> None:
    src = tmp_path / "test_y.py"
    src.write_text(
        "import pytest\n"
        "from harness.drill.predicates import halted, sends_on\n"
        "m = pytest.mark.drill(playbook='p', incident='rpc_failure')\n"
        "@m\n"
        "def test_one(drill):\n"
        "    drill.inject(object())\n"
        "    drill.expect_detection('rpc_failure')\n"
        "    drill.wait_until(halted(quiet=2.0), within=1)\n"
        "    drill.heal()\n"
        "    drill.wait_until(sends_on('primary'), within=1)\n"
        "    drill.expect_recovery()\n"
        "def test_not_a_drill():\n"
        "    pass\n")
    (d,) = read_drills(src)
    assert (d.name, d.playbook, d.incident) == ("test_one", "p", "rpc_failure")
    assert d.detection == {("rpc_failure", "SEV-3")}  # expect_detection's default severity
    assert d.contain == {("halted", (), (("quiet", 2.0),))}
    assert d.recover == {("sends_on", ("primary",), ())}
    assert (d.expects_recovery, d.verifies) == (True, False)
    assert shown(next(iter(d.contain))) == "halted(quiet=2.0)"
