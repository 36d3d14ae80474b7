"""The counterparty on a real chain: steady escrows, expiry of missed ones, reassignment after a rotation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from harness import accounts
from harness.drill.world import _reset_chain
from harness.observe.timeline import Timeline
from harness.workload import Workload, WorkloadSettings


@pytest.fixture
def workload_factory(drill_chain: Any) -> Iterator[Any]:
    _reset_chain(drill_chain)
    chain, dep = drill_chain.chain, drill_chain.deployment
    owner = chain.accounts[0]
    token = dep.token_contract(chain.w3)
    from harness.contracts import send_tx

    send_tx(chain.w3, owner, token.functions.mint(chain.accounts[1].address, 10**21).build_transaction({"from": owner.address, "gas": 100_000}))
    made: list[Workload] = []

    def make(agent: str, **settings: Any) -> Workload:
        w = Workload(chain, dep, Timeline(), counterparty=chain.accounts[1], owner=owner, agent_address=agent,
                     settings=WorkloadSettings(**settings))
        made.append(w)
        w.start()
        return w

    yield make
    for w in made:
        w.stop()


def test_unproven_escrows_expire_on_chain(workload_factory: Any, drill_chain: Any) -> None:
    agent = accounts.new_key().address  # nobody proves for it
    w = workload_factory(agent, interval=0.5, deadline=2)
    ev = w.timeline.wait_for(lambda e: e.kind == "workload.expire", timeout=20)
    assert ev is not None, [e.kind for e in w.timeline.events()]
    escrow = drill_chain.deployment.escrow_contract(drill_chain.chain.w3)
    w.timeline.wait_for(lambda e: False, timeout=1.0)
    assert escrow.functions.escrows(ev.data["id"]).call()[3] == 3  # expired


def test_retarget_moves_open_escrows_and_funds_the_new_address(workload_factory: Any, drill_chain: Any) -> None:
    old, new = accounts.new_key().address, accounts.new_key().address
    w = workload_factory(old, interval=0.3, deadline=30)
    assert w.timeline.wait_for(lambda e: e.kind == "workload.open" and e.data["agent"] == old, timeout=10)
    chain, dep = drill_chain.chain, drill_chain.deployment
    escrow = dep.escrow_contract(chain.w3)
    while escrow.functions.escrowCount().call() < 2:
        w.timeline.wait_for(lambda e: False, timeout=0.1)
    w.retarget(new)
    assert w.timeline.wait_for(lambda e: e.kind == "workload.topup", timeout=10)
    assert w.timeline.wait_for(lambda e: e.kind == "workload.open" and e.data["agent"] == new, timeout=10)
    w.stop()
    w.timeline.wait_for(lambda e: False, timeout=0.5)  # let the last transactions be mined
    agents = [escrow.functions.escrows(i).call()[0] for i in range(1, escrow.functions.escrowCount().call() + 1)]
    assert old not in agents, "an escrow was left with the retired address"
    assert chain.balance(new) == 10**18
    assert dep.token_contract(chain.w3).functions.balanceOf(new).call() == 100 * 10**18


def test_pause_stops_new_escrows(workload_factory: Any) -> None:
    w = workload_factory(accounts.new_key().address, interval=0.2, deadline=30)
    assert w.timeline.wait_for(lambda e: e.kind == "workload.open", timeout=10)
    w.pause()
    opened = w.opened
    w.timeline.wait_for(lambda e: False, timeout=1.0)
    assert w.opened == opened and w.paused
    w.resume()
    assert w.timeline.wait_for(lambda e: e.kind == "workload.open" and e.t > w.timeline.events("workload.resume")[0].t, timeout=10)
