"""Reviews reported by the shop (评价晒单): the first review of an order earns points (more with photos),
and a review with photos counts toward photo-review tasks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from ..domain.errors import Checks, ErrorCode, Rejected
from ..events import Broker
from ..store.db import Database
from ..store.models import Report
from ..store.queries import lock_member
from .growth import GrowthTracker, publish
from .ledger import append_entry
from .programs import ActiveProgram
from .reports import store_report
from .validation import check_id, check_time
from .webhooks import stage_webhooks


@dataclass(frozen=True)
class ReviewInput:
    external_id: str
    member_external_id: str
    with_photos: bool
    posted_at: datetime
    order_external_id: str | None = None


@dataclass(frozen=True)
class ReviewResult:
    member_id: int
    duplicate: bool
    points: int = 0


async def record_review(db: Database, program: ActiveProgram, request: ReviewInput, *, now: datetime,
                        broker: Broker | None = None) -> ReviewResult:
    checks = Checks()
    check_id(checks, request.external_id, "input", "externalId")
    check_id(checks, request.member_external_id, "input", "memberExternalId")
    check_id(checks, request.order_external_id, "input", "orderExternalId", required=False)
    check_time(checks, request.posted_at, now, "input", "postedAt")
    checks.raise_any()
    payload = {"member": request.member_external_id, "order": request.order_external_id,
               "withPhotos": request.with_photos, "postedAt": request.posted_at}
    async with db.write() as session:
        member = await lock_member(session, program.id, external_id=request.member_external_id,
                                   field=("input", "memberExternalId"))
        order_id = None
        if request.order_external_id is not None:
            order_id = (await session.execute(select(Report.id).where(
                Report.program_id == program.id, Report.kind == "ORDER", Report.member_id == member.id,
                Report.external_id == request.order_external_id))).scalar_one_or_none()
            if order_id is None:
                raise Rejected.one(ErrorCode.NOT_FOUND, f"the member has no order {request.order_external_id!r}",
                                   "input", "orderExternalId")
        stored = await store_report(session, program, "REVIEW", request.external_id, payload,
                                    occurred_at=request.posted_at, now=now, member_id=member.id, order_id=order_id,
                                    with_photos=request.with_photos)
        if stored.duplicate:
            return ReviewResult(member.id, duplicate=True)
        growth = GrowthTracker(session, program)
        before = await growth.watch(member, request.posted_at, exclude_report=stored.report_id)
        points = await _review_points(session, program, request, order_id, stored.report_id)
        if points:
            await append_entry(session, program, member.id, "EARN", points,
                               f"Review of order {request.order_external_id}" + (" with photos" if request.with_photos else ""),
                               source="REVIEW", occurred_at=request.posted_at, report_id=stored.report_id,
                               balance=before.balance)
        await growth.settle(request.posted_at)
        await stage_webhooks(session, program, growth.events, now=now)
    await publish(broker, growth.events)
    return ReviewResult(member.id, duplicate=False, points=points)


async def _review_points(session, program: ActiveProgram, request: ReviewInput, order_id: int | None,
                         review_id: int) -> int:
    """What the review earns: the program's points for the first review of an order (more with photos);
    a review of no order, or of an order reviewed before, earns nothing."""
    if order_id is None:
        return 0
    reviewed_before = (await session.execute(select(Report.id).where(
        Report.order_id == order_id, Report.kind == "REVIEW", Report.id != review_id).limit(1))).first()
    if reviewed_before is not None:
        return 0
    definition = program.definition
    return definition.photo_review_points if request.with_photos else definition.review_points
