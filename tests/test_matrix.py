"""``drill matrix``: the Kubernetes manifests validate, and the same cells run here as processes and merge.

The manifests are checked against the Kubernetes API's own schemas (kubernetes-validate, strict:
an unknown field is an error) for the versions the docs name. Then the matrix's cells (the minimal
agent x both chains x one seed x two shards of three minimal drills) run as separate
``drill matrix cell`` processes, two at a time, as pods of the Indexed Job would, and
``drill matrix merge`` joins each run's shards and gates it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.errors import UsageError
from harness.matrix import Matrix, cell_index, render_manifests

ROOT = Path(__file__).resolve().parents[1]
AGENT = ROOT / "tests" / "minimal_agent" / "agent.py"
DRILLS = "tests/engine/minimal_drills.py"
SELECT = "steady_state_holds or killed_agent or fails_over_to_backup"
K8S_VERSIONS = ("1.31", "1.33")  # backoffLimitPerIndex is beta from 1.29, on by default; GA in 1.33


def _drill(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_cells_are_the_product_of_the_axes_in_a_fixed_order() -> None:
    m = Matrix(name="n", agents=("a", "b"), images=("img:1",), chains=("pyevm", "anvil"), seeds=(7, 8), shards=2)
    cells = m.cells()
    assert len(cells) == 3 * 2 * 2 * 2 and [c.index for c in cells] == list(range(24))
    assert (cells[0].agent, cells[0].chain, cells[0].seed, cells[0].shard) == ("a", "pyevm", 7, 1)
    assert (cells[-1].agent_kind, cells[-1].chain, cells[-1].seed, cells[-1].shard) == ("image", "anvil", 8, 2)
    assert Matrix.from_json(m.to_json()).cells() == cells
    args = cells[-1].pytest_args(m, Path("/r"))
    assert args[:3] == ["-m", "drill", "--agent-image"] and "--drill-shard" in args and "2/2" in args


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "Bad_Name", "agents": ("a",)}, "lowercase letters"),
    ({"name": "n"}, "needs at least one agent"),
    ({"name": "n", "agents": ("a",), "chains": ("geth",)}, "--chains takes pyevm"),
    ({"name": "n", "agents": ("a",), "seeds": (1, 1)}, "--seeds must be distinct"),
    ({"name": "n", "agents": ("a",), "shards": 0}, "--shards must be at least 1"),
])
def test_a_bad_matrix_says_what_to_change(kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Matrix(**kwargs)


def test_the_cell_index_comes_from_the_indexed_job(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "5")
    assert cell_index(None) == 5 and cell_index(2) == 2
    monkeypatch.delenv("JOB_COMPLETION_INDEX")
    with pytest.raises(UsageError, match="JOB_COMPLETION_INDEX"):
        cell_index(None)


def test_the_generated_manifests_validate_against_the_kubernetes_schemas(tmp_path: Path) -> None:
    import kubernetes_validate

    out = _drill("matrix", "manifests", "--name", "nightly", "--agent-cmd", "python -m reference_agent",
                 "--agent-cmd", "python -m my_agent", "--chains", "pyevm", "anvil", "--seeds", "1", "2", "--shards", "3",
                 "--runner-image", "registry.local/agent-drills:0.1.0", "--claim", "drill-reports",
                 "--namespace", "drills", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "24 cell(s): 2 agent(s) x 2 chain(s) x 2 seed(s) x 3 shard(s)" in out.stdout
    docs = [*yaml.safe_load_all((tmp_path / "drill-matrix.yaml").read_text()),
            *yaml.safe_load_all((tmp_path / "drill-matrix-merge.yaml").read_text())]
    assert [d["kind"] for d in docs] == ["ConfigMap", "Job", "Job"]
    for version in K8S_VERSIONS:
        for doc in docs:
            kubernetes_validate.validate(doc, version, strict=True)  # raises ValidationError naming the field
    config, cells, merge = docs
    assert json.loads(config["data"]["matrix.json"]) == json.loads((tmp_path / "matrix.json").read_text())
    assert cells["spec"]["completionMode"] == "Indexed" and cells["spec"]["completions"] == 24
    assert cells["spec"]["parallelism"] == 4
    pod = cells["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["containers"][0]["command"][:3] == ["drill", "matrix", "cell"]
    assert {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v} == {"drill-reports"}
    assert merge["spec"]["template"]["spec"]["containers"][0]["command"][:3] == ["drill", "matrix", "merge"]


def test_the_validator_would_catch_a_broken_manifest() -> None:
    """The check above is not vacuous: a misspelt field or a wrong type is refused."""
    import kubernetes_validate

    docs = render_manifests(Matrix(name="n", agents=("a",)), runner_image="img:1", claim="c")
    job = json.loads(json.dumps(docs[1]))
    job["spec"]["completionMod"] = job["spec"].pop("completionMode")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, K8S_VERSIONS[-1], strict=True)
    job = json.loads(json.dumps(docs[1]))
    job["spec"]["completions"] = "four"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, K8S_VERSIONS[-1], strict=True)


@pytest.mark.slow
def test_the_cells_run_here_as_processes_and_merge_into_one_gated_run_per_configuration(tmp_path: Path) -> None:
    out = _drill("matrix", "manifests", "--name", "local", "--agent-cmd", f"{{python}} {AGENT}", "--chains", "pyevm",
                 "anvil", "--shards", "2", "--pytest-arg", DRILLS, "--pytest-arg=-k", "--pytest-arg", SELECT,
                 "--runner-image", "unused:here", "--out", str(tmp_path / "k8s"))
    assert out.returncode == 0, out.stderr
    matrix, cells_dir, reports = tmp_path / "k8s" / "matrix.json", tmp_path / "cells", tmp_path / "reports"
    # the pods of the Indexed Job, two at a time; each learns its cell from JOB_COMPLETION_INDEX
    procs = []
    for index in range(4):
        env = {**os.environ, "JOB_COMPLETION_INDEX": str(index)}
        procs.append(subprocess.Popen([sys.executable, "-m", "harness.cli", "matrix", "cell", "--matrix", str(matrix),
                                       "--report-dir", str(cells_dir)], cwd=ROOT, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        if index % 2 == 1:
            for p in procs[-2:]:
                output, _ = p.communicate(timeout=540)
                # a failed drill still leaves the cell's run directory: the cell succeeded, the merge judges
                assert p.returncode == 0, output[-3000:]
    names = {}
    for index in range(4):
        summary = json.loads((cells_dir / f"local-cell-{index}" / "summary.json").read_text())
        names[index] = [d["name"] for d in summary["drills"]]
        assert summary["chain_backend"] == ("pyevm" if index < 2 else "anvil")
    assert sorted(names[0] + names[1]) == sorted(names[2] + names[3]) and len(names[0] + names[1]) == 3
    assert not set(names[0]) & set(names[1])
    merged = _drill("matrix", "merge", "--matrix", str(matrix), "--cells-dir", str(cells_dir), "--report-dir", str(reports))
    assert merged.returncode == 1, merged.stdout + merged.stderr  # the failover drill fails on both chains
    assert "matrix local: 2 run(s) of 4 cell(s); 2 not ok" in merged.stdout, merged.stdout
    for run_id, chain in (("local-run-0", "pyevm"), ("local-run-1", "anvil")):
        summary = json.loads((reports / run_id / "summary.json").read_text())
        assert summary["chain_backend"] == chain and summary["gate"]["mode"] == "regression"
        verdicts = {d["name"].split("::")[1]: (d["status"], d["failure_category"]) for d in summary["drills"]}
        assert verdicts["test_steady_state_holds"] == ("passed", None)
        assert verdicts["test_primary_rpc_down_fails_over_to_backup"] == ("failed", "missed_detection")
        assert len(verdicts) == 3
    history = [json.loads(line) for line in (reports / "history.jsonl").read_text().splitlines()]
    assert len(history) == 6 and {e["chain_backend"] for e in history} == {"pyevm", "anvil"}
