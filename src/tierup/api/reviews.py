"""Reviews reported by the shop (评价晒单)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Optional

import strawberry
from strawberry.types import Info

from ..domain.errors import Rejected
from ..services import reviews as review_service
from .errors import UserError, user_errors
from .permissions import ServiceOnly

if TYPE_CHECKING:
    from .members import Member

MemberRef = Annotated["Member", strawberry.lazy("tierup.api.members")]


@strawberry.input(description="A review posted by a member. Idempotent on externalId.")
class RecordReviewInput:
    external_id: str = strawberry.field(description="The shop's review id; the idempotency key.")
    member_external_id: str = strawberry.field(description="Who posted it.")
    order_external_id: Optional[str] = strawberry.field(default=None, description="The member's order it reviews, if any.")
    with_photos: bool = strawberry.field(description="Whether it carries photos (晒单); photo reviews count for tasks.")
    posted_at: datetime = strawberry.field(description="When it was posted, ISO 8601 with an offset.")


@strawberry.type(description="Result of recordReview.")
class RecordReviewPayload:
    member: Optional[MemberRef] = strawberry.field(default=None, description="The member after the review.")
    duplicate: bool = strawberry.field(default=False, description="True when this externalId had been recorded before; nothing changed.")
    points_earned: int = strawberry.field(default=0, description="Points this review earned: the first review of an order earns (more with photos).")
    user_errors: list[UserError] = strawberry.field(default_factory=list, description="Why nothing was recorded, if so.")


@strawberry.type
class ReviewMutations:
    @strawberry.mutation(permission_classes=[ServiceOnly],
                         description="Report a review; a review with photos advances photo-review tasks. SERVICE only.")
    async def record_review(self, info: Info, input: RecordReviewInput) -> RecordReviewPayload:
        from .members import member_node

        context = info.context
        program = await context.program()
        request = review_service.ReviewInput(
            external_id=input.external_id, member_external_id=input.member_external_id,
            order_external_id=input.order_external_id, with_photos=input.with_photos, posted_at=input.posted_at)
        try:
            result = await review_service.record_review(context.db, program, request, now=context.now,
                                                        broker=context.broker)
        except Rejected as rejection:
            return RecordReviewPayload(user_errors=user_errors(rejection))
        context.reset_loaders()
        return RecordReviewPayload(member=await member_node(context, result.member_id), duplicate=result.duplicate,
                                   points_earned=result.points)
