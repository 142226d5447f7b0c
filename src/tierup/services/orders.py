"""Orders and refunds as reported by the shop: points, and upgrades on the qualifying order."""

from __future__ import annotations

import contextlib
import functools
import json
from dataclasses import dataclass, field
from typing import Iterable, NamedTuple, Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import and_, bindparam, func, literal, select, union_all

from ..domain.boosts import points_with_boosts
from ..domain.checkout import Line, points_value_fen
from ..domain.clock import utc
from ..domain.errors import Checks, ErrorCode, Rejected
from ..domain.money import format_yuan, refunded_share, to_yuan
from ..events import Broker, Event
from ..domain.program import DEFAULT_CHANNEL, TierRule
from ..domain.points import Lot, draw_fifo, drawn_from, points_to_reverse, reversal_within_balance
from ..store.db import (Database, Written, batch_step, execute_core, journal, member_changed, numbering, savepoint,
                        write_members)
from ..store.models import Member, PointsEntry, Report, StoredValueEntry
from ..store.queries import lock_member, lock_members
from .ledger import append_entry, earned_by_order, lots_of
from .programs import ActiveProgram
from .checkout import LineInput, check_lines, points_problem
from .coupons import use_coupons_on_order
from .activity import keep_states
from .growth import GrowthTracker, MemberState, batch_states, publish
from .memberships import earning_multiplier
from .reports import Known, Stored, batch_known_first, known_reports, store_report, with_channel
from .stored_value import append_stored_value, check_spend, stored_value_balance
from .tiers import upgrade_if_qualified
from .webhooks import stage_webhooks
from .validation import check_amount, check_channel, check_id, check_time

MAX_COUPONS_PER_ORDER = 20
MAX_POINTS_USED = 100_000_000


@dataclass(frozen=True)
class OrderInput:
    external_id: str
    member_external_id: str
    amount: Decimal | str  # text: as the client sent it, judged by its form too (validation.check_amount)
    paid_at: datetime
    coupon_codes: tuple[str, ...] = ()
    channel: str = DEFAULT_CHANNEL
    store_code: str | None = None
    stored_value_used: Decimal | str | None = None  # part of amount, paid from the member's stored value
    points_used: int = 0  # 积分抵扣: points that paid beside the amount
    lines: tuple[LineInput, ...] | None = None


class OrderAmounts(NamedTuple):
    paid_fen: int  # all the money paid, stored value included: what points are earned on
    stored_value_fen: int  # of which from stored value
    points_fen: int  # what the points used paid, beside the money
    lines: list[Line] | None


@dataclass(frozen=True)
class OrderResult:
    order_id: int
    member_id: int
    duplicate: bool
    points: int = 0
    upgraded_to: TierRule | None = None  # the tier the order raised its member to
    events: tuple[Event, ...] = ()
    stored: Stored | None = None  # the order as stored (not for a duplicate)
    points_used: int = 0
    stored_value_fen: int = 0

    @property
    def row(self) -> Report | None:
        return self.stored.row if self.stored is not None else None


async def record_order(db: Database, program: ActiveProgram, request: OrderInput, *, now: datetime,
                       broker: Broker | None = None) -> OrderResult:
    """Store the order, earn floor(yuan × multiplier of the tier held before it), upgrade at once if it qualifies."""
    amounts = check_order(program, request, now)
    async with db.write() as session:
        result = await _record(session, program, request, amounts, now)
        await stage_webhooks(session, program, result.events, now=now)
    await publish(broker, list(result.events))
    return result


MAX_ORDERS_PER_BATCH = 500


async def record_orders(db: Database, program: ActiveProgram, requests: Sequence[OrderInput | RefundInput], *,
                        now: datetime, broker: Broker | None = None, announce: bool = True,
                        limit: int = MAX_ORDERS_PER_BATCH, checked: Sequence[OrderAmounts | None] | None = None,
                        evaluate_lapsed: bool = False) -> list[OrderResult | RefundResult | Rejected]:
    """Many orders in one transaction, each by the same rules as one: a rejected order rolls back only
    itself; results come in input order; events go out after the commit (none when not `announce`: an
    import of history tells neither sockets nor webhooks). Refunds among them (an import's history, in time
    order) apply in their place, as refund_orders applies them; a rejection names its report by its place among
    all of them (["input", "orders" or "refunds", index]). `limit`: the most orders the caller may send
    at once (recordOrders' clients; an import sends more). `checked`: each order's amounts (None for a
    refund), when the caller has checked them with check_order, against the same `now` (an import checks its
    whole file first). `evaluate_lapsed`: each member is first evaluated as the daily job would have left it
    at the order's time (an import of history: growth.GrowthTracker), for orders paid with money alone, which
    are never refused once their member is locked: a savepoint rolled back would take the evaluation with it."""
    if len(requests) > limit:
        raise Rejected.one(ErrorCode.INVALID, f"at most {limit} orders per batch", "input", "orders")
    results, events = await batch_known_first(functools.partial(_record_batch, db, program, requests, checked,
                                                                now=now, announce=announce,
                                                                evaluate_lapsed=evaluate_lapsed))
    await publish(broker, events)
    return [result.within("input", _LISTED[type(request)], index) if isinstance(result, Rejected) else result
            for index, (request, result) in enumerate(zip(requests, results))]


async def _record_batch(db: Database, program: ActiveProgram, requests: Sequence[OrderInput | RefundInput],
                        checked: Sequence[OrderAmounts | None] | None, *, now: datetime, announce: bool,
                        evaluate_lapsed: bool, deferred: bool) -> tuple[list[OrderResult | RefundResult | Rejected],
                                                                        list[Event]]:
    """The transaction of a batch of orders, refunds, or both in time order. `deferred`: the orders already
    stored are read at once and the new ones written together (reports.Known), instead of one statement each.
    The batch's members, their states, and what its refunds need of their orders are read once, and each
    report then keeps them up to date."""
    results: list[OrderResult | RefundResult | Rejected] = []
    events: list[Event] = []
    orders = [r for r in requests if isinstance(r, OrderInput)]
    refunding = [r for r in requests if isinstance(r, RefundInput)]
    # With refunds, the batch's entries are numbered (about two a report: an order's points and a reward, a
    # refund's reversal and the points it gives back), and its reports too when they are all deferred (_Refunds).
    numbered = ({PointsEntry.__table__: 2 * len(requests)} | ({Report.__table__: len(requests)} if deferred else {})
                if refunding else {})
    async with db.write() as session, numbering(session, numbered):
        refunds = await _Refunds.read(session, program, refunding)
        refunded = refunds.member_ids()  # of the orders stored before
        members = await lock_members(session, program.id, {r.member_external_id for r in orders}, refunded)
        refunds.members.update((member.id, member) for member in members.values())
        await refunds.read_amounts(session, program, {members[r.member_external_id].id for r in orders
                                                      if r.external_id in refunds.named
                                                      and r.member_external_id in members})
        locked = list(members.values())
        known = await known_reports(session, program, "ORDER", {r.external_id for r in orders}) if deferred else None
        # Only the states of members with an order not stored before: a batch sent again (an import run again
        # after it stopped half-way) has most of its orders answered as repeats, which read no state.
        ordering = {r.member_external_id for r in orders if known is None or r.external_id not in known.reports}
        states = await batch_states(db, session, program, [m for m in locked if m.external_id in ordering
                                                           or m.id in refunded])
        for index, request in enumerate(requests):
            await batch_step(session, index)
            written = len(journal(session))
            try:
                if isinstance(request, RefundInput):
                    result, made = await _refund(session, program, request, now, refunds, states, deferred=deferred,
                                                 announce=announce, evaluate_lapsed=evaluate_lapsed)
                    refunds.wrote(journal(session)[written:])
                else:
                    result = await _batch_order(session, program, request, checked[index] if checked else None, now,
                                                members, states, known, announce=announce,
                                                evaluate_lapsed=evaluate_lapsed)
                    made = list(result.events)
                    refunds.recorded(request.external_id, result, journal(session)[written:])
            except Rejected as rejection:  # refused before it wrote anything, or rolled back
                results.append(rejection)
                continue
            results.append(result)
            events += made if announce else []
        await stage_webhooks(session, program, events, now=now)
        keep_states(session, program, locked, states)
        await write_members(session, locked, MEMBER_CHANGES)
    return results, events


async def _batch_order(session, program: ActiveProgram, request: OrderInput, amounts: OrderAmounts | None,
                       now: datetime, members: dict[str, Member], states: dict[int, MemberState],
                       known: Known | None, *, announce: bool, evaluate_lapsed: bool) -> OrderResult:
    """One order of a batch: in a savepoint of its own when it may be refused once its report is stored."""
    written = len(journal(session))
    stored_before = known is not None and request.external_id in known.reports
    try:
        amounts = amounts if amounts is not None else check_order(program, request, now)
        refusable = _refusable(request, amounts)
        if refusable and evaluate_lapsed:  # a programming error: the batch rolls back whole
            raise ValueError("evaluate_lapsed takes orders paid with money alone")
        async with savepoint(session) if refusable else contextlib.nullcontext():
            return await _record(session, program, request, amounts, now, members, states, known,
                                 announce=announce, evaluate_lapsed=evaluate_lapsed)
    except Rejected as rejection:
        if len(journal(session)) != written:  # stored without a savepoint: what it wrote would stay
            raise RuntimeError("an order was refused after its report was stored") from rejection
        # Refused before writing, or rolled back: its member reads again from the database when next needed.
        members.pop(request.member_external_id, None)
        if known is not None and not stored_before:
            known.forget(request.external_id)
        raise


# What an order can change on its member (the tier it reaches, the growth value its rewards give, and an
# import's evaluation before it the qualification period): a batch's members are written with all of them, in
# one statement.
MEMBER_CHANGES = ("tier_code", "tier_since", "tier_valid_until", "growth_value", "qualification_started_at")


def _refusable(request: OrderInput, amounts: OrderAmounts) -> bool:
    """Whether the order can still be refused once its report is stored: only what it paid with besides
    money (coupons, points, stored value) is judged after that. Everything else is refused before
    anything is written, so such an order needs no savepoint of its own in a batch (two statements
    fewer each)."""
    return bool(request.coupon_codes or request.points_used or amounts.stored_value_fen)


def check_order(program: ActiveProgram, request: OrderInput, now: datetime) -> OrderAmounts:
    """The order's amounts in fen, once its fields hold; Rejected naming every field that does not."""
    checks = Checks()
    check_id(checks, request.external_id, "input", "externalId")
    check_id(checks, request.member_external_id, "input", "memberExternalId")
    amount_fen = check_amount(checks, request.amount, program.definition, "input", "amount")
    check_time(checks, request.paid_at, now, "input", "paidAt")
    if len(request.coupon_codes) > MAX_COUPONS_PER_ORDER:
        checks.fail(ErrorCode.INVALID, f"at most {MAX_COUPONS_PER_ORDER} coupons per order", "input", "couponCodes")
    check_channel(checks, program.definition, request.channel, request.store_code, "input")
    stored_value_fen = 0
    if request.stored_value_used is not None:
        stored_value_fen = check_amount(checks, request.stored_value_used, program.definition, "input",
                                        "storedValueUsed") or 0
        if amount_fen is not None and stored_value_fen > amount_fen:
            checks.fail(ErrorCode.INVALID, "storedValueUsed is part of amount and cannot exceed it",
                        "input", "storedValueUsed")
    if not 0 <= request.points_used <= MAX_POINTS_USED:
        checks.fail(ErrorCode.INVALID, f"pointsUsed must be between 0 and {MAX_POINTS_USED:,}", "input", "pointsUsed")
    lines = check_lines(checks, program, list(request.lines), "input") if request.lines is not None else None
    checks.raise_any()
    return OrderAmounts(amount_fen, stored_value_fen, points_value_fen(request.points_used,
                                                                       program.definition.point_value), lines)


def check_refund(program: ActiveProgram, request: RefundInput, now: datetime) -> int:
    """The refund's amount in fen, once its fields hold; Rejected naming every field that does not."""
    checks = Checks()
    check_id(checks, request.external_id, "input", "externalId")
    check_id(checks, request.order_external_id, "input", "orderExternalId")
    refund_fen = check_amount(checks, request.amount, program.definition, "input", "amount")
    check_time(checks, request.refunded_at, now, "input", "refundedAt")
    check_channel(checks, program.definition, request.channel, request.store_code, "input")
    checks.raise_any()
    return refund_fen


async def _record(session, program: ActiveProgram, request: OrderInput, amounts: OrderAmounts, now: datetime,
                  members: dict[str, Member] | None = None, states: dict[int, MemberState] | None = None,
                  known: Known | None = None, *, announce: bool = True, evaluate_lapsed: bool = False) -> OrderResult:
    """One order; `members`, `states` and `known`, from a batch, hold the members locked, their states so far
    and the batch's reports."""
    amount_fen = amounts.paid_fen
    # The fingerprint keeps the offset the shop sent; the rules take the instant in UTC, like every time the
    # member's state reads back, so that comparing the two (hundreds per order) never asks a zone its offset.
    paid_at = utc(request.paid_at)
    payload = with_channel({"member": request.member_external_id, "amount": amount_fen, "paidAt": request.paid_at,
                            "coupons": sorted(request.coupon_codes)}, request.channel, request.store_code)
    # Named only when used, so that reports sent before these existed keep their fingerprint.
    if amounts.stored_value_fen:
        payload["storedValueUsed"] = amounts.stored_value_fen
    if request.points_used:
        payload["pointsUsed"] = request.points_used
    if amounts.lines is not None:
        payload["lines"] = [[line.sku, line.unit_fen, line.quantity, list(line.categories)] for line in amounts.lines]
    member = members.get(request.member_external_id) if members is not None else None
    if member is None:
        member = await lock_member(session, program.id, external_id=request.member_external_id,
                                   field=("input", "memberExternalId"))
    stored = await store_report(session, program, "ORDER", request.external_id, payload,
                                occurred_at=paid_at, now=now, known=known, member_id=member.id,
                                amount_fen=amount_fen,
                                channel=request.channel, store_code=request.store_code,
                                points=request.points_used or None,
                                lines=json.dumps(payload["lines"], ensure_ascii=False) if "lines" in payload else None)
    if stored.duplicate:  # changes nothing: the member's version, and what was kept for it, hold
        return OrderResult(stored.report_id, member.id, duplicate=True)
    member_changed(session, member.id)
    if member.referred_by_id is not None and states is not None:
        # Any order of a referred member may be their earliest, which the referrer's state holds (the referred
        # first orders): in a batch, that state is read again when next needed.
        states.pop(member.referred_by_id, None)
    growth = GrowthTracker(session, program, states, announce=announce, evaluate_lapsed=evaluate_lapsed)
    before = await growth.watch(member, paid_at, exclude_report=stored.report_id)
    if (member.referred_by_id is not None and not growth.activity_before(member.id).orders
            and not await _ordered_before(session, member.id, stored.report_id)):
        # A referred member's first order moves the referrer's tasks (REFER_A_FRIEND) and earns them the
        # program's referral points (推荐有礼).
        referrer = await lock_member(session, program.id, member_id=member.referred_by_id)
        referrer_before = await growth.watch(referrer, paid_at, exclude_report=stored.report_id)
        if program.definition.referrer_points:
            await append_entry(session, program, referrer.id, "EARN", program.definition.referrer_points,
                               f"Referral: first order of {member.external_id}", source="REFERRAL",
                               occurred_at=paid_at, report_id=stored.report_id,
                               balance=referrer_before.balance)
    if request.coupon_codes:  # their minimum spend is judged before points paid
        await use_coupons_on_order(session, program, member, request.coupon_codes,
                                   paid_fen=amount_fen + amounts.points_fen, paid_at=paid_at,
                                   order_id=stored.report_id)
    paid_with, balance = await _pay_with(session, program, member, request, amounts, stored.report_id, before.balance,
                                         paid_at=paid_at)
    definition = program.definition
    multiplier = earning_multiplier(definition, member, paid_at)
    earning = points_with_boosts(amount_fen, multiplier, amounts.lines, definition.boosts, at=paid_at,
                                 tz=definition.zone, tier=member.tier_code, channel=request.channel)
    points = earning.points
    if points:
        await append_entry(session, program, member.id, "EARN", points,
                           f"Order {request.external_id} at {multiplier}×{earning.named()}", source="ORDER",
                           occurred_at=paid_at, report_id=stored.report_id, balance=balance)
    upgraded_to = await upgrade_if_qualified(session, program, member, at=paid_at,
                                             report_id=stored.report_id, reason="ORDER",
                                             orders=growth.known_orders(member.id, paid_at))
    await growth.settle(paid_at, measured=member.id)
    return OrderResult(stored.report_id, member.id, duplicate=False, points=points, upgraded_to=upgraded_to,
                       events=tuple(growth.events + paid_with), stored=stored, points_used=request.points_used,
                       stored_value_fen=amounts.stored_value_fen)


async def _ordered_before(session, member_id: int, report_id: int) -> bool:
    """Whether the member has an order besides this one: the state's orders leave out those refunded in full,
    and an order after them is no first order (read only for a referred member whose state shows none)."""
    return (await execute_core(session, _ANOTHER_ORDER, {"member_id": member_id, "report_id": report_id})
            ).first() is not None


_ANOTHER_ORDER = select(Report.id).where(Report.member_id == bindparam("member_id"), Report.kind == "ORDER",
                                         Report.id != bindparam("report_id")).limit(1)


async def _pay_with(session, program: ActiveProgram, member: Member, request: OrderInput, amounts: OrderAmounts,
                    report_id: int, points_balance: int, *, paid_at: datetime) -> tuple[list[Event], int]:
    """Take the points and the stored value the order was paid with, or reject it whole; returns the
    stored-value events and the points balance after. `paid_at`: the order's time in UTC, as its rules take it."""
    definition = program.definition
    events: list[Event] = []
    if request.points_used:
        # What was left after coupons: the money paid and what the points paid.
        problem = points_problem(program, request.points_used, points_balance, amounts.paid_fen + amounts.points_fen,
                                 "input", "pointsUsed")
        if problem is not None:
            raise Rejected(problem)
        await append_entry(session, program, member.id, "SPEND", -request.points_used,
                           f"Order {request.external_id} paid with points", source="ORDER",
                           occurred_at=paid_at, report_id=report_id, balance=points_balance)
        points_balance -= request.points_used
    if amounts.stored_value_fen:
        balance = await stored_value_balance(session, member.id)
        check_spend(balance, amounts.stored_value_fen, definition.currency_symbol, "input", "storedValueUsed")
        events.append(append_stored_value(session, program, member.id, "SPEND", -amounts.stored_value_fen,
                                          f"Order {request.external_id}", occurred_at=paid_at,
                                          balance_fen=balance, report_id=report_id))
    return events, points_balance


@dataclass(frozen=True)
class RefundInput:
    external_id: str
    order_external_id: str
    amount: Decimal | str  # as OrderInput.amount
    refunded_at: datetime
    channel: str = DEFAULT_CHANNEL
    store_code: str | None = None


_LISTED = {OrderInput: "orders", RefundInput: "refunds"}  # where a batch's rejection names its report


@dataclass(frozen=True)
class RefundResult:
    order_id: int
    member_id: int
    duplicate: bool
    points_reversed: int = 0
    shortfall: int = 0


async def refund_order(db: Database, program: ActiveProgram, request: RefundInput, *, now: datetime,
                       broker: Broker | None = None, announce: bool = True) -> RefundResult:
    """Reverse spend and points in proportion (floored). The tier stays until the next evaluation."""
    (result,), events = await batch_known_first(functools.partial(_record_batch, db, program, [request], None,
                                                                  now=now, announce=announce, evaluate_lapsed=False))
    await publish(broker, events)
    if isinstance(result, Rejected):
        raise result
    return result


MAX_REFUNDS_PER_BATCH = 500


async def refund_orders(db: Database, program: ActiveProgram, requests: list[RefundInput], *, now: datetime,
                        broker: Broker | None = None, announce: bool = True,
                        limit: int = MAX_REFUNDS_PER_BATCH) -> list[RefundResult | Rejected]:
    """Many refunds in one transaction, in order, each by the rules of one (refundOrders): a rejected refund is
    refused before it writes anything, so it rejects only itself; results come in input order; events go out
    after the commit (none when not `announce`). `limit`: the most refunds the caller may send at once."""
    if len(requests) > limit:
        raise Rejected.one(ErrorCode.INVALID, f"at most {limit} refunds per batch", "input", "refunds")
    return await record_orders(db, program, requests, now=now, broker=broker, announce=announce, limit=limit)


async def _refund(session, program: ActiveProgram, request: RefundInput, now: datetime, refunds: _Refunds,
                  states: dict[int, MemberState], *, deferred: bool, announce: bool,
                  evaluate_lapsed: bool) -> tuple[RefundResult, list[Event]]:
    """One refund of a batch, every check made before it writes; returns it and its events. `deferred`: its
    report is deferred with the batch's rows."""
    refund_fen = check_refund(program, request, now)
    order = refunds.orders.get(request.order_external_id)
    if order is None:
        raise Rejected.one(ErrorCode.NOT_FOUND, f"no order {request.order_external_id!r} in this program",
                           "input", "orderExternalId")
    member = refunds.members[order.member_id]
    payload = with_channel({"order": request.order_external_id, "amount": refund_fen,
                            "refundedAt": request.refunded_at}, request.channel, request.store_code)
    known = refunds.known
    if request.external_id not in known.reports:  # a new refund (else a repeat, or a clash store_report names)
        check_refund_of(program, request, refund_fen, paid_at=order.paid_at,
                        left_fen=order.amount_fen - order.refunded_fen)
    stored = await store_report(session, program, "REFUND", request.external_id, payload,
                                occurred_at=request.refunded_at, now=now,
                                known=known if deferred else None,
                                member_id=member.id, order_id=order.id,
                                amount_fen=refund_fen, channel=request.channel, store_code=request.store_code)
    if stored.duplicate:
        return RefundResult(order.id, member.id, duplicate=True), []
    member_changed(session, member.id)
    known.reports[request.external_id] = (stored.report_id, stored.values["payload_hash"])  # a repeat may follow
    if member.referred_by_id is not None:
        # A refunded first order no longer counts for the referrer, whose state is read again when next needed.
        states.pop(member.referred_by_id, None)
    growth = GrowthTracker(session, program, states, announce=announce, evaluate_lapsed=evaluate_lapsed)
    before = await growth.watch(member, request.refunded_at, exclude_report=stored.report_id)
    refunded_before, order.refunded_fen = order.refunded_fen, order.refunded_fen + refund_fen
    growth.refunded(member.id, stored.report_id, order.paid_at, order.amount_fen - refunded_before, refund_fen,
                    request.refunded_at)
    taken, shortfall = await _points_back(session, program, request, order, refunded_before, refund_fen,
                                          stored.report_id, before.balance, refunds.lots)
    returned = await _stored_value_back(session, program, request, order, refunded_before, refund_fen,
                                        stored.report_id)
    await growth.settle(request.refunded_at)
    return (RefundResult(order.id, member.id, duplicate=False, points_reversed=taken, shortfall=shortfall),
            growth.events + returned)


async def _points_back(session, program: ActiveProgram, request: RefundInput, order: Refunded, refunded_before: int,
                       refund_fen: int, refund_id: int, balance: int, lots: dict[int, list[Lot]]) -> tuple[int, int]:
    """The refunded share of the points that paid for the order comes back as a new lot, and the refunded share
    of what it earned is taken back, within the balance (`balance`: before the refund), from the order's own
    lot first, then as spends draw (`lots`: the member's open lots, when known, kept up to date); returns the
    points taken and the shortfall."""
    member_id = order.member_id
    back = refunded_share(order.points_spent, order.amount_fen, refunded_before, refund_fen)
    if back:
        await append_entry(session, program, member_id, "RETURN", back, f"Refund {request.external_id} of order "
                           f"{request.order_external_id}: points that paid for it", source="REFUND",
                           occurred_at=request.refunded_at, report_id=refund_id, balance=balance)
        balance += back
        lots.pop(member_id, None)  # the new lot is among them: read them again
    reverse = points_to_reverse(order.earned, order.amount_fen, refunded_before, refund_fen)
    taken, shortfall = reversal_within_balance(reverse, balance)
    if reverse:
        reason = f"Refund {request.external_id} of order {request.order_external_id}"
        if shortfall:
            reason += f" ({shortfall} points already spent)"
        held = lots.pop(member_id, None)
        draws = draw_fifo(held, taken, first=order.lot_id) if held is not None else None
        await append_entry(session, program, member_id, "REVERSE", -taken, reason, source="REFUND",
                           occurred_at=request.refunded_at, report_id=refund_id, shortfall=shortfall,
                           balance=balance, draws=draws, draw_first=order.lot_id)
        if held is not None:
            lots[member_id] = drawn_from(held, draws)
    return taken, shortfall


async def _stored_value_back(session, program: ActiveProgram, request: RefundInput, order: Refunded,
                             refunded_before: int, refund_fen: int, refund_id: int) -> list[Event]:
    """The refunded share of what the order paid from stored value goes back to it."""
    back = refunded_share(order.stored_value_spent, order.amount_fen, refunded_before, refund_fen)
    if not back:
        return []
    return [append_stored_value(session, program, order.member_id, "REFUND", back, f"Refund {request.external_id}",
                                occurred_at=request.refunded_at,
                                balance_fen=await stored_value_balance(session, order.member_id),
                                report_id=refund_id)]


def check_refund_of(program: ActiveProgram, request: RefundInput, refund_fen: int, *, paid_at: datetime,
                    left_fen: int) -> None:
    """A refund comes after its order was paid (at `paid_at`) and takes no more than is left to refund on it."""
    order = request.order_external_id
    if request.refunded_at < paid_at:
        raise Rejected.one(ErrorCode.INVALID, f"refundedAt is before order {order!r} was paid", "input", "refundedAt")
    if refund_fen > left_fen:
        left = format_yuan(to_yuan(left_fen), program.definition.currency_symbol)
        raise Rejected.one(ErrorCode.INVALID, f"refund exceeds what is left to refund on order {order!r} ({left})",
                           "input", "amount")


@dataclass
class Refunded:
    """An order as its refunds need it: what it was paid and earned, its first lot (a refund takes its points
    back from it first) and what has been refunded of it so far, which each refund keeps up to date."""

    id: int
    member_id: int
    paid_at: datetime
    amount_fen: int
    refunded_fen: int = 0
    earned: int = 0  # the points it earned its member (not a referrer's)
    lot_id: int | None = None  # the first of those lots
    points_spent: int = 0  # the points that paid for it
    stored_value_spent: int = 0  # in fen

    @classmethod
    async def find(cls, session, program: ActiveProgram, external_ids: set[str]) -> dict[str, Refunded]:
        """The orders named, by externalId, before their members are locked."""
        return {name: cls(*row) for name, *row in await execute_core(
            session, _ORDERS, {"program_id": program.id, "external_ids": sorted(external_ids)})}

    @classmethod
    def recorded(cls, result: OrderResult, written: list[Written]) -> Refunded:
        """An order as the batch recording it wrote it (`written`, its ledger entries numbered): what the
        statements below would read of it."""
        earned = next((w for w in written if w.what == "ENTRY" and w.kind == "EARN" and w.source == "ORDER"
                       and w.member_id == result.member_id), None)
        return cls(result.order_id, result.member_id, result.stored.values["occurred_at"],
                   result.stored.values["amount_fen"], earned=earned.amount if earned is not None else 0,
                   lot_id=earned.entry_id if earned is not None else None, points_spent=result.points_used,
                   stored_value_spent=result.stored_value_fen)

    @staticmethod
    async def read_amounts(session, orders: Iterable[Refunded]) -> None:
        """What has been refunded, earned and spent of each order, read once their members are locked (two
        refunds of one order never both take what is left of it): three statements whatever their number."""
        by_id = {order.id: order for order in orders}
        if not by_id:
            return
        ids = {"ids": sorted(by_id)}
        # int(): PostgreSQL sums a BIGINT column as NUMERIC.
        for order_id, refunded in await execute_core(session, _REFUNDED, ids):
            by_id[order_id].refunded_fen = int(refunded)
        for order_id, earned, lot_id in await execute_core(session, _EARNED, ids):
            by_id[order_id].earned, by_id[order_id].lot_id = int(earned), lot_id
        for order_id, ledger, spent in await execute_core(session, _SPENT, ids):
            setattr(by_id[order_id], f"{ledger}_spent", -int(spent))


@dataclass
class _Refunds:
    """What a batch's refunds need, kept up to date as the batch goes: their orders by externalId, the batch's
    members by id, the open lots of their members while known, and the refunds stored before the batch (Known).

    The refunds apply in memory: the batch's ledger entries are numbered (store.db.numbering), so an
    order the batch records (an import's history, in time order) is known to the refunds after it as it was
    written (Refunded.recorded), the lots the batch's orders earn join their members' known lots, and a
    refund's report and reversal are deferred with the batch's rows. Such a refund costs no statement, where
    one written at once would write everything the batch deferred before it and read back its ids."""

    orders: dict[str, Refunded] = field(default_factory=dict)
    members: dict[int, Member] = field(default_factory=dict)
    lots: dict[int, list[Lot]] = field(default_factory=dict)
    known: Known | None = None
    named: set[str] = field(default_factory=set)  # the orders the refunds name
    external_ids: set[str] = field(default_factory=set)  # the refunds'

    @classmethod
    async def read(cls, session, program: ActiveProgram, requests: list[RefundInput]) -> _Refunds:
        """The stored orders the refunds name (an order never changes); their members are then locked with the
        batch's, and read_amounts reads the rest."""
        if not requests:
            return cls()
        named = {r.order_external_id for r in requests}
        return cls(await Refunded.find(session, program, named), named=named,
                   external_ids={r.external_id for r in requests})

    def member_ids(self) -> set[int]:
        return {order.member_id for order in self.orders.values()}

    async def read_amounts(self, session, program: ActiveProgram, recorded_by: set[int]) -> None:
        """Under the members' locks: what the stored orders' refunds need, the refunds stored before (one that
        another transaction stored while this one waited for the lock is a repeat), and the open lots of the
        orders' members and of `recorded_by`, the members of the orders the batch records that its refunds
        name."""
        if not self.external_ids:
            return
        await Refunded.read_amounts(session, self.orders.values())
        self.known = await known_reports(session, program, "REFUND", self.external_ids)
        members = self.member_ids() | recorded_by
        if members:
            self.lots = await lots_of(session, sorted(members))

    def recorded(self, external_id: str, result: OrderResult, written: list[Written]) -> None:
        """An order the batch recorded, which wrote `written`."""
        if not self.named:  # no refund in the batch
            return
        if external_id in self.named and not result.duplicate:
            self.orders[external_id] = Refunded.recorded(result, written)
        self.wrote(written)

    def wrote(self, written: list[Written]) -> None:
        """After a report: a lot it numbered joins its member's known lots; a member with a lot not numbered,
        or with points drawn other than by a refund's reversal (which keeps the lots up to date itself), has
        their lots read again when needed."""
        for w in written:
            if w.what != "ENTRY" or w.amount == 0 or (w.amount < 0 and w.source == "REFUND"):
                continue
            lots = self.lots.get(w.member_id)
            if lots is not None and w.amount > 0 and w.entry_id is not None:
                lots.append(Lot(w.entry_id, w.amount, w.expires_at))
            elif lots is not None:
                del self.lots[w.member_id]


_ORDERS = select(Report.external_id, Report.id, Report.member_id, Report.occurred_at, Report.amount_fen).where(
    Report.program_id == bindparam("program_id"), Report.kind == "ORDER",
    Report.external_id.in_(bindparam("external_ids", expanding=True)))
_REFUNDED = select(Report.order_id, func.sum(Report.amount_fen)).where(
    Report.kind == "REFUND", Report.order_id.in_(bindparam("ids", expanding=True))).group_by(Report.order_id)
_EARNED = (select(Report.id, func.sum(PointsEntry.amount), func.min(PointsEntry.id))
           .join(PointsEntry, and_(*earned_by_order(Report.id, Report.member_id)))
           .where(Report.id.in_(bindparam("ids", expanding=True))).group_by(Report.id))
_SPENT = union_all(*(select(entries.report_id, literal(ledger), func.sum(amount)).where(
    entries.kind == "SPEND", entries.report_id.in_(bindparam("ids", expanding=True))).group_by(entries.report_id)
    for ledger, entries, amount in (("points", PointsEntry, PointsEntry.amount),
                                    ("stored_value", StoredValueEntry, StoredValueEntry.amount_fen))))
