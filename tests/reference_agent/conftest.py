"""Fixtures for the reference agent's tests: a real chain, deployed contracts, the agent as a process."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fixtures"))

from ra_world import BACKENDS, World, make_world


@pytest.fixture(params=BACKENDS)
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
