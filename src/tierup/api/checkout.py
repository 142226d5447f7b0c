"""The checkout quote (结算): member price, coupons, points as cash, stored value, what is left to pay."""

from __future__ import annotations

from decimal import Decimal
from typing import Optional

import strawberry

from ..domain.coupons import EXPIRED_AFTER
from ..domain.errors import Rejected
from ..services import checkout as checkout_service
from .channels import Channel, channel_value
from .coupons import Coupon
from .errors import UserError, user_errors
from .money import Money
from .scalars import sent_text


@strawberry.input(description="One line of a basket or of a paid order.")
class OrderLineInput:
    sku: str = strawberry.field(description="The shop's product id.")
    categories: Optional[list[str]] = strawberry.field(
        default=None, description="Product categories as the program names them (e.g. ECO for sustainable products).")
    quantity: int = strawberry.field(default=1, description="Units, 1 to 10,000.")
    unit_price: Decimal = strawberry.field(description="List price of one unit, before member price.")


def line_inputs(lines: Optional[list[OrderLineInput]]) -> list[checkout_service.LineInput]:
    return [checkout_service.LineInput(sku=line.sku, unit_price=sent_text(line.unit_price), quantity=line.quantity,
                                       categories=tuple(line.categories or ())) for line in lines or ()]


@strawberry.input(description="A basket to price for the member, and what they want to pay with.")
class CheckoutQuoteInput:
    lines: list[OrderLineInput] = strawberry.field(description="The basket, at list prices.")
    coupon_codes: Optional[list[str]] = strawberry.field(
        default=None, description="Coupons the member chose; when omitted, the best usable combination is applied.")
    use_points: Optional[int] = strawberry.field(
        default=None, description="Points the member wants to pay with (积分抵扣); refused beyond the program's cap or the balance.")
    use_stored_value: Optional[Decimal] = strawberry.field(
        default=None, description="Stored value the member wants to pay with; refused beyond the balance.")
    channel: Optional[Channel] = strawberry.field(default=None, description="Where the member is buying.")


@strawberry.type(description="What the member would pay for a basket now: member price, then coupons, then points "
                             "as cash, then stored value. No side effect.")
class CheckoutQuote:
    list_amount: Money = strawberry.field(description="The basket at list prices.")
    member_price_discount: Money = strawberry.field(description="What the tier's member price (会员价) takes off.")
    coupon_discount: Money = strawberry.field(description="What the coupons take off the member-priced amount.")
    coupons: list[Coupon] = strawberry.field(description="The coupons applied.")
    points_used: int = strawberry.field(description="Points paying for it (积分抵扣).")
    points_discount: Money = strawberry.field(description="What those points pay.")
    stored_value_used: Money = strawberry.field(description="Stored value paying for it.")
    payable: Money = strawberry.field(description="What is left to pay in cash.")
    free_shipping: bool = strawberry.field(description="Shipping is free: a free-shipping coupon, or a paid membership that has it.")
    points_to_earn: int = strawberry.field(description="Points the order would earn if paid as quoted (multipliers and boosts included).")
    user_errors: list[UserError] = strawberry.field(description="What could not be applied as asked; the quote shows the rest.")


async def checkout_quote(context, member_row, input: CheckoutQuoteInput) -> CheckoutQuote:
    program = await context.program()
    request = checkout_service.QuoteRequest(
        lines=line_inputs(input.lines), coupon_codes=tuple(input.coupon_codes) if input.coupon_codes is not None else None,
        use_points=input.use_points or 0,
        use_stored_value=sent_text(input.use_stored_value) if input.use_stored_value is not None else None,
        channel=channel_value(input.channel))
    quote = await checkout_service.checkout_quote(context.db, program, member_row, request, at=context.now)
    for coupon in await (await context.loaders()).coupons_by_member_id.load(member_row.id):
        context.changes_at(coupon.valid_from)  # a coupon enters and leaves the quote at these moments
        context.changes_at(coupon.valid_until + EXPIRED_AFTER)
    definition = program.definition
    currency = definition.currency

    def money(fen: int) -> Money:
        return Money.of_fen(fen, currency)

    return CheckoutQuote(
        list_amount=money(quote.list_fen), member_price_discount=money(quote.member_discount_fen),
        coupon_discount=money(quote.coupon_discount_fen),
        coupons=[Coupon.of(context, definition, c) for c in quote.coupons], points_used=quote.points_used,
        points_discount=money(quote.points_discount_fen), stored_value_used=money(quote.stored_value_fen),
        payable=money(quote.payable_fen), free_shipping=quote.free_shipping, points_to_earn=quote.points_to_earn,
        user_errors=user_errors(Rejected(*quote.problems)) if quote.problems else [])
