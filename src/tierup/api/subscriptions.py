"""Live updates over WebSocket (graphql-transport-ws). A member receives their own events only."""

from __future__ import annotations

import asyncio
import itertools
import weakref
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, AsyncGenerator, Optional

import strawberry
from sqlalchemy import select
from strawberry import relay
from strawberry.types import Info

from ..store.models import Member as MemberRow, Program
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


async def _member_of_event(root: "MemberEvent", info: Info) -> "Member":
    from .members import member_node

    return await member_node(info.context, root.member_id)


@strawberry.type(description="Something happened to the member.")
class MemberEvent:
    kind: MemberEventKind = strawberry.field(description="What kind of change.")
    # Read only when the subscriber selects it: ten sockets of one member need not read it ten times for nothing.
    member: MemberRef = strawberry.field(resolver=_member_of_event, description="The member as they are now.")
    message: str = strawberry.field(description="A sentence to show, e.g. 'Tier is now 银卡会员'.")
    at: datetime = strawberry.field(description="When it happened.")
    member_id: strawberry.Private[int]


class _ViewerLookup:
    """(program id, member id) of members opening subscriptions, looked up many per query.

    A crowd of sockets arriving at once (clients reconnecting after a deploy) would otherwise
    cost reads per socket and queue on the connection pool until reads time out. One lookup
    runs at a time; the keys that arrive meanwhile go together in the next query. The worker
    task ends as soon as nothing waits, so an idle server keeps none.
    """

    BATCH = 500

    def __init__(self, db) -> None:
        self.db = db
        self._waiting: dict[tuple[str, str], list[asyncio.Future]] = {}
        self._worker: asyncio.Task | None = None

    async def find(self, program_code: str, external_id: str) -> tuple[int, int] | None:
        future = asyncio.get_running_loop().create_future()
        self._waiting.setdefault((program_code, external_id), []).append(future)
        if self._worker is None:
            self._worker = asyncio.create_task(self._run(), name="tierup-viewer-lookup")
        return await future

    async def _run(self) -> None:
        batch: dict[tuple[str, str], list[asyncio.Future]] = {}
        try:
            while self._waiting:
                batch = {key: self._waiting.pop(key) for key in list(itertools.islice(self._waiting, self.BATCH))}
                try:
                    found = await self._query(list(batch))
                except Exception as exc:  # every subscription in the batch fails with the reason
                    for futures in batch.values():
                        for future in futures:
                            if not future.done():
                                future.set_exception(exc)
                    continue
                for key, futures in batch.items():
                    for future in futures:
                        if not future.done():
                            future.set_result(found.get(key))
                batch = {}
        finally:
            self._worker = None
            for futures in (*batch.values(), *self._waiting.values()):
                for future in futures:
                    future.cancel()
            self._waiting.clear()

    async def _query(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, int]]:
        async with self.db.read() as session:
            rows = await session.execute(
                select(Program.code, MemberRow.external_id, MemberRow.program_id, MemberRow.id)
                .join(Program, Program.id == MemberRow.program_id)
                .where(Program.code.in_({code for code, _ in keys}),
                       MemberRow.external_id.in_({external_id for _, external_id in keys})))
            return {(code, external_id): (program_id, member_id)
                    for code, external_id, program_id, member_id in rows}


_lookups: "weakref.WeakKeyDictionary[object, _ViewerLookup]" = weakref.WeakKeyDictionary()


async def _viewer(context) -> tuple[int, int]:
    """(program id, member id) of the signed-in member. Nothing read is kept on the socket's context:
    a subscription waits far longer than it reads."""
    principal = context.require()
    lookup = _lookups.get(context.db)
    if lookup is None:
        lookup = _lookups[context.db] = _ViewerLookup(context.db)
    found = await lookup.find(principal.program, principal.sub)
    if found is None:
        await context.program()  # FORBIDDEN naming the program when it does not exist
        raise forbidden("the signed-in member is not enrolled in this program")
    return found


@strawberry.type(description="Live updates over WebSocket (graphql-transport-ws); the token travels in connection_init.")
class Subscription:
    # Tens of thousands of these wait at once. While waiting, a subscription holds its ids and its
    # broker subscriber only; the program and loaders are read afresh for each event and let go
    # once the event is sent.
    @strawberry.subscription(permission_classes=[MemberOnly], description=(
        "Every change to the signed-in member's task progress, as it happens; optionally one task only."))
    async def task_progress(self, info: Info, task_id: Optional[relay.GlobalID] = None
                            ) -> AsyncGenerator[TaskProgressEvent, None]:
        context = info.context
        program_id, member_id = await _viewer(context)
        only = None
        if task_id is not None:
            only = task_code_from_global_id((await context.program()).definition, task_id)
            if only is None:
                raise bad_input("taskId is not a task of this program")
        async with context.broker.subscribe(program_id, member_id) as subscriber:
            async for event in subscriber:
                if event.kind != "TASK_PROGRESS" or (only is not None and event.task != only):
                    continue
                context.refresh()  # fresh program and loaders for every event
                definition = (await context.program()).definition
                states = {s.task.code: s for s in await member_task_states(context, member_id, at=event.at)}
                if event.task not in states:
                    context.reset_loaders()
                    continue
                yield TaskProgressEvent(progress=TaskProgress.of(context, definition, states[event.task]),
                                        previous_status=TaskStatus(event.previous_status),
                                        at=context.local_time(event.at))
                context.reset_loaders()  # the event is resolved and sent: let what it read go

    @strawberry.subscription(permission_classes=[MemberOnly], description=(
        "Points, tier, quest, badge and benefit changes of the signed-in member."))
    async def member_events(self, info: Info) -> AsyncGenerator[MemberEvent, None]:
        context = info.context
        program_id, member_id = await _viewer(context)
        async with context.broker.subscribe(program_id, member_id) as subscriber:
            async for event in subscriber:
                if event.kind == "TASK_PROGRESS":
                    continue
                context.refresh()  # fresh program and loaders for every event
                await context.program()  # the program's zone for `at`
                yield MemberEvent(kind=MemberEventKind(event.kind), member_id=member_id, message=event.message,
                                  at=context.local_time(event.at))
                context.reset_loaders()  # the event is resolved and sent: let what it read go
