"""Program time: days, months and rolling windows are counted in the program's time zone."""

from __future__ import annotations

import calendar
import functools
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def utc(dt: datetime) -> datetime:
    """The same instant in UTC; naive datetimes are refused, a rule never guesses a zone."""
    if dt.tzinfo is None:
        raise ValueError("datetime without a UTC offset")
    return dt.astimezone(timezone.utc)


def local(dt: datetime, tz: ZoneInfo) -> datetime:
    if dt.tzinfo is None:
        raise ValueError("datetime without a UTC offset")
    return _in_zone(dt, tz, dt.fold)


# A report's rules ask for its moment in program time a dozen times (its day, its month, its windows, its
# lots' expiry); a zone's conversion costs ten lookups of one already made. Equal instants give the same
# answer, so they share it; `fold` is part of the key because two wall times of a zone's repeated hour
# compare equal (and hash alike) while being different instants.
@functools.lru_cache(maxsize=4096)
def _in_zone(dt: datetime, tz: ZoneInfo, fold: int) -> datetime:
    return dt.astimezone(tz)


def add_months(dt: datetime, months: int) -> datetime:
    """Calendar months later (or earlier); the day is clamped to the month's end (Jan 31 + 1 = Feb 28)."""
    index = dt.year * 12 + (dt.month - 1) + months
    year, month = divmod(index, 12)
    # The month's length; calendar.monthrange would work out its first weekday too, at every tier check.
    length = calendar.mdays[month + 1] + (month == 1 and calendar.isleap(year))
    return dt.replace(year=year, month=month + 1, day=min(dt.day, length))


def months_before(as_of: datetime, months: int, tz: ZoneInfo) -> datetime:
    """Start of the rolling window 'the past N months' ending at as_of, in program time.

    The window is computed on the program's wall clock, so "12 months before 2026-03-01 00:30
    Shanghai" is 2025-03-01 00:30 Shanghai whatever UTC says.
    """
    return utc(add_months(local(as_of, tz), -months))


def leaves_window(moment: datetime, months: int, tz: ZoneInfo) -> datetime:
    """When `moment` stops being inside 'the past N months' (see months_before). Where the month is
    shorter the day is clipped, which can only make this earlier than the exact instant, never later."""
    return utc(add_months(local(moment, tz), months))


def local_date(dt: datetime, tz: ZoneInfo) -> date:
    return local(dt, tz).date()


class Horizon:
    """The earliest moment after `now` at which time alone changes the answer being built."""

    def __init__(self, now: datetime):
        self.now = now
        self.until: datetime | None = None

    def changes_at(self, moment: datetime | None) -> None:
        if moment is not None and moment > self.now and (self.until is None or moment < self.until):
            self.until = moment
