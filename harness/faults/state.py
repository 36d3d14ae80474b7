"""Faults on the agent's state directory, applied while the agent is down.

Both freeze the agent's process group (SIGSTOP: it can no longer write), change ``ctx.state_dir``,
then kill the frozen group; the supervisor starts the agent again and it finds the damage, as after
a crash that tore its files or a host that came back with an empty disk. What the agent does with
what it finds is the drill.

``StateCorruption`` garbles the files: ``mode="garbage"`` overwrites each with random bytes of
the same length, ``"truncate"`` cuts each to half its size (a write torn by a crash). ``StateLoss``
deletes everything in the directory (the directory itself stays; it is the agent's mount point).
Only names and sizes of the files touched are recorded, never their content.
Heal has nothing to restore (the point is that the agent rebuilds); it only thaws the agent if
the fault failed half-way.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, HarnessError
from harness.faults.base import Fault

__all__ = ["StateCorruption", "StateLoss"]

_MODES = ("garbage", "truncate")


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


class _StateFault(Fault):
    family = "state"

    def __init__(self) -> None:
        super().__init__()
        self.touched: list[str] = []

    def _apply(self, root: Path) -> None:
        raise NotImplementedError

    def _inject(self) -> None:
        ctx = self.ctx
        root = Path(ctx.state_dir)
        if not root.is_dir():
            raise HarnessError(f"{self.name}: the agent's state dir {root} does not exist")
        agent = ctx.runtime
        if not agent.freeze():
            raise HarnessError(f"{self.name}: the agent is not running, so it cannot be taken down")
        try:
            self._apply(root)
        finally:
            agent.kill(signal.SIGKILL)  # a frozen process dies on SIGKILL without running again

    def _heal(self) -> None:
        self.ctx.runtime.thaw()  # a no-op unless the kill above failed


class StateCorruption(_StateFault):
    name = "state_corruption"

    def __init__(self, *, mode: str = "garbage") -> None:
        super().__init__()
        if mode not in _MODES:
            raise ConfigError(f"StateCorruption: mode must be one of {', '.join(_MODES)}, not {mode!r}")
        self.mode = mode

    def describe(self) -> dict[str, Any]:
        return {"family": self.family, "mode": self.mode, "files": list(self.touched)}

    def _apply(self, root: Path) -> None:
        files = _files(root)
        if not files:
            raise HarnessError(
                f"state_corruption: the agent's state dir {root} holds no files to corrupt; "
                "the agent writes none (use StateLoss, or check the agent keeps state there)"
            )
        for f in files:
            size = f.stat().st_size
            if self.mode == "garbage":
                f.write_bytes(os.urandom(max(size, 16)))
            else:
                with f.open("r+b") as fh:
                    fh.truncate(size // 2)
            self.touched.append(f"{f.relative_to(root)} ({size} bytes)")


class StateLoss(_StateFault):
    name = "state_loss"

    def describe(self) -> dict[str, Any]:
        return {"family": self.family, "removed": list(self.touched)}

    def _apply(self, root: Path) -> None:
        for entry in sorted(root.iterdir()):
            self.touched.append(entry.name)
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
