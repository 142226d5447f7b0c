"""Paid membership (付费会员, PLUS): plans bought for money, beside the tier ladder.

While active a plan adds its bonus to the points multiplier, makes shipping free and holds its
benefits whatever the tier. Buying again while active extends from the current end; after a
lapse a new run starts at the purchase. The jobs remind members 7 days before the end and tell
them when it lapsed, once per run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from ..domain.clock import add_months, local, utc
from ..domain.errors import Checks, ErrorCode, Rejected
from ..domain.money import format_yuan, to_yuan
from ..domain.program import MembershipPlan, ProgramDefinition
from ..events import Broker, Event
from ..store.db import Database
from ..store.models import Member
from ..store.queries import lock_member
from .activity import new_reminders
from .growth import publish
from .programs import ActiveProgram
from .reports import store_report
from .validation import check_amount, check_id, check_time
from .webhooks import stage_webhooks

REMINDER_DAYS = 7


def active_plan(definition: ProgramDefinition, member: Member, at: datetime) -> MembershipPlan | None:
    """The plan the member holds at `at`, if any (a plan the program no longer lists holds nothing)."""
    if member.membership_plan is None or not member.membership_started_at <= at < member.membership_until:
        return None
    try:
        return definition.membership_plan(member.membership_plan)
    except KeyError:
        return None


def earning_multiplier(definition: ProgramDefinition, member: Member, at: datetime) -> Decimal:
    """Points per yuan at `at`: the tier's multiplier plus an active plan's bonus."""
    plan = active_plan(definition, member, at)
    return definition.tier(member.tier_code).points_multiplier + (plan.points_multiplier_bonus if plan else 0)


@dataclass(frozen=True)
class MembershipPurchase:
    external_id: str
    member_external_id: str
    plan_code: str
    amount: Decimal | str  # as OrderInput.amount: must be the plan's price
    paid_at: datetime


@dataclass(frozen=True)
class PurchaseResult:
    member_id: int
    duplicate: bool


async def purchase_membership(db: Database, program: ActiveProgram, request: MembershipPurchase, *, now: datetime,
                              broker: Broker | None = None) -> PurchaseResult:
    """A plan bought or renewed, idempotent on externalId; the amount paid must be the plan's price."""
    definition = program.definition
    checks = Checks()
    check_id(checks, request.external_id, "input", "externalId")
    check_id(checks, request.member_external_id, "input", "memberExternalId")
    amount_fen = check_amount(checks, request.amount, definition, "input", "amount")
    check_time(checks, request.paid_at, now, "input", "paidAt")
    checks.raise_any()
    try:
        plan = definition.membership_plan(request.plan_code)
    except KeyError:
        raise Rejected.one(ErrorCode.NOT_FOUND, f"no membership plan {request.plan_code[:40]!r} in this program",
                           "input", "planCode") from None
    if amount_fen != plan.price_fen:
        raise Rejected.one(ErrorCode.INVALID, f"{plan.name} costs {format_yuan(to_yuan(plan.price_fen), definition.currency_symbol)}",
                           "input", "amount")
    async with db.write() as session:
        member = await lock_member(session, program.id, external_id=request.member_external_id,
                                   field=("input", "memberExternalId"))
        stored = await store_report(session, program, "MEMBERSHIP", request.external_id,
                                    {"member": request.member_external_id, "plan": plan.code, "amount": amount_fen,
                                     "paidAt": request.paid_at}, occurred_at=request.paid_at, now=now,
                                    member_id=member.id, amount_fen=amount_fen, reference=plan.code)
        if stored.duplicate:
            return PurchaseResult(member.id, duplicate=True)
        extend(definition, member, plan, request.paid_at)
        until = local(member.membership_until, definition.zone).date().isoformat()
        event = Event(program.id, member.id, "MEMBERSHIP_CHANGED", f"{plan.name} until {until}", request.paid_at)
        await stage_webhooks(session, program, [event], now=now)
    await publish(broker, [event])
    return PurchaseResult(member.id, duplicate=False)


def extend(definition: ProgramDefinition, member: Member, plan: MembershipPlan, at: datetime) -> None:
    """A purchase at `at`: while a run lasts it goes on from its end, else a new run starts at `at`."""
    tz = definition.zone
    if member.membership_until is not None and member.membership_started_at <= at < member.membership_until:
        member.membership_until = utc(add_months(local(member.membership_until, tz), plan.months))
    else:
        member.membership_started_at = at
        member.membership_until = utc(add_months(local(at, tz), plan.months))
    member.membership_plan = plan.code


async def remind_memberships(db: Database, program: ActiveProgram, *, as_of: datetime,
                             broker: Broker | None = None) -> int:
    """MEMBERSHIP_EXPIRING 7 days before a run ends, and MEMBERSHIP_CHANGED once it has ended (news of the
    past 7 days: a lapse the jobs find later than that is not announced); each once per run (keyed by
    its end), so running the job again changes nothing. Returns the events sent."""
    events: list[Event] = []
    week = timedelta(days=REMINDER_DAYS)
    async with db.write() as session:
        for kind, window in (("MEMBERSHIP_EXPIRING", (as_of, as_of + week)), ("MEMBERSHIP_LAPSED", (as_of - week, as_of))):
            members = await _ending(session, program, *window)
            reminders = [(member.id, kind, member.membership_until.isoformat()[:19]) for member in members]
            new = await new_reminders(session, reminders, sent_at=as_of)
            events.extend(_reminder(program, member, kind, as_of)
                          for member, reminder in zip(members, reminders) if reminder in new)
        await stage_webhooks(session, program, events, now=as_of)
    await publish(broker, events)
    return len(events)


async def _ending(session, program: ActiveProgram, after: datetime, until: datetime) -> list[Member]:
    """Members whose run ends in (after, until]."""
    return list((await session.execute(select(Member).where(
        Member.program_id == program.id, Member.membership_until > after, Member.membership_until <= until)
        .order_by(Member.id))).scalars())


def _reminder(program: ActiveProgram, member: Member, kind: str, at: datetime) -> Event:
    definition = program.definition
    plan = next((p.name for p in definition.membership_plans if p.code == member.membership_plan),
                member.membership_plan)
    day = local(member.membership_until, definition.zone).date().isoformat()
    if kind == "MEMBERSHIP_EXPIRING":
        return Event(program.id, member.id, kind, f"{plan} ends on {day}; renew to keep it", at)
    return Event(program.id, member.id, "MEMBERSHIP_CHANGED", f"{plan} ended on {day}", at)
