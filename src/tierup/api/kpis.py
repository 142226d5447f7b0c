"""Program KPIs for operators, each with its playbook target; the shop's customer count."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Optional

import strawberry
from strawberry.types import Info

from ..domain.activity import midnight
from ..domain.errors import Rejected
from ..services import kpis as kpi_service
from .channels import Channel
from .errors import UserError, check_day_range, user_errors
from .money import Money
from .permissions import ServiceOnly



@strawberry.type(description="A program figure against its playbook target.")
class Kpi:
    value: Optional[float] = strawberry.field(description="The figure (a rate 0–1, or points); null when it cannot be computed yet.")
    target: float = strawberry.field(description="The playbook's target.")
    met: Optional[bool] = strawberry.field(description="Whether the target is met; null without a value.")
    description: str = strawberry.field(description="What it measures and how.")


def _kpi(value: Optional[float], target: float, description: str) -> Kpi:
    return Kpi(value=None if value is None else round(value, 4), target=target,
               met=None if value is None else value >= target, description=description)


@strawberry.type(description="Repurchase among one tier's buyers in the range.")
class TierRepurchase:
    tier: str = strawberry.field(description="Tier code (members by their tier now).")
    buyers: int = strawberry.field(description="Members of the tier who ordered in the range.")
    repeat_buyers: int = strawberry.field(description="Of those, members who ordered twice or more.")
    rate: Optional[float] = strawberry.field(description="repeatBuyers ÷ buyers; null without buyers.")


@strawberry.type(description="Orders paid through one channel in the range.")
class ChannelSales:
    channel: Channel = strawberry.field(description="The channel.")
    orders: int = strawberry.field(description="Orders paid through it.")
    amount: Money = strawberry.field(description="What those orders paid (before refunds).")
    members: int = strawberry.field(description="Members who ordered through it.")


@strawberry.type(description="Program KPIs for a date range (program time), with the playbook targets.")
class ProgramKpis:
    members: int = strawberry.field(description="Members at the end of the range.")
    customers: Optional[int] = strawberry.field(description="The shop's customers, as last reported before the end.")
    penetration: Kpi = strawberry.field(description="Member penetration: members ÷ customers (target ≥ 50%).")
    silent_at_start: int = strawberry.field(description="Members silent when the range began (no order for the lifecycle's declining days).")
    woken: int = strawberry.field(description="Of those, members who ordered within the range.")
    wake_up_rate: Kpi = strawberry.field(description="Silent-member wake-up rate: woken ÷ silent at start (target ≥ 20%).")
    repurchase: list[TierRepurchase] = strawberry.field(description="Repurchase rate by tier, entry tier first.")
    repurchase_gap: Kpi = strawberry.field(description="Top tier's repurchase rate minus the entry tier's (target ≥ 0.15, i.e. 15 points).")
    core_benefit_usage: Kpi = strawberry.field(
        description="Core benefit usage: members holding a core benefit who claimed one in the range ÷ those holding one (target ≥ 60%).")
    outstanding_points: int = strawberry.field(description="Points outstanding at the end of the range.")
    liability: Money = strawberry.field(description="What the program owes its members at the end of the range: "
                                                   "outstanding points × the point value, plus stored value.")
    breakage_rate: Optional[float] = strawberry.field(description="Of the points whose lots have reached expiry, the share that expired unspent.")
    expected_breakage: Optional[int] = strawberry.field(description="Outstanding points likely to expire unspent, at the observed breakage rate.")
    expected_breakage_value: Optional[Money] = strawberry.field(description="The expected breakage at the point value.")
    sales_by_channel: list[ChannelSales] = strawberry.field(description="Orders paid in the range by channel (线上线下), every channel listed.")
    omnichannel_members: int = strawberry.field(description="Members who bought through two or more channels in the range (全渠道会员).")
    stored_value_liability: Money = strawberry.field(description="Stored value the program owes its members at the end of the range.")
    paid_members: int = strawberry.field(description="Members holding an active paid membership at the end of the range.")


async def program_kpis(context, start: date, end: date) -> ProgramKpis:
    check_day_range(start, end)
    program = await context.program()
    tz = program.definition.zone
    figures = await kpi_service.program_kpis(context.db, program, midnight(start, tz),
                                             midnight(end + timedelta(days=1), tz))
    currency = program.definition.currency
    breakage = figures.expected_breakage

    def money(points: int) -> Money:
        return Money(amount=kpi_service.liability(program, points), currency=currency)

    return ProgramKpis(
        members=figures.members, customers=figures.customers,
        penetration=_kpi(figures.penetration, kpi_service.PENETRATION_TARGET, "members ÷ customers"),
        silent_at_start=figures.silent_at_start, woken=figures.woken,
        wake_up_rate=_kpi(figures.wake_up_rate, kpi_service.WAKE_UP_TARGET, "silent at start who ordered ÷ silent at start"),
        repurchase=[TierRepurchase(tier=r.tier, buyers=r.buyers, repeat_buyers=r.repeat_buyers,
                                   rate=None if r.rate is None else round(r.rate, 4)) for r in figures.repurchase],
        repurchase_gap=_kpi(figures.repurchase_gap, kpi_service.REPURCHASE_GAP_TARGET,
                            "top tier's repurchase rate − entry tier's"),
        core_benefit_usage=_kpi(figures.core_benefit_usage, kpi_service.CORE_BENEFIT_TARGET,
                                "members who claimed a core benefit ÷ members holding one"),
        outstanding_points=figures.outstanding_points,
        liability=Money(amount=money(figures.outstanding_points).amount
                        + Money.of_fen(figures.stored_value_fen, currency).amount, currency=currency),
        breakage_rate=None if figures.breakage_rate is None else round(figures.breakage_rate, 4),
        expected_breakage=breakage, expected_breakage_value=None if breakage is None else money(breakage),
        sales_by_channel=[ChannelSales(channel=Channel(c.channel), orders=c.orders,
                                       amount=Money.of_fen(c.amount_fen, currency), members=c.members)
                          for c in figures.sales_by_channel],
        omnichannel_members=figures.omnichannel_members,
        stored_value_liability=Money.of_fen(figures.stored_value_fen, currency),
        paid_members=figures.paid_members)


@strawberry.input(description="How many customers the shop has (for member penetration).")
class ReportCustomerCountInput:
    external_id: str = strawberry.field(description="Idempotency key of this report.")
    customers: int = strawberry.field(description="Customers of the shop, members or not.")
    as_of: datetime = strawberry.field(description="When the count was taken, ISO 8601 with an offset.")


@strawberry.type(description="Result of reportCustomerCount.")
class ReportCustomerCountPayload:
    duplicate: bool = strawberry.field(default=False, description="True when this externalId had been reported before.")
    user_errors: list[UserError] = strawberry.field(default_factory=list, description="Why nothing was stored, if so.")


@strawberry.type
class KpiMutations:
    @strawberry.mutation(permission_classes=[ServiceOnly],
                         description="Report the shop's customer count, for member penetration. SERVICE only.")
    async def report_customer_count(self, info: Info, input: ReportCustomerCountInput) -> ReportCustomerCountPayload:
        context = info.context
        try:
            duplicate = await kpi_service.report_customer_count(
                context.db, await context.program(), external_id=input.external_id, customers=input.customers,
                as_of=input.as_of, now=context.now)
        except Rejected as rejection:
            return ReportCustomerCountPayload(user_errors=user_errors(rejection))
        return ReportCustomerCountPayload(duplicate=duplicate)
