"""Queries shared by several use cases."""

from __future__ import annotations

from typing import Iterable

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.errors import ErrorCode, Rejected
from .db import member_changed
from .models import Member


# Built once: used again, a statement skips SQLAlchemy's construction and cache-key work.
_MEMBER_BY_ID = (select(Member).where(Member.program_id == bindparam("program"), Member.id == bindparam("key"))
                 .with_for_update())
_MEMBER_BY_EXTERNAL_ID = (select(Member).where(Member.program_id == bindparam("program"),
                                               Member.external_id == bindparam("key")).with_for_update())


async def lock_member(session: AsyncSession, program_id: int, *, member_id: int | None = None,
                      external_id: str | None = None, field: tuple[str, ...] = ("input", "memberId")) -> Member:
    """The member row, locked for the rest of the transaction (a no-op on SQLite, where
    BEGIN IMMEDIATE already serialises writers). Unknown or another program's → NOT_FOUND."""
    query, key = (_MEMBER_BY_ID, member_id) if member_id is not None else (_MEMBER_BY_EXTERNAL_ID, external_id)
    member = (await session.execute(query, {"program": program_id, "key": key})).scalar_one_or_none()
    if member is None:
        shown = external_id if external_id is not None else member_id
        raise Rejected.one(ErrorCode.NOT_FOUND, f"no member {shown!r} in this program", *field)
    member_changed(session, member.id)  # whoever locks a member is about to change it
    return member


_MEMBERS_BY_EXTERNAL_ID = (select(Member).where(Member.program_id == bindparam("program"),
                                                Member.external_id.in_(bindparam("keys", expanding=True)))
                           .order_by(Member.id).with_for_update())
_MEMBERS_BY_ID = (select(Member).where(Member.program_id == bindparam("program"),
                                       Member.id.in_(bindparam("ids", expanding=True)))
                  .order_by(Member.id).with_for_update())
_MEMBERS_BY_EITHER = (select(Member).where(Member.program_id == bindparam("program"),
                                           Member.external_id.in_(bindparam("keys", expanding=True))
                                           | Member.id.in_(bindparam("ids", expanding=True)))
                      .order_by(Member.id).with_for_update())


async def lock_members(session: AsyncSession, program_id: int, external_ids: Iterable[str],
                       ids: Iterable[int] = ()) -> dict[str, Member]:
    """Many members by external id, and by `ids`, locked in id order in one statement (so two batches never
    wait on each other in a circle); unknown ones are simply absent. The caller marks each as changed when it
    changes it."""
    keys, ids = sorted(external_ids), sorted(ids)
    if not keys and not ids:
        return {}
    # An empty list among the keys would cost the other an index search (a scan, to SQLite, of an OR).
    statement = _MEMBERS_BY_EITHER if keys and ids else _MEMBERS_BY_EXTERNAL_ID if keys else _MEMBERS_BY_ID
    parameters = {"program": program_id, "keys": keys, "ids": ids}
    return {member.external_id: member for member in (await session.execute(statement, parameters)).scalars()}


