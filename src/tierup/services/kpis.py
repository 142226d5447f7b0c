"""Program KPIs for a date range, each against its playbook target (数据驱动)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import and_, case, func, literal, select

from ..domain.errors import Checks, ErrorCode
from ..domain.program import CHANNELS
from ..store.db import Database
from ..store.models import BenefitClaim, Member, PointsEntry, Report, StoredValueEntry
from ..store.types import UtcDateTime
from .programs import ActiveProgram
from .reports import store_report
from .validation import check_id, check_time

PENETRATION_TARGET = 0.5
WAKE_UP_TARGET = 0.2
REPURCHASE_GAP_TARGET = 0.15
CORE_BENEFIT_TARGET = 0.6


@dataclass(frozen=True)
class TierRepurchase:
    tier: str
    buyers: int
    repeat_buyers: int

    @property
    def rate(self) -> float | None:
        return self.repeat_buyers / self.buyers if self.buyers else None


@dataclass(frozen=True)
class ChannelSales:
    channel: str
    orders: int
    amount_fen: int
    members: int


@dataclass(frozen=True)
class Kpis:
    members: int
    customers: int | None
    silent_at_start: int
    woken: int
    repurchase: list[TierRepurchase]
    core_eligible: int
    core_claiming: int
    outstanding_points: int
    matured_points: int
    expired_points: int
    expiring_outstanding: int
    sales_by_channel: list[ChannelSales]
    omnichannel_members: int  # bought through two or more channels in the range (全渠道会员)
    stored_value_fen: int  # stored value owed to members at the end of the range
    paid_members: int  # holding an active paid membership at the end of the range

    @staticmethod
    def ratio(part: int, whole: int | None) -> float | None:
        return part / whole if whole else None

    @property
    def penetration(self) -> float | None:
        return self.ratio(self.members, self.customers)

    @property
    def wake_up_rate(self) -> float | None:
        return self.ratio(self.woken, self.silent_at_start)

    @property
    def repurchase_gap(self) -> float | None:
        """Top tier's repurchase rate minus the entry tier's."""
        top, entry = self.repurchase[-1].rate, self.repurchase[0].rate
        return None if top is None or entry is None else top - entry

    @property
    def core_benefit_usage(self) -> float | None:
        return self.ratio(self.core_claiming, self.core_eligible)

    @property
    def breakage_rate(self) -> float | None:
        """Share of matured points (lots past expiry) that expired unspent, as observed so far."""
        return self.ratio(self.expired_points, self.matured_points)

    @property
    def expected_breakage(self) -> int | None:
        rate = self.breakage_rate
        return None if rate is None else int(self.expiring_outstanding * rate)


async def program_kpis(db: Database, program: ActiveProgram, start: datetime, end: datetime) -> Kpis:
    """Figures for [start, end): members and customers at the end, silent members woken, repurchase by
    tier, core benefit take-up, and the points outstanding at the end with their expected breakage."""
    definition = program.definition
    at_end = literal(end, UtcDateTime)
    silent_since = literal(start - timedelta(days=definition.lifecycle.declining_days), UtcDateTime)
    in_range = and_(Report.occurred_at >= literal(start, UtcDateTime), Report.occurred_at < at_end)
    async with db.read() as session:
        members = (await session.execute(select(func.count()).where(
            Member.program_id == program.id, Member.joined_at < at_end))).scalar_one()
        customers = (await session.execute(select(Report.quantity).where(
            Report.program_id == program.id, Report.kind == "CUSTOMER_COUNT", Report.occurred_at < at_end)
            .order_by(Report.occurred_at.desc(), Report.id.desc()).limit(1))).scalar_one_or_none()

        orders = (select(Report.member_id,
                         func.max(case((Report.occurred_at < literal(start, UtcDateTime), Report.occurred_at)))
                         .label("last_before"),
                         func.sum(case((in_range, 1), else_=0)).label("in_range"))
                  .where(Report.program_id == program.id, Report.kind == "ORDER")
                  .group_by(Report.member_id).subquery())
        last_before = orders.c.last_before
        silent = and_(Member.joined_at <= silent_since,
                      func.coalesce(last_before, Member.joined_at) <= silent_since)
        bought = func.coalesce(orders.c.in_range, 0)
        silent_at_start, woken = (await session.execute(
            select(func.sum(case((silent, 1), else_=0)), func.sum(case((and_(silent, bought > 0), 1), else_=0)))
            .select_from(Member).outerjoin(orders, orders.c.member_id == Member.id)
            .where(Member.program_id == program.id))).one()

        by_tier = dict(((tier, (buyers, repeat)) for tier, buyers, repeat in await session.execute(
            select(Member.tier_code, func.sum(case((bought > 0, 1), else_=0)), func.sum(case((bought > 1, 1), else_=0)))
            .select_from(Member).outerjoin(orders, orders.c.member_id == Member.id)
            .where(Member.program_id == program.id).group_by(Member.tier_code))))

        core = [b for b in definition.benefits if b.core]
        core_tiers = {tier for b in core for tier in b.tiers}
        claimed = (select(BenefitClaim.member_id).where(
            BenefitClaim.program_id == program.id, BenefitClaim.benefit_code.in_([b.code for b in core]),
            BenefitClaim.claimed_at >= literal(start, UtcDateTime), BenefitClaim.claimed_at < at_end))
        core_eligible, core_claiming = (await session.execute(
            select(func.count(), func.sum(case((Member.id.in_(claimed), 1), else_=0)))
            .where(Member.program_id == program.id, Member.tier_code.in_(core_tiers)))).one()

        entries = PointsEntry.occurred_at < at_end
        mine = PointsEntry.program_id == program.id
        outstanding = (await session.execute(select(func.coalesce(func.sum(PointsEntry.amount), 0))
                                             .where(mine, entries))).scalar_one()
        matured = (await session.execute(select(func.coalesce(func.sum(PointsEntry.amount), 0)).where(
            mine, PointsEntry.amount > 0, PointsEntry.expires_at <= at_end))).scalar_one()
        expired = -(await session.execute(select(func.coalesce(func.sum(PointsEntry.amount), 0)).where(
            mine, PointsEntry.kind == "EXPIRE", entries))).scalar_one()
        sales, omnichannel = await _channel_figures(session, program, in_range)
        stored_value = (await session.execute(select(func.coalesce(func.sum(StoredValueEntry.amount_fen), 0)).where(
            StoredValueEntry.program_id == program.id, StoredValueEntry.occurred_at < at_end))).scalar_one()
        paid_members = (await session.execute(select(func.count()).where(
            Member.program_id == program.id, Member.membership_started_at < at_end,
            Member.membership_until >= at_end))).scalar_one()
    return Kpis(
        members=members, customers=customers, silent_at_start=int(silent_at_start or 0), woken=int(woken or 0),
        repurchase=[TierRepurchase(t.code, int(by_tier.get(t.code, (0, 0))[0] or 0),
                                   int(by_tier.get(t.code, (0, 0))[1] or 0)) for t in definition.tiers],
        core_eligible=core_eligible, core_claiming=int(core_claiming or 0), outstanding_points=int(outstanding),
        matured_points=int(matured), expired_points=int(expired),
        # Points that still expire some day are the ones that can break; all of them, in a program with expiry.
        expiring_outstanding=int(outstanding) if definition.points_expiry_months else 0,
        sales_by_channel=sales, omnichannel_members=omnichannel, stored_value_fen=int(stored_value),
        paid_members=paid_members)


async def _channel_figures(session, program: ActiveProgram, in_range) -> tuple[list[ChannelSales], int]:
    """Orders paid in the range by channel (every channel listed), and the members who used two or more."""
    orders = (Report.program_id == program.id, Report.kind == "ORDER", in_range)
    found = {channel: (int(count), int(fen or 0), int(members)) for channel, count, fen, members in await session.execute(
        select(Report.channel, func.count(), func.sum(Report.amount_fen), func.count(Report.member_id.distinct()))
        .where(*orders).group_by(Report.channel))}
    sales = [ChannelSales(channel, *found.get(channel, (0, 0, 0))) for channel in CHANNELS]
    several = (select(Report.member_id).where(*orders).group_by(Report.member_id)
               .having(func.count(Report.channel.distinct()) >= 2).subquery())
    omnichannel = (await session.execute(select(func.count()).select_from(several))).scalar_one()
    return sales, int(omnichannel)


def liability(program: ActiveProgram, points: int) -> Decimal:
    """Outstanding points at the program's point value (in currency units)."""
    return (Decimal(points) * program.definition.point_value).quantize(Decimal("0.01"))


async def report_customer_count(db: Database, program: ActiveProgram, *, external_id: str, customers: int,
                                as_of: datetime, now: datetime) -> bool:
    """The shop reports how many customers it has (for member penetration); idempotent on externalId.
    Returns True when this report had been stored before."""
    checks = Checks()
    check_id(checks, external_id, "input", "externalId")
    if not 0 < customers <= 10_000_000_000:
        checks.fail(ErrorCode.INVALID, "customers must be a positive count", "input", "customers")
    check_time(checks, as_of, now, "input", "asOf")
    checks.raise_any()
    async with db.write() as session:
        stored = await store_report(session, program, "CUSTOMER_COUNT", external_id,
                                    {"customers": customers, "asOf": as_of}, occurred_at=as_of, now=now,
                                    quantity=customers)
    return stored.duplicate


