"""Orders and refunds reported by the shop."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Iterable, Optional

import strawberry
from strawberry import relay
from strawberry.types import Info

from ..domain.errors import Rejected
from ..services import orders as order_service
from ..store.models import Report
from .connections import Connection
from .errors import UserError, user_errors
from .money import Money
from .nodes import row_ids
from .permissions import ServiceOnly
from .scalars import sent_text

if TYPE_CHECKING:
    from .members import Member

MemberRef = Annotated["Member", strawberry.lazy("tierup.api.members")]


@strawberry.type(description="An order as reported by the shop, with the points it earned.")
class Order(relay.Node):
    order_id: relay.NodeID[int] = strawberry.field(description="Internal id.")
    external_id: str = strawberry.field(description="The shop's order id (the idempotency key it was reported with).")
    amount: Money = strawberry.field(description="The amount paid.")
    paid_at: datetime = strawberry.field(description="When it was paid, in program time.")

    @classmethod
    def of(cls, context, row: Report, currency: str) -> "Order":
        return cls(order_id=row.id, external_id=row.external_id, amount=Money.of_fen(row.amount_fen, currency),
                   paid_at=context.local_time(row.occurred_at))

    @strawberry.field(description="Points this order earned when it was recorded (before any refund).")
    async def points_earned(self, info: Info) -> int:
        figures = await (await info.context.loaders()).order_figures_by_order_id.load(self.order_id)
        return figures.points_earned

    @strawberry.field(description="How much of it has been refunded so far.")
    async def refunded_amount(self, info: Info) -> Money:
        figures = await (await info.context.loaders()).order_figures_by_order_id.load(self.order_id)
        return Money.of_fen(figures.refunded_fen, self.amount.currency)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        context = info.context
        return [await order_node(context, i) if i is not None else None for i in row_ids(node_ids, "Order")]


async def order_node(context, order_id: int) -> Order | None:
    loaders = await context.loaders()
    row = await loaders.order_by_id.load(order_id)
    if row is None:
        return None
    await context.check_member_visible(await loaders.member_by_id.load(row.member_id))
    return Order.of(context, row, (await context.program()).definition.currency)


@strawberry.type(description="A page of orders, newest first.")
class OrderConnection(Connection[Order]):
    pass


@strawberry.input(description="An order paid by a member. Idempotent on externalId.")
class RecordOrderInput:
    external_id: str = strawberry.field(description="The shop's order id; the idempotency key. At most 200 characters.")
    member_external_id: str = strawberry.field(description="The member's id in the shop.")
    amount: Decimal = strawberry.field(description="Amount paid in the program currency, at most two decimals, e.g. \"250.00\".")
    paid_at: datetime = strawberry.field(description="When it was paid, ISO 8601 with an offset. Rules use this time.")
    coupon_codes: Optional[list[str]] = strawberry.field(default=None, description="Codes of the coupons the order used.")


@strawberry.type(description="Result of recordOrder.")
class RecordOrderPayload:
    order: Optional[Order] = strawberry.field(default=None, description="The order as recorded.")
    member: Optional[MemberRef] = strawberry.field(default=None, description="The member after the order (points, tier).")
    duplicate: bool = strawberry.field(default=False, description="True when this externalId had been recorded before; nothing changed.")
    user_errors: list[UserError] = strawberry.field(default_factory=list, description="Why nothing was recorded, if so.")


@strawberry.input(description="A refund of (part of) an order. Idempotent on externalId.")
class RefundOrderInput:
    external_id: str = strawberry.field(description="The shop's refund id; the idempotency key.")
    order_external_id: str = strawberry.field(description="The order refunded.")
    amount: Decimal = strawberry.field(description="Amount refunded; together with earlier refunds at most the order's amount.")
    refunded_at: datetime = strawberry.field(description="When it was refunded, ISO 8601 with an offset.")


@strawberry.type(description="Result of refundOrder.")
class RefundOrderPayload:
    order: Optional[Order] = strawberry.field(default=None, description="The order, with its refunded amount.")
    member: Optional[MemberRef] = strawberry.field(default=None, description="The member after the refund.")
    duplicate: bool = strawberry.field(default=False, description="True when this externalId had been recorded before; nothing changed.")
    user_errors: list[UserError] = strawberry.field(default_factory=list, description="Why nothing was recorded, if so.")


@strawberry.type
class OrderMutations:
    @strawberry.mutation(permission_classes=[ServiceOnly], description=(
        "Report a paid order: points = floor(amount × the multiplier of the tier held before it); an order that "
        "qualifies upgrades the member at once. SERVICE only."))
    async def record_order(self, info: Info, input: RecordOrderInput) -> RecordOrderPayload:
        from .members import member_node

        context = info.context
        program = await context.program()
        request = order_service.OrderInput(
            external_id=input.external_id, member_external_id=input.member_external_id, amount=sent_text(input.amount),
            paid_at=input.paid_at, coupon_codes=tuple(input.coupon_codes or ()))
        try:
            result = await order_service.record_order(context.db, program, request, now=context.now,
                                                      broker=context.broker)
        except Rejected as rejection:
            return RecordOrderPayload(user_errors=user_errors(rejection))
        context.reset_loaders()
        return RecordOrderPayload(order=await order_node(context, result.order_id),
                                  member=await member_node(context, result.member_id), duplicate=result.duplicate)

    @strawberry.mutation(permission_classes=[ServiceOnly], description=(
        "Report a refund: takes back spend and, in proportion, the points the order earned (floored). The tier "
        "stays until the next evaluation. SERVICE only."))
    async def refund_order(self, info: Info, input: RefundOrderInput) -> RefundOrderPayload:
        from .members import member_node

        context = info.context
        program = await context.program()
        request = order_service.RefundInput(external_id=input.external_id, order_external_id=input.order_external_id,
                                            amount=sent_text(input.amount), refunded_at=input.refunded_at)
        try:
            result = await order_service.refund_order(context.db, program, request, now=context.now,
                                                      broker=context.broker)
        except Rejected as rejection:
            return RefundOrderPayload(user_errors=user_errors(rejection))
        context.reset_loaders()
        return RefundOrderPayload(order=await order_node(context, result.order_id),
                                  member=await member_node(context, result.member_id), duplicate=result.duplicate)
