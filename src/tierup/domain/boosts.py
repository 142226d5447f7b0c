"""Points boosts (积分翻倍) and member days (会员日): a multiplier on the points of what qualifies.

A boost applies on dates, on a weekday or on a day of the month (program time), optionally only
for some tiers, product categories or channels. The highest boost that applies to a line wins;
boosts never stack.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_FLOOR, Decimal
from zoneinfo import ZoneInfo

from .checkout import Line
from .clock import local_date
from .money import FEN_PER_YUAN
from .points import points_for_order

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class BoostRule:
    code: str
    name: str
    multiplier: Decimal
    starts: date | None = None  # with ends: the dates it runs, both inclusive; no date rule at all: every day
    ends: date | None = None
    weekday: int | None = None  # ISO: 1 = Monday
    day_of_month: int | None = None
    tiers: tuple[str, ...] = ()  # empty: every tier
    categories: tuple[str, ...] = ()  # empty: every line
    channels: tuple[str, ...] = ()  # empty: every channel

    def applies(self, day: date, tier: str, channel: str) -> bool:
        """Whether it runs for an order of this day, tier and channel (on some of its lines, when it names
        categories: covers)."""
        return (self._on(day) and (not self.tiers or tier in self.tiers)
                and (not self.channels or channel in self.channels))

    def covers(self, categories: tuple[str, ...]) -> bool:
        """Whether it runs for a line of these categories."""
        return not self.categories or not set(self.categories).isdisjoint(categories)

    def _on(self, day: date) -> bool:
        if self.weekday is not None:
            return day.isoweekday() == self.weekday
        if self.day_of_month is not None:
            return day.day == self.day_of_month
        return self.starts is None or self.starts <= day <= self.ends

    def in_words(self) -> str:
        if self.weekday is not None:
            when = f"every {WEEKDAYS[self.weekday - 1]}"
        elif self.day_of_month is not None:
            when = f"on day {self.day_of_month} of every month"
        elif self.starts is not None:
            when = f"from {self.starts.isoformat()} to {self.ends.isoformat()}"
        else:
            when = "every day"
        parts = [when] + [f"{what} {', '.join(values)}" for what, values in (
            ("for tiers", self.tiers), ("on lines in", self.categories), ("through", self.channels)) if values]
        return f"{self.multiplier}× points " + ", ".join(parts)


def order_lines(stored: str | None) -> list[Line] | None:
    """An order report's lines as stored (reports.lines), or None when it named none."""
    if stored is None:
        return None
    return [Line(sku, unit_fen, quantity, tuple(categories)) for sku, unit_fen, quantity, categories in json.loads(stored)]


@dataclass(frozen=True)
class Earning:
    points: int
    boosts: tuple[BoostRule, ...]  # the boosts that won on some line

    def named(self) -> str:
        """The boosts in words for a ledger entry's reason, e.g. ' (会员日双倍积分 2×)'; empty without any."""
        return f" ({', '.join(f'{b.name} {b.multiplier}×' for b in self.boosts)})" if self.boosts else ""


def _multiplier(boost: BoostRule) -> Decimal:
    return boost.multiplier


def points_with_boosts(paid_fen: int, multiplier: Decimal, lines: list[Line] | None, boosts: tuple[BoostRule, ...], *,
                       at: datetime, tz: ZoneInfo, tier: str, channel: str) -> Earning:
    """floor(yuan × multiplier × the line's best boost), the money paid shared among the lines by their list
    prices; without lines the order is one line of no category. Without a boost: points_for_order."""
    day = local_date(at, tz)
    # An order without lines is one line of no category, which no boost naming categories covers.
    running = [b for b in boosts if (lines or not b.categories) and b.applies(day, tier, channel)]
    if not running:  # most orders
        return Earning(points_for_order(paid_fen, multiplier), ())
    lines = lines or [Line("", paid_fen)]
    best = [max((b for b in running if b.covers(line.categories)), key=_multiplier, default=None) for line in lines]
    if not any(best):
        return Earning(points_for_order(paid_fen, multiplier), ())
    listed = sum(line.list_fen for line in lines) or 1
    total = sum(Decimal(paid_fen) * line.list_fen / listed * multiplier * (boost.multiplier if boost else 1)
                for line, boost in zip(lines, best))
    won = tuple(dict.fromkeys(b for b in best if b is not None))
    return Earning(int((total / FEN_PER_YUAN).to_integral_value(rounding=ROUND_FLOOR)), won)
