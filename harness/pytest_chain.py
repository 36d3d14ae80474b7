"""pytest wiring for chains: ``--chain``, ``--allow-remote`` and the session chain fixtures."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.chain.base import BACKENDS, Chain, ChainSettings, start_chain
from harness.config import load_drills_table
from harness.contracts import Deployment, deploy_contracts
from harness.errors import ConfigError

__all__ = ["DrillChain", "chain_backend_of"]

_BACKEND_KEY = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("agent-drills", "agent-drills: incident-response drills")
    group.addoption(
        "--chain", choices=BACKENDS, default=None,
        help="chain backend for drills: pyevm (embedded py-evm, default) or anvil "
        "(default from [tool.drills] chain = ... in pyproject.toml or drills.toml)",
    )
    group.addoption(
        "--allow-remote", action="store_true", default=False,
        help="allow RPC URLs and listen addresses off 127.0.0.0/8 (TOXIPROXY_URL stays loopback-only)",
    )


def pytest_configure(config: pytest.Config) -> None:
    backend = config.getoption("--chain")
    if backend is None:
        backend = load_drills_table(config.rootpath).get("chain", "pyevm")
        if backend not in BACKENDS:
            raise ConfigError(
                f"[tool.drills] chain = {backend!r} is not a chain backend; use one of {', '.join(BACKENDS)}"
            )
    config.stash[_BACKEND_KEY] = backend
    # SIGTERM (CI cancelling a job) gets the same cleanup as Ctrl-C: pytest tears fixtures down.
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt("SIGTERM")


def pytest_report_header(config: pytest.Config) -> str:
    return f"agent-drills: chain backend {config.stash[_BACKEND_KEY]}"


def chain_backend_of(config: pytest.Config) -> str:
    """The backend chosen for this run (``--chain`` or config)."""
    return config.stash[_BACKEND_KEY]


@pytest.fixture(scope="session")
def chain_backend(pytestconfig: pytest.Config) -> str:
    """Name of the chain backend of this run."""
    return chain_backend_of(pytestconfig)


@pytest.fixture(scope="session")
def chain(chain_backend: str, pytestconfig: pytest.Config) -> Iterator[Chain]:
    """A local chain shared by the session (stopped at the end, even on Ctrl-C)."""
    c = start_chain(ChainSettings(backend=chain_backend, allow_remote=pytestconfig.getoption("--allow-remote")))
    try:
        yield c
    finally:
        c.stop()


@dataclass(frozen=True)
class DrillChain:
    """The session chain with the drill contracts deployed and a snapshot to return to."""

    chain: Chain
    deployment: Deployment
    snapshot_id: str

    def reset(self) -> None:
        """Return the chain to the freshly deployed state and take a new snapshot (ids are single-use)."""
        self.chain.revert(self.snapshot_id)
        object.__setattr__(self, "snapshot_id", self.chain.snapshot())


@pytest.fixture(scope="session")
def drill_chain(chain: Chain) -> DrillChain:
    """The session chain with DrillToken and DrillEscrow deployed by dev account 0, snapshotted."""
    deployment = deploy_contracts(chain.w3, chain.accounts[0])
    return DrillChain(chain=chain, deployment=deployment, snapshot_id=chain.snapshot())


@pytest.fixture
def contracts_dir() -> Path:
    from harness.contracts import artifacts_dir

    return artifacts_dir()
