"""The plan's ``every`` (metadata only: agent-drills has no scheduler) as a crontab line.

``every`` is either a five-field cron expression (``"0 2 * * 1-5"``) or one of the words
``hourly``, ``daily at HH:MM``, ``weekdays at HH:MM`` or ``<weekday> at HH:MM`` (``monday at 10:00``).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from harness.errors import ConfigError

__all__ = ["crontab_fields", "crontab_line"]

_DAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_HELP = ("every must be a cron expression of five fields (\"0 2 * * 1-5\") or one of: \"hourly\", \"daily at HH:MM\", "
         "\"weekdays at HH:MM\", \"<weekday> at HH:MM\" (e.g. \"monday at 10:00\")")


def _at(text: str, every: str) -> tuple[str, str]:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", text)
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ConfigError(f"every {every!r}: {text!r} is not a time of day HH:MM (00:00 to 23:59)")
    return str(int(m.group(2))), str(int(m.group(1)))


def crontab_fields(every: str) -> str:
    """The five cron fields of ``every``; ConfigError saying what ``every`` accepts otherwise."""
    text = " ".join(every.lower().split())
    if text == "hourly":
        return "0 * * * *"
    words = text.split(" at ")
    if len(words) == 2:
        when, at = words
        minute, hour = _at(at, every)
        if when == "daily":
            return f"{minute} {hour} * * *"
        if when == "weekdays":
            return f"{minute} {hour} * * 1-5"
        if when in _DAYS:
            return f"{minute} {hour} * * {_DAYS.index(when)}"
        raise ConfigError(f"every {every!r}: {when!r} is not daily, weekdays or a weekday name; {_HELP}")
    fields = text.split(" ")
    if len(fields) != 5 or not all(_FIELD.match(f) for f in fields):
        raise ConfigError(f"every {every!r} is not understood; {_HELP}")
    for f, (lo, hi), name in zip(fields, _RANGES, ("minute", "hour", "day of month", "month", "day of week")):
        for n in re.findall(r"\d+", re.sub(r"/\d+", "", f)):
            if not lo <= int(n) <= hi:
                raise ConfigError(f"every {every!r}: {name} {n} is out of range {lo}-{hi}")
    return text


def crontab_line(every: str, plan: Path, *, workdir: Path, drill: str = "drill") -> str:
    """A crontab line running the plan unattended into a dated directory (``%`` escaped, as cron needs)."""
    out = f"{shlex.quote(str(workdir / 'gamedays'))}/$(date +\\%Y\\%m\\%d-\\%H\\%M)"
    return (f"{crontab_fields(every)} cd {shlex.quote(str(workdir))} && {drill} gameday {shlex.quote(str(plan))} --yes "
            f"--out {out} >> {shlex.quote(str(workdir / 'gamedays' / 'cron.log'))} 2>&1")
