"""agent-drills installs as a package: console script, pytest plugin, contract artifacts.

Installs the checkout with pip into a fresh virtual environment (not editable, so only what the
package ships is there) and uses it from outside the checkout, as a user's repository would.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env_dir = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    out = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(ROOT)],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return env_dir


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
