"""Queries shared by several use cases."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.errors import ErrorCode, Rejected
from .db import member_changed
from .models import Member


async def lock_member(session: AsyncSession, program_id: int, *, member_id: int | None = None,
                      external_id: str | None = None, field: tuple[str, ...] = ("input", "memberId")) -> Member:
    """The member row, locked for the rest of the transaction (a no-op on SQLite, where
    BEGIN IMMEDIATE already serialises writers). Unknown or another program's → NOT_FOUND."""
    query = select(Member).where(Member.program_id == program_id).with_for_update()
    query = query.where(Member.id == member_id) if member_id is not None else query.where(Member.external_id == external_id)
    member = (await session.execute(query)).scalar_one_or_none()
    if member is None:
        shown = external_id if external_id is not None else member_id
        raise Rejected.one(ErrorCode.NOT_FOUND, f"no member {shown!r} in this program", *field)
    member_changed(session, member.id)  # whoever locks a member is about to change it
    return member
