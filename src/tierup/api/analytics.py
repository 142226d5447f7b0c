"""Operator analytics: RFM scores, lifecycle stages, and refreshing the scores on demand."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Optional

import strawberry
from strawberry.types import Info

from ..domain.errors import Rejected
from ..domain.rfm import QUADRANTS
from ..services import analytics as analytics_service
from ..store.models import RfmScore as RfmRow
from .errors import UserError, user_errors
from .money import Money
from .permissions import OperatorOnly


@strawberry.enum(description="Where a member is in their life with the program (会员生命周期); thresholds are program data.")
class LifecycleStage(Enum):
    NEW = strawberry.enum_value("NEW", description="Joined recently (default: within 30 days).")
    GROWING = strawberry.enum_value("GROWING", description="Ordering, not yet mature.")
    MATURE = strawberry.enum_value("MATURE", description="Orders regularly (default: 5+ orders in 12 months).")
    DECLINING = strawberry.enum_value("DECLINING", description="Going quiet (default: no order for 90 days).")
    CHURNED = strawberry.enum_value("CHURNED", description="Gone (default: no order for 180 days).")


@strawberry.enum(description="The four-quadrant value map (价值四象限) on the latest RFM scores: monetary ≥ 4 is high value, recency ≥ 3 is active.")
class ValueQuadrant(Enum):
    HIGH_VALUE_ACTIVE = strawberry.enum_value("HIGH_VALUE_ACTIVE", description=QUADRANTS["HIGH_VALUE_ACTIVE"])
    HIGH_VALUE_SILENT = strawberry.enum_value("HIGH_VALUE_SILENT", description=QUADRANTS["HIGH_VALUE_SILENT"])
    LOW_VALUE_ACTIVE = strawberry.enum_value("LOW_VALUE_ACTIVE", description=QUADRANTS["LOW_VALUE_ACTIVE"])
    LOW_VALUE_SILENT = strawberry.enum_value("LOW_VALUE_SILENT", description=QUADRANTS["LOW_VALUE_SILENT"])


@strawberry.type(description="How many members one quadrant of the value map holds.")
class QuadrantCount:
    quadrant: ValueQuadrant = strawberry.field(description="The quadrant; list its members with members(quadrant:).")
    members: int = strawberry.field(description="Members in it at the latest RFM refresh.")
    advice: str = strawberry.field(description="What operators usually do with it.")


async def value_map(context) -> list[QuadrantCount]:
    counts = await analytics_service.value_map(context.db, await context.program())
    return [QuadrantCount(quadrant=ValueQuadrant(name), members=count, advice=QUADRANTS[name])
            for name, count in counts.items()]


@strawberry.type(description="RFM scores (1–5, 5 best: quintiles within the program) from the latest refresh, and the segment.")
class RfmScore:
    recency: int = strawberry.field(description="Recency score: 5 for the most recent orders.")
    frequency: int = strawberry.field(description="Frequency score: orders in the past 12 months, 5 for the most.")
    monetary: int = strawberry.field(description="Monetary score: net spend in the past 12 months, 5 for the most.")
    segment: str = strawberry.field(description="Champions, Loyal, Potential loyalist, New, Promising, Need attention, "
                                                "About to sleep, At risk, Can't lose them, Hibernating or Lost.")
    as_of: datetime = strawberry.field(description="When the scores were computed as of.")
    last_order_at: Optional[datetime] = strawberry.field(description="The member's last order at that time.")
    orders: int = strawberry.field(description="Orders in the 12 months before asOf.")
    spend: Money = strawberry.field(description="Net spend in the 12 months before asOf.")

    @classmethod
    def of(cls, context, row: RfmRow, currency: str) -> "RfmScore":
        return cls(recency=row.r, frequency=row.f, monetary=row.m, segment=row.segment,
                   as_of=context.local_time(row.as_of), last_order_at=context.local_time(row.last_order_at),
                   orders=row.frequency, spend=Money.of_fen(row.monetary_fen, currency))


@strawberry.input(description="When to score as of; defaults to now.")
class RefreshRfmInput:
    as_of: Optional[datetime] = strawberry.field(default=None, description="Score as of this time (ISO 8601 with offset).")


@strawberry.type(description="Result of refreshRfm.")
class RefreshRfmPayload:
    scored: int = strawberry.field(default=0, description="Members scored.")
    user_errors: list[UserError] = strawberry.field(default_factory=list, description="Why nothing was done, if so.")


@strawberry.type
class AnalyticsMutations:
    @strawberry.mutation(permission_classes=[OperatorOnly], description=(
        "Score every member's RFM as of `asOf` (default now), in SQL over the whole program, replacing the "
        "previous scores. `tierup jobs` runs it too. OPERATOR only."))
    async def refresh_rfm(self, info: Info, input: Optional[RefreshRfmInput] = None) -> RefreshRfmPayload:
        context = info.context
        try:
            as_of = context.as_of(input.as_of if input else None)
        except Rejected as rejection:
            return RefreshRfmPayload(user_errors=user_errors(rejection))
        scored = await analytics_service.refresh_rfm(context.db, await context.program(), as_of=as_of)
        context.reset_loaders()
        return RefreshRfmPayload(scored=scored)
