"""What a member has done, as the rules of tasks and quests read it."""

from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from .clock import local, local_date, utc
from .program import Window


@dataclass
class Activity:
    """One member's reports, reduced to what goals count. Times are UTC instants; each list is in time
    order (goals count a window's items by bisection)."""

    orders: list[tuple[datetime, int]] = field(default_factory=list)  # (paid at, net fen), net > 0
    check_ins: list[date] = field(default_factory=list)  # program-local days, ascending
    photo_reviews: list[datetime] = field(default_factory=list)
    referral_first_orders: list[datetime] = field(default_factory=list)  # first order of each referred member
    # EARN entries, quest rewards excluded; only those quests count (from the earliest quest's start)
    points_earned: list[tuple[datetime, int]] = field(default_factory=list)
    actions: list[tuple[datetime, str]] = field(default_factory=list)  # reported activities: (when, kind)


ONE_DAY = timedelta(days=1)


def period_bounds(window: Window, at: datetime, tz: ZoneInfo) -> tuple[datetime | None, datetime | None]:
    """[start, end) of the window containing `at`, as UTC instants; None = unbounded."""
    return _day_bounds(window, local_date(at, tz), tz)


# Every goal of every task asks again for each report: the same few days and windows.
@functools.lru_cache(maxsize=4096)
def _day_bounds(window: Window, day: date, tz: ZoneInfo) -> tuple[datetime | None, datetime | None]:
    if window.kind == "lifetime":
        return None, None
    if window.kind == "campaign":
        return midnight(window.starts, tz), midnight(window.ends + timedelta(days=1), tz)
    if window.kind == "day":
        start = day
        end = day + timedelta(days=1)
    elif window.kind == "week":  # ISO weeks: Monday to Sunday
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    elif window.kind == "month":
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    else:
        raise ValueError(f"unknown window {window.kind!r}")
    return midnight(start, tz), midnight(end, tz)


def period_key(repeat: str | None, at: datetime, tz: ZoneInfo) -> str:
    """Which occurrence of a repeating task `at` falls in: '' for one-off tasks, else day/week/month."""
    if repeat is None:
        return ""
    day = local_date(at, tz)
    if repeat == "day":
        return day.isoformat()
    if repeat == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02}"
    return f"{day.year}-{day.month:02}"


@functools.lru_cache(maxsize=4096)
def midnight(day: date, tz: ZoneInfo) -> datetime:
    return utc(datetime.combine(day, time(0), tzinfo=tz))


def job_midnight(moment: datetime, tz: ZoneInfo) -> datetime:
    """The first midnight (program time) at or after `moment`: when the daily jobs, run shortly after each
    midnight, find what fell due at `moment` (a lot's expiry, the end of a tier's validity)."""
    day = local_date(moment, tz)
    at = midnight(day, tz)
    return at if at >= moment else midnight(day + ONE_DAY, tz)


def midnight_before(moment: datetime, tz: ZoneInfo) -> datetime:
    """The last midnight (program time) before `moment`: what fell due by it, and only that, has a job's
    midnight before `moment` (job_midnight)."""
    day = local_date(moment, tz)
    at = midnight(day, tz)
    return at if at < moment else midnight(day - ONE_DAY, tz)


def _inside(items: list, bounds: tuple[datetime | None, datetime | None], at: datetime, key=None) -> list:
    """The items (in time order; `key` gives an item's instant) in [start, end) and not after `at`."""
    start, end = bounds
    low = bisect.bisect_left(items, start, key=key) if start is not None else 0
    high = bisect.bisect_right(items, at, key=key)
    if end is not None:
        high = min(high, bisect.bisect_left(items, end, key=key))
    return items[low:high]


def moment_of(item: tuple) -> datetime:
    """The instant of a (when, …) item of an Activity list: the key its lists are searched by."""
    return item[0]


def longest_month_streak(items: list[tuple], tz: ZoneInfo) -> int:
    """The longest run of consecutive calendar months (program time) with at least one order; `items` are
    an Activity list's (when, …), in time order. Each month is looked at once, at its first item, and the
    next month's first is found by bisection: a member's thousandth order costs what their tenth did."""
    best = run = 0
    previous = None
    index = 0
    while index < len(items):
        month = _month_index(local(items[index][0], tz))
        run = run + 1 if previous is not None and month == previous + 1 else 1
        best = max(best, run)
        previous = month
        year, next_month = divmod(month + 1, 12)
        index = bisect.bisect_left(items, midnight(date(year, next_month + 1, 1), tz), index + 1, key=moment_of)
    return best


def _month_index(moment: datetime) -> int:
    return moment.year * 12 + moment.month - 1


def check_in_streak(days: list[date], today: date) -> int:
    """Consecutive check-in days ending today, or ending yesterday when today is not yet checked in; `days`
    ascending, walked back from today (as long as the streak, not the member's whole history)."""
    end = bisect.bisect_right(days, today)
    expected = today if end and days[end - 1] == today else today - ONE_DAY
    streak = 0
    for index in range(end - 1, -1, -1):
        if days[index] < expected:  # a day missed
            break
        if days[index] == expected:  # (a day above it is one counted already, listed twice)
            streak += 1
            expected -= ONE_DAY
    return streak


GOAL_METRICS = ("orders", "spend", "order_month_streak", "check_in_days", "check_in_streak", "photo_reviews",
                "referred_first_orders", "activities")
# The Activity list each metric counts.
_COUNTED = {"orders": "orders", "spend": "orders", "order_month_streak": "orders", "check_in_days": "check_ins",
            "check_in_streak": "check_ins", "photo_reviews": "photo_reviews",
            "referred_first_orders": "referral_first_orders", "activities": "actions"}


def nothing_counted(metric: str, activity: Activity) -> bool:
    """Whether the member has done nothing of what the goal metric counts (its figure is 0): most goals of most
    members, told without working out a period."""
    return metric in _COUNTED and not getattr(activity, _COUNTED[metric])


def goal_value(metric: str, activity: Activity, window: Window, at: datetime, tz: ZoneInfo,
               kind: str | None = None) -> int:
    """The member's figure for a goal at `at`. Spend is in whole currency units; `kind` narrows activities."""
    if nothing_counted(metric, activity):
        return 0
    bounds = period_bounds(window, at, tz)
    if metric == "activities":
        return sum(1 for _, done in _inside(activity.actions, bounds, at, moment_of) if kind in (None, done))
    if metric == "orders":
        return len(_inside(activity.orders, bounds, at, moment_of))
    if metric == "spend":
        return sum(fen for _, fen in _inside(activity.orders, bounds, at, moment_of)) // 100
    if metric == "order_month_streak":
        return longest_month_streak(_inside(activity.orders, bounds, at, moment_of), tz)
    if metric == "check_in_days":
        return len(_inside(activity.check_ins, bounds, at, lambda day: midnight(day, tz)))
    if metric == "check_in_streak":
        return check_in_streak(activity.check_ins, local_date(at, tz))
    if metric == "photo_reviews":
        return len(_inside(activity.photo_reviews, bounds, at))
    if metric == "referred_first_orders":
        return len(_inside(activity.referral_first_orders, bounds, at))
    raise ValueError(f"unknown goal metric {metric!r}")
