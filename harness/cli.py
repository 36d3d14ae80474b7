"""The ``drill`` command line.

    drill chain   serve a local chain with the drill contracts deployed
    drill world   serve a whole drill world, no fault, for an agent started by hand (debug it against it)
    drill proxy   serve the Toxiproxy-compatible fault proxy standalone
    drill report  show and build reports of past runs
    drill check   judge a stored run again from its recorded history
    drill init    write a starter drills.toml and an example drill into the current project
    drill image   build the reference agent's Docker image from local files (no registry)
    drill matrix  fan a drill matrix out over Kubernetes (manifests), run one cell, merge and gate the cells
    drill replay  replay a fault schedule file (one a search saved) as a drill
    drill explore search fault schedules against the agent for a time budget, with live progress
    drill gameday run a game-day plan (gameday.toml): drills one by one, approvals, a safety lever, metrics
    drill incident report an incident as an operator: to the agent's control API and the game day's journal

Drills themselves run under pytest (``pytest -m drill``); this command is for everything around them.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence

from harness import __version__
from harness.errors import DrillsError, UsageError

__all__ = ["main"]


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds as a number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port 0..65535 (0 picks a free one), got {text!r}")
    return int(text)


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(3600):
        pass


def cmd_chain(args: argparse.Namespace) -> int:
    from harness.chain.base import ChainSettings, start_chain
    from harness.contracts import deploy_contracts

    settings = ChainSettings(
        backend=args.backend, host=args.host, port=args.port,
        block_time=args.block_time, allow_remote=args.allow_remote,
    )
    chain = start_chain(settings)
    try:
        deployment = deploy_contracts(chain.w3, chain.accounts[0])
        print(f"backend     {chain.backend}")
        print(f"rpc url     {chain.rpc_url}")
        print(f"chain id    {chain.chain_id}")
        print(f"mining      {'every %gs' % args.block_time if args.block_time else 'automine'}")
        print(f"token       {deployment.token}  (DrillToken, owner {deployment.owner})")
        print(f"escrow      {deployment.escrow}  (DrillEscrow, fee {deployment.fee} token units per proof)")
        print("accounts    10000 ETH each; keys: the public development mnemonic")
        print("            'test test test test test test test test test test test junk' (m/44'/60'/0'/0/i)")
        for i, acct in enumerate(chain.accounts):
            print(f"  ({i}) {acct.address}")
        print("Ctrl-C stops the chain.", flush=True)
        _wait_for_signal()
    finally:
        chain.stop()
    return 0


def cmd_world(args: argparse.Namespace) -> int:
    from pathlib import Path

    from harness.drill.serve import serve_world

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    directory = Path(args.dir) if args.dir else None
    if directory is not None:
        if directory.exists() and any(directory.iterdir()):
            raise UsageError(f"--dir {directory} is not empty; give a new or empty directory (the world writes its key "
                             "file, contracts file and state there)")
        directory.mkdir(parents=True, exist_ok=True)
    serve_world(backend=args.backend, directory=directory, env_file=Path(args.env_file) if args.env_file else None,
                workload=not args.no_workload, out=sys.stdout, stop=stop)
    return 0


def cmd_proxy(args: argparse.Namespace) -> int:
    from harness.proxy.server import serve

    serve(args.host, args.port, args.config, allow_remote=args.allow_remote)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    if getattr(args, "report_command", None) == "merge":
        return cmd_report_merge(args)
    try:
        from harness.report.cli import run as report_run
    except ImportError:
        raise UsageError("`drill report` is not available in this version of agent-drills") from None
    return report_run(args)


def cmd_report_merge(args: argparse.Namespace) -> int:
    """Join shards' run directories into one run, gate it, print one line per drill; exit 1 unless all passed."""
    from pathlib import Path

    from harness.record.model import GateSettings
    from harness.report.merge import default_run_id, merge_runs

    run_id = args.run_id or default_run_id()
    if not all(c.isalnum() or c in "._-" for c in run_id) or run_id.startswith((".", "-")):
        raise UsageError(f"--run-id {run_id!r} must be letters, digits, '.', '_' or '-' (it names a directory)")
    gate = None
    if args.drill_gate is not None:
        if args.drill_gate_factor <= 1.0:
            raise UsageError(f"--drill-gate-factor must be > 1 (1.5 = 50% slower than the median fails), "
                             f"got {args.drill_gate_factor:g}")
        if args.drill_gate_min_history < 1:
            raise UsageError(f"--drill-gate-min-history must be at least 1, got {args.drill_gate_min_history}")
        gate = GateSettings(mode=args.drill_gate, factor=args.drill_gate_factor, min_history=args.drill_gate_min_history)
    result = merge_runs([Path(p) for p in args.run_dirs], Path(args.report_dir), run_id=run_id, gate=gate)
    for d in result.run.drills:
        why = f" ({d.failure_category}: {d.failure_message})" if d.status != "passed" else ""
        print(f"{d.status:8} {d.name}{why}")
    counts: dict[str, int] = {}
    for d in result.run.drills:
        counts[d.status] = counts.get(d.status, 0) + 1
    print(f"merged {len(args.run_dirs)} shard(s): {len(result.run.drills)} drill(s), "
          + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) + f"; gate {result.run.gate.mode}")
    print(f"report: {result.run_dir / 'README.md'}")
    for problem in result.problems:
        print(f"drill report merge: {problem}", file=sys.stderr)
    return 0 if result.ok else 1


def cmd_matrix(args: argparse.Namespace) -> int:
    from pathlib import Path

    from harness import matrix as mx

    if args.matrix_command == "manifests":
        m = mx.Matrix(name=args.name, agents=tuple(args.agent_cmd or ()), images=tuple(args.agent_image or ()),
                      chains=tuple(args.chains), seeds=tuple(args.seeds), shards=args.shards,
                      pytest_args=tuple(args.pytest_arg or ()), gate=args.drill_gate)
        docs = mx.render_manifests(m, runner_image=args.runner_image, claim=args.claim, namespace=args.namespace,
                                   parallelism=args.parallelism)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "matrix.json").write_text(json.dumps(m.to_json(), indent=2) + "\n", encoding="utf-8")
        (out / "drill-matrix.yaml").write_text(mx.dump_manifests(docs[:2]), encoding="utf-8")
        (out / "drill-matrix-merge.yaml").write_text(mx.dump_manifests(docs[2:]), encoding="utf-8")
        cells = m.cells()
        print(f"{len(cells)} cell(s): {len(m.agents) + len(m.images)} agent(s) x {len(m.chains)} chain(s) x "
              f"{len(m.seeds)} seed(s) x {m.shards} shard(s)")
        print(f"wrote {out / 'matrix.json'}, {out / 'drill-matrix.yaml'} (ConfigMap {m.name}-matrix, Indexed Job "
              f"{m.name}-cells) and {out / 'drill-matrix-merge.yaml'} (Job {m.name}-merge: apply it once the cells completed)")
        return 0
    m = mx.Matrix.load(Path(args.matrix))
    if args.matrix_command == "cell":
        return mx.run_cell(m, mx.cell_index(args.index), Path(args.report_dir))
    outcomes = mx.merge_matrix(m, Path(args.cells_dir), Path(args.report_dir))
    for o in outcomes:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(o.counts.items())) or "-"
        verdict = "ok" if o.ok else "NOT OK"
        print(f"{verdict:7} {o.run_id}: {o.label}: {o.drills} drill(s), {counts}" + (f"; {o.problem}" if o.problem else ""))
    bad = sum(not o.ok for o in outcomes)
    print(f"matrix {m.name}: {len(outcomes)} run(s) of {len(m.cells())} cell(s); {bad} not ok; "
          f"reports under {args.report_dir}")
    return 0 if bad == 0 else 1


def _duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``20m`` or ``1h``."""
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a duration like 90s, 20m or 1h, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive duration, got {text!r}")
    return value


def _schedule_pytest(test: str, extra: list[str], passthrough: Sequence[str]) -> int:
    """Run the catalogue's schedule drill ``test`` under pytest (its file, wherever the catalogue is installed)."""
    import subprocess

    from harness.drill.catalogue import load_catalogue

    catalogue = load_catalogue()
    if catalogue is None:
        raise UsageError("the built-in drills are not installed (no package agent_drills_catalogue): reinstall "
                         "agent-drills (pip install -e . in a checkout)")
    cmd = [sys.executable, "-m", "pytest", "-m", "drill", f"{catalogue.root / 'test_schedules.py'}::{test}",
           "--drill-catalogue", "no", *extra, *passthrough]
    print("running: " + " ".join(cmd[1:]), flush=True)
    return subprocess.run(cmd, check=False).returncode


def _agent_args(args: argparse.Namespace) -> list[str]:
    out = []
    if args.chain:
        out += ["--chain", args.chain]
    if args.agent_cmd:
        out += ["--agent-cmd", args.agent_cmd]
    if args.agent_image:
        out += ["--agent-image", args.agent_image]
    for kv in args.agent_env:
        out += ["--agent-env", kv]
    return out


def cmd_replay(args: argparse.Namespace) -> int:
    """Check the schedule file, then replay it as the catalogue's test_schedule_replay drill."""
    from pathlib import Path

    from harness.schedule import Schedule

    path = Path(args.file).resolve()
    schedule = Schedule.load(path)  # a UsageError says what is wrong with the file
    print(f"schedule: {schedule.label()}")
    return _schedule_pytest("test_schedule_replay", ["--drill-schedule", str(path), *_agent_args(args)], args.pytest_args)


def cmd_explore(args: argparse.Namespace) -> int:
    """Search schedules for ``--budget`` with the explore profile; progress is printed as examples run."""
    extra = ["--drill-search", "explore", "--drill-search-budget", f"{args.budget:g}", "-p", "no:cacheprovider"]
    if args.seed is not None:
        extra += ["--hypothesis-seed", str(args.seed)]
    return _schedule_pytest("test_schedule_search_finds_no_failing_combination", extra + _agent_args(args),
                            args.pytest_args)


def cmd_check(args: argparse.Namespace) -> int:
    """Judge a stored run again: a table per check, exit 1 naming every disagreement."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from harness.checks.history import check_run, load_run

    run = check_run(load_run(args.run_dir), run_dir=str(args.run_dir))
    console = Console() if sys.stdout.isatty() else Console(width=200)
    table = Table(title=f"Run {run.run_id} judged again from its recorded history", show_lines=False)
    for col in ("Drill", "Check", "Live", "Re-judged", "Agree?", "How"):
        table.add_column(col, overflow="fold")
    for d in run.drills:
        for i, j in enumerate(d.judgements):
            agree = {True: "[green]yes[/]", False: "[bold red]NO[/]", None: "[dim]taken as recorded[/]"}[j.agree]
            table.add_row(escape(d.name.rsplit("::", 1)[-1]) if i == 0 else "", escape(j.check), j.live,
                          escape(j.rejudged), agree, escape(j.detail))
    console.print(table)
    rejudged = sum(len(d.rejudged) for d in run.drills)
    recorded = sum(len(d.as_recorded) for d in run.drills)
    if not run.drills:
        console.print(f"{args.run_dir}: the run holds no drill, nothing to judge.")
    if run.ok:
        console.print(f"All {rejudged} re-judged verdict(s) of {len(run.drills)} drill(s) agree with the live ones "
                      f"({recorded} taken as recorded).")
        return 0
    for line in run.messages():
        print(f"drill check: DISAGREES: {line}", file=sys.stderr)
    return 1


def cmd_gameday(args: argparse.Namespace) -> int:
    """Check the plan; print its crontab line (--check-schedule) or run it (exit 0 all passed, 1 not, 2 misuse)."""
    import time
    from pathlib import Path

    from harness.gameday.cron import crontab_line
    from harness.gameday.plan import load_plan
    from harness.gameday.runner import run_gameday

    plan = load_plan(Path(args.plan), allow_remote=args.allow_remote)
    if args.check_schedule:
        if plan.every is None:
            raise UsageError(f"{args.plan} has no `every`: add e.g. every = \"weekdays at 02:00\" to the plan")
        print(crontab_line(plan.every, plan.path, workdir=Path.cwd()))
        return 0
    out = Path(args.out) if args.out else Path("gamedays") / f"{plan.name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--out {out} is not empty; give a new or empty directory (a game day writes its journal there)")
    result = run_gameday(plan, out.resolve(), yes=args.yes)
    if result.reason != "completed":
        return 3
    return 0 if result.ok else 1


def cmd_incident(args: argparse.Namespace) -> int:
    """POST /operator/incident to the agent; append the report to a running game day's journal."""
    import os
    from pathlib import Path

    from harness.gameday.journal import append_event
    from harness.observe.control import control_request
    from harness.safety import check_loopback_url

    here = Path(args.gameday) / "agent.json" if args.gameday else None
    if args.control is None:  # the drill running in that game day says where its agent is
        if here is None or not here.is_file():
            raise UsageError("--control is missing: give the agent's control API URL, or --gameday DIR of a game day "
                             "whose drill is running (it names the agent in DIR/agent.json)")
        args.control = json.loads(here.read_text(encoding="utf-8"))["control"]
        if not args.token_file and not os.environ.get("AGENT_OPERATOR_TOKEN"):
            args.token_file = str(here.with_name("agent.token"))
    check_loopback_url(args.control, what="--control", allow_remote=args.allow_remote)
    if args.token_file:
        try:
            token = Path(args.token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"--token-file {args.token_file}: cannot read it ({exc.strerror})") from None
    else:
        token = os.environ.get("AGENT_OPERATOR_TOKEN", "")
    if not token:
        raise UsageError("no operator token: set AGENT_OPERATOR_TOKEN or pass --token-file FILE (the control API's "
                         "bearer token, docs/contract.md section 4)")
    journal = None
    if args.gameday:
        journal = Path(args.gameday) / "journal.jsonl"
        if not journal.is_file():
            raise UsageError(f"--gameday {args.gameday} holds no journal.jsonl: give the --out directory of a running game day")
    try:
        status, body = control_request(args.control, "/operator/incident", token=token,
                                       body={"summary": args.summary, "severity": args.severity})
    except OSError as exc:
        status, body = None, None
        problem = f"the agent did not answer at {args.control} ({type(exc).__name__}: {exc})"
    else:
        problem = None if status == 201 else f"the agent answered HTTP {status}" + (" (wrong token?)" if status == 401 else "")
    incident_id = body.get("incident_id") if isinstance(body, dict) else None
    if journal is not None:  # a person's report counts even when the agent cannot take it
        append_event(journal, "incident.reported", summary=args.summary, severity=args.severity, control=args.control,
                     http_status=status, incident_id=incident_id, problem=problem,
                     reporter=os.environ.get("USER") or "operator")
    if problem is not None:
        print(f"drill incident: {problem}" + ("; recorded in the journal" if journal is not None else ""), file=sys.stderr)
        return 1
    print(f"reported {incident_id} ({args.severity}): {args.summary}" + (f"; journal {journal}" if journal else ""))
    return 0


def cmd_image(args: argparse.Namespace) -> int:
    """Build the reference agent's image and print its tag, size and build time."""
    from pathlib import Path

    from harness.image import build_reference_image

    print(f"building {args.tag} from this machine's files (docker import, no registry) ...", flush=True)
    built = build_reference_image(tag=args.tag, source=Path(args.source) if args.source else None)
    print(f"image       {built.tag}  ({built.image_id[:19]})")
    print(f"size        {built.size_bytes / 1024**2:.0f} MiB, {built.files} files and directories")
    print(f"built in    {built.seconds:g} s")
    print(f"drill it:   pytest -m drill --agent-image {built.tag}")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    """Write drills.toml and drills/test_my_drill.py here, then say what to run."""
    from pathlib import Path

    from harness.init import init_project, render_next_steps

    written = init_project(Path.cwd(), agent_cmd=args.agent_cmd, force=args.force)
    print("\n".join(render_next_steps(written, agent_cmd=args.agent_cmd)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="drill",
        description="agent-drills: incident-response drills for autonomous on-chain agents. "
        "Run the drills with `pytest -m drill`; this command serves the pieces standalone.",
    )
    parser.add_argument("--version", action="version", version=f"agent-drills {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("chain", help="serve a local chain with the drill contracts deployed",
                       description="Start a local chain on loopback, deploy DrillToken and DrillEscrow, "
                       "print the RPC URL, chain id, funded accounts and contract addresses, and serve "
                       "until Ctrl-C.")
    p.add_argument("--backend", choices=("pyevm", "anvil"), default="pyevm",
                   help="pyevm: the embedded py-evm node (default); anvil: Foundry's node")
    p.add_argument("--host", default="127.0.0.1", help="listen address (loopback only unless --allow-remote)")
    p.add_argument("--port", type=_port, default=8545, help="listen port (default 8545; 0 picks a free one)")
    p.add_argument("--block-time", type=_positive_float, default=None, metavar="S",
                   help="mine a block every S seconds instead of one block per transaction")
    p.add_argument("--allow-remote", action="store_true", help="allow a listen address off 127.0.0.0/8")
    p.set_defaults(func=cmd_chain)

    p = sub.add_parser("world", help="serve a whole drill world, without faults, for an agent you start by hand",
                       description="Start what a drill gives an agent (chain and contracts, a funded key in a key "
                       "file, the contracts file, a state directory, the proxied RPC endpoints, the alert sink, the "
                       "counterparty opening escrows), print the environment to export (docs/contract.md, section 1), "
                       "then follow the agent's incidents, proofs and /health until Ctrl-C.")
    p.add_argument("--backend", choices=("pyevm", "anvil"), default="pyevm",
                   help="pyevm: the embedded py-evm node (default); anvil: Foundry's node")
    p.add_argument("--dir", default=None, metavar="DIR",
                   help="a new or empty directory for the key file, contracts file and state (default: a fresh temporary one)")
    p.add_argument("--env-file", default=None, metavar="FILE", help="also write the export lines to FILE (`source FILE`)")
    p.add_argument("--no-workload", action="store_true", help="open no escrows (the agent idles until you open some)")
    p.set_defaults(func=cmd_world)

    p = sub.add_parser("proxy", help="serve the Toxiproxy-compatible fault proxy",
                       description="Run the fault proxy's HTTP API standalone; any Toxiproxy client can drive it.")
    p.add_argument("--host", default="127.0.0.1", help="API listen address (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8474, help="API listen port (default 8474)")
    p.add_argument("--config", default=None, metavar="FILE", help="JSON file of proxies to create at start, in Toxiproxy's /populate format: an array of "
                   '{"name": ..., "upstream": "host:port", "listen": "127.0.0.1:0"} objects')
    p.add_argument("--allow-remote", action="store_true", help="allow a listen address off 127.0.0.0/8")
    p.set_defaults(func=cmd_proxy)

    p = sub.add_parser("report", help="show the history of drill runs and build reports",
                       description="Print the last runs per scenario with regressions marked; with "
                       "--allure build the HTML report from Allure results.")
    p.add_argument("--report-dir", default="reports", help="where runs were recorded (default reports/)")
    p.add_argument("--allure", default=None, metavar="DIR", help="build the Allure HTML report from the results in DIR")
    p.add_argument("--last", type=int, default=5, help="runs per scenario to show, 1 or more (default 5)")
    p.set_defaults(func=cmd_report)
    report_sub = p.add_subparsers(dest="report_command", metavar="merge")
    m = report_sub.add_parser("merge", help="join the run directories of a run's shards into one run and gate it",
                              description="Join the run directories that `pytest -m drill --drill-shard I/N` left "
                              "(one per shard) into one run under --report-dir: one summary, README and set of "
                              "drill files, one history line per drill, the regression gate applied to the merged "
                              "run. Exit 0: every drill passed; 1: one did not (or the gate failed it); 2: the "
                              "directories are not shards of one run.")
    m.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="a shard's run directory (holding summary.json)")
    m.add_argument("--report-dir", default="reports",
                   help="where the merged run and history.jsonl go (default reports/)")
    m.add_argument("--run-id", default=None, metavar="ID", help="the merged run's directory name (default merged-<UTC time>)")
    m.add_argument("--drill-gate", choices=("off", "regression"), default=None,
                   help="the gate for the merged run (default: the shards' own setting)")
    m.add_argument("--drill-gate-factor", type=float, default=1.5, metavar="F",
                   help="with --drill-gate: how much slower than the median is tolerated (default 1.5)")
    m.add_argument("--drill-gate-min-history", type=int, default=3, metavar="N",
                   help="with --drill-gate: past passing runs a drill needs before it is compared (default 3)")
    m.set_defaults(func=cmd_report)

    p = sub.add_parser("check", help="judge a stored run again from its recorded history",
                       description="Re-derive each drill's verdicts (detection, containment, recovery, the "
                       "invariants the timeline can recompute) from RUN_DIR/summary.json alone and compare them "
                       "with the live verdicts. Exit 0: all agree; 1: one disagrees; 2: RUN_DIR is not a run.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory, e.g. reports/<run-id>/ (holding summary.json)")
    p.set_defaults(func=cmd_check)

    from harness.image import REFERENCE_IMAGE

    p = sub.add_parser("image", help="build the reference agent's Docker image from local files",
                       description="Build a Docker image on this machine without a registry: assemble a root "
                       "filesystem from this Python installation, the packages the agent needs and its sources, "
                       "then `docker import` it. Needs a running Docker daemon.")
    p.add_argument("which", choices=("reference",), help="the image to build: reference (the reference agent)")
    p.add_argument("--tag", default=REFERENCE_IMAGE, metavar="REPO:TAG", help=f"the image's name (default {REFERENCE_IMAGE})")
    p.add_argument("--source", default=None, metavar="DIR",
                   help="the reference agent's package directory (default: fixtures/reference_agent of this checkout)")
    p.set_defaults(func=cmd_image)

    p = sub.add_parser("matrix", help="fan a drill matrix out over Kubernetes, run a cell, merge and gate the cells",
                       description="A drill matrix is agents (or images) x chains x schedule seeds x shards of the "
                       "catalogue; each cell is one `pytest -m drill` run writing its run directory to shared "
                       "storage, and one merge step joins and gates them (docs/ci.md#a-drill-matrix-on-kubernetes).")
    msub = p.add_subparsers(dest="matrix_command", metavar="manifests|cell|merge")
    msub.required = True
    m = msub.add_parser("manifests", help="write matrix.json and the Kubernetes manifests of a matrix",
                        description="Write OUT/matrix.json, OUT/drill-matrix.yaml (a ConfigMap with the matrix and an "
                        "Indexed Job running one cell per index) and OUT/drill-matrix-merge.yaml (the Job that merges "
                        "and gates them, to apply once the cells' Job completed).")
    m.add_argument("--name", default="drills", help="the matrix's name; it names the Kubernetes objects (default drills)")
    m.add_argument("--agent-cmd", action="append", metavar="CMD", help="an agent command in the runner image (repeatable)")
    m.add_argument("--agent-image", action="append", metavar="IMAGE",
                   help="an agent image, drilled with --agent-image (repeatable; the pod needs a Docker daemon)")
    m.add_argument("--chains", nargs="+", default=["pyevm"], metavar="CHAIN", help="pyevm and/or anvil (default pyevm)")
    m.add_argument("--seeds", nargs="+", type=int, default=[1], metavar="SEED",
                   help="schedule seeds, one run each (default 1); see the docs for what a seed changes today")
    m.add_argument("--shards", type=int, default=1, metavar="N", help="split each run's catalogue into N cells (default 1)")
    m.add_argument("--pytest-arg", action="append", metavar="ARG", help="one more pytest argument for every cell (repeatable; one that starts with '-' as --pytest-arg=-k)")
    m.add_argument("--drill-gate", choices=("off", "regression"), default="regression",
                   help="the merge step's gate (default regression)")
    m.add_argument("--runner-image", required=True, metavar="IMAGE",
                   help="the image the pods run: agent-drills and the agent installed, drills.toml in its working directory")
    m.add_argument("--claim", default="drill-reports", help="the PersistentVolumeClaim (ReadWriteMany) shared by the pods")
    m.add_argument("--namespace", default="default", help="the namespace of the objects (default default)")
    m.add_argument("--parallelism", type=int, default=4, metavar="P", help="cells running at once (default 4)")
    m.add_argument("--out", default="k8s", metavar="DIR", help="where to write (default k8s/)")
    m.set_defaults(func=cmd_matrix)
    m = msub.add_parser("cell", help="run one cell of a matrix (what each pod of the Indexed Job runs)",
                        description="Run cell INDEX (default: $JOB_COMPLETION_INDEX) as `pytest -m drill ...` in this "
                        "directory. Exit 0 when the cell wrote its run directory, whatever its drills' verdicts.")
    m.add_argument("index", nargs="?", type=int, default=None, metavar="INDEX")
    m.add_argument("--matrix", required=True, metavar="FILE", help="the matrix.json that `drill matrix manifests` wrote")
    m.add_argument("--report-dir", required=True, metavar="DIR", help="the shared directory of the cells' run directories")
    m.set_defaults(func=cmd_matrix)
    m = msub.add_parser("merge", help="join each run's cells, gate them, and fail when a cell or a drill did",
                        description="For each agent, chain and seed, join its cells' run directories into one run under "
                        "--report-dir (as `drill report merge` does), gated on --report-dir's history. Exit 0: every "
                        "cell ran and every drill passed; 1: otherwise.")
    m.add_argument("--matrix", required=True, metavar="FILE", help="the matrix.json that `drill matrix manifests` wrote")
    m.add_argument("--cells-dir", required=True, metavar="DIR", help="where the cells wrote their run directories")
    m.add_argument("--report-dir", default="reports", metavar="DIR",
                   help="where the merged runs and history.jsonl go (default reports/)")
    m.set_defaults(func=cmd_matrix)

    for name, helptext, description in (
        ("replay", "replay a fault schedule file as a drill",
         "Check FILE (a fault schedule: one a search saved under reports/<run>/schedules/, or one committed) and "
         "replay it against the agent as the catalogue's test_schedule_replay drill under pytest. Arguments after "
         "-- go to pytest: drill replay FILE -- -x."),
        ("explore", "search fault schedules for a time budget, with live progress",
         "Run the catalogue's schedule search with the explore profile: as many examples as --budget allows, each "
         "a drill of its own; a failure is shrunk, saved and printed with its replay command. The example "
         "database (.hypothesis/) keeps what was found, so the next search starts from it. Arguments after -- go "
         "to pytest."),
    ):
        p = sub.add_parser(name, help=helptext, description=description)
        if name == "replay":
            p.add_argument("file", metavar="FILE", help="a schedule file (JSON, format agent-drills/schedule/1)")
            p.set_defaults(func=cmd_replay)
        else:
            p.add_argument("--budget", type=_duration, default=1200.0, metavar="DURATION",
                           help="how long to search: 90s, 20m, 1h (default 20m)")
            p.add_argument("--seed", type=int, default=None, help="Hypothesis's seed (default: random, printed)")
            p.set_defaults(func=cmd_explore)
        p.add_argument("--chain", choices=("pyevm", "anvil"), default=None, help="the chain backend (default: pytest's)")
        p.add_argument("--agent-cmd", default=None, metavar="CMD", help="the agent as a process (default: the project's)")
        p.add_argument("--agent-image", default=None, metavar="IMAGE", help="the agent as a container of IMAGE")
        p.add_argument("--agent-env", action="append", default=[], metavar="KEY=VALUE",
                       help="extra environment variable for the agent (repeatable)")
        p.set_defaults(pytest_args=[])  # what follows -- on the command line (main() splits it off)

    p = sub.add_parser("gameday", help="run a game-day plan: drills one by one with approvals, a lever and metrics",
                       description="Run the game-day plan PLAN (gameday.toml, docs/gameday.md): each planned drill, "
                       "schedule or search as its own pytest run, asking the owner before each destructive fault, "
                       "stopping within 2 s when the lever file appears, on Ctrl-C/SIGTERM or a failing stop "
                       "condition; SIGUSR1 or the p key pauses between items. Writes journal.jsonl, junit.xml, "
                       "metrics.json, metrics.md and a run directory per item into --out. Exit 0: every item passed; "
                       "1: one did not; 2: the plan or the command line is wrong; 3: the lever stopped it.")
    p.add_argument("plan", metavar="PLAN", help="the plan file (TOML)")
    p.add_argument("--yes", action="store_true", help="run unattended: every destructive fault goes ahead without asking")
    p.add_argument("--out", default=None, metavar="DIR", help="a new or empty directory for the outputs "
                   "(default gamedays/<name>-<UTC time>)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow the plan's remote agent endpoints and health probe off 127.0.0.0/8")
    p.add_argument("--check-schedule", action="store_true",
                   help="check the plan and print the crontab line for its `every`, run nothing")
    p.set_defaults(func=cmd_gameday)

    p = sub.add_parser("incident", help="report an incident to the agent's control API and a game day's journal",
                       description="POST /operator/incident {summary, severity} to the agent's control API with the "
                       "operator's bearer token (AGENT_OPERATOR_TOKEN, or --token-file), and with --gameday append "
                       "the report to that game day's journal, where it counts as a person's detection; with --gameday "
                       "and no --control, the agent is the one the game day's running drill names. Exit 0: the "
                       "agent opened the incident (201); 1: it did not (the journal still records the report).")
    p.add_argument("summary", metavar="SUMMARY", help="what was seen, in a sentence")
    p.add_argument("--severity", choices=("SEV-1", "SEV-2", "SEV-3", "SEV-4"), default="SEV-3",
                   help="the incident's severity (default SEV-3)")
    p.add_argument("--control", default=None, metavar="URL",
                   help="the agent's control API, e.g. http://127.0.0.1:8080 (default, with --gameday: the agent of the "
                        "drill running in that game day)")
    p.add_argument("--token-file", default=None, metavar="FILE",
                   help="a file holding the operator token (default: $AGENT_OPERATOR_TOKEN)")
    p.add_argument("--gameday", default=None, metavar="DIR", help="the --out directory of the running game day")
    p.add_argument("--allow-remote", action="store_true", help="allow a control URL off 127.0.0.0/8")
    p.set_defaults(func=cmd_incident)

    p = sub.add_parser("init", help="write a starter drills.toml and an example drill into the current project",
                       description="Write drills.toml (every budget key with its default, the agent command, the "
                       "chain; commented) and drills/test_my_drill.py (an example drill of your own) into the current "
                       "directory, then print the command to run. Existing files are left alone unless --force.")
    p.add_argument("--agent-cmd", default=None, metavar="CMD",
                   help='the command that starts your agent, written into drills.toml as agent_cmd (e.g. "python -m my_agent")')
    p.add_argument("--force", action="store_true", help="overwrite drills.toml and drills/test_my_drill.py if they exist")
    p.set_defaults(func=cmd_init)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    rest: list[str] = []
    if argv[:1] in (["replay"], ["explore"]) and "--" in argv:  # the rest goes to pytest untouched
        argv, rest = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    args = parser.parse_args(argv)
    if rest:
        args.pytest_args = rest
    try:
        return int(args.func(args) or 0)
    except DrillsError as exc:
        print(f"drill {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
