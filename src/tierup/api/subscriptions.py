"""Live updates over WebSocket (graphql-transport-ws). A member receives their own events only."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, AsyncGenerator, Optional

import strawberry
from strawberry import relay
from strawberry.types import Info

from ..events import Event
from .errors import bad_input, forbidden
from .permissions import MemberOnly
from .tasks import TaskProgress, TaskStatus, member_task_states, task_code_from_global_id

if TYPE_CHECKING:
    from .members import Member

MemberRef = Annotated["Member", strawberry.lazy("tierup.api.members")]


@strawberry.enum(description="What happened to the member.")
class MemberEventKind(Enum):
    POINTS_CHANGED = strawberry.enum_value("POINTS_CHANGED", description="The points balance changed.")
    TIER_CHANGED = strawberry.enum_value("TIER_CHANGED", description="Moved up or down the ladder.")
    TASK_COMPLETED = strawberry.enum_value("TASK_COMPLETED", description="A task was completed.")
    QUEST_LEVEL_PASSED = strawberry.enum_value("QUEST_LEVEL_PASSED", description="A quest level was passed.")
    BADGE_EARNED = strawberry.enum_value("BADGE_EARNED", description="A badge was earned.")
    BENEFIT_UNLOCKED = strawberry.enum_value("BENEFIT_UNLOCKED", description="A benefit became available.")
    POINTS_EXPIRING = strawberry.enum_value("POINTS_EXPIRING", description="Points will expire within 30 days.")
    TIER_EXPIRING = strawberry.enum_value("TIER_EXPIRING", description="The tier's validity ends within 30 days.")


@strawberry.type(description="A task's progress changed.")
class TaskProgressEvent:
    progress: TaskProgress = strawberry.field(description="The task's progress now.")
    previous_status: TaskStatus = strawberry.field(description="Its status before this change.")
    at: datetime = strawberry.field(description="When the change happened (the report's time).")


@strawberry.type(description="Something happened to the member.")
class MemberEvent:
    kind: MemberEventKind = strawberry.field(description="What kind of change.")
    member: MemberRef = strawberry.field(description="The member as they are now.")
    message: str = strawberry.field(description="A sentence to show, e.g. 'Tier is now 银卡会员'.")
    at: datetime = strawberry.field(description="When it happened.")


async def _viewer_id(context) -> int:
    program = await context.program()
    row = await (await context.loaders()).member_by_external_id.load((program.id, context.principal.sub))
    if row is None:
        raise forbidden("the signed-in member is not enrolled in this program")
    return row.id


async def _events(context, member_id: int) -> AsyncGenerator[Event, None]:
    program = await context.program()
    async with context.broker.subscribe(program.id, member_id) as subscriber:
        async for event in subscriber.events():
            context.refresh()  # fresh program and loaders for every event
            yield event


@strawberry.type(description="Live updates over WebSocket (graphql-transport-ws); the token travels in connection_init.")
class Subscription:
    @strawberry.subscription(permission_classes=[MemberOnly], description=(
        "Every change to the signed-in member's task progress, as it happens; optionally one task only."))
    async def task_progress(self, info: Info, task_id: Optional[relay.GlobalID] = None
                            ) -> AsyncGenerator[TaskProgressEvent, None]:
        context = info.context
        member_id = await _viewer_id(context)
        only = None
        if task_id is not None:
            only = task_code_from_global_id((await context.program()).definition, task_id)
            if only is None:
                raise bad_input("taskId is not a task of this program")
        async for event in _events(context, member_id):
            if event.kind != "TASK_PROGRESS" or (only is not None and event.task != only):
                continue
            definition = (await context.program()).definition
            states = {s.task.code: s for s in await member_task_states(context, member_id, at=event.at)}
            if event.task not in states:
                continue
            yield TaskProgressEvent(progress=TaskProgress.of(context, definition, states[event.task]),
                                    previous_status=TaskStatus(event.previous_status),
                                    at=context.local_time(event.at))

    @strawberry.subscription(permission_classes=[MemberOnly], description=(
        "Points, tier, quest, badge and benefit changes of the signed-in member."))
    async def member_events(self, info: Info) -> AsyncGenerator[MemberEvent, None]:
        from .members import member_node

        context = info.context
        member_id = await _viewer_id(context)
        async for event in _events(context, member_id):
            if event.kind == "TASK_PROGRESS":
                continue
            yield MemberEvent(kind=MemberEventKind(event.kind), member=await member_node(context, member_id),
                              message=event.message, at=context.local_time(event.at))
