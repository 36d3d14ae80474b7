"""Fixtures shared by the test packages of agent-drills's own tests."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# A pytest started in the background by a non-interactive shell (`pytest &`, nohup) has SIGINT
# ignored, and every child it starts inherits that: the tests that interrupt a child run with SIGINT,
# as a terminal's Ctrl-C does, would then wait for ever. A handler of our own is reset to the default
# in each child at exec, so the children get Python's usual KeyboardInterrupt again.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
#: not part of a fresh checkout (or rebuilt by setup): left out of the copy that is installed
_NOT_CHECKED_OUT = {".git", ".venv", "node_modules", "reports", "build", "dist", "allure-results", "allure-report",
                    ".pytest_cache", ".hypothesis"}


def _leave_out(directory: str, names: list[str]) -> set[str]:
    top = Path(directory).resolve() == ROOT
    return {n for n in names if n == "__pycache__" or n.endswith(".egg-info") or (top and n in _NOT_CHECKED_OUT)}


@pytest.fixture(scope="session")
def installed_checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment outside the checkout with agent-drills ``pip install``-ed from a copy of it.

    A copy, so the build neither sees files a fresh checkout lacks nor leaves a build/ behind here;
    not editable, so only what the package ships is there. Dependencies come from pip's configured
    index, as for a user (about 30 s on the development machine).
    """
    source = tmp_path_factory.mktemp("checkout") / "agent-drills"
    shutil.copytree(ROOT, source, symlinks=True, ignore=_leave_out)
    env_dir = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True).create(env_dir)
    out = subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                          str(source)], capture_output=True, text=True, timeout=900, env=_user_env(env_dir))
    assert out.returncode == 0, out.stderr[-3000:]
    return env_dir


@pytest.fixture(scope="session")
def installed_env(installed_checkout: Path) -> dict[str, str]:
    """The environment of a user who activated that virtual environment."""
    return _user_env(installed_checkout)


def _user_env(env_dir: Path) -> dict[str, str]:
    """``os.environ`` with ``env_dir``'s bin/ first on PATH and nothing that points into this checkout."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(env_dir)
    env["COLUMNS"] = "300"
    return env

