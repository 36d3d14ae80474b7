"""The ``drill`` command line.

    drill chain   serve a local chain with the drill contracts deployed
    drill world   serve a whole drill world, no fault, for an agent started by hand (debug it against it)
    drill proxy   serve the Toxiproxy-compatible fault proxy standalone
    drill report  show and build reports of past runs
    drill check   judge a stored run again from its recorded history
    drill init    write a starter drills.toml and an example drill into the current project
    drill image   build the reference agent's Docker image from local files (no registry)

Drills themselves run under pytest (``pytest -m drill``); this command is for everything around them.
"""

from __future__ import annotations

import argparse
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
    try:
        from harness.report.cli import run as report_run
    except ImportError:
        raise UsageError("`drill report` is not available in this version of agent-drills") from None
    return report_run(args)


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
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DrillsError as exc:
        print(f"drill {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
