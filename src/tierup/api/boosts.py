"""Points boosts (积分翻倍) and member days (会员日)."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from ..domain.boosts import BoostRule


@strawberry.type(description="A points boost: a multiplier on the points of what qualifies; the highest boost that "
                             "applies to an order line wins (boosts never stack).")
class PointsBoost:
    code: str = strawberry.field(description="Stable code, e.g. MEMBER_DAY.")
    name: str = strawberry.field(description="Display name, e.g. 会员日双倍积分.")
    multiplier: Decimal = strawberry.field(description="What the points of a qualifying line are multiplied by.")
    applies_when: str = strawberry.field(description="When it applies, in words (dates, weekday or day of month, "
                                                     "tiers, categories, channels).")

    @classmethod
    def of(cls, rule: BoostRule) -> "PointsBoost":
        return cls(code=rule.code, name=rule.name, multiplier=rule.multiplier, applies_when=rule.in_words())
