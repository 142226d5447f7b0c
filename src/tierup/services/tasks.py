"""Claiming a task's reward (领取奖励) when the task says the member claims it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from ..domain.activity import period_key
from ..domain.errors import ErrorCode, Rejected
from ..events import Broker
from ..store.db import Database
from ..store.models import TaskCompletion
from ..store.queries import lock_member
from .growth import GrowthTracker, publish
from .programs import ActiveProgram
from .webhooks import stage_webhooks


@dataclass(frozen=True)
class ClaimResult:
    member_id: int
    task_code: str


async def claim_task_reward(db: Database, program: ActiveProgram, member_external_id: str, task_code: str, *,
                            now: datetime, broker: Broker | None = None) -> ClaimResult:
    definition = program.definition
    try:
        task = definition.task(task_code)
    except KeyError:
        raise Rejected.one(ErrorCode.NOT_FOUND, f"no task {task_code!r} in this program", "input", "taskId") from None
    key = period_key(task.repeat, now, definition.zone)
    async with db.write() as session:
        member = await lock_member(session, program.id, external_id=member_external_id, field=("viewer",))
        completion = (await session.execute(select(TaskCompletion).where(
            TaskCompletion.member_id == member.id, TaskCompletion.task_code == task.code,
            TaskCompletion.period_key == key))).scalar_one_or_none()
        if completion is None:
            raise Rejected.one(ErrorCode.NOT_ELIGIBLE, f"task {task.code} is not completed yet", "input", "taskId")
        growth = GrowthTracker(session, program)
        await growth.watch(member, now)
        # Conditional update: of two racing claims exactly one changes the row.
        claimed = (await session.execute(
            update(TaskCompletion).where(TaskCompletion.id == completion.id, TaskCompletion.claimed_at.is_(None))
            .values(claimed_at=now).returning(TaskCompletion.id))).scalar_one_or_none()
        if claimed is None:
            raise Rejected.one(ErrorCode.ALREADY_DONE, f"the reward of {task.code} was already delivered",
                               "input", "taskId")
        growth.claimed(member.id, task.code, key, now)
        await growth.pay(member, task.reward, completion.points, now, source="TASK", reason=f"Task {task.code}")
        await growth.settle(now)
        await stage_webhooks(session, program, growth.events, now=now)
    await publish(broker, growth.events)
    return ClaimResult(member.id, task.code)
