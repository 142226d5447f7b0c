"""Exact money: amounts travel as Decimal yuan at the edges and as integer fen inside."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation, localcontext

FEN_PER_YUAN = 100
# More digits than any per-order ceiling could allow, and few enough that yuan with two decimals stay
# exact in Decimal's default 28-digit context; beyond this an amount is not worth reading.
MAX_DIGITS = 15
# What a client may send: ASCII digits, at most one point with digits on both sides. A sign is read only so
# that "-5" can be told it must be above zero; the decimals are counted after the match.
MONEY_TEXT = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")
MONEY_FORM = 'write ASCII digits with at most one "." and two decimals, e.g. "250.00"'


class MoneyError(ValueError):
    """An amount that cannot be money: not a plain number, or finer than one fen."""


def to_fen(amount: Decimal | str | int) -> int:
    """Convert a yuan amount to whole fen; reject anything finer than a fen.

    Text (what a client sent) must look like money: "250", "250.5", "250.00". Full-width or other
    non-ASCII digits, blanks, a "+", "_" separators, exponents, NaN and Infinity are refused, even
    though Decimal() would read them. A Decimal or an int from inside the program is judged by value.
    """
    if isinstance(amount, str):
        return _text_to_fen(amount)
    if isinstance(amount, bool) or not isinstance(amount, (Decimal, int)):
        raise MoneyError(f"{amount!r} is not an amount")
    value = Decimal(amount)
    if not value.is_finite():
        raise MoneyError(f"{_shown(str(value))} is not an amount")
    if value and value.adjusted() >= MAX_DIGITS:
        raise MoneyError(f"{_shown(str(value))} is too large to be an amount")
    with localcontext() as exact:
        exact.prec = 2 * MAX_DIGITS + 10
        fen = value.scaleb(2)
        if fen != fen.to_integral_value():
            raise MoneyError(f"{_shown(str(value))} has more than two decimal places")
        return int(fen)


def _text_to_fen(text: str) -> int:
    match = MONEY_TEXT.fullmatch(text)
    if match is None:
        raise MoneyError(f"{_shown(text)!r} is not an amount: {MONEY_FORM}")
    sign, whole, decimals = match.groups()
    decimals = decimals or ""
    if len(decimals) > 2:
        raise MoneyError(f"{_shown(text)} has more than two decimal places")
    if len(whole.lstrip("0")) > MAX_DIGITS:
        raise MoneyError(f"{_shown(text)} is too large to be an amount")
    fen = int(whole) * FEN_PER_YUAN + int(decimals.ljust(2, "0"))
    return -fen if sign else fen


def _shown(text: str) -> str:
    """Client text in a message, cut short: an error never echoes a megabyte back."""
    return text if len(text) <= 40 else text[:40] + "…"


def to_yuan(fen: int) -> Decimal:
    """Whole fen as a Decimal with two places: 15000 -> Decimal('150.00')."""
    return (Decimal(fen) / FEN_PER_YUAN).quantize(Decimal("0.01"))


def format_yuan(amount: Decimal, symbol: str = "¥") -> str:
    """Operator-facing amount: ¥500, ¥1,000, ¥12.50."""
    text = f"{amount:,.2f}"
    if text.endswith(".00"):
        text = text[:-3]
    return f"{symbol}{text}"


def refunded_share(part: int, order_fen: int, refunded_before_fen: int, refund_fen: int) -> int:
    """What a refund of `refund_fen` takes back of `part` (points earned, stored value spent…) of an
    order, in proportion, floored. Computed on the running total so that partial refunds never add up
    to more than the part, and a full refund takes back exactly all of it."""
    after = part * (refunded_before_fen + refund_fen) // order_fen
    before = part * refunded_before_fen // order_fen
    return after - before
