"""Exact money: amounts travel as Decimal yuan at the edges and as integer fen inside."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

FEN_PER_YUAN = 100


class MoneyError(ValueError):
    """An amount that cannot be money: not a number, or finer than one fen."""


def to_fen(amount: Decimal | str | int) -> int:
    """Convert a yuan amount to whole fen; reject anything finer than a fen."""
    try:
        value = Decimal(amount)
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise MoneyError(f"{amount!r} is not an amount") from exc
    if not value.is_finite():
        raise MoneyError(f"{amount!r} is not an amount")
    fen = value * FEN_PER_YUAN
    if fen != fen.to_integral_value():
        raise MoneyError(f"{amount} has more than two decimal places")
    return int(fen)


def to_yuan(fen: int) -> Decimal:
    """Whole fen as a Decimal with two places: 15000 -> Decimal('150.00')."""
    return (Decimal(fen) / FEN_PER_YUAN).quantize(Decimal("0.01"))


def format_yuan(amount: Decimal, symbol: str = "¥") -> str:
    """Operator-facing amount: ¥500, ¥1,000, ¥12.50."""
    text = f"{amount:,.2f}"
    if text.endswith(".00"):
        text = text[:-3]
    return f"{symbol}{text}"
