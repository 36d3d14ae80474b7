"""A drill matrix fanned out over Kubernetes: agents (or images) x chains x schedule seeds x shards.

    drill matrix manifests --agent-cmd "python -m my_agent" --chains pyevm anvil --seeds 1 2 --shards 2 \\
        --runner-image registry.local/my-agent-drills:1 --claim drill-reports --out k8s/
    drill matrix cell [INDEX] --matrix k8s/matrix.json --report-dir /reports/cells   # what each pod runs
    drill matrix merge --matrix k8s/matrix.json --cells-dir /reports/cells --report-dir /reports

Every cell is one ``pytest -m drill`` run (one agent, one chain, one seed, one shard of the catalogue)
that writes its run directory to shared storage; ``merge`` joins the shards of each (agent, chain,
seed) with ``drill report merge``'s logic, gates each against the shared history and exits non-zero
when any cell is missing or any drill failed. Kubernetes runs the cells as an Indexed Job (each pod
reads ``JOB_COMPLETION_INDEX``) and the merge as a second Job once the first has completed
(docs/ci.md#a-drill-matrix-on-kubernetes says why an Indexed Job and not an Argo Workflow). The
same cells run as plain processes on one machine, which is how tests/test_matrix.py proves them.

A cell passes its seed to pytest as ``--hypothesis-seed`` (and as ``DRILL_SCHEDULE_SEED``): what a run
draws with Hypothesis is drawn from it. The fixed drills of the catalogue run the same whatever the
seed, so for them seeds are repeated runs of one configuration, which is what shows a flaky drill.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import UsageError

__all__ = ["Cell", "Matrix", "render_manifests", "run_cell", "merge_matrix", "GroupOutcome"]

_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?")
CHAINS = ("pyevm", "anvil")
#: where a pod finds the matrix (the ConfigMap) and the shared storage (the claim)
MATRIX_MOUNT = "/matrix"
REPORTS_MOUNT = "/reports"


@dataclass(frozen=True, kw_only=True)
class Cell:
    """One run of the matrix: which agent, chain, seed and shard of the catalogue."""

    index: int
    agent: str  # a command (kind "cmd") or a local image (kind "image")
    agent_kind: str
    chain: str
    seed: int
    shard: int
    shards: int

    @property
    def group(self) -> tuple[str, str, str, int]:
        """The cells of one group are the shards of one run."""
        return (self.agent_kind, self.agent, self.chain, self.seed)

    def run_id(self, matrix: str) -> str:
        return f"{matrix}-cell-{self.index}"

    def pytest_args(self, matrix: Matrix, report_dir: Path) -> list[str]:
        agent = ["--agent-cmd", self.agent] if self.agent_kind == "cmd" else ["--agent-image", self.agent]
        return ["-m", "drill", *agent, "--chain", self.chain, "--drill-shard", f"{self.shard}/{self.shards}",
                f"--hypothesis-seed={self.seed}", f"--drill-run-id={self.run_id(matrix.name)}",
                # one argument: a directory given on its own would count for pytest's rootdir (and its ini file)
                f"--drill-report-dir={report_dir}", *matrix.pytest_args]

    def label(self) -> str:
        return f"{self.agent} on {self.chain}, seed {self.seed}, shard {self.shard}/{self.shards}"


@dataclass(frozen=True, kw_only=True)
class Matrix:
    """The axes; ``cells()`` is their product in a fixed order (agents, images, chains, seeds, shards)."""

    name: str
    agents: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    chains: tuple[str, ...] = ("pyevm",)
    seeds: tuple[int, ...] = (1,)
    shards: int = 1
    pytest_args: tuple[str, ...] = ()
    gate: str = "regression"
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise UsageError(f"matrix name {self.name!r} must be 1-40 lowercase letters, digits and '-' (it names "
                             "Kubernetes objects), e.g. nightly-drills")
        if not self.agents and not self.images:
            raise UsageError("a drill matrix needs at least one agent: --agent-cmd CMD (a command in the runner image) "
                             "or --agent-image IMAGE (drilled with --agent-image: needs a Docker daemon in the pod)")
        bad = [c for c in self.chains if c not in CHAINS]
        if bad or not self.chains:
            raise UsageError(f"--chains takes {' and/or '.join(CHAINS)}, got {list(self.chains)!r}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise UsageError(f"--seeds must be distinct integers, got {list(self.seeds)!r}")
        if self.shards < 1:
            raise UsageError(f"--shards must be at least 1, got {self.shards}")
        if self.gate not in ("off", "regression"):
            raise UsageError(f"the gate must be off or regression, got {self.gate!r}")

    def cells(self) -> list[Cell]:
        agents = [(a, "cmd") for a in self.agents] + [(i, "image") for i in self.images]
        out = []
        for agent, kind in agents:
            for chain in self.chains:
                for seed in self.seeds:
                    for shard in range(1, self.shards + 1):
                        out.append(Cell(index=len(out), agent=agent, agent_kind=kind, chain=chain, seed=seed,
                                        shard=shard, shards=self.shards))
        return out

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "agents": list(self.agents), "images": list(self.images), "chains": list(self.chains),
                "seeds": list(self.seeds), "shards": self.shards, "pytest_args": list(self.pytest_args), "gate": self.gate,
                "cells": len(self.cells())}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Matrix:
        try:
            return cls(name=d["name"], agents=tuple(d.get("agents") or ()), images=tuple(d.get("images") or ()),
                       chains=tuple(d.get("chains") or ()), seeds=tuple(int(s) for s in d.get("seeds") or ()),
                       shards=int(d.get("shards", 1)), pytest_args=tuple(d.get("pytest_args") or ()),
                       gate=d.get("gate", "regression"))
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"not a drill matrix ({exc}); write one with `drill matrix manifests`") from None

    @classmethod
    def load(cls, path: Path) -> Matrix:
        try:
            return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
        except OSError as exc:
            raise UsageError(f"cannot read the matrix {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise UsageError(f"{path} is not JSON ({exc}); write it with `drill matrix manifests`") from None


def render_manifests(matrix: Matrix, *, runner_image: str, claim: str, namespace: str = "default",
                     parallelism: int = 4, cpu: str = "2", memory: str = "4Gi") -> list[dict[str, Any]]:
    """The ConfigMap holding the matrix, the Indexed Job of its cells and the Job that merges them."""
    if not runner_image.strip():
        raise UsageError("--runner-image is empty; give the image with agent-drills and your agent installed")
    if parallelism < 1:
        raise UsageError(f"--parallelism must be at least 1, got {parallelism}")
    cells = matrix.cells()
    labels = {"app.kubernetes.io/name": "agent-drills", "app.kubernetes.io/component": "drill-matrix",
              "agent-drills/matrix": matrix.name}
    volumes = [{"name": "matrix", "configMap": {"name": f"{matrix.name}-matrix"}},
               {"name": "reports", "persistentVolumeClaim": {"claimName": claim}}]
    mounts = [{"name": "matrix", "mountPath": MATRIX_MOUNT, "readOnly": True},
              {"name": "reports", "mountPath": REPORTS_MOUNT}]
    resources = {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}}

    def pod(component: str, command: list[str]) -> dict[str, Any]:
        return {
            "metadata": {"labels": {**labels, "app.kubernetes.io/component": component}},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": component, "image": runner_image, "command": command,
                                "resources": resources, "volumeMounts": mounts}],
                "volumes": volumes,
            },
        }

    matrix_file = f"{MATRIX_MOUNT}/matrix.json"
    cells_dir = f"{REPORTS_MOUNT}/cells/{matrix.name}"
    return [
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": f"{matrix.name}-matrix", "namespace": namespace, "labels": labels},
         "data": {"matrix.json": json.dumps(matrix.to_json(), indent=2) + "\n"}},
        {"apiVersion": "batch/v1", "kind": "Job",
         "metadata": {"name": f"{matrix.name}-cells", "namespace": namespace, "labels": labels},
         "spec": {
             "completionMode": "Indexed", "completions": len(cells), "parallelism": min(parallelism, len(cells)),
             # a cell that ran its drills exits 0 whatever their verdicts (the merge judges them); a pod that
             # broke gets one more try, and one broken cell does not stop the others
             "backoffLimitPerIndex": 1, "maxFailedIndexes": len(cells),
             "template": pod("drill-cell", ["drill", "matrix", "cell", "--matrix", matrix_file, "--report-dir", cells_dir]),
         }},
        {"apiVersion": "batch/v1", "kind": "Job",
         "metadata": {"name": f"{matrix.name}-merge", "namespace": namespace, "labels": labels},
         "spec": {
             "completions": 1, "backoffLimit": 0,
             "template": pod("drill-merge", ["drill", "matrix", "merge", "--matrix", matrix_file, "--cells-dir", cells_dir,
                                             "--report-dir", REPORTS_MOUNT]),
         }},
    ]


def dump_manifests(documents: Sequence[dict[str, Any]]) -> str:
    """The documents as one YAML stream; text of several lines (the matrix) as a literal block."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)

    Dumper.add_representer(str, text)
    return "---\n".join(yaml.dump(d, Dumper=Dumper, sort_keys=False, width=120) for d in documents)


def cell_index(given: int | None) -> int:
    """The cell to run: the argument, else Kubernetes' ``JOB_COMPLETION_INDEX``."""
    if given is not None:
        return given
    text = os.environ.get("JOB_COMPLETION_INDEX")
    if text is None or not text.isdigit():
        raise UsageError("which cell? give its INDEX, or run it in a pod of the Indexed Job (which sets "
                         f"JOB_COMPLETION_INDEX; got {text!r})")
    return int(text)


def run_cell(matrix: Matrix, index: int, report_dir: Path, *, cwd: Path | None = None) -> int:
    """Run cell ``index`` as ``pytest -m drill ...``; 0 when it left its run directory, whatever the verdicts."""
    cells = matrix.cells()
    if not 0 <= index < len(cells):
        raise UsageError(f"cell {index} is not in the matrix {matrix.name} (cells 0..{len(cells) - 1})")
    cell = cells[index]
    cmd = [sys.executable, "-m", "pytest", *cell.pytest_args(matrix, report_dir)]
    print(f"drill matrix cell {index}: {cell.label()}", flush=True)
    env = {**os.environ, "DRILL_SCHEDULE_SEED": str(cell.seed)}
    proc = subprocess.run(cmd, cwd=cwd, env=env, check=False)
    summary = Path(report_dir) / cell.run_id(matrix.name) / "summary.json"
    if summary.is_file():
        return 0
    print(f"drill matrix cell {index}: pytest exited {proc.returncode} and wrote no {summary}", file=sys.stderr)
    return proc.returncode or 3


@dataclass(frozen=True)
class GroupOutcome:
    label: str
    run_id: str
    drills: int
    counts: dict[str, int]
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None and self.drills > 0 and set(self.counts) == {"passed"}


def merge_matrix(matrix: Matrix, cells_dir: Path, report_dir: Path) -> list[GroupOutcome]:
    """Join each group's shards into one gated run under ``report_dir`` (see the module docstring)."""
    from harness.record.model import GateSettings
    from harness.report import history
    from harness.report.merge import merge_runs

    groups: dict[tuple[str, str, str, int], list[Cell]] = {}
    for cell in matrix.cells():
        groups.setdefault(cell.group, []).append(cell)
    past = history.load_history(Path(report_dir) / "history.jsonl")  # read once: the groups do not gate each other
    out = []
    for n, (group, cells) in enumerate(groups.items()):
        kind, agent, chain, seed = group
        label = f"{agent} on {chain}, seed {seed}"
        run_id = f"{matrix.name}-run-{n}"
        missing = [c for c in cells if not (Path(cells_dir) / c.run_id(matrix.name) / "summary.json").is_file()]
        if missing:
            out.append(GroupOutcome(label, run_id, 0, {}, problem="no run directory from cell(s) "
                                    + ", ".join(str(c.index) for c in missing) + " (see their pods' logs)"))
            continue
        try:
            result = merge_runs([Path(cells_dir) / c.run_id(matrix.name) for c in cells], Path(report_dir), run_id=run_id,
                                gate=GateSettings(mode=matrix.gate), past=past)
        except UsageError as exc:
            out.append(GroupOutcome(label, run_id, 0, {}, problem=str(exc)))
            continue
        counts: dict[str, int] = {}
        for d in result.run.drills:
            counts[d.status] = counts.get(d.status, 0) + 1
        out.append(GroupOutcome(label, run_id, len(result.run.drills), counts,
                                problem="; ".join(result.problems) or None))
    return out
