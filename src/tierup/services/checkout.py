"""The checkout quote (结算): what a member would pay for a basket now, with no side effect.

In this order: the tier's member price on each line, then coupons on the member-priced amount
(their minimum spend judged on it), then points as cash (within the program's cap and the
balance), then stored value (within the balance); what is left is paid in cash. Points are earned
on the money paid, stored value included, not on the points discount.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy import or_, select

from ..domain.boosts import points_with_boosts
from ..domain.checkout import Line, member_price_fen, points_allowed, points_value_fen
from ..domain.program import DEFAULT_CHANNEL
from ..domain.coupons import FREE_SHIPPING, discount_fen
from ..domain.errors import Checks, ErrorCode, Problem
from ..store.db import Database
from ..store.models import Coupon, Member
from .coupons import coupon_problems, quote_coupons
from .ledger import balance_of
from .memberships import active_plan, earning_multiplier
from .programs import ActiveProgram
from .stored_value import spend_problem, stored_value_balance
from .validation import check_amount, check_id, check_text

MAX_LINES = 200
MAX_QUANTITY = 10_000
MAX_CATEGORIES = 20
MAX_COUPONS = 20


@dataclass(frozen=True)
class LineInput:
    sku: str
    unit_price: Decimal | str  # as the client sent it
    quantity: int = 1
    categories: tuple[str, ...] = ()


def check_lines(checks: Checks, program: ActiveProgram, lines: list[LineInput], *parent: str) -> list[Line]:
    """The lines as money, once each holds; every bad field named (…, "lines", "3", "unitPrice")."""
    if not lines:
        checks.fail(ErrorCode.INVALID, "at least one line is required", *parent, "lines")
    if len(lines) > MAX_LINES:
        checks.fail(ErrorCode.INVALID, f"at most {MAX_LINES} lines", *parent, "lines")
        return []
    found = []
    for index, line in enumerate(lines):
        where = (*parent, "lines", str(index))
        check_id(checks, line.sku, *where, "sku")
        unit_fen = check_amount(checks, line.unit_price, program.definition, *where, "unitPrice")
        if not 1 <= line.quantity <= MAX_QUANTITY:
            checks.fail(ErrorCode.INVALID, f"quantity must be between 1 and {MAX_QUANTITY:,}", *where, "quantity")
        if len(line.categories) > MAX_CATEGORIES:
            checks.fail(ErrorCode.INVALID, f"at most {MAX_CATEGORIES} categories", *where, "categories")
        for category in line.categories[:MAX_CATEGORIES]:
            check_text(checks, category, 40, *where, "categories")
        if unit_fen is not None:
            found.append(Line(line.sku, unit_fen, line.quantity, tuple(line.categories)))
    if sum(line.list_fen for line in found) > program.definition.max_order_fen:
        checks.fail(ErrorCode.INVALID, "the lines add up to more than an order may be", *parent, "lines")
    return found


@dataclass(frozen=True)
class QuoteRequest:
    lines: list[LineInput]
    coupon_codes: tuple[str, ...] | None = None  # None: the best usable combination
    use_points: int = 0
    use_stored_value: Decimal | str | None = None
    channel: str = DEFAULT_CHANNEL


@dataclass
class CheckoutQuote:
    list_fen: int = 0
    member_discount_fen: int = 0
    coupon_discount_fen: int = 0
    coupons: list[Coupon] = field(default_factory=list)
    points_used: int = 0
    points_discount_fen: int = 0
    stored_value_fen: int = 0
    payable_fen: int = 0
    free_shipping: bool = False
    points_to_earn: int = 0
    problems: list[Problem] = field(default_factory=list)


async def checkout_quote(db: Database, program: ActiveProgram, member: Member, request: QuoteRequest, *,
                         at: datetime) -> CheckoutQuote:
    """The quote for the member's basket at `at`. Problems (a coupon that cannot be used, points beyond
    the balance or the cap, stored value beyond the balance) come back as `problems`, and the quote
    shows the rest as if the refused part had not been asked for."""
    checks = Checks()
    lines = check_lines(checks, program, request.lines, "input")
    wanted_fen = 0
    if request.use_stored_value is not None:
        wanted_fen = check_amount(checks, request.use_stored_value, program.definition, "input", "useStoredValue") or 0
    if request.use_points < 0:
        checks.fail(ErrorCode.INVALID, "usePoints must not be negative", "input", "usePoints")
    if request.coupon_codes is not None and len(request.coupon_codes) > MAX_COUPONS:
        checks.fail(ErrorCode.INVALID, f"at most {MAX_COUPONS} coupons", "input", "couponCodes")
    if checks.problems:
        return CheckoutQuote(problems=checks.problems)
    async with db.read() as session:
        coupons = list((await session.execute(select(Coupon).where(
            Coupon.member_id == member.id,
            or_(Coupon.status == "ISSUED", Coupon.code.in_(request.coupon_codes or ()))))).scalars())
        points_balance = await balance_of(session, member.id)
        stored_value = await stored_value_balance(session, member.id)
    tier = program.definition.tier(member.tier_code)
    quote = CheckoutQuote(list_fen=sum(line.list_fen for line in lines))
    member_fen = sum(member_price_fen(line, tier.member_price_percent) for line in lines)
    quote.member_discount_fen = quote.list_fen - member_fen
    _apply_coupons(quote, program, member, coupons, request.coupon_codes, member_fen, at)
    left = member_fen - quote.coupon_discount_fen
    _apply_points(quote, program, request.use_points, points_balance, left)
    left -= quote.points_discount_fen
    short = spend_problem(stored_value, wanted_fen, program.definition.currency_symbol, "input", "useStoredValue")
    if short is not None:
        quote.problems.append(short)
    else:
        quote.stored_value_fen = min(wanted_fen, left)
    quote.payable_fen = left - quote.stored_value_fen
    quote.points_to_earn = points_with_boosts(  # on the money paid: cash and stored value alike
        left, earning_multiplier(program.definition, member, at), lines, program.definition.boosts, at=at,
        tz=program.definition.zone, tier=member.tier_code, channel=request.channel).points
    plan = active_plan(program.definition, member, at)
    quote.free_shipping = quote.free_shipping or (plan is not None and plan.free_shipping)
    return quote


def _apply_coupons(quote: CheckoutQuote, program: ActiveProgram, member: Member, coupons: list[Coupon],
                   codes: tuple[str, ...] | None, member_fen: int, at: datetime) -> None:
    definition = program.definition
    if codes is None:  # the best discount the member holds, and free shipping if they hold it
        usable = quote_coupons(program, coupons, member_fen, at)
        discount = [q.coupon for q in usable if definition.coupon_template(q.coupon.template_code).kind != FREE_SHIPPING]
        shipping = [q.coupon for q in usable if definition.coupon_template(q.coupon.template_code).kind == FREE_SHIPPING]
        chosen = discount[:1] + shipping[:1]
    else:
        rows = {c.code: c for c in coupons}
        problems = coupon_problems(program, member.id, codes, rows, at=at, amount_before=lambda template: member_fen)
        if problems:
            quote.problems += problems
            return
        chosen = [rows[code] for code in codes]
    for coupon in chosen:
        template = definition.coupon_template(coupon.template_code)
        quote.coupon_discount_fen += discount_fen(template, member_fen)
        quote.free_shipping = quote.free_shipping or template.kind == FREE_SHIPPING
    quote.coupons = chosen


def _apply_points(quote: CheckoutQuote, program: ActiveProgram, wanted: int, balance: int, left_fen: int) -> None:
    problem = points_problem(program, wanted, balance, left_fen, "input", "usePoints")
    if problem is not None:
        quote.problems.append(problem)
    else:
        quote.points_used = wanted
        quote.points_discount_fen = points_value_fen(wanted, program.definition.point_value)


def points_problem(program: ActiveProgram, wanted: int, balance: int, left_fen: int, *field: str) -> Problem | None:
    """Why `wanted` points may not pay for what is left after coupons (积分抵扣), quoted or reported: beyond
    the balance (INSUFFICIENT_POINTS) or beyond the program's cap (LIMIT_REACHED); None when they may."""
    definition = program.definition
    allowed = points_allowed(left_fen, definition.points_cap_percent, definition.point_value)
    if wanted > balance:
        return Problem(ErrorCode.INSUFFICIENT_POINTS, f"the member has {balance} points", field)
    if wanted > allowed:
        return Problem(ErrorCode.LIMIT_REACHED, f"at most {allowed} points may pay for this order "
                       f"({definition.points_cap_percent}% of what is left after coupons)", field)
    return None
