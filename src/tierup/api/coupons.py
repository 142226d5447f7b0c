"""Coupons: templates, a member's coupons, and checkout quotes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Iterable, Optional

import strawberry
from strawberry import relay
from strawberry.types import Info

from ..domain.coupons import EXPIRED_AFTER, coupon_status
from ..domain.program import CouponTemplateRule, ProgramDefinition
from ..store.models import Coupon as CouponRow
from .connections import Connection
from ..domain.errors import ErrorCode, Rejected
from ..services import coupons as coupon_service
from .errors import UserError, user_errors
from .money import Money
from .nodes import input_row_id, node_key, program_data_nodes, rows_by_node_ids
from .permissions import OperatorOnly


@strawberry.enum(description="How a coupon takes money off.")
class CouponKind(Enum):
    THRESHOLD_REDUCTION = strawberry.enum_value("THRESHOLD_REDUCTION", description="满减: an amount off orders of at least the minimum spend.")
    PERCENT_OFF = strawberry.enum_value("PERCENT_OFF", description="折扣: the price paid as a percentage (80 = 8折).")
    FREE_SHIPPING = strawberry.enum_value("FREE_SHIPPING", description="免邮: free shipping; nothing off the goods.")


@strawberry.enum(description="Where a coupon stands.")
class CouponStatus(Enum):
    ISSUED = strawberry.enum_value("ISSUED", description="Usable within its validity.")
    USED = strawberry.enum_value("USED", description="Used by an order.")
    EXPIRED = strawberry.enum_value("EXPIRED", description="Past the end of its last day, unused.")
    VOID = strawberry.enum_value("VOID", description="Withdrawn by an operator.")


@strawberry.type(description="A kind of coupon the program issues.")
class CouponTemplate(relay.Node):
    template_key: relay.NodeID[str] = strawberry.field(description="Program code and template code.")
    code: str = strawberry.field(description="Stable code, e.g. WELCOME_10_OFF_50.")
    name: str = strawberry.field(description="Display name, e.g. 新人券 满50减10.")
    kind: CouponKind = strawberry.field(description="Threshold reduction, percentage or free shipping.")
    value: Decimal = strawberry.field(
        description="THRESHOLD_REDUCTION: amount off; PERCENT_OFF: the price paid as a percentage (80 = 8折).")
    min_spend: Optional[Money] = strawberry.field(description="Minimum order amount (before the discount), if any.")
    valid_days: Optional[int] = strawberry.field(description="Days it stays valid after issue, if not fixed dates.")

    @classmethod
    def of(cls, definition: ProgramDefinition, rule: CouponTemplateRule) -> "CouponTemplate":
        min_spend = Money.of_fen(rule.min_spend_fen, definition.currency) if rule.min_spend_fen else None
        return cls(template_key=node_key(definition, rule.code), code=rule.code, name=rule.name,
                   kind=CouponKind(rule.kind), value=rule.value, min_spend=min_spend, valid_days=rule.valid_days)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        return await program_data_nodes(info, node_ids, lambda d: d.coupon_template, cls.of, "coupon template")


@strawberry.type(description="A coupon issued to a member.")
class Coupon(relay.Node):
    coupon_id: relay.NodeID[int] = strawberry.field(description="Internal id.")
    code: str = strawberry.field(description="The code to hand to checkout (recordOrder couponCodes).")
    template: CouponTemplate = strawberry.field(description="What kind of coupon it is.")
    status: CouponStatus = strawberry.field(description="Issued, used, expired or void.")
    issued_at: datetime = strawberry.field(description="When it was issued.")
    valid_from: datetime = strawberry.field(description="First moment it can be used.")
    valid_until: datetime = strawberry.field(description="Last moment it can be used: the end of its last day, program time.")
    source: str = strawberry.field(description="What issued it: ENROLMENT, REFERRAL, BENEFIT, TASK, QUEST, REDEMPTION, CAMPAIGN or OPERATOR.")

    @classmethod
    def of(cls, context, definition: ProgramDefinition, row: CouponRow) -> "Coupon":
        context.changes_at(row.valid_until + EXPIRED_AFTER)  # its status turns EXPIRED then
        return cls(coupon_id=row.id, code=row.code,
                   template=CouponTemplate.of(definition, definition.coupon_template(row.template_code)),
                   status=CouponStatus(coupon_status(row.status, row.valid_until, context.now)),
                   issued_at=context.local_time(row.issued_at), valid_from=context.local_time(row.valid_from),
                   valid_until=context.local_time(row.valid_until), source=row.source.partition(":")[0])

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        context = info.context
        loaders = await context.loaders()
        definition = (await context.program()).definition
        rows = await rows_by_node_ids(loaders.coupon_by_id, node_ids, "Coupon")
        for row in rows:
            if row is not None:
                await context.check_member_visible(await loaders.member_by_id.load(row.member_id))
        return [cls.of(context, definition, row) if row else None for row in rows]


@strawberry.type(description="A page of coupons, newest first.")
class CouponConnection(Connection[Coupon]):
    pass


@strawberry.type(description="What a coupon would save on an order of a given amount.")
class CouponQuote:
    coupon: Coupon = strawberry.field(description="The coupon.")
    discount: Money = strawberry.field(description="Amount it takes off.")
    payable: Money = strawberry.field(description="What is left to pay.")


@strawberry.input(description="A coupon an operator issues by hand.")
class IssueCouponInput:
    member_id: relay.GlobalID = strawberry.field(description="The member (a Member id).")
    template_id: relay.GlobalID = strawberry.field(description="What coupon (a CouponTemplate id).")
    external_id: str = strawberry.field(description="Idempotency key: the same grant again issues nothing more.")


@strawberry.type(description="Result of issueCoupon.")
class IssueCouponPayload:
    coupon: Optional[Coupon] = strawberry.field(default=None, description="The coupon issued.")
    duplicate: bool = strawberry.field(default=False, description="True when this externalId was granted before; nothing more was issued.")
    user_errors: list[UserError] = strawberry.field(default_factory=list, description="Why nothing was issued, if so.")


@strawberry.input(description="A coupon to withdraw.")
class VoidCouponInput:
    coupon_id: relay.GlobalID = strawberry.field(description="The coupon (a Coupon id).")


@strawberry.type(description="Result of voidCoupon.")
class VoidCouponPayload:
    coupon: Optional[Coupon] = strawberry.field(default=None, description="The coupon, now VOID.")
    user_errors: list[UserError] = strawberry.field(default_factory=list, description="Why nothing changed, if so.")


@strawberry.type
class CouponMutations:
    @strawberry.mutation(permission_classes=[OperatorOnly], description=(
        "Issue a coupon to a member by hand, idempotent on externalId. OPERATOR only."))
    async def issue_coupon(self, info: Info, input: IssueCouponInput) -> IssueCouponPayload:
        context = info.context
        program = await context.program()
        try:
            member_id = input_row_id(input.member_id, "Member", "input", "memberId")
            if input.template_id.type_name != "CouponTemplate":
                raise Rejected.one(ErrorCode.NOT_FOUND, "templateId is not a CouponTemplate id", "input", "templateId")
            program_code, _, template_code = input.template_id.node_id.partition(":")
            if program_code != program.code:  # as unknown as a template that does not exist
                raise Rejected.one(ErrorCode.NOT_FOUND, "templateId is not a template of this program",
                                   "input", "templateId")
            result = await coupon_service.grant_coupon(
                context.db, program, member_id=member_id, template_code=template_code,
                external_id=input.external_id, operator=context.principal.sub, now=context.now)
        except Rejected as rejection:
            return IssueCouponPayload(user_errors=user_errors(rejection))
        context.reset_loaders()
        row = await (await context.loaders()).coupon_by_id.load(result.coupon_id)
        return IssueCouponPayload(coupon=Coupon.of(context, program.definition, row), duplicate=result.duplicate)

    @strawberry.mutation(permission_classes=[OperatorOnly], description=(
        "Withdraw an unused coupon (VOID); a used or void coupon is ALREADY_DONE. OPERATOR only."))
    async def void_coupon(self, info: Info, input: VoidCouponInput) -> VoidCouponPayload:
        context = info.context
        program = await context.program()
        try:
            coupon_id = await coupon_service.void_coupon(context.db, program,
                                                         input_row_id(input.coupon_id, "Coupon", "input", "couponId"),
                                                         now=context.now)
        except Rejected as rejection:
            return VoidCouponPayload(user_errors=user_errors(rejection))
        context.reset_loaders()
        row = await (await context.loaders()).coupon_by_id.load(coupon_id)
        return VoidCouponPayload(coupon=Coupon.of(context, program.definition, row))
