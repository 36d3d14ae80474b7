"""The recorded recovery time follows what the agent does on chain, not what it claims.

Two timing variants of the reference agent pass every drill, so the defect table cannot show them;
instead each runs the chain-stall drill beside the sound agent in the same session:

* ``slow_resume`` idles 5 s longer before resuming after the heal: its recovery must come at least
  4 s later (it comes later still: the escrows that waited are then worked off by the ramp);
* ``early_resolve`` claims ``resolved`` as soon as it detects, before the heal: its recorded
  recovery still comes after the heal (read from the chain), and the early claim is recorded as a
  finding. (Compared with the sound agent's it does not shrink either, but the sound agent's own
  spread, 0.4 to 2.6 s after the heal, is too wide to assert that in one run.)
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import sensitivity

pytestmark = [pytest.mark.slow, pytest.mark.sensitivity]

@pytest.fixture(scope="module")
def timings(pytestconfig: pytest.Config, summary_lines: list[str]) -> dict[str | None, sensitivity.Timing]:
    extra = shlex.split(os.environ.get("SENSITIVITY_PYTEST_ARGS", ""))
    chain = pytestconfig.getoption("--chain", None)
    out = {}
    for defect in (None, *sensitivity.TIMING_DEFECTS):
        drill = sensitivity.TIMING_DEFECTS.get(defect or "slow_resume")[0]
        out[defect] = sensitivity.recovery_timing(defect, drill, chain=chain, extra=extra, timeout=180.0)
    summary_lines.extend(
        f"recovery timing {d or 'sound'}: {t.status}, recovered {t.after_heal} s after the heal, "
        f"claimed resolved at +{t.claimed_resolved} s" for d, t in out.items()
    )
    return out


def test_slow_resume_moves_the_recorded_recovery_later(timings: dict[str | None, sensitivity.Timing]) -> None:
    sound, slow = timings[None], timings["slow_resume"]
    assert sound.status == "passed" and slow.status == "passed", (sound, slow)
    assert sound.after_heal is not None and slow.after_heal is not None
    assert slow.after_heal - sound.after_heal >= 4.0, (
        f"slow_resume idles 5 s after the heal but recovered only {slow.after_heal - sound.after_heal:.2f} s later "
        f"than the sound agent ({slow.after_heal} s vs {sound.after_heal} s after the heal)"
    )


def test_an_early_resolved_claim_does_not_shorten_the_recorded_recovery(timings: dict[str | None, sensitivity.Timing]) -> None:
    early = timings["early_resolve"]
    assert early.status == "passed", early
    assert early.mttr is not None and early.since is not None and early.claimed_resolved is not None
    # the claim came before the heal, while the chain was still stalled; recovery is still read after the heal
    assert early.claimed_resolved < early.since <= early.mttr, (
        f"early_resolve claimed resolved at +{early.claimed_resolved} s; the heal was at +{early.since} s and the "
        f"recorded recovery at +{early.mttr} s: the recovery must not come before the heal, whatever was claimed"
    )
    assert "claim_ahead_of_evidence:resolved" in early.findings, early.findings
