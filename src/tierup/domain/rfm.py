"""RFM (recency, frequency, monetary) segments and lifecycle stages, as data the SQL is built from.

Scores are quintiles within the program (1–5, 5 best), computed in SQL over all members. The
segment comes from R and FM = round((F + M) / 2) on this grid (rows FM 5→1, columns R 1→5):

    FM 5 | Can't lose them  At risk      Loyal              Loyal               Champions
    FM 4 | Can't lose them  At risk      Loyal              Loyal               Champions
    FM 3 | At risk          At risk      Need attention     Loyal               Loyal
    FM 2 | Hibernating      Hibernating  About to sleep     Potential loyalist  Potential loyalist
    FM 1 | Lost             Hibernating  About to sleep     Promising           New
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from .clock import leaves_window

SEGMENT_GRID: dict[int, tuple[str, str, str, str, str]] = {
    5: ("Can't lose them", "At risk", "Loyal", "Loyal", "Champions"),
    4: ("Can't lose them", "At risk", "Loyal", "Loyal", "Champions"),
    3: ("At risk", "At risk", "Need attention", "Loyal", "Loyal"),
    2: ("Hibernating", "Hibernating", "About to sleep", "Potential loyalist", "Potential loyalist"),
    1: ("Lost", "Hibernating", "About to sleep", "Promising", "New"),
}
SEGMENTS = tuple(dict.fromkeys(name for row in SEGMENT_GRID.values() for name in row))
RFM_MONTHS = 12


def fm_score(frequency: int, monetary: int) -> int:
    return (frequency + monetary + 1) // 2


def segment(recency: int, frequency: int, monetary: int) -> str:
    return SEGMENT_GRID[fm_score(frequency, monetary)][recency - 1]


def quintile(percent_rank: float) -> int:
    """A percent rank (0 lowest … 1 highest, ties equal) as a score 1–5."""
    return min(5, int(percent_rank * 5) + 1)


@dataclass(frozen=True)
class LifecycleRules:
    """Lifecycle stages (会员生命周期); programs may override the thresholds.

    CHURNED: no order for churned_days (counted from joining when never ordered). NEW: joined
    within new_days. DECLINING: no order for declining_days. MATURE: mature_orders orders in the
    past 12 months. Otherwise GROWING. First match wins, in that order.
    """

    new_days: int = 30  # joined within: NEW
    declining_days: int = 90  # no order for this long: DECLINING
    churned_days: int = 180  # no order for this long: CHURNED
    mature_orders: int = 5  # orders in the past 12 months: MATURE

    def changes_at(self, joined_at: datetime, last_order_at: datetime | None, oldest_recent_order_at: datetime | None,
                   at: datetime, tz: ZoneInfo) -> datetime | None:
        """The next moment after `at` at which time alone may move the stage: a silence threshold
        passes, NEW ends, or the oldest order of the past 12 months leaves them."""
        silent_since = last_order_at or joined_at
        moments = [silent_since + timedelta(days=self.churned_days), joined_at + timedelta(days=self.new_days),
                   silent_since + timedelta(days=self.declining_days)]
        if oldest_recent_order_at is not None:
            moments.append(leaves_window(oldest_recent_order_at, RFM_MONTHS, tz))
        return min((m for m in moments if m > at), default=None)


# The four-quadrant value map (价值四象限), on the latest RFM scores: value is the monetary score,
# activity the recency score.
HIGH_VALUE_MIN_M = 4
ACTIVE_MIN_R = 3
QUADRANTS = {
    "HIGH_VALUE_ACTIVE": "High value, active: keep them delighted (重要价值).",
    "HIGH_VALUE_SILENT": "High value, gone quiet: win them back first (重要挽留).",
    "LOW_VALUE_ACTIVE": "Low value, active: the potential to grow (潜力发展).",
    "LOW_VALUE_SILENT": "Low value, quiet: low-cost reminders (一般维护).",
}
