"""Money as clients see it: an exact Decimal amount and its currency."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from ..domain.money import to_yuan


@strawberry.type(description="An exact amount of money. `amount` is a Decimal serialised as a string, e.g. '150.00'.")
class Money:
    amount: Decimal = strawberry.field(description="The amount in currency units, two decimal places.")
    currency: str = strawberry.field(description="ISO 4217 code, e.g. CNY.")

    @classmethod
    def of_fen(cls, fen: int, currency: str) -> "Money":
        return cls(amount=to_yuan(fen), currency=currency)
