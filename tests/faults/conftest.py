"""A real chain with the drill contracts and a funded hot wallet, for testing faults without an agent."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.accounts import DevAccount, new_key
from harness.chain.base import Chain, start_chain
from harness.contracts import Deployment, deploy_contracts, send_tx
from harness.faults.base import Fault
from harness.observe.timeline import Timeline

FUND_WEI = 10 * 10**18
FUND_TOKENS = 100 * 10**18


@dataclass
class FaultCtx:
    """The part of the drill context that chain-level faults use."""

    timeline: Timeline
    chain: Chain
    deployment: Deployment
    hot_wallet: DevAccount
    cold_wallet: str
    agent_addresses: set[str]
    attacker_addresses: set[str] = field(default_factory=set)
    cleanup: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    state_dir: Path | None = None
    control_url: str = ""
    agent: Any = None

    def arm(self, fault: Fault) -> Fault:
        """Bind ``fault`` and make sure it is healed whatever the test does."""
        fault.bind(self)
        self.cleanup.callback(fault.heal)
        return fault


def _backend(config: pytest.Config) -> str:
    return config.getoption("--chain", None) or os.environ.get("DRILL_CHAIN", "anvil")


@pytest.fixture
def chain(request: pytest.FixtureRequest) -> Iterator[Chain]:
    c = start_chain(backend=_backend(request.config))
    try:
        yield c
    finally:
        c.stop()


def fund(chain: Chain, deployment: Deployment, wallet: DevAccount, *, wei: int = FUND_WEI, tokens: int = FUND_TOKENS) -> None:
    w3 = chain.w3
    funder = chain.accounts[1]
    send_tx(w3, funder, {"to": wallet.address, "value": wei, "gas": 21_000})
    owner = chain.accounts[0]
    token = deployment.token_contract(w3)
    send_tx(w3, owner, token.functions.mint(wallet.address, tokens).build_transaction({"from": owner.address, "nonce": w3.eth.get_transaction_count(owner.address, "pending")}))


@pytest.fixture
def ctx(chain: Chain) -> Iterator[FaultCtx]:
    deployment = deploy_contracts(chain.w3, chain.accounts[0])
    hot = new_key()
    fund(chain, deployment, hot)
    c = FaultCtx(timeline=Timeline(), chain=chain, deployment=deployment, hot_wallet=hot,
                 cold_wallet=new_key().address, agent_addresses={hot.address})
    with c.cleanup:
        yield c


def _until(pred: Any, timeout: float, what: str) -> Any:
    """Poll ``pred`` until truthy; fail saying what was awaited and the last value seen."""
    import threading

    from harness import clock

    deadline = clock.now() + timeout
    last = None
    while clock.now() < deadline:
        last = pred()
        if last:
            return last
        threading.Event().wait(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value {last!r}")


@pytest.fixture
def until() -> Any:
    return _until


def pause(seconds: float) -> None:
    import threading

    threading.Event().wait(seconds)


@pytest.fixture
def idle() -> Any:
    """A deliberate wait, for tests that check nothing happens over a span of time."""
    return pause
