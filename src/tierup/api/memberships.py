"""Paid membership (付费会员, PLUS): the plans, a member's membership, and buying one."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Iterable, Optional

import strawberry
from strawberry import relay
from strawberry.types import Info

from ..domain.errors import Rejected
from ..domain.program import MembershipPlan, ProgramDefinition
from ..services import memberships as membership_service
from ..store.models import Member as MemberRow
from .benefits import Benefit
from .errors import UserError, user_errors
from .money import Money
from .nodes import node_key, program_data_nodes
from .permissions import ServiceOnly
from .scalars import sent_text

if TYPE_CHECKING:
    from .members import Member

MemberRef = Annotated["Member", strawberry.lazy("tierup.api.members")]


@strawberry.type(description="A paid membership plan (付费会员, PLUS): bought for money, beside the tier ladder.")
class PaidMembershipPlan(relay.Node):
    plan_key: relay.NodeID[str] = strawberry.field(description="Program code and plan code.")
    code: str = strawberry.field(description="Stable code, e.g. PLUS_YEAR.")
    name: str = strawberry.field(description="Display name, e.g. PLUS 年卡.")
    price: Money = strawberry.field(description="What it costs.")
    months: int = strawberry.field(description="How long one purchase lasts.")
    points_multiplier_bonus: Decimal = strawberry.field(description="Added to the tier's points multiplier while the membership is active.")
    free_shipping: bool = strawberry.field(description="Shipping is free on every order while active.")
    benefits: list[Benefit] = strawberry.field(description="Benefits its holders hold whatever their tier.")

    @classmethod
    def of(cls, definition: ProgramDefinition, plan: MembershipPlan) -> "PaidMembershipPlan":
        return cls(plan_key=node_key(definition, plan.code), code=plan.code, name=plan.name,
                   price=Money.of_fen(plan.price_fen, definition.currency), months=plan.months,
                   points_multiplier_bonus=plan.points_multiplier_bonus, free_shipping=plan.free_shipping,
                   benefits=[Benefit.of(definition, definition.benefit(code)) for code in plan.benefits])

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        return await program_data_nodes(info, node_ids, lambda d: d.membership_plan, cls.of, "membership plan")


@strawberry.type(description="A member's paid membership: the plan and the run of continuous membership.")
class PaidMembership:
    plan: PaidMembershipPlan = strawberry.field(description="The plan bought last.")
    started_at: datetime = strawberry.field(description="When the current run began (renewals extend it).")
    valid_until: datetime = strawberry.field(description="When it ends unless renewed.")
    active: bool = strawberry.field(description="Whether it holds now.")


def member_membership(context, definition: ProgramDefinition, row: MemberRow) -> Optional[PaidMembership]:
    """The membership the member holds or last held; None if never bought (or its plan is gone)."""
    plan = next((p for p in definition.membership_plans if p.code == row.membership_plan), None)
    if plan is None:
        return None
    context.changes_at(row.membership_started_at)  # `active` turns at these moments
    context.changes_at(row.membership_until)
    return PaidMembership(plan=PaidMembershipPlan.of(definition, plan),
                          started_at=context.local_time(row.membership_started_at),
                          valid_until=context.local_time(row.membership_until),
                          active=membership_service.active_plan(definition, row, context.now) is not None)


@strawberry.input(description="A paid membership bought or renewed. Idempotent on externalId.")
class PurchaseMembershipInput:
    external_id: str = strawberry.field(description="The shop's payment id; the idempotency key.")
    member_external_id: str = strawberry.field(description="The member's id in the shop.")
    plan_code: str = strawberry.field(description="The plan, e.g. PLUS_YEAR.")
    amount: Decimal = strawberry.field(description="What was paid: the plan's price (INVALID otherwise).")
    paid_at: datetime = strawberry.field(description="When it was paid, ISO 8601 with an offset.")


@strawberry.type(description="Result of purchaseMembership.")
class PurchaseMembershipPayload:
    member: Optional[MemberRef] = strawberry.field(default=None, description="The member after the purchase.")
    membership: Optional[PaidMembership] = strawberry.field(default=None, description="The membership after the purchase.")
    duplicate: bool = strawberry.field(default=False, description="True when this externalId had been recorded before; nothing changed.")
    user_errors: list[UserError] = strawberry.field(default_factory=list, description="Why nothing was recorded, if so.")


@strawberry.type
class MembershipMutations:
    @strawberry.mutation(permission_classes=[ServiceOnly], description=(
        "A paid membership bought or renewed; idempotent on externalId. A renewal extends from the current end. "
        "SERVICE only."))
    async def purchase_membership(self, info: Info, input: PurchaseMembershipInput) -> PurchaseMembershipPayload:
        from .members import member_node

        context = info.context
        program = await context.program()
        request = membership_service.MembershipPurchase(
            external_id=input.external_id, member_external_id=input.member_external_id, plan_code=input.plan_code,
            amount=sent_text(input.amount), paid_at=input.paid_at)
        try:
            result = await membership_service.purchase_membership(context.db, program, request, now=context.now,
                                                                  broker=context.broker)
        except Rejected as rejection:
            return PurchaseMembershipPayload(user_errors=user_errors(rejection))
        context.reset_loaders()
        member = await member_node(context, result.member_id)
        return PurchaseMembershipPayload(member=member, duplicate=result.duplicate,
                                         membership=member_membership(context, program.definition, member.row))
