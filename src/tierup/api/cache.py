"""Members' own reads, answered again without running them while nothing they depend on changed.

A member's home screen is the request a program serves most, and its answer depends on three
things only: the member's data, the program version in force, and the time.

- The member's data and the program are versioned in the database: `members.version` rises in
  every write transaction that changes the member (store.db.member_changed), and a publication
  adds a program version. One indexed read (the stamp) tells whether a kept answer still holds —
  in every process, whoever wrote: another server, `tierup jobs`, an import from the CLI.
- Time: resolvers name the moments at which time alone changes what they answered
  (`Context.changes_at`: a lot's expiry, a quest window, a tier's validity end, …), and an answer
  is kept until the earliest of them, never past the program's next local midnight, when
  check-ins and daily tasks roll over, nor past the time of a report dated ahead of the clock.

Only a member's queries of `viewer` are kept (other members' writes never change them); a tester's
clock (X-Tierup-Now) bypasses the cache. The stamp is read before the query runs, so a write that
commits while it runs leaves the kept answer outdated at once rather than stale.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Awaitable, Callable

from graphql import DocumentNode, FieldNode, GraphQLError, OperationDefinitionNode, OperationType
from sqlalchemy import and_, bindparam, func, select
from strawberry.types import ExecutionResult

from ..auth import Role
from ..domain.activity import midnight
from ..domain.clock import local_date
from ..services.programs import known_program
from ..store.models import Member, Program, Report
from ..store.types import UtcDateTime
from .limits import parsed

CACHEABLE_ROOT_FIELDS = frozenset({"viewer", "__typename"})
ANSWERS_PER_VIEWER = 8  # documents one member's clients send: home screen, points page, …


@dataclass(frozen=True)
class Stamp:
    """What a member's answer depends on besides time, as the database says now."""

    program_id: int
    program_version: int
    member_id: int
    member_version: int


@dataclass(frozen=True)
class Kept:
    stamp: Stamp
    data: dict
    valid_until: datetime


class ResponseCache:
    """Kept answers per signed-in member (least recently used members leave first)."""

    def __init__(self, members: int):
        self.members = members
        self._kept: OrderedDict[tuple[str, str], OrderedDict[tuple, Kept]] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, viewer: tuple[str, str], request: tuple, stamp: Stamp, now: datetime) -> dict | None:
        answers = self._kept.get(viewer)
        kept = answers.get(request) if answers is not None else None
        if kept is None or kept.stamp != stamp or now >= kept.valid_until:
            self.misses += 1
            return None
        self._kept.move_to_end(viewer)
        self.hits += 1
        return kept.data

    def put(self, viewer: tuple[str, str], request: tuple, kept: Kept) -> None:
        answers = self._kept.setdefault(viewer, OrderedDict())
        self._kept.move_to_end(viewer)
        answers[request] = kept
        answers.move_to_end(request)
        # Answers read at an older stamp can never be served again.
        for other in [key for key, value in answers.items() if value.stamp != kept.stamp]:
            del answers[other]
        while len(answers) > ANSWERS_PER_VIEWER:
            answers.popitem(last=False)
        while len(self._kept) > self.members:
            self._kept.popitem(last=False)

    def __len__(self) -> int:
        return sum(len(answers) for answers in self._kept.values())


async def answer(context, query: str | None, variables: dict | None, operation_name: str | None,
                 run: Callable[[], Awaitable[ExecutionResult]]) -> ExecutionResult:
    """The kept answer when it still holds; otherwise run the operation, and keep what it answered."""
    cache: ResponseCache | None = context.services.response_cache
    principal = context.principal
    if (cache is None or principal is None or principal.role is not Role.MEMBER or context.clock_overridden
            or not _viewer_only(query, operation_name, context.services.settings.max_tokens)):
        return await run()
    request = (query, operation_name, json.dumps(variables or {}, sort_keys=True, default=str))
    viewer = (principal.program, principal.sub)
    context.refresh()  # one clock reading and fresh loaders for this operation (a socket's context outlives it)
    horizon = context.horizon
    found = await read_stamp(context.db, *viewer, horizon.now)
    if found is None:  # no such program or member: the operation says so
        return await run()
    stamp, member_row, next_report_at = found
    data = cache.get(viewer, request, stamp, horizon.now)
    if data is not None:
        return ExecutionResult(data=data, errors=None)
    context.use_program(known_program(context.db, stamp.program_id, viewer[0], stamp.program_version))
    context.use_member(member_row())
    result = await run()
    program = context.program_if_read
    if result.errors or result.data is None or program is None or program.version != stamp.program_version:
        return result
    zone = program.definition.zone
    horizon.changes_at(midnight(local_date(horizon.now, zone) + timedelta(days=1), zone))
    horizon.changes_at(next_report_at)  # reported ahead of the clock (within the allowed skew): it counts then
    if horizon.until > horizon.now:
        cache.put(viewer, request, Kept(stamp, result.data, horizon.until))
    return result


# Built once: on a kept answer this read is most of the request's work. Core rows, no ORM session.
_MEMBER_COLUMNS = [column.label(f"member_{column.key}") for column in Member.__table__.columns]
_STAMP = (
    select(Program.id, Program.current_version, *_MEMBER_COLUMNS,
           select(func.min(Report.occurred_at))
           .where(Report.member_id == Member.id, Report.occurred_at > bindparam("now", type_=UtcDateTime))
           .scalar_subquery())
    .join(Member, and_(Member.program_id == Program.id, Member.external_id == bindparam("member")))
    .where(Program.code == bindparam("program"))
)


async def read_stamp(db, program_code: str, external_id: str, now: datetime
                     ) -> tuple[Stamp, Callable[[], Member], datetime | None] | None:
    """The stamp; the member's row, built only when asked for (a query that runs reads it anyway); and
    the earliest of the member's reports dated after `now` (shops may report a few minutes ahead)."""
    async with db.engine.connect() as connection:
        row = (await connection.execute(_STAMP, {"program": program_code, "member": external_id, "now": now})
               ).one_or_none()
    if row is None:
        return None
    program_id, program_version, *member_values, next_report_at = row
    values = dict(zip((column.key for column in Member.__table__.columns), member_values))
    stamp = Stamp(program_id, program_version, values["id"], values["version"])
    return stamp, lambda: Member(**values), next_report_at


def _viewer_only(query: str | None, operation_name: str | None, max_tokens: int) -> bool:
    if not query:
        return False
    try:
        document = parsed(query, max_tokens)
    except GraphQLError:
        return False
    return _reads_viewer_only(document, operation_name)


@lru_cache(maxsize=1000)
def _reads_viewer_only(document: DocumentNode, operation_name: str | None) -> bool:
    """A query whose top-level fields are `viewer` (and `__typename`) only: nothing in it is another member's."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [o for o in operations if operation_name is None or (o.name and o.name.value == operation_name)]
    if len(chosen) != 1 or chosen[0].operation is not OperationType.QUERY:
        return False
    selections: Any = chosen[0].selection_set.selections
    return all(isinstance(s, FieldNode) and s.name.value in CACHEABLE_ROOT_FIELDS for s in selections)
