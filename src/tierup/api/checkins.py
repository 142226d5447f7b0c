"""Daily check-in (签到)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import strawberry
from strawberry import relay
from strawberry.types import Info

from ..domain.errors import Rejected
from ..services import checkins as check_in_service
from .errors import UserError, user_errors
from .permissions import MemberOnly

if TYPE_CHECKING:
    from .members import Member

MemberRef = Annotated["Member", strawberry.lazy("tierup.api.members")]


@strawberry.type(description="Where a member stands with daily check-ins, in program time.")
class CheckInStatus:
    id: strawberry.ID = strawberry.field(description="The same on every read of this member's check-ins: what "
                                                     "normalised client caches (Apollo, urql) key it by. Not a node id.")
    checked_in_today: bool = strawberry.field(description="Whether today (program-local day) is checked in.")
    streak: int = strawberry.field(description="Consecutive days checked in, up to today (or yesterday, if today is not yet).")
    next_reward: int = strawberry.field(
        description="Points the next check-in gives: today's if not done yet, otherwise tomorrow's (streak bonus included).")

    @classmethod
    def of(cls, status: check_in_service.CheckInStatus, member_id: int) -> "CheckInStatus":
        return cls(id=strawberry.ID(relay.to_base64("CheckInStatus", member_id)),
                   checked_in_today=status.checked_in_today, streak=status.streak, next_reward=status.next_reward)


async def member_check_in_status(context, member_id: int) -> CheckInStatus:
    definition = (await context.program()).definition
    activity = await (await context.loaders()).activity_by_member_id.load(member_id)
    return CheckInStatus.of(check_in_service.check_in_status(definition, activity, context.now), member_id)


@strawberry.type(description="Result of checkIn.")
class CheckInPayload:
    check_in: Optional[CheckInStatus] = strawberry.field(default=None, description="Status after checking in.")
    points_awarded: int = strawberry.field(default=0, description="Points this check-in gave (streak bonus included).")
    member: Optional[MemberRef] = strawberry.field(default=None, description="The member after the check-in.")
    user_errors: list[UserError] = strawberry.field(default_factory=list,
                                                    description="ALREADY_DONE on a second check-in the same day.")


@strawberry.type
class CheckInMutations:
    @strawberry.mutation(permission_classes=[MemberOnly], description=(
        "Check in for today (program time). The server's clock decides the day, never the client; a second "
        "check-in the same day is ALREADY_DONE. MEMBER only."))
    async def check_in(self, info: Info) -> CheckInPayload:
        from .members import member_node

        context = info.context
        program = await context.program()
        try:
            result = await check_in_service.check_in(context.db, program, context.principal.sub, now=context.now,
                                                     broker=context.broker)
        except Rejected as rejection:
            return CheckInPayload(user_errors=user_errors(rejection))
        context.reset_loaders()
        return CheckInPayload(check_in=await member_check_in_status(context, result.member_id),
                              points_awarded=result.points_awarded, member=await member_node(context, result.member_id))
