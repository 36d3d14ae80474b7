"""The docs that are generated from the code are current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_drill_catalogue_is_current() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "catalogue.py"), "--check"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
