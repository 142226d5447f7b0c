"""Points arithmetic: what an order earns and what a refund takes back. All integer, all floored."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from zoneinfo import ZoneInfo

from .clock import add_months, local, utc
from .money import FEN_PER_YUAN, refunded_share


def points_for_order(amount_fen: int, multiplier: Decimal) -> int:
    """floor(yuan × multiplier): ¥250.99 at 2× earns 501."""
    points = Decimal(amount_fen) * multiplier / FEN_PER_YUAN
    return int(points.to_integral_value(rounding=ROUND_FLOOR))


def points_to_reverse(earned: int, order_fen: int, refunded_before_fen: int, refund_fen: int) -> int:
    """Points a refund takes back: its share of what the order earned (money.refunded_share)."""
    return refunded_share(earned, order_fen, refunded_before_fen, refund_fen)


def reversal_within_balance(reverse: int, balance: int) -> tuple[int, int]:
    """(points actually taken, shortfall): a reversal never drives the balance below zero."""
    taken = min(reverse, max(balance, 0))
    return taken, reverse - taken


@dataclass(frozen=True)
class Lot:
    """Points still available from one positive ledger entry, and when they expire."""

    entry_id: int
    remaining: int
    expires_at: datetime | None


def draw_fifo(lots: list[Lot], amount: int, *, first: int | None = None) -> list[tuple[int, int]]:
    """Which lots a spend of `amount` draws from, as (entry id, points): the lot named `first`
    (a refund takes back its own order's points first), then the lots expiring soonest, and
    lots that never expire last. Never more than the lots hold."""
    def order(lot: Lot) -> tuple:
        return (lot.entry_id != first, lot.expires_at is None, lot.expires_at or datetime.max, lot.entry_id)

    draws = []
    for lot in sorted(lots, key=order):
        if amount <= 0:
            break
        take = min(lot.remaining, amount)
        if take > 0:
            draws.append((lot.entry_id, take))
            amount -= take
    return draws


def drawn_from(lots: list[Lot], draws: list[tuple[int, int]]) -> list[Lot]:
    """The lots as they are once `draws` (draw_fifo's) took their points: those still holding some."""
    taken = dict(draws)
    return [Lot(lot.entry_id, lot.remaining - taken.get(lot.entry_id, 0), lot.expires_at) for lot in lots
            if lot.remaining > taken.get(lot.entry_id, 0)]


def lot_expiry(earned_at: datetime, months: int | None, tz: ZoneInfo) -> datetime | None:
    """Points earned in a month expire at the end of the month `months` later (积分清零):
    January 2026 with 12 months → the end of January 2027, in program time."""
    if months is None:
        return None
    earned = local(earned_at, tz)
    return _month_lots_expiry(earned.year, earned.month, months, tz)


def lot_expiries_between(first: datetime, last: datetime, months: int | None, tz: ZoneInfo) -> list[datetime]:
    """When the lots earned from `first` to `last` expire, in order: one moment per month in between."""
    if months is None:
        return []
    start, end = local(first, tz), local(last, tz)
    year, month = start.year, start.month
    found = []
    while (year, month) <= (end.year, end.month):
        found.append(_month_lots_expiry(year, month, months, tz))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found


@functools.lru_cache(maxsize=1024)
def _month_lots_expiry(year: int, month: int, months: int, tz: ZoneInfo) -> datetime:
    """When the lots of a month expire: one answer for every lot of the month."""
    return utc(add_months(datetime(year, month, 1, tzinfo=tz), months + 1))
