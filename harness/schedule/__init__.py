"""Fault schedules: several faults, overlapping, found by a search, shrunk, and replayed.

``model`` holds the data (``Schedule``, ``Step``, ``FaultSpec``, the registry ``FAULTS``),
``faults`` registers the built-in faults, ``strategies`` the Hypothesis strategies that draw
schedules, ``runner`` carries one out in a drill. docs/schedules.md says how to use them.
"""

from harness.schedule import faults as _builtin  # noqa: F401  (registers the built-in faults)
from harness.schedule.model import FAULTS, FORMAT, FaultSpec, Schedule, Step, register_fault
from harness.schedule.runner import ScheduleRun, run_schedule
from harness.schedule.strategies import schedules, steps

__all__ = ["FAULTS", "FORMAT", "FaultSpec", "Schedule", "ScheduleRun", "Step", "register_fault", "run_schedule",
           "schedules", "steps"]
