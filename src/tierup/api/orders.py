"""Orders and refunds reported by the shop."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Awaitable, Callable, Iterable, Optional

import strawberry
from strawberry import relay
from strawberry.types import Info

from .checkout import OrderLineInput, line_inputs
from .channels import Channel, channel_value
from ..domain.errors import Rejected
from ..services import orders as order_service
from ..store.models import Report
from .connections import Connection
from .errors import UserError, user_errors
from .loaders import OrderFigures
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
    channel: Channel = strawberry.field(description="Where it was paid.")
    store_code: Optional[str] = strawberry.field(description="The store, for STORE orders.")

    @classmethod
    def of(cls, context, row: Report, currency: str) -> "Order":
        return cls(order_id=row.id, external_id=row.external_id, amount=Money.of_fen(row.amount_fen, currency),
                   paid_at=context.local_time(row.occurred_at), channel=Channel(row.channel),
                   store_code=row.store_code)

    @strawberry.field(description="Points this order earned when it was recorded (before any refund).")
    async def points_earned(self, info: Info) -> int:
        figures = await (await info.context.loaders()).order_figures_by_order_id.load(self.order_id)
        return figures.points_earned

    @strawberry.field(description="Points that paid for it beside the amount (积分抵扣).")
    async def points_used(self, info: Info) -> int:
        return (await (await info.context.loaders()).order_figures_by_order_id.load(self.order_id)).points_used

    @strawberry.field(description="What of the amount was paid from the member's stored value.")
    async def stored_value_used(self, info: Info) -> Money:
        figures = await (await info.context.loaders()).order_figures_by_order_id.load(self.order_id)
        return Money.of_fen(figures.stored_value_fen, self.amount.currency)

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
    await context.check_owner_visible(row)
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
    channel: Optional[Channel] = strawberry.field(default=None, description="Where it was paid; ONLINE when omitted.")
    store_code: Optional[str] = strawberry.field(default=None, description="Required for STORE orders: one of the program's stores (NOT_FOUND otherwise).")
    stored_value_used: Optional[Decimal] = strawberry.field(default=None, description=(
        "Stored value spent on this order (part of `amount`); deducted in the same transaction, "
        "INSUFFICIENT_BALANCE beyond the balance."))
    points_used: Optional[int] = strawberry.field(default=None, description=(
        "Points spent on this order (积分抵扣), beside `amount`; deducted in the same transaction from the "
        "soonest-expiring lots. INSUFFICIENT_POINTS beyond the balance, LIMIT_REACHED beyond the program's cap."))
    lines: Optional[list[OrderLineInput]] = strawberry.field(
        default=None, description="The lines paid for; optional for shops that report totals only.")


@strawberry.type
class _Reported:
    """What recordOrder and refundOrder answer: the order and its member are read only when asked for
    (a shop reporting orders mostly asks for the points earned, or nothing)."""

    duplicate: bool = strawberry.field(default=False, description="True when this externalId had been recorded before; nothing changed.")
    user_errors: list[UserError] = strawberry.field(default_factory=list, description="Why nothing was recorded, if so.")
    order_id: strawberry.Private[Optional[int]] = None
    member_id: strawberry.Private[Optional[int]] = None

    async def _order(self, info: Info) -> Optional[Order]:
        return await order_node(info.context, self.order_id) if self.order_id is not None else None

    async def _member(self, info: Info) -> Optional[MemberRef]:
        from .members import member_node

        return await member_node(info.context, self.member_id) if self.member_id is not None else None


@strawberry.type(description="Result of recordOrder.")
class RecordOrderPayload(_Reported):
    order: Optional[Order] = strawberry.field(resolver=_Reported._order, description="The order as recorded.")
    member: Optional[MemberRef] = strawberry.field(resolver=_Reported._member,
                                                   description="The member after the order (points, tier).")


@strawberry.input(description="Orders reported together (an import, or a shop's batch): up to 500.")
class RecordOrdersInput:
    orders: list[RecordOrderInput] = strawberry.field(description="Recorded in this order, each by the rules of recordOrder.")


@strawberry.type
class _BatchResult:
    """What recordOrders and refundOrders answer for each report: the order is read only when asked for."""

    external_id: str = strawberry.field(description="The report's externalId, as sent.")
    duplicate: bool = strawberry.field(default=False, description="True when this externalId had been recorded before; nothing changed.")
    # At most one problem per input field: the cost of a 500-report batch stays within the query budget.
    user_errors: list[UserError] = strawberry.field(default_factory=list, description="Why this report was not recorded; the others are unaffected.",
                                                    metadata={"list_estimate": 5})
    order_id: strawberry.Private[Optional[int]] = None

    @classmethod
    def of(cls, external_id: str, result):
        """The answer for the report `external_id`: refused (Rejected) or done (the use case's result)."""
        if isinstance(result, Rejected):
            return cls(external_id=external_id, user_errors=user_errors(result))
        return cls(external_id=external_id, duplicate=result.duplicate, order_id=result.order_id,
                   **cls._figures(result))

    @staticmethod
    def _figures(result) -> dict:
        return {}

    async def _order(self, info: Info) -> Optional[Order]:
        return await order_node(info.context, self.order_id) if self.order_id is not None else None


@strawberry.type(description="What became of one order of a recordOrders batch.")
class RecordOrderResult(_BatchResult):
    points_earned: int = strawberry.field(default=0, description="Points this report earned (0 for a duplicate or a rejected order).")
    order: Optional[Order] = strawberry.field(resolver=_BatchResult._order,
                                              description="The order as recorded; null when rejected.")

    @staticmethod
    def _figures(result) -> dict:
        return {"points_earned": result.points}


@strawberry.type(description="Result of recordOrders: one result per order, in input order.")
class RecordOrdersPayload:
    results: list[RecordOrderResult] = strawberry.field(description="One per order sent, in the same order.",
                                                         metadata={"list_estimate": 500})
    recorded: int = strawberry.field(description="Orders recorded now.")
    duplicates: int = strawberry.field(description="Orders recorded before (same externalId and content).")
    rejected: int = strawberry.field(description="Orders refused (each with its userErrors).")


@strawberry.input(description="A refund of (part of) an order. Idempotent on externalId.")
class RefundOrderInput:
    external_id: str = strawberry.field(description="The shop's refund id; the idempotency key.")
    order_external_id: str = strawberry.field(description="The order refunded.")
    amount: Decimal = strawberry.field(description="Amount refunded; together with earlier refunds at most the order's amount.")
    refunded_at: datetime = strawberry.field(description="When it was refunded, ISO 8601 with an offset.")
    channel: Optional[Channel] = strawberry.field(default=None, description="Where it was refunded; ONLINE when omitted.")
    store_code: Optional[str] = strawberry.field(default=None, description="Required for STORE refunds: one of the program's stores.")


@strawberry.type(description="Result of refundOrder.")
class RefundOrderPayload(_Reported):
    order: Optional[Order] = strawberry.field(resolver=_Reported._order,
                                              description="The order, with its refunded amount.")
    member: Optional[MemberRef] = strawberry.field(resolver=_Reported._member, description="The member after the refund.")


@strawberry.input(description="Refunds reported together (a shop's batch): up to 500.")
class RefundOrdersInput:
    refunds: list[RefundOrderInput] = strawberry.field(description="Applied in this order, each by the rules of refundOrder.")


@strawberry.type(description="What became of one refund of a refundOrders batch.")
class RefundOrderResult(_BatchResult):
    points_reversed: int = strawberry.field(default=0, description="Points this refund took back (0 for a duplicate or a rejected refund).")
    order: Optional[Order] = strawberry.field(resolver=_BatchResult._order,
                                              description="The order refunded, with its refunded amount; null when rejected.")

    @staticmethod
    def _figures(result) -> dict:
        return {"points_reversed": result.points_reversed}


@strawberry.type(description="Result of refundOrders: one result per refund, in input order.")
class RefundOrdersPayload:
    results: list[RefundOrderResult] = strawberry.field(description="One per refund sent, in the same order.",
                                                         metadata={"list_estimate": 500})
    refunded: int = strawberry.field(description="Refunds recorded now.")
    duplicates: int = strawberry.field(description="Refunds recorded before (same externalId and content).")
    rejected: int = strawberry.field(description="Refunds refused (each with its userErrors).")


def _refund_input(sent: RefundOrderInput) -> order_service.RefundInput:
    return order_service.RefundInput(external_id=sent.external_id, order_external_id=sent.order_external_id,
                                     amount=sent_text(sent.amount), refunded_at=sent.refunded_at,
                                     channel=channel_value(sent.channel), store_code=sent.store_code)


async def _answers(context, answer: type[_BatchResult], sent: list, run: Callable[[], Awaitable[list]]
                   ) -> tuple[list, int, int, int]:
    """A batch's answers (`run`: its use case), one per report sent, and how many were done now, duplicates and
    rejected. A batch refused whole (too many reports) answers each report with why."""
    try:
        results = await run()
    except Rejected as rejection:
        results = [rejection] * len(sent)
    else:
        context.reset_loaders()
    answers = [answer.of(report.external_id, result) for report, result in zip(sent, results)]
    rejected = sum(1 for a in answers if a.user_errors)
    duplicates = sum(1 for a in answers if a.duplicate)
    return answers, len(answers) - rejected - duplicates, duplicates, rejected


def _order_input(sent: RecordOrderInput) -> order_service.OrderInput:
    return order_service.OrderInput(
        external_id=sent.external_id, member_external_id=sent.member_external_id, amount=sent_text(sent.amount),
        paid_at=sent.paid_at, coupon_codes=tuple(sent.coupon_codes or ()), channel=channel_value(sent.channel),
        store_code=sent.store_code, points_used=sent.points_used or 0,
        stored_value_used=sent_text(sent.stored_value_used) if sent.stored_value_used is not None else None,
        lines=tuple(line_inputs(sent.lines)) if sent.lines is not None else None)


@strawberry.type
class OrderMutations:
    @strawberry.mutation(permission_classes=[ServiceOnly], description=(
        "Report a paid order: points = floor(amount × the multiplier of the tier held before it); an order that "
        "qualifies upgrades the member at once. SERVICE only."))
    async def record_order(self, info: Info, input: RecordOrderInput) -> RecordOrderPayload:
        context = info.context
        program = await context.program()
        try:
            result = await order_service.record_order(context.db, program, _order_input(input), now=context.now,
                                                      broker=context.broker)
        except Rejected as rejection:
            return RecordOrderPayload(user_errors=user_errors(rejection))
        context.reset_loaders()
        if result.row is not None:  # answered as written, not read back: the figures of a new order are known
            loaders = await context.loaders()
            loaders.order_by_id.prime(result.order_id, result.row)
            loaders.order_figures_by_order_id.prime(result.order_id, OrderFigures(
                points_earned=result.points, refunded_fen=0, stored_value_fen=result.stored_value_fen,
                points_used=result.points_used))
        return RecordOrderPayload(order_id=result.order_id, member_id=result.member_id, duplicate=result.duplicate)

    @strawberry.mutation(permission_classes=[ServiceOnly], description=(
        "Report up to 500 paid orders at once, each by the rules of recordOrder and idempotent on its own "
        "externalId. One transaction: a rejected order rejects only itself and the rest commit. SERVICE only."))
    async def record_orders(self, info: Info, input: RecordOrdersInput) -> RecordOrdersPayload:
        context = info.context
        program = await context.program()
        answers, recorded, duplicates, rejected = await _answers(context, RecordOrderResult, input.orders, lambda: (
            order_service.record_orders(context.db, program, [_order_input(o) for o in input.orders], now=context.now,
                                        broker=context.broker)))
        return RecordOrdersPayload(results=answers, recorded=recorded, duplicates=duplicates, rejected=rejected)

    @strawberry.mutation(permission_classes=[ServiceOnly], description=(
        "Report a refund: takes back spend and, in proportion, the points the order earned (floored). The tier "
        "stays until the next evaluation. SERVICE only."))
    async def refund_order(self, info: Info, input: RefundOrderInput) -> RefundOrderPayload:
        context = info.context
        program = await context.program()
        try:
            result = await order_service.refund_order(context.db, program, _refund_input(input), now=context.now,
                                                      broker=context.broker)
        except Rejected as rejection:
            return RefundOrderPayload(user_errors=user_errors(rejection))
        context.reset_loaders()
        return RefundOrderPayload(order_id=result.order_id, member_id=result.member_id, duplicate=result.duplicate)

    @strawberry.mutation(permission_classes=[ServiceOnly], description=(
        "Report up to 500 refunds at once, each by the rules of refundOrder and idempotent on its own externalId, "
        "applied in the order sent (a later refund of the same order counts the earlier ones). One transaction: a "
        "rejected refund rejects only itself and the rest commit. SERVICE only."))
    async def refund_orders(self, info: Info, input: RefundOrdersInput) -> RefundOrdersPayload:
        context = info.context
        program = await context.program()
        answers, refunded, duplicates, rejected = await _answers(context, RefundOrderResult, input.refunds, lambda: (
            order_service.refund_orders(context.db, program, [_refund_input(r) for r in input.refunds],
                                        now=context.now, broker=context.broker)))
        return RefundOrdersPayload(results=answers, refunded=refunded, duplicates=duplicates, rejected=rejected)
