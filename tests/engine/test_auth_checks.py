"""The checks of the failed-authorisation duties (contract 1.1): a mistyped token is no attack, the
attempts are in the event, the configuration hash is the harness's own.

The predicates read only the timeline, ``/health``'s last answer and the hash the world computed,
so they are given those records directly, each one produced on purpose (an event in the window or
out of it, a count too high or too low). The over-reaction check runs as a drill does: a real chain
context, the embedded fault proxy for its counters, and the ``auth.probe`` answer recorded where an
auth fault records it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from chainctx import Marker, chain_ctx

from harness.checks.budgets import Budget
from harness.drill.api import MISTYPED_TOKEN_DUTY, Drill
from harness.drill.context import DrillContext
from harness.drill.playbook_predicates import attempts_reported, config_intact
from harness.drill.predicates import Probe
from harness.drill.world import config_sha256
from harness.errors import OverReaction
from harness.observe.timeline import Event
from harness.proxy.embedded import EmbeddedProxy

SOURCE = "127.0.0.2"


class Records:
    """A timeline of events at chosen times (what the predicates read of one)."""

    def __init__(self, *events: Event) -> None:
        self._events = list(events)

    def events(self, kind: str | None = None) -> list[Event]:
        return [e for e in self._events if kind is None or e.kind == kind]


def attempt(t: float, status: int | str, source: str = SOURCE) -> Event:
    return Event(t=t, wall=t, kind="auth.attempt", source="fault:auth_attack", data={"source": source, "status": status})


def alert(t: float, **details: Any) -> Event:
    return Event(t=t, wall=t, kind="alert", source="alert-sink",
                 data={"kind": "auth_failures", "severity": "SEV-3", "status": "detected", "incident_id": "INC-2026-12-03-001",
                       "details": details})


def probe_of(*events: Event, health: dict[str, Any] | None = None, config: str | None = None) -> Probe:
    ctx = SimpleNamespace(timeline=Records(*events), health=SimpleNamespace(last=health), config_sha256=config)
    return Probe(ctx=ctx, since=100.0)  # type: ignore[arg-type]


# Four 401s, then the source blocked: the agent's count that blocked it is 5.
ATTACK = [attempt(100.0 + 0.1 * i, 401) for i in range(4)] + [attempt(100.4 + 0.1 * i, 429) for i in range(5)]


def test_the_attempts_the_harness_made_are_accepted() -> None:
    seen = attempts_reported(SimpleNamespace(source=SOURCE))(
        probe_of(*ATTACK, alert(100.6, source=SOURCE, failed_attempts=5, window_s=10.0)))
    assert seen.ok, seen
    assert "5 failed attempt(s) from 127.0.0.2 within 10.0 s" in seen.seen


@pytest.mark.parametrize(("details", "problem"), [
    ({"blocked_sources": [SOURCE]}, "details without source, failed_attempts, window_s (it has blocked_sources)"),
    ({"source": "127.0.0.9", "failed_attempts": 5, "window_s": 10}, "details.source is '127.0.0.9', the harness sent from 127.0.0.2"),
    ({"source": SOURCE, "failed_attempts": 5, "window_s": 0}, "details.window_s is 0, not a positive number"),
    ({"source": SOURCE, "failed_attempts": "5", "window_s": 10}, "details.failed_attempts is '5', not an integer"),
    ({"source": SOURCE, "failed_attempts": 40, "window_s": 10}, "failed_attempts is 40, but the harness sent 9 from 127.0.0.2"),
    ({"source": SOURCE, "failed_attempts": 2, "window_s": 10}, "failed_attempts is 2, but the agent had answered 4 of them 401"),
])
def test_attempt_details_that_do_not_fit_what_was_sent_fail_naming_why(details: dict[str, Any], problem: str) -> None:
    pred = attempts_reported(SimpleNamespace(source=SOURCE))
    seen = pred(probe_of(*ATTACK, alert(100.6, **details)))
    assert not seen.ok
    assert problem in seen.seen, seen.seen
    assert "contract 1.1, section 3" in pred.failure


def test_no_auth_failures_event_is_said_so() -> None:
    seen = attempts_reported(SimpleNamespace(source=SOURCE))(probe_of(*ATTACK))
    assert (seen.ok, seen.seen) == (False, "no auth_failures alert since the injection")


def test_401s_outside_the_window_are_not_held_against_the_count() -> None:
    """A small window: only the 401s within it, before the event, bound the count from below."""
    seen = attempts_reported(SimpleNamespace(source=SOURCE))(
        probe_of(*ATTACK, alert(100.6, source=SOURCE, failed_attempts=2, window_s=0.35)))
    assert seen.ok, seen


def test_the_configuration_hash_must_be_the_harness_s(tmp_path: Path) -> None:
    contracts = tmp_path / "contracts.json"
    contracts.write_text('{"token": "0x1", "escrow": "0x2"}')
    expected = config_sha256({"AGENT_CONTRACTS": str(contracts), "AGENT_CHAIN_ID": "31337"})
    pred = config_intact()
    assert pred(probe_of(health={"status": "ok", "config_sha256": expected}, config=expected)).ok
    assert pred(probe_of(health={"status": "ok", "config_sha256": expected.upper()}, config=expected)).ok
    missing = pred(probe_of(health={"status": "ok"}, config=expected))
    assert (missing.ok, missing.seen) == (False, "/health has no config_sha256")
    wrong = pred(probe_of(health={"status": "ok", "config_sha256": "0" * 64}, config=expected))
    assert not wrong.ok and f"the harness computed {expected[:16]}…" in wrong.seen
    assert not pred(probe_of(health=None, config=expected)).ok
    assert "contract 1.1, section 4" in pred.failure


@pytest.fixture
def ctx(drill_chain: Any, tmp_path: Path) -> Iterator[DrillContext]:
    with chain_ctx(drill_chain, tmp_path) as c:
        proxy = EmbeddedProxy(port=0)
        c.proxy_api_url = proxy.start().rstrip("/")
        c.cleanup.callback(proxy.stop)
        yield c


def test_the_right_token_refused_after_a_typo_is_an_over_reaction_naming_the_duty(ctx: DrillContext) -> None:
    d = Drill(ctx, name="t", scenario="t", budget=Budget())
    d.inject(Marker())
    ctx.timeline.record("auth.probe", "fault:mistyped_token", source="127.0.0.4", path="/operator/resume", status=429,
                        right_token=False)  # a wrong token refused: no over-reaction
    ctx.timeline.record("auth.probe", "fault:mistyped_token", source="127.0.0.3", path="/operator/resume", status=429,
                        right_token=True)
    with pytest.raises(OverReaction) as err:
        d.expect_no_overreaction(hold=1.0, proofs=0, duty=MISTYPED_TOKEN_DUTY)
    msg = str(err.value)
    assert msg.startswith("over-reaction to marker: the control API blocked 127.0.0.3: the right token from it was answered 429 at +")
    assert msg.endswith(f"({MISTYPED_TOKEN_DUTY})") and "contract 1.1, section 4" in msg


def test_the_right_token_served_after_a_typo_is_calm(ctx: DrillContext) -> None:
    d = Drill(ctx, name="t", scenario="t", budget=Budget())
    d.inject(Marker())
    ctx.timeline.record("auth.probe", "fault:mistyped_token", source="127.0.0.3", path="/operator/resume", status=200,
                        right_token=True)
    d.expect_no_overreaction(hold=0.5, proofs=0, duty=MISTYPED_TOKEN_DUTY)
    assert ctx.timeline.events("drill.calm")
