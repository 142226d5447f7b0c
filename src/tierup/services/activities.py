"""Activities (分享, 环保行为, 互动游戏): things members do that the shop reports, each kind with its points,
growth value and daily cap (program data). An activity past the cap is recorded and earns nothing;
tasks count activities (metric `activities`), quests count the points they earn."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from ..domain.activity import midnight
from ..domain.clock import local_date
from ..domain.errors import Checks, ErrorCode, Rejected
from ..domain.program import DEFAULT_CHANNEL, ActivityRule
from ..events import Broker
from ..store.db import Database
from ..store.models import Report
from ..store.queries import lock_member
from .growth import GrowthTracker, publish
from .ledger import append_entry
from .programs import ActiveProgram
from .reports import store_report, with_channel
from .validation import check_channel, check_id, check_time
from .webhooks import stage_webhooks


@dataclass(frozen=True)
class ActivityInput:
    external_id: str
    member_external_id: str
    kind: str
    occurred_at: datetime
    channel: str = DEFAULT_CHANNEL


@dataclass(frozen=True)
class ActivityResult:
    member_id: int
    duplicate: bool
    points: int = 0  # 0 past the daily cap


async def record_activity(db: Database, program: ActiveProgram, request: ActivityInput, *, now: datetime,
                          broker: Broker | None = None) -> ActivityResult:
    """Record an activity, idempotent on externalId; it earns its kind's points and growth value unless the
    member already did the day's cap of that kind (program time)."""
    definition = program.definition
    checks = Checks()
    check_id(checks, request.external_id, "input", "externalId")
    check_id(checks, request.member_external_id, "input", "memberExternalId")
    check_time(checks, request.occurred_at, now, "input", "occurredAt")
    check_channel(checks, definition, request.channel, None, "input")
    checks.raise_any()
    try:
        rule = definition.activity(request.kind)
    except KeyError:
        raise Rejected.one(ErrorCode.NOT_FOUND, f"no activity kind {request.kind[:40]!r} in this program",
                           "input", "kind") from None
    async with db.write() as session:
        member = await lock_member(session, program.id, external_id=request.member_external_id,
                                   field=("input", "memberExternalId"))
        stored = await store_report(session, program, "ACTIVITY", request.external_id,
                                    with_channel({"member": request.member_external_id, "kind": rule.code,
                                                  "occurredAt": request.occurred_at}, request.channel, None),
                                    occurred_at=request.occurred_at, now=now, member_id=member.id,
                                    channel=request.channel, reference=rule.code)
        if stored.duplicate:
            points = (await session.execute(select(Report.points).where(Report.id == stored.report_id))).scalar_one()
            return ActivityResult(member.id, duplicate=True, points=points or 0)
        growth = GrowthTracker(session, program)
        before = await growth.watch(member, request.occurred_at, exclude_report=stored.report_id)
        points = 0
        if await _within_cap(session, program, rule, member.id, request.occurred_at, stored.report_id):
            points = rule.points
            member.growth_value += rule.growth_value
            if points:
                await append_entry(session, program, member.id, "EARN", points, f"Activity: {rule.name}",
                                   source="ACTIVITY", occurred_at=request.occurred_at, report_id=stored.report_id,
                                   balance=before.balance)
        await session.execute(Report.__table__.update().where(Report.id == stored.report_id).values(points=points))
        await growth.settle(request.occurred_at)
        await stage_webhooks(session, program, growth.events, now=now)
    await publish(broker, growth.events)
    return ActivityResult(member.id, duplicate=False, points=points)


async def _within_cap(session, program: ActiveProgram, rule: ActivityRule, member_id: int, at: datetime,
                      report_id: int) -> bool:
    """Whether the member's activities of this kind reported before this one that day (program time) leave room
    under the cap: the first `daily_cap` of a day earn."""
    if rule.daily_cap is None:
        return True
    day = local_date(at, program.definition.zone)
    start = midnight(day, program.definition.zone)
    earlier = (await session.execute(select(func.count()).where(
        Report.member_id == member_id, Report.kind == "ACTIVITY", Report.reference == rule.code,
        Report.occurred_at >= start, Report.occurred_at < start + timedelta(days=1), Report.id < report_id))
    ).scalar_one()
    return earlier < rule.daily_cap
