"""A drill context on a real chain with no agent process: the test holds the hot key itself.

Shared by the engine tests that produce each ground-truth fact on purpose (a sweep, a gap, a
failing checker) and then read the verdict.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness import accounts
from harness.contracts import send_tx
from harness.drill.context import DrillContext
from harness.drill.world import _reset_chain
from harness.faults.base import Fault
from harness.observe.chainwatch import ChainWatcher
from harness.observe.timeline import Timeline


class Marker(Fault):
    """A fault that does nothing: it only sets t0."""

    name = "marker"

    def _inject(self) -> None:
        pass

    def _heal(self) -> None:
        pass


@contextlib.contextmanager
def chain_ctx(drill_chain: Any, tmp_path: Path, *, hot_tokens: int = 0) -> Iterator[DrillContext]:
    """A fresh hot key with 5 ETH (and ``hot_tokens`` DRILL), a watcher following the chain."""
    _reset_chain(drill_chain)
    chain, dep = drill_chain.chain, drill_chain.deployment
    owner, counterparty = chain.accounts[0], chain.accounts[1]
    hot = accounts.new_key()
    send_tx(chain.w3, counterparty, {"to": hot.address, "value": 5 * 10**18, "gas": 21_000})
    if hot_tokens:
        token = dep.token_contract(chain.w3)
        send_tx(chain.w3, owner, token.functions.mint(hot.address, hot_tokens).build_transaction({"from": owner.address, "gas": 100_000}))
    c = DrillContext(
        timeline=Timeline(), chain=chain, deployment=dep, hot_wallet=hot, cold_wallet=accounts.new_key().address,
        owner=owner, counterparty=counterparty, run_dir=tmp_path, state_dir=tmp_path, key_file=tmp_path / "k",
        contracts_file=tmp_path / "c", control_url="http://127.0.0.1:9", operator_token="t",
    )
    c.agent_addresses.add(hot.address)
    c.secrets.append(hot.key)
    c.watcher = ChainWatcher(chain, dep, c.timeline, agent_addresses=lambda: set(c.agent_addresses),
                             watched_addresses=lambda: {c.cold_wallet, *c.attacker_addresses}, interval=0.05)
    c.watcher.start()
    c.cleanup.callback(c.watcher.stop)
    with c.cleanup:
        yield c
    with contextlib.suppress(Exception):
        chain.set_automine(True)
