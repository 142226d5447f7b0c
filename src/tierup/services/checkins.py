"""Daily check-in (签到): once per program-local day, the server's clock deciding the day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..domain.activity import Activity, check_in_streak, midnight
from ..domain.clock import local_date
from ..domain.errors import ErrorCode, Rejected
from ..domain.program import ProgramDefinition
from ..domain.tasks import check_in_task, reward_points
from ..events import Broker
from ..store.db import Database
from ..store.queries import lock_member
from .growth import GrowthTracker, publish
from .programs import ActiveProgram
from .reports import store_report
from .webhooks import stage_webhooks


@dataclass(frozen=True)
class CheckInStatus:
    checked_in_today: bool
    streak: int
    next_reward: int  # points the next check-in gives (today's if not yet done, else tomorrow's)


def check_in_status(definition: ProgramDefinition, activity: Activity, now: datetime) -> CheckInStatus:
    tz = definition.zone
    today = local_date(now, tz)
    done = today in activity.check_ins
    streak = check_in_streak(activity.check_ins, today)
    task = check_in_task(definition)
    if task is None:
        return CheckInStatus(done, streak, 0)
    next_day = today + timedelta(days=1) if done else today
    upcoming = Activity(check_ins=[*activity.check_ins, next_day])
    return CheckInStatus(done, streak, reward_points(task, upcoming, midnight(next_day, tz), tz))


@dataclass(frozen=True)
class CheckInResult:
    member_id: int
    points_awarded: int


async def check_in(db: Database, program: ActiveProgram, member_external_id: str, *, now: datetime,
                   broker: Broker | None = None) -> CheckInResult:
    day = local_date(now, program.definition.zone)
    async with db.write() as session:
        member = await lock_member(session, program.id, external_id=member_external_id, field=("viewer",))
        stored = await store_report(session, program, "CHECK_IN", f"{member.id}:{day.isoformat()}",
                                    {"day": day}, occurred_at=now, now=now, member_id=member.id)
        if stored.duplicate:
            raise Rejected.one(ErrorCode.ALREADY_DONE, f"already checked in on {day.isoformat()}")
        growth = GrowthTracker(session, program)
        before = await growth.watch(member, now, exclude_report=stored.report_id)
        after = (await growth.settle(now))[member.id]
        await stage_webhooks(session, program, growth.events, now=now)
    await publish(broker, growth.events)
    return CheckInResult(member.id, after.balance - before.balance)
