"""Points arithmetic: what an order earns and what a refund takes back. All integer, all floored."""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

from .money import FEN_PER_YUAN


def points_for_order(amount_fen: int, multiplier: Decimal) -> int:
    """floor(yuan × multiplier): ¥250.99 at 2× earns 501."""
    points = Decimal(amount_fen) * multiplier / FEN_PER_YUAN
    return int(points.to_integral_value(rounding=ROUND_FLOOR))


def points_to_reverse(earned: int, order_fen: int, refunded_before_fen: int, refund_fen: int) -> int:
    """Points a refund takes back, in proportion to the amount refunded, floored.

    Computed on the running total so that partial refunds never add up to more than the order
    earned, and a full refund takes back exactly what it earned.
    """
    after = earned * (refunded_before_fen + refund_fen) // order_fen
    before = earned * refunded_before_fen // order_fen
    return after - before


def reversal_within_balance(reverse: int, balance: int) -> tuple[int, int]:
    """(points actually taken, shortfall): a reversal never drives the balance below zero."""
    taken = min(reverse, max(balance, 0))
    return taken, reverse - taken
