"""A silent fault, for game days: the agent is frozen (SIGSTOP), so nothing inside it can notice.

Its ``/health`` stops answering and its work stops. The agent raises no incident; a person watching
has to. The drill waits until someone ran ``drill incident "..." --gameday OUT`` (the game day
measures that report against the injection as the detection time), then thaws the agent and
checks that it recovers. Run it from a game-day plan (``drills = ["gamedays/drills/test_silent.py::
test_frozen_agent_is_noticed_by_a_person"]``); under plain pytest nobody reports and it fails.
"""

import pytest

from harness import Freeze
from harness.gameday.inner import reported_by_a_person


@pytest.mark.drill(playbook="monitoring", incident="manual", family="process",
                   budget={"contain": 120, "recover": 180, "time_limit": 300, "deadline_misses": 3})
def test_frozen_agent_is_noticed_by_a_person(drill):
    drill.steady_state()
    freeze = drill.inject(Freeze())
    drill.wait_until(reported_by_a_person(), within=120)
    drill.heal(freeze)
    drill.expect_recovery()
    drill.verify()
