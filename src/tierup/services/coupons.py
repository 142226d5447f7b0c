"""Coupons: issuing them, using them on an order, and quoting them at checkout."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.codes import random_code
from ..domain.coupons import FREE_SHIPPING, amount_before, coupon_status, discount_fen, validity
from ..domain.errors import Checks, ErrorCode, Problem, Rejected
from ..domain.money import format_yuan, to_yuan
from ..domain.program import CouponTemplateRule
from ..store.db import Database, defer_insert, member_changed
from ..store.models import Coupon, Member
from ..store.queries import lock_member
from .programs import ActiveProgram
from .reports import store_report
from .validation import check_id

def new_coupon_code() -> str:
    return "CP" + random_code(10)


async def issue_coupon(session: AsyncSession, program: ActiveProgram, member_id: int, template_code: str,
                       at: datetime, *, source: str, deferred: bool = False) -> Coupon:
    """The coupon, stored with its id; `deferred`: written with the transaction's next statement instead, for a
    caller that needs no id back (the coupon returned has none)."""
    template = program.definition.coupon_template(template_code)
    valid_from, valid_until = validity(template, at, program.definition.zone)
    row = dict(program_id=program.id, member_id=member_id, template_code=template.code, code=new_coupon_code(),
               status="ISSUED", issued_at=at, valid_from=valid_from, valid_until=valid_until, source=source)
    if deferred:
        defer_insert(session, Coupon.__table__, row)
        return Coupon(**row)
    coupon = Coupon(**row)
    session.add(coupon)
    await session.flush()
    return coupon


async def use_coupons_on_order(session: AsyncSession, program: ActiveProgram, member: Member, codes: tuple[str, ...],
                               *, paid_fen: int, paid_at: datetime, order_id: int) -> None:
    """Mark the order's coupons USED, or reject the whole report if any cannot be used.

    At most one discount coupon per order; a free-shipping coupon may come with it.
    """
    rows = {c.code: c for c in (await session.execute(select(Coupon).where(
        Coupon.program_id == program.id, Coupon.code.in_(codes)))).scalars()}
    problems = coupon_problems(program, member.id, codes, rows, at=paid_at,
                               amount_before=lambda template: amount_before(template, paid_fen))
    if problems:
        raise Rejected(*problems)
    used = (await session.execute(
        update(Coupon).where(Coupon.id.in_([rows[c].id for c in codes]), Coupon.status == "ISSUED")
        .values(status="USED", used_at=paid_at, order_id=order_id).returning(Coupon.id))).scalars().all()
    if len(used) != len(codes):  # a concurrent order took one first
        raise Rejected.one(ErrorCode.ALREADY_DONE, "a coupon was used by another order meanwhile", "input", "couponCodes")


def coupon_problems(program: ActiveProgram, member_id: int, codes: tuple[str, ...], rows: dict[str, Coupon], *,
                    at: datetime, amount_before: Callable[[CouponTemplateRule], int]) -> list[Problem]:
    """Why the member cannot use these coupons together at `at` on an order worth `amount_before(template)`
    before each coupon (its minimum spend is judged on that); empty when they can."""
    definition = program.definition
    symbol = definition.currency_symbol
    problems: list[Problem] = []
    discounts = 0
    for index, code in enumerate(codes):
        where = ("input", "couponCodes", str(index))
        coupon = rows.get(code)
        if coupon is None or coupon.member_id != member_id:  # another member's coupon is as unknown as none
            problems.append(Problem(ErrorCode.NOT_FOUND, f"the member has no coupon {code!r}", where))
            continue
        template = definition.coupon_template(coupon.template_code)
        status = coupon_status(coupon.status, coupon.valid_until, at)
        if status == "EXPIRED" or at < coupon.valid_from:
            problems.append(Problem(ErrorCode.EXPIRED, f"coupon {code} is not valid at {at.isoformat()}", where))
        elif status != "ISSUED":
            problems.append(Problem(ErrorCode.ALREADY_DONE, f"coupon {code} is {status.lower()}", where))
        elif template.min_spend_fen and amount_before(template) < template.min_spend_fen:
            problems.append(Problem(ErrorCode.NOT_ELIGIBLE, f"coupon {code} needs a spend of at least "
                                    f"{format_yuan(to_yuan(template.min_spend_fen), symbol)}", where))
        if template.kind != FREE_SHIPPING:
            discounts += 1
    if len(set(codes)) != len(codes):
        problems.append(Problem(ErrorCode.INVALID, "a coupon is listed twice", ("input", "couponCodes")))
    if discounts > 1:
        problems.append(Problem(ErrorCode.INVALID, "at most one discount coupon per order (plus free shipping)",
                                ("input", "couponCodes")))
    return problems


@dataclass(frozen=True)
class Quote:
    coupon: Coupon
    discount_fen: int
    payable_fen: int


def quote_coupons(program: ActiveProgram, coupons: list[Coupon], amount_fen: int, at: datetime) -> list[Quote]:
    """The member's coupons usable on an order of `amount_fen` now, best saving first."""
    quotes = []
    for coupon in coupons:
        if coupon_status(coupon.status, coupon.valid_until, at) != "ISSUED" or at < coupon.valid_from:
            continue
        template = program.definition.coupon_template(coupon.template_code)
        if template.min_spend_fen and amount_fen < template.min_spend_fen:
            continue
        off = discount_fen(template, amount_fen)
        quotes.append(Quote(coupon, off, amount_fen - off))
    return sorted(quotes, key=lambda q: (-q.discount_fen, q.coupon.valid_until, q.coupon.id))


@dataclass(frozen=True)
class GrantResult:
    coupon_id: int
    member_id: int
    duplicate: bool


async def grant_coupon(db: Database, program: ActiveProgram, *, member_id: int, template_code: str, external_id: str,
                       operator: str, now: datetime) -> GrantResult:
    """An operator issues a coupon by hand, idempotent on externalId (a reward for a complaint, say)."""
    checks = Checks()
    check_id(checks, external_id, "input", "externalId")
    checks.raise_any()
    try:
        program.definition.coupon_template(template_code)
    except KeyError:
        raise Rejected.one(ErrorCode.NOT_FOUND, f"no coupon template {template_code!r}", "input", "templateId") from None
    async with db.write() as session:
        member = await lock_member(session, program.id, member_id=member_id)
        stored = await store_report(session, program, "COUPON_GRANT", external_id,
                                    {"member": member.external_id, "template": template_code, "by": operator},
                                    occurred_at=now, now=now, member_id=member.id)
        if stored.duplicate:
            coupon_id = (await session.execute(select(Coupon.id).where(
                Coupon.member_id == member.id, Coupon.source == f"OPERATOR:{stored.report_id}"))).scalar_one()
            return GrantResult(coupon_id, member.id, duplicate=True)
        coupon = await issue_coupon(session, program, member.id, template_code, now,
                                    source=f"OPERATOR:{stored.report_id}")
    return GrantResult(coupon.id, member.id, duplicate=False)


async def void_coupon(db: Database, program: ActiveProgram, coupon_id: int, *, now: datetime) -> int:
    """Withdraw an unused coupon; a used or void one stays as it is (ALREADY_DONE)."""
    async with db.write() as session:
        coupon = (await session.execute(select(Coupon).where(Coupon.id == coupon_id,
                                                             Coupon.program_id == program.id))).scalar_one_or_none()
        if coupon is None:
            raise Rejected.one(ErrorCode.NOT_FOUND, "no such coupon in this program", "input", "couponId")
        member_changed(session, coupon.member_id)
        voided = (await session.execute(update(Coupon).where(Coupon.id == coupon_id, Coupon.status == "ISSUED")
                                        .values(status="VOID").returning(Coupon.id))).scalar_one_or_none()
        if voided is None:
            raise Rejected.one(ErrorCode.ALREADY_DONE, f"coupon {coupon.code} is {coupon.status.lower()}",
                               "input", "couponId")
    return coupon_id
