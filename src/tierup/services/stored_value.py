"""Stored value (储值): a prepaid balance in money that members top up and spend.

Like points, the balance is the sum of a ledger, never a stored number: TOP_UP and its BONUS (the
program's rules), SPEND on orders, REFUND of what a refunded order had spent, and operators'
ADJUST. Every change runs under the member's lock, so racing spends never take it below zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import bindparam, func, select

from ..domain.errors import Checks, ErrorCode, Problem, Rejected
from ..domain.money import format_yuan, to_yuan
from ..domain.program import DEFAULT_CHANNEL
from ..events import Broker, Event
from ..store.db import Database, execute_core
from ..store.models import StoredValueEntry
from ..store.queries import lock_member
from .growth import publish
from .programs import ActiveProgram
from .reports import store_report, with_channel
from .validation import check_amount, check_channel, check_id, check_text, check_time
from .webhooks import stage_webhooks

REASON_LENGTH = 200

_BALANCE = (select(func.coalesce(func.sum(StoredValueEntry.amount_fen), 0))
            .where(StoredValueEntry.member_id == bindparam("member")))


async def stored_value_balance(session, member_id: int) -> int:
    # int(): PostgreSQL sums a BIGINT column as NUMERIC.
    return int((await execute_core(session, _BALANCE, {"member": member_id})).scalar_one())


def append_stored_value(session, program: ActiveProgram, member_id: int, kind: str, amount_fen: int, reason: str, *,
                        occurred_at: datetime, balance_fen: int, report_id: int | None = None) -> Event:
    """One ledger entry, on top of `balance_fen` (the caller holds the member's lock); the event to send."""
    session.add(StoredValueEntry(program_id=program.id, member_id=member_id, kind=kind, amount_fen=amount_fen,
                                 balance_after_fen=balance_fen + amount_fen, reason=reason[:300],
                                 occurred_at=occurred_at, report_id=report_id))
    symbol = program.definition.currency_symbol
    change = format_yuan(to_yuan(abs(amount_fen)), symbol)
    return Event(program.id, member_id, "STORED_VALUE_CHANGED",
                 f"Stored value is now {format_yuan(to_yuan(balance_fen + amount_fen), symbol)} "
                 f"({'+' if amount_fen > 0 else '−'}{change})", occurred_at)


def spend_problem(balance_fen: int, spend_fen: int, symbol: str, *field: str) -> Problem | None:
    """Spending beyond the balance is refused (INSUFFICIENT_BALANCE), quoted or done; None within it."""
    if spend_fen <= balance_fen:
        return None
    return Problem(ErrorCode.INSUFFICIENT_BALANCE,
                   f"the member has {format_yuan(to_yuan(balance_fen), symbol)} of stored value", field)


def check_spend(balance_fen: int, spend_fen: int, symbol: str, *field: str) -> None:
    if (problem := spend_problem(balance_fen, spend_fen, symbol, *field)) is not None:
        raise Rejected(problem)


@dataclass(frozen=True)
class TopUpInput:
    external_id: str
    member_external_id: str
    amount: Decimal | str  # as OrderInput.amount
    paid_at: datetime
    channel: str = DEFAULT_CHANNEL
    store_code: str | None = None


@dataclass(frozen=True)
class TopUpResult:
    member_id: int
    duplicate: bool
    bonus_fen: int


async def top_up_stored_value(db: Database, program: ActiveProgram, request: TopUpInput, *, now: datetime,
                              broker: Broker | None = None) -> TopUpResult:
    """A paid top-up, idempotent on externalId; the highest bonus rule it meets adds a BONUS entry.
    Top-ups earn no points: spending them does."""
    checks = Checks()
    check_id(checks, request.external_id, "input", "externalId")
    check_id(checks, request.member_external_id, "input", "memberExternalId")
    amount_fen = check_amount(checks, request.amount, program.definition, "input", "amount")
    check_time(checks, request.paid_at, now, "input", "paidAt")
    check_channel(checks, program.definition, request.channel, request.store_code, "input")
    checks.raise_any()
    events = []
    async with db.write() as session:
        member = await lock_member(session, program.id, external_id=request.member_external_id,
                                   field=("input", "memberExternalId"))
        payload = with_channel({"member": request.member_external_id, "amount": amount_fen, "paidAt": request.paid_at},
                               request.channel, request.store_code)
        stored = await store_report(session, program, "TOP_UP", request.external_id, payload,
                                    occurred_at=request.paid_at, now=now, member_id=member.id, amount_fen=amount_fen,
                                    channel=request.channel, store_code=request.store_code)
        if stored.duplicate:
            bonus = (await session.execute(select(func.coalesce(func.sum(StoredValueEntry.amount_fen), 0)).where(
                StoredValueEntry.report_id == stored.report_id, StoredValueEntry.kind == "BONUS"))).scalar_one()
            return TopUpResult(member.id, duplicate=True, bonus_fen=int(bonus))
        balance = await stored_value_balance(session, member.id)
        symbol = program.definition.currency_symbol
        events.append(append_stored_value(session, program, member.id, "TOP_UP", amount_fen,
                                          f"Top-up {request.external_id}", occurred_at=request.paid_at,
                                          balance_fen=balance, report_id=stored.report_id))
        bonus = program.definition.top_up_bonus(amount_fen)
        if bonus:
            events.append(append_stored_value(
                session, program, member.id, "BONUS", bonus,
                f"Bonus on a top-up of {format_yuan(to_yuan(amount_fen), symbol)}", occurred_at=request.paid_at,
                balance_fen=balance + amount_fen, report_id=stored.report_id))
        events = events[-1:]  # one change the member sees: the balance after both
        await stage_webhooks(session, program, events, now=now)
    await publish(broker, events)
    return TopUpResult(member.id, duplicate=False, bonus_fen=bonus)


@dataclass(frozen=True)
class StoredValueAdjustment:
    member_id: int
    amount: Decimal | str  # signed: positive adds, negative takes
    reason: str
    external_id: str


async def adjust_stored_value(db: Database, program: ActiveProgram, request: StoredValueAdjustment, *,
                              operator: str, now: datetime, broker: Broker | None = None) -> bool:
    """An operator's correction with a reason, idempotent on externalId; never below zero.
    Returns True when this externalId had been applied before."""
    checks = Checks()
    check_id(checks, request.external_id, "input", "externalId")
    check_text(checks, request.reason, REASON_LENGTH, "input", "reason", required=True)
    text = str(request.amount)
    negative = text.startswith("-")
    amount_fen = check_amount(checks, text.removeprefix("-"), program.definition, "input", "amount")
    checks.raise_any()
    signed = -amount_fen if negative else amount_fen
    async with db.write() as session:
        member = await lock_member(session, program.id, member_id=request.member_id)
        stored = await store_report(session, program, "VALUE_ADJUSTMENT", request.external_id,
                                    {"member": member.external_id, "amount": signed, "reason": request.reason},
                                    occurred_at=now, now=now, member_id=member.id, amount_fen=signed)
        if stored.duplicate:
            return True
        balance = await stored_value_balance(session, member.id)
        check_spend(balance, -signed, program.definition.currency_symbol, "input", "amount")
        event = append_stored_value(session, program, member.id, "ADJUST", signed,
                                    f"Adjustment by {operator}: {request.reason}", occurred_at=now,
                                    balance_fen=balance, report_id=stored.report_id)
        await stage_webhooks(session, program, [event], now=now)
    await publish(broker, [event])
    return False
