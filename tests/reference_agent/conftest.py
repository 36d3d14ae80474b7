"""Fixtures for the reference agent's tests: a real chain, deployed contracts, the agent as a process."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fixtures"))

from ra_world import AgentProcess, AlertReceiver, Counterparty, agent_env, fund, new_hot

from harness.accounts import DevAccount, new_key
from harness.chain.base import Chain, start_chain
from harness.contracts import Deployment, deploy_contracts


def _pyevm_works() -> bool:
    try:
        c = start_chain(backend="pyevm")
    except Exception:  # noqa: BLE001 - any failure means the backend is not usable here
        return False
    c.stop()
    return True


def backends() -> list[str]:
    return ["anvil", "pyevm"] if _pyevm_works() else ["anvil"]


@dataclass
class World:
    tmp: Path
    chain: Chain
    deployment: Deployment
    hot: DevAccount
    cold: str
    alerts: AlertReceiver
    stack: contextlib.ExitStack
    agent: AgentProcess | None = None
    counterparty: Counterparty | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def start_agent(self, *, defects: str = "", urls: list[str] | None = None, env_extra: dict[str, str] | None = None) -> AgentProcess:
        env, control = agent_env(self.tmp, urls or [self.chain.rpc_url], self.deployment, self.hot, self.cold, self.alerts.url,
                                 defects=defects, extra=env_extra)
        self.agent = AgentProcess(env=env, log_path=self.tmp / "agent.log", control_url=control, token=env["AGENT_OPERATOR_TOKEN"])
        self.agent.start()
        self.stack.callback(self.agent.stop)
        return self.agent

    def restart_agent(self) -> AgentProcess:
        assert self.agent is not None
        self.agent.stop()
        self.agent.start()
        return self.agent

    def open_escrows(self, *, every: float = 0.5, ahead: int = 15) -> Counterparty:
        self.counterparty = Counterparty(self.chain, self.deployment, self.hot.address, every=every, ahead=ahead).start()
        self.stack.callback(self.counterparty.stop)
        return self.counterparty


def make_world(tmp: Path, backend: str, stack: contextlib.ExitStack, *, block_time: float | None = None) -> World:
    chain = start_chain(backend=backend, block_time=block_time)
    stack.callback(chain.stop)
    deployment = deploy_contracts(chain.w3, chain.accounts[0])
    hot = new_hot()
    fund(chain, deployment, hot.address)
    alerts = AlertReceiver()
    stack.callback(alerts.stop)
    return World(tmp=tmp, chain=chain, deployment=deployment, hot=hot, cold=new_key().address, alerts=alerts, stack=stack)


@pytest.fixture(params=backends())
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    with contextlib.ExitStack() as stack:
        w = make_world(tmp_path, request.param, stack)
        yield w
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed and w.agent is not None:
            print(w.agent.output()[-6000:])


@pytest.fixture
def anvil_world(tmp_path: Path) -> Iterator[World]:
    with contextlib.ExitStack() as stack:
        yield make_world(tmp_path, "anvil", stack)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.rep_call = rep  # type: ignore[attr-defined]
