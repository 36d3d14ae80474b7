"""Authorisation attack: someone hammers the agent's control API with wrong bearer tokens.

Every request in a drill comes from the loopback interface, so to let the agent tell the attacker
from the operator the attacker's socket is bound to another loopback address before it connects
(``source``, default 127.0.0.2; Linux routes all of 127.0.0.0/8 to the loopback interface, so no
setup is needed). The operator's own calls come from 127.0.0.1. ``http.client`` is used because it
can bind the client socket's local address; ``requests`` cannot without an extra adapter package.

Each attempt's answer (401, then 429 once the agent blocks the source, or an error) is recorded as
``auth.attempt`` on the timeline; ``probe(token)`` sends one request from the attacker's source
with a given token (e.g. the right one, to check that a blocked source is still refused), recorded
as ``auth.probe``.

``MistypedToken`` is the opposite case: one wrong token from a source (an operator's typo at a second
console, 127.0.0.3), which the drill follows with the right one through ``probe``.
"""

from __future__ import annotations

import secrets
from collections import Counter
from typing import Any

from harness.errors import ConfigError, HarnessError
from harness.faults._chainops import FaultLoop, check_positive
from harness.faults.base import Fault
from harness.observe.control import control_request
from harness.safety import check_loopback_host

__all__ = ["AuthAttack", "MistypedToken"]

_PATHS = {"/operator/halt": {}, "/operator/resume": {}, "/operator/incident": {"summary": "attacker", "severity": "SEV-4"}}


class AuthAttack(Fault):
    family = "auth"
    name = "auth_attack"

    def __init__(self, *, rate: float = 10.0, source: str = "127.0.0.2", path: str = "/operator/halt",
                 attempts: int | None = None) -> None:
        """``rate``: attempts per second. ``source``: the loopback address the attacker sends from
        (not 127.0.0.1, which is the operator's). ``path``: the operator command the attacker tries.
        ``attempts``: stop after that many (None: until healed)."""
        super().__init__()
        check_positive("AuthAttack", "rate", rate)
        check_loopback_host(source, what="AuthAttack source")
        if source in ("127.0.0.1", "localhost"):
            raise ConfigError("AuthAttack: source 127.0.0.1 is the operator's address; pick another loopback one, e.g. 127.0.0.2")
        if path not in _PATHS:
            raise ConfigError(f"AuthAttack: path must be one of {', '.join(_PATHS)}, not {path!r}")
        if attempts is not None and (not isinstance(attempts, int) or attempts < 1):
            raise ConfigError(f"AuthAttack: attempts must be an int >= 1 or None, not {attempts!r}")
        self.rate = float(rate)
        self.source = source
        self.path = path
        self.attempts = attempts
        self.statuses: Counter[int | str] = Counter()
        self._loop: FaultLoop | None = None

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())

    def describe(self) -> dict[str, Any]:
        return {"family": self.family, "rate": self.rate, "source": self.source, "path": self.path,
                "attempts": self.attempts, "answers": {str(k): v for k, v in self.statuses.items()}}

    def _inject(self) -> None:
        # Fail loudly now if the address cannot be bound, rather than in every round of the loop.
        try:
            self._attempt()
        except OSError as exc:
            raise HarnessError(f"AuthAttack could not send from {self.source}: {exc}") from exc
        self._loop = FaultLoop(self.name, 1.0 / self.rate, self._attempt, timeline=self.ctx.timeline,
                               source=f"fault:{self.name}")
        self._loop.start()

    def _attempt(self) -> None:
        if self.attempts is not None and self.sent >= self.attempts:
            return
        bad = "bad-" + secrets.token_hex(8)  # a fresh wrong token each time, as a guesser would
        status: int | str
        try:
            status, _ = control_request(self.ctx.control_url, self.path, token=bad, source=self.source,
                                        body=_PATHS[self.path])
        except OSError as exc:
            status = f"error:{type(exc).__name__}"
        self.statuses[status] += 1
        self.ctx.timeline.record("auth.attempt", f"fault:{self.name}", source=self.source, path=self.path,
                                 status=status)

    def probe(self, token: str, path: str = "/operator/resume") -> int:
        """One request from the attacker's source with ``token`` (e.g. the operator's); its status."""
        status, _ = control_request(self.ctx.control_url, path, token=token, source=self.source, body=_PATHS[path])
        self.ctx.timeline.record("auth.probe", f"fault:{self.name}", source=self.source, path=path, status=status,
                                 right_token=token == self.ctx.operator_token)
        return status

    def _heal(self) -> None:
        if self._loop is not None:
            self._loop.stop()


class MistypedToken(AuthAttack):
    """One wrong operator token from ``source``: a typo, not an attack (contract 1.1, section 4).

    The single attempt is sent at the injection, against ``path`` (default ``/operator/resume``, a
    command that changes nothing while the agent is not halted); ``probe(token)`` then sends the
    right one from the same source. Nothing to heal.
    """

    name = "mistyped_token"

    def __init__(self, *, source: str = "127.0.0.3", path: str = "/operator/resume") -> None:
        super().__init__(rate=1.0, source=source, path=path, attempts=1)

    def describe(self) -> dict[str, Any]:
        return {"family": self.family, "source": self.source, "path": self.path,
                "answers": {str(k): v for k, v in self.statuses.items()}}

    def _inject(self) -> None:
        self._attempt()
        status = next(iter(self.statuses))
        if isinstance(status, str):  # an error, not an answer: the typo never reached the agent
            raise HarnessError(f"MistypedToken could not reach the control API from {self.source}: {status}")

    def _heal(self) -> None:
        pass
