"""``drill world``: the world of a drill without the drill, for an agent started by hand.

A developer making an agent drillable wants to run it against what a drill gives it before any
fault: the chain with the contracts, a funded key in a key file, the contracts file, a state
directory, the proxied RPC endpoints, the alert sink and the counterparty opening escrows. This
builds exactly that with the engine's own world builder (``build_world`` with no agent), prints the
contract's environment to export, then follows what happens (incidents the agent reports, escrows it
proves or lets expire, its ``/health`` changing) until Ctrl-C, and tears everything down.
"""

from __future__ import annotations

import shlex
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from harness.chain.base import ChainSettings, start_chain
from harness.contracts import deploy_contracts
from harness.drill.world import WorldSettings, build_world
from harness.observe.timeline import Event
from harness.pytest_chain import DrillChain

__all__ = ["serve_world", "describe"]

#: what is followed on the terminal (the rest stays on the timeline)
_FOLLOWED = ("alert", "escrow.proven", "escrow.expired", "health", "health.unreachable")


def describe(event: Event) -> str | None:
    """One line for a followed event, or None for the others."""
    d = event.data
    if event.kind == "alert":
        return (f"incident {d.get('incident_id')} {d.get('kind')} {d.get('severity')} {d.get('status')}: "
                f"{d.get('summary', '')}")
    if event.kind == "escrow.proven":
        return f"escrow {d.get('id')} proven by {d.get('agent')} in block {d.get('block')}"
    if event.kind == "escrow.expired":
        return f"escrow {d.get('id')} expired unproven"
    if event.kind == "health":
        return f"/health: status={d.get('status')} mode={d.get('mode')} rpc={d.get('rpc')}"
    if event.kind == "health.unreachable":
        return "/health: no answer (is the agent running?)"
    return None


def serve_world(*, backend: str, directory: Path | None, env_file: Path | None, workload: bool,
                out: TextIO, stop: threading.Event, ready: Callable[[dict[str, str]], None] | None = None) -> None:
    """Build the world, print its environment (and write it to ``env_file``), follow it until ``stop``."""
    run_dir = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="drill-world-"))
    chain = start_chain(ChainSettings(backend=backend))
    try:
        deployment = deploy_contracts(chain.w3, chain.accounts[0])
        session = DrillChain(chain=chain, deployment=deployment, snapshot_id=chain.snapshot())
        ctx = build_world(session, WorldSettings(agent_cmd=(), start_agent=False, start_workload=workload), run_dir)
        with ctx.cleanup:
            env = {k: v for k, v in ctx.agent_env.items() if k.startswith("AGENT_")}
            exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))
            if env_file is not None:
                env_file.write_text(exports)
            print(f"A drill world on {chain.backend}, files in {run_dir} (the key file is mode 0600; its key is "
                  "printed nowhere).", file=out)
            print("Start your agent with this environment" + (f" (also in {env_file}):" if env_file else ":"), file=out)
            print(exports, end="", file=out)
            print(f"The counterparty {'opens an escrow for the agent every second' if workload else 'opens no escrow'}; "
                  "what the agent does is followed below. Ctrl-C stops the world.", file=out, flush=True)
            if ready is not None:
                ready(env)
            seen = 0
            while not stop.wait(0.25):
                events = ctx.timeline.events()
                for event in events[seen:]:
                    line = describe(event) if event.kind in _FOLLOWED else None
                    if line:
                        print(f"[{event.t - events[0].t:8.2f} s] {line}", file=out, flush=True)
                seen = len(events)
            print("Stopping the world.", file=out, flush=True)
    finally:
        chain.stop()
