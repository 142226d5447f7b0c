"""Activities (分享, 环保行为, 互动游戏) the shop reports, and what each kind earns."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Optional

import strawberry
from strawberry.types import Info

from ..domain.errors import Rejected
from ..domain.program import ActivityRule
from ..services import activities as activity_service
from .channels import Channel, channel_value
from .errors import UserError, user_errors
from .permissions import ServiceOnly

if TYPE_CHECKING:
    from .members import Member

MemberRef = Annotated["Member", strawberry.lazy("tierup.api.members")]


@strawberry.type(description="A kind of activity the shop reports, and what each earns.")
class ActivityKind:
    code: str = strawberry.field(description="Stable code, e.g. ECO_ACTION.")
    name: str = strawberry.field(description="Display name.")
    points: int = strawberry.field(description="Points each earns, within the daily cap.")
    growth_value: int = strawberry.field(description="Growth value each earns, within the daily cap.")
    daily_cap: Optional[int] = strawberry.field(description="How many of these earn per member per day (program time); "
                                                            "null = no cap.")

    @classmethod
    def of(cls, rule: ActivityRule) -> "ActivityKind":
        return cls(code=rule.code, name=rule.name, points=rule.points, growth_value=rule.growth_value,
                   daily_cap=rule.daily_cap)


@strawberry.input(description="An activity a member did. Idempotent on externalId.")
class RecordActivityInput:
    external_id: str = strawberry.field(description="The shop's id for it; the idempotency key.")
    member_external_id: str = strawberry.field(description="Who did it.")
    kind: str = strawberry.field(description="One of the program's activity kinds, e.g. SHARE.")
    occurred_at: datetime = strawberry.field(description="When it happened, ISO 8601 with an offset.")
    channel: Optional[Channel] = strawberry.field(default=None, description="Where; ONLINE when omitted.")


@strawberry.type(description="Result of recordActivity.")
class RecordActivityPayload:
    member: Optional[MemberRef] = strawberry.field(default=None, description="The member after it.")
    points_awarded: int = strawberry.field(default=0, description="Points it earned: 0 past the day's cap.")
    duplicate: bool = strawberry.field(default=False, description="True when this externalId had been recorded before; nothing changed.")
    user_errors: list[UserError] = strawberry.field(default_factory=list, description="Why nothing was recorded, if so.")


@strawberry.type
class ActivityMutations:
    @strawberry.mutation(permission_classes=[ServiceOnly], description=(
        "Report an activity (分享, 环保行为, 游戏…); idempotent on externalId. It earns its kind's points and growth "
        "value up to the kind's daily cap; past it, it is recorded with 0 points. SERVICE only."))
    async def record_activity(self, info: Info, input: RecordActivityInput) -> RecordActivityPayload:
        from .members import member_node

        context = info.context
        program = await context.program()
        request = activity_service.ActivityInput(
            external_id=input.external_id, member_external_id=input.member_external_id, kind=input.kind,
            occurred_at=input.occurred_at, channel=channel_value(input.channel))
        try:
            result = await activity_service.record_activity(context.db, program, request, now=context.now,
                                                            broker=context.broker)
        except Rejected as rejection:
            return RecordActivityPayload(user_errors=user_errors(rejection))
        context.reset_loaders()
        return RecordActivityPayload(member=await member_node(context, result.member_id),
                                     points_awarded=result.points, duplicate=result.duplicate)
