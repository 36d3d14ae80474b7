"""The operator's kill switch, as a fault: ``/operator/halt`` at injection, ``/operator/resume`` at heal.

Not a failure of the world but the playbooks' first move in many incidents; drilling it checks that
the agent really sends nothing while halted and comes back gradually, not at full rate at once.
Both calls use the operator's token from 127.0.0.1 (``ctx.operator_token``, ``ctx.control_url``).
"""

from __future__ import annotations

from typing import Any

from harness.errors import HarnessError
from harness.faults.base import Fault
from harness.observe.control import control_request

__all__ = ["OperatorHalt"]


class OperatorHalt(Fault):
    family = "operator"
    name = "operator_halt"

    def __init__(self) -> None:
        super().__init__()
        self.answers: list[tuple[str, int]] = []

    def describe(self) -> dict[str, Any]:
        return {"family": self.family, "answers": [f"{p} {s}" for p, s in self.answers]}

    def _call(self, path: str) -> None:
        ctx = self.ctx
        status, body = control_request(ctx.control_url, path, token=ctx.operator_token)
        self.answers.append((path, status))
        if status != 200:
            raise HarnessError(f"the agent answered {path} with HTTP {status} ({body}); expected 200 for the operator's token")

    def _inject(self) -> None:
        self._call("/operator/halt")

    def _heal(self) -> None:
        self._call("/operator/resume")
