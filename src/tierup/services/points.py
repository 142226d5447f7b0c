"""The points ledger: every change is an entry; the balance is their sum."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.errors import Checks, ErrorCode, Rejected
from ..store.db import Database
from ..store.models import PointsEntry
from ..store.queries import lock_member
from .programs import ActiveProgram
from .reports import store_report
from .validation import check_id, check_text

MAX_ADJUSTMENT = 1_000_000
REASON_LENGTH = 200


async def balance_of(session: AsyncSession, member_id: int) -> int:
    return (await session.execute(
        select(func.coalesce(func.sum(PointsEntry.amount), 0)).where(PointsEntry.member_id == member_id))).scalar_one()


async def append_entry(session: AsyncSession, program: ActiveProgram, member_id: int, kind: str, amount: int,
                       reason: str, *, occurred_at: datetime, report_id: int | None = None,
                       expires_at: datetime | None = None, shortfall: int = 0, balance: int | None = None) -> int:
    """Add one ledger entry; the caller holds the member's lock. Returns the new balance."""
    if balance is None:
        balance = await balance_of(session, member_id)
    session.add(PointsEntry(program_id=program.id, member_id=member_id, kind=kind, amount=amount,
                            balance_after=balance + amount, reason=reason[:300], occurred_at=occurred_at,
                            expires_at=expires_at, report_id=report_id, shortfall=shortfall))
    return balance + amount


@dataclass(frozen=True)
class AdjustmentInput:
    member_id: int
    amount: int
    reason: str
    external_id: str


@dataclass(frozen=True)
class AdjustmentResult:
    member_id: int
    duplicate: bool


async def adjust_points(db: Database, program: ActiveProgram, request: AdjustmentInput, *, operator: str,
                        now: datetime) -> AdjustmentResult:
    """An operator's manual correction, idempotent on externalId; never drives a balance below zero."""
    checks = Checks()
    check_id(checks, request.external_id, "input", "externalId")
    check_text(checks, request.reason, REASON_LENGTH, "input", "reason", required=True)
    if request.amount == 0:
        checks.fail(ErrorCode.INVALID, "amount must not be zero", "input", "amount")
    elif abs(request.amount) > MAX_ADJUSTMENT:
        checks.fail(ErrorCode.INVALID, f"amount must be within ±{MAX_ADJUSTMENT:,}", "input", "amount")
    checks.raise_any()
    async with db.write() as session:
        member = await lock_member(session, program.id, member_id=request.member_id)
        stored = await store_report(
            session, program, "ADJUSTMENT", request.external_id,
            {"member": member.external_id, "amount": request.amount, "reason": request.reason},
            occurred_at=now, now=now, member_id=member.id, points=request.amount)
        if stored.duplicate:
            return AdjustmentResult(member.id, duplicate=True)
        balance = await balance_of(session, member.id)
        if balance + request.amount < 0:
            raise Rejected.one(ErrorCode.INSUFFICIENT_POINTS,
                               f"the member has {balance} points; cannot take {-request.amount}", "input", "amount")
        await append_entry(session, program, member.id, "ADJUST", request.amount,
                           f"Adjustment by {operator}: {request.reason}", occurred_at=now,
                           report_id=stored.report_id, balance=balance)
    return AdjustmentResult(member.id, duplicate=False)
