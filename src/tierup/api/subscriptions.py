"""Live updates over WebSocket (graphql-transport-ws). A member receives their own events only."""

from __future__ import annotations

import asyncio
import itertools
import weakref
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, AsyncGenerator, Optional

import strawberry
from sqlalchemy import select
from strawberry import relay
from strawberry.types import Info

from ..events import Event
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
    STORED_VALUE_CHANGED = strawberry.enum_value("STORED_VALUE_CHANGED", description="The stored-value balance changed.")
    MEMBERSHIP_CHANGED = strawberry.enum_value("MEMBERSHIP_CHANGED", description="A paid membership was bought, renewed or ended.")
    MEMBERSHIP_EXPIRING = strawberry.enum_value("MEMBERSHIP_EXPIRING", description="The paid membership ends within 7 days.")
    COUPON_RECEIVED = strawberry.enum_value("COUPON_RECEIVED", description="A coupon was given to the member (a referral, a campaign).")


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


class FeedClaim:
    """The root value the graphql-transport-ws handler subscribes with: instead of streaming, a
    subscription field hands it the feed it would read, and the handler fans that feed's events out
    itself (see api.websocket). Any other root value (Strawberry's transports) gets a stream."""

    __slots__ = ("feed",)

    def __init__(self) -> None:
        self.feed: Feed | None = None


@dataclass(frozen=True, slots=True)
class MemberEventsFeed:
    """What `memberEvents` reads: one member's events but task progress. Equal feeds of several
    sockets resolve an event once."""

    program_id: int
    member_id: int

    async def value(self, context, event: Event) -> MemberEvent | None:
        """The field's value for this event; None when the event is not for this field."""
        if event.kind == "TASK_PROGRESS":
            return None
        await context.program()  # the program's zone for `at`
        return MemberEvent(kind=MemberEventKind(event.kind), member_id=self.member_id, message=event.message,
                           at=context.local_time(event.at))


@dataclass(frozen=True, slots=True)
class TaskProgressFeed:
    """What `taskProgress` reads: one member's task progress, of one task when `task` is set."""

    program_id: int
    member_id: int
    task: str | None

    async def value(self, context, event: Event) -> TaskProgressEvent | None:
        if event.kind != "TASK_PROGRESS" or (self.task is not None and event.task != self.task):
            return None
        definition = (await context.program()).definition
        states = {s.task.code: s for s in await member_task_states(context, self.member_id, at=event.at)}
        if event.task not in states:  # the task left the program since
            return None
        return TaskProgressEvent(progress=TaskProgress.of(context, definition, states[event.task], self.member_id),
                                 previous_status=TaskStatus(event.previous_status), at=context.local_time(event.at))


Feed = MemberEventsFeed | TaskProgressFeed


async def _stream(root, context, feed: Feed) -> AsyncGenerator:
    """The feed's values as a stream, or nothing once `root` claims the feed."""
    if isinstance(root, FeedClaim):
        root.feed = feed
        return
    async with context.broker.subscribe(feed.program_id, feed.member_id) as subscriber:
        async for event in subscriber:
            context.refresh()  # fresh program and loaders for every event
            value = await feed.value(context, event)
            if value is not None:
                yield value
            context.reset_loaders()  # the event is resolved and sent: let what it read go


@strawberry.type(description="Live updates over WebSocket (graphql-transport-ws); the token travels in connection_init.")
class Subscription:
    # Tens of thousands of these wait at once. Subscribing checks who asks and what for, and settles on a
    # feed; each event is resolved afresh (program, loaders) and what it read is let go once it is sent.
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
        async for value in _stream(self, context, TaskProgressFeed(program_id, member_id, only)):
            yield value

    @strawberry.subscription(permission_classes=[MemberOnly], description=(
        "Points, tier, quest, badge and benefit changes of the signed-in member."))
    async def member_events(self, info: Info) -> AsyncGenerator[MemberEvent, None]:
        program_id, member_id = await _viewer(info.context)
        async for value in _stream(self, info.context, MemberEventsFeed(program_id, member_id)):
            yield value
