"""A user's project in a temporary directory, and what pytest says when collecting it.

Shared by the tests of the plugin's options and of the built-in catalogue: both start pytest in a
fresh project of its own (its own rootdir) and read the collected ids or the one-line usage error.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def collect_project(project: Path, test_file: str, drills: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``pytest --collect-only -q ARGS`` in ``project`` holding ``test_file`` with the source ``drills``."""
    (project / "pytest.ini").touch()
    (project / test_file).write_text(drills)
    cmd = [sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider", *args]
    return subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "300"})


def usage_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The one-line message of a usage error at start (asserting that it was one)."""
    out = proc.stdout + proc.stderr
    assert "INTERNALERROR" not in out and "Traceback" not in out, out
    assert proc.returncode == 4, out
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ERROR: "), proc.stderr
    return lines[0].removeprefix("ERROR: ")
