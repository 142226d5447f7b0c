"""Checkout money (结算): member price, points as cash, and what a basket earns. Amounts in fen."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

from .money import FEN_PER_YUAN


@dataclass(frozen=True)
class Line:
    sku: str
    unit_fen: int  # list price of one unit
    quantity: int = 1
    categories: tuple[str, ...] = ()

    @property
    def list_fen(self) -> int:
        return self.unit_fen * self.quantity


def member_price_fen(line: Line, percent: Decimal | None) -> int:
    """The line at the tier's member price (会员价), to the nearest fen; the list price without one."""
    if percent is None:
        return line.list_fen
    return int((Decimal(line.list_fen) * percent / 100).to_integral_value(rounding=ROUND_HALF_UP))


def points_value_fen(points: int, point_value: Decimal) -> int:
    """What points pay, in whole fen (1 point = the program's point value)."""
    return int((points * point_value * FEN_PER_YUAN).to_integral_value(rounding=ROUND_FLOOR))


def points_allowed(left_fen: int, cap_percent: int, point_value: Decimal) -> int:
    """The most points that may pay for `left_fen` (what is left after coupons): their value stays within
    the program's cap (classic: 50%)."""
    cap_fen = left_fen * cap_percent // 100
    return int((Decimal(cap_fen) / (point_value * FEN_PER_YUAN)).to_integral_value(rounding=ROUND_FLOOR))
