"""The points ledger: every change is an entry; the balance is their sum, never a stored number."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..store.models import PointsEntry
from .programs import ActiveProgram


async def balance_of(session: AsyncSession, member_id: int) -> int:
    return (await session.execute(
        select(func.coalesce(func.sum(PointsEntry.amount), 0)).where(PointsEntry.member_id == member_id))).scalar_one()


async def append_entry(session: AsyncSession, program: ActiveProgram, member_id: int, kind: str, amount: int,
                       reason: str, *, source: str, occurred_at: datetime, report_id: int | None = None,
                       expires_at: datetime | None = None, shortfall: int = 0, balance: int | None = None) -> int:
    """Add one ledger entry; the caller holds the member's lock. Returns the new balance."""
    if balance is None:
        balance = await balance_of(session, member_id)
    session.add(PointsEntry(program_id=program.id, member_id=member_id, kind=kind, source=source, amount=amount,
                            balance_after=balance + amount, reason=reason[:300], occurred_at=occurred_at,
                            expires_at=expires_at, report_id=report_id, shortfall=shortfall))
    return balance + amount
