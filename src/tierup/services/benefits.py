"""Claiming benefits (领取权益) and how much they are used."""

from __future__ import annotations

import calendar

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.benefits import BenefitStanding, benefit_period, standing
from ..domain.clock import local_date
from ..domain.errors import ErrorCode, Rejected
from ..domain.program import BenefitRule, ProgramDefinition
from ..events import Broker, Event
from ..store.db import Database
from ..store.models import BenefitClaim, Member, MemberBadge
from ..store.queries import lock_member
from .activity import insert_once
from .coupons import issue_coupon
from .growth import publish
from .memberships import active_plan
from .programs import ActiveProgram
from .webhooks import stage_webhooks


async def claims_by_member(session: AsyncSession, member_ids: Iterable[int]) -> dict[int, Counter]:
    """Claims per (benefit, period key), for each member."""
    found: dict[int, Counter] = defaultdict(Counter)
    for member_id, code, key, count in await session.execute(
            select(BenefitClaim.member_id, BenefitClaim.benefit_code, BenefitClaim.period_key, func.count())
            .where(BenefitClaim.member_id.in_(list(member_ids)))
            .group_by(BenefitClaim.member_id, BenefitClaim.benefit_code, BenefitClaim.period_key)):
        found[member_id][(code, key)] = count
    return found


def holds(definition: ProgramDefinition, benefit: BenefitRule, member: Member, at: datetime) -> bool:
    """The member holds the benefit at `at`: their tier does, or a paid membership active then lists it."""
    plan = active_plan(definition, member, at)
    return member.tier_code in benefit.tiers or (plan is not None and benefit.code in plan.benefits)


def member_standing(definition: ProgramDefinition, benefit: BenefitRule, member: Member, claims: Counter,
                    at: datetime) -> BenefitStanding:
    tz = definition.zone
    key, _ = benefit_period(benefit.period, at, tz)
    return standing(benefit, tier_code=member.tier_code, held=holds(definition, benefit, member, at),
                    birthday=member.birthday, claims_in_period=claims[(benefit.code, key)], at=at, tz=tz)


@dataclass(frozen=True)
class ClaimResult:
    member_id: int
    benefit_code: str
    coupon_id: int | None


async def claim_benefit(db: Database, program: ActiveProgram, member_external_id: str, benefit_code: str, *,
                        now: datetime, broker: Broker | None = None, gift: str | None = None) -> ClaimResult:
    """Enforce tier, window, early access, birthday month and quota; record the claim and give what it gives.
    `gift`: the jobs claimed it for the member; a coupon it gives is announced (COUPON_RECEIVED) with this message."""
    definition = program.definition
    try:
        benefit = definition.benefit(benefit_code)
    except KeyError:
        raise Rejected.one(ErrorCode.NOT_FOUND, f"no benefit {benefit_code!r} in this program",
                           "input", "benefitId") from None
    events: list[Event] = []
    async with db.write() as session:
        member = await lock_member(session, program.id, external_id=member_external_id, field=("viewer",))
        claims = (await claims_by_member(session, [member.id]))[member.id]
        position = member_standing(definition, benefit, member, claims, now)
        if position.refusal is not None:
            code, message = position.refusal
            raise Rejected.one(ErrorCode(code), message, "input", "benefitId")
        coupon_id = None
        if benefit.coupon is not None:
            coupon_id = (await issue_coupon(session, program, member.id, benefit.coupon, now, source="BENEFIT")).id
        if benefit.badge is not None:
            if await insert_once(session, MemberBadge, member_id=member.id, code=benefit.badge.code,
                                 name=benefit.badge.name, earned_at=now) is not None:
                events.append(Event(program.id, member.id, "BADGE_EARNED", f"Badge {benefit.badge.name} earned", now))
        key, _ = benefit_period(benefit.period, now, definition.zone)
        session.add(BenefitClaim(program_id=program.id, member_id=member.id, benefit_code=benefit.code,
                                 period_key=key, claimed_at=now, coupon_id=coupon_id))
        if gift is not None and coupon_id is not None:
            events.append(Event(program.id, member.id, "COUPON_RECEIVED", gift, now))
        await stage_webhooks(session, program, events, now=now)
    await publish(broker, events)
    return ClaimResult(member.id, benefit.code, coupon_id)


async def give_birthday_benefits(db: Database, program: ActiveProgram, *, as_of: datetime,
                                 broker: Broker | None = None) -> int:
    """On a member's birthday (program time; 29 February falls on the 28th in other years) the jobs claim the
    birthday benefits for them (生日当天), once a year by the benefit's own quota, with a COUPON_RECEIVED event.
    A member the jobs missed may still claim in the birthday month; nobody gets it twice. Returns the claims."""
    definition = program.definition
    day = local_date(as_of, definition.zone)
    days = [day.day] + ([29] if (day.month, day.day) == (2, 28) and not calendar.isleap(day.year) else [])
    given = 0
    for benefit in (b for b in definition.benefits if b.birthday_month):
        async with db.read() as session:
            members = list((await session.execute(select(Member.external_id).where(
                Member.program_id == program.id, Member.tier_code.in_(benefit.tiers),
                func.extract("month", Member.birthday) == day.month,
                func.extract("day", Member.birthday).in_(days)).order_by(Member.id))).scalars())
        for external_id in members:
            try:
                await claim_benefit(db, program, external_id, benefit.code, now=as_of, broker=broker,
                                    gift=f"Happy birthday: {benefit.name}")
            except Rejected:  # claimed already this year (by the member, or by an earlier run)
                continue
            given += 1
    return given


@dataclass(frozen=True)
class Usage:
    eligible_members: int
    claiming_members: int
    claims: int

    @property
    def rate(self) -> float:
        return self.claiming_members / self.eligible_members if self.eligible_members else 0.0


async def benefit_usage(db: Database, program: ActiveProgram, codes: list[str]) -> dict[str, Usage]:
    """Take-up per benefit: members of an eligible tier, how many of them claimed, and claims in all."""
    definition = program.definition
    async with db.read() as session:
        per_tier = dict((await session.execute(select(Member.tier_code, func.count()).where(
            Member.program_id == program.id).group_by(Member.tier_code))).all())
        # Claiming members are counted by their tier now, so the rate is over members still eligible.
        claimed = (await session.execute(
            select(BenefitClaim.benefit_code, Member.tier_code, func.count(func.distinct(BenefitClaim.member_id)),
                   func.count())
            .join(Member, Member.id == BenefitClaim.member_id)
            .where(BenefitClaim.program_id == program.id, BenefitClaim.benefit_code.in_(codes))
            .group_by(BenefitClaim.benefit_code, Member.tier_code))).all()
    usage = {}
    for code in codes:
        tiers = definition.benefit(code).tiers
        rows = [row for row in claimed if row[0] == code]
        usage[code] = Usage(eligible_members=sum(per_tier.get(tier, 0) for tier in tiers),
                            claiming_members=sum(members for _, tier, members, _ in rows if tier in tiers),
                            claims=sum(claims for *_, claims in rows))
    return usage
