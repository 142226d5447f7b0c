"""Operators' manual corrections of points."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..domain.errors import Checks, ErrorCode, Rejected
from ..events import Broker
from ..store.db import Database
from ..store.queries import lock_member
from .growth import GrowthTracker, publish
from .ledger import append_entry, balance_of
from .programs import ActiveProgram
from .reports import store_report
from .validation import check_id, check_text
from .webhooks import stage_webhooks

MAX_ADJUSTMENT = 1_000_000
REASON_LENGTH = 200


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
                        now: datetime, broker: Broker | None = None) -> AdjustmentResult:
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
        growth = GrowthTracker(session, program)
        await growth.watch(member, now)
        balance = await balance_of(session, member.id)
        if balance + request.amount < 0:
            raise Rejected.one(ErrorCode.INSUFFICIENT_POINTS,
                               f"the member has {balance} points; cannot take {-request.amount}", "input", "amount")
        await append_entry(session, program, member.id, "ADJUST", request.amount,
                           f"Adjustment by {operator}: {request.reason}", source="ADJUSTMENT", occurred_at=now,
                           report_id=stored.report_id, balance=balance)
        await growth.settle(now)
        await stage_webhooks(session, program, growth.events, now=now)
    await publish(broker, growth.events)
    return AdjustmentResult(member.id, duplicate=False)
