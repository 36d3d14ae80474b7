"""agent-drills installs as a package: console script, pytest plugin, contract artifacts.

Installs the checkout with pip into a fresh virtual environment (not editable, so only what the
package ships is there) and uses it from outside the checkout, as a user's repository would
(the environment comes from tests/conftest.py; tests/test_install.py drills an agent with it).
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(installed_checkout: Path) -> Path:
    """The virtual environment of tests/conftest.py (shared with tests/test_install.py)."""
    return installed_checkout


@pytest.mark.slow
def test_pip_install_gives_the_drill_command(installed: Path, tmp_path: Path) -> None:
    for argv in (["--help"], ["chain", "--help"], ["proxy", "--help"]):
        out = subprocess.run([str(installed / "bin" / "drill"), *argv], capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "usage: drill" in out.stdout


@pytest.mark.slow
def test_pip_install_registers_the_pytest_plugin(installed: Path, tmp_path: Path) -> None:
    out = subprocess.run([str(installed / "bin" / "pytest"), "--markers"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "@pytest.mark.drill" in out.stdout
    out = subprocess.run([str(installed / "bin" / "pytest"), "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert "--chain" in out.stdout and "--allow-remote" in out.stdout


@pytest.mark.slow
def test_pip_install_ships_the_contract_artifacts(installed: Path, tmp_path: Path) -> None:
    code = ("from harness.contracts import artifact; a = artifact('DrillEscrow'); "
            "assert a.bytecode.startswith('0x60'), a.bytecode[:10]; print(len(a.abi))")
    out = subprocess.run([str(installed / "bin" / "python"), "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) > 10
    assert sys.version_info >= (3, 11)


def test_every_package_of_harness_is_listed_for_the_build() -> None:
    """pyproject.toml lists the packages (two ship from directories of another name): none may be forgotten."""
    from setuptools import find_namespace_packages

    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = set(find_namespace_packages(str(ROOT), include=["harness", "harness.*"], exclude=["*__pycache__*"]))
    listed = set(tool["packages"])
    assert found - listed == set(), f"add to [tool.setuptools] packages in pyproject.toml: {sorted(found - listed)}"
    assert listed - found == {"agent_drills_catalogue", "reference_agent"}
    assert tool["package-dir"] == {"agent_drills_catalogue": "scenarios", "reference_agent": "fixtures/reference_agent"}
