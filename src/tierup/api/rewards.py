"""What tasks and quest levels give."""

from __future__ import annotations

from typing import Optional

import strawberry

from ..domain.program import ProgramDefinition
from ..domain.program import Reward as RewardRule
from .coupons import CouponTemplate


@strawberry.type(description="A badge (徽章) a member can earn.")
class Badge:
    code: str = strawberry.field(description="Stable code, e.g. TOP_REFERRER.")
    name: str = strawberry.field(description="Display name, e.g. 推荐达人.")


@strawberry.type(description="What a task, quest level or catalogue item gives.")
class Reward:
    points: int = strawberry.field(description="Points added to the ledger.")
    growth_value: int = strawberry.field(description="Growth value (成长值) added; tiers may count it.")
    badge: Optional[Badge] = strawberry.field(description="A badge, if the reward carries one.")
    coupon: Optional[CouponTemplate] = strawberry.field(description="A coupon of this template, if the reward issues one.")

    @classmethod
    def of(cls, definition: ProgramDefinition, rule: RewardRule) -> "Reward":
        badge = Badge(code=rule.badge.code, name=rule.badge.name) if rule.badge else None
        coupon = CouponTemplate.of(definition, definition.coupon_template(rule.coupon)) if rule.coupon else None
        return cls(points=rule.points, growth_value=rule.growth_value, badge=badge, coupon=coupon)
