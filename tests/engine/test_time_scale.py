"""A real-time drill (``--drill-time-scale``) stretches the clock of the faults it injects.

A real chain context: the drill injects a gas spike at time scale 4 and the spike's own record (its
``fault.inject`` event) and the blocks it mines say its blocks come four times slower.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chainctx import chain_ctx

from harness import clock
from harness.checks.budgets import Budget
from harness.drill.api import Drill
from harness.drill.context import DrillContext
from harness.faults.gas import GasSpike


@pytest.fixture
def ctx(drill_chain: Any, tmp_path: Path) -> Iterator[DrillContext]:
    with chain_ctx(drill_chain, tmp_path) as c:
        yield c


@pytest.mark.parametrize(("scale", "block_time"), [(1.0, 0.25), (4.0, 1.0)])
def test_the_spike_a_drill_injects_mines_at_the_drills_time_scale(ctx: DrillContext, scale: float, block_time: float) -> None:
    d = Drill(ctx, name="t", scenario="t", budget=Budget())
    d.time_scale = scale
    spike = d.inject(GasSpike(base_fee_gwei=40, block_time=0.25))
    try:
        assert ctx.timeline.events("fault.inject")[0].data["block_time"] == block_time
        start = ctx.chain.block_number()
        t0 = clock.now()
        while ctx.chain.block_number() < start + 2 and clock.now() - t0 < 10:
            time.sleep(0.02)
        took = clock.now() - t0
        # two blocks: at least one whole block time between them, whatever the first one's phase
        assert block_time <= took < 2 * block_time + 1.0, f"two spiked blocks took {took:.2f} s at block time {block_time}"
    finally:
        spike.heal()
