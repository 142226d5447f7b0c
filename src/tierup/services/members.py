"""Enrolment (入会): a member joins at the entry tier with the welcome bonus."""

from __future__ import annotations

import contextlib
import functools
import re
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import make_transient_to_detached

from ..domain.clock import local_date
from ..domain.codes import random_code
from ..domain.errors import Checks, ErrorCode, Rejected
from ..domain.program import DEFAULT_CHANNEL
from ..store.db import Database, defer_insert, journal, reserve_id, savepoint
from ..store.models import Member, Report, TierChange
from ..events import Broker, Event
from .coupons import issue_coupon
from .activity import MemberState
from .growth import GrowthTracker, publish
from .ledger import append_entry
from .programs import ActiveProgram
from .reports import Known, batch_known_first, known_reports, store_report, with_channel
from .validation import check_birthday, check_channel, check_id, check_text, check_time
from .webhooks import stage_webhooks

REFERRAL_CODE_LENGTH = 8
PHONE = re.compile(r"^\+?[0-9][0-9 -]{4,30}$")


def new_referral_code() -> str:
    return random_code(REFERRAL_CODE_LENGTH)


@dataclass(frozen=True)
class EnrolmentInput:
    external_id: str
    display_name: str | None = None
    birthday: date | None = None
    phone: str | None = None
    referral_code: str | None = None
    joined_at: datetime | None = None
    channel: str = DEFAULT_CHANNEL
    store_code: str | None = None


@dataclass(frozen=True)
class EnrolmentResult:
    member_id: int
    duplicate: bool
    referred_by_id: int | None = None


def check_enrolment(request: EnrolmentInput, program: ActiveProgram, now: datetime) -> None:
    checks = Checks()
    check_id(checks, request.external_id, "input", "externalId")
    check_text(checks, request.display_name, 200, "input", "displayName")
    if request.phone is not None and not PHONE.fullmatch(request.phone):
        checks.fail(ErrorCode.INVALID, "phone must be digits, optionally with + and separators", "input", "phone")
    check_birthday(checks, request.birthday, local_date(now, program.definition.zone), "input", "birthday")
    check_time(checks, request.joined_at, now, "input", "joinedAt")
    if request.referral_code is not None and len(request.referral_code) > 40:
        checks.fail(ErrorCode.INVALID, "referralCode is longer than 40 characters", "input", "referralCode")
    check_channel(checks, program.definition, request.channel, request.store_code, "input")
    checks.raise_any()


async def enroll_member(db: Database, program: ActiveProgram, request: EnrolmentInput, *, now: datetime,
                        broker: Broker | None = None) -> EnrolmentResult:
    check_enrolment(request, program, now)
    async with db.write() as session:
        result, events = await _enroll(session, program, request, now)
        await stage_webhooks(session, program, events, now=now)
    await publish(broker, events)
    return result


async def is_enrolled(db: Database, program: ActiveProgram, external_id: str) -> bool:
    async with db.read() as session:
        return (await session.execute(select(Member.id).where(
            Member.program_id == program.id, Member.external_id == external_id))).first() is not None


MAX_MEMBERS_PER_BATCH = 500


async def enroll_members(db: Database, program: ActiveProgram, requests: list[EnrolmentInput], *, now: datetime,
                         broker: Broker | None = None, announce: bool = True,
                         limit: int = MAX_MEMBERS_PER_BATCH) -> list[EnrolmentResult | Rejected]:
    """Many enrolments in one transaction (an import), in order and each by the rules of one: a refused one
    changes nothing; results come in input order; events go out after the commit (none when not `announce`).
    `limit`: the most enrolments the caller may send at once."""
    if len(requests) > limit:
        raise Rejected.one(ErrorCode.INVALID, f"at most {limit} enrolments per batch", "input", "members")
    results, events = await batch_known_first(functools.partial(_enroll_batch, db, program, requests, now=now,
                                                                announce=announce))
    await publish(broker, events)
    return results


async def _enroll_batch(db: Database, program: ActiveProgram, requests: list[EnrolmentInput], *, now: datetime,
                        announce: bool, deferred: bool) -> tuple[list[EnrolmentResult | Rejected], list[Event]]:
    """enroll_members' transaction. `deferred`: the enrolments already stored are read at once, and the new
    members, their reports and what they are given are written together (reports.Known)."""
    results: list[EnrolmentResult | Rejected] = []
    events: list[Event] = []
    async with db.write() as session:
        known = (await known_reports(session, program, "ENROLMENT", {r.external_id for r in requests})
                 if deferred else None)
        for index, request in enumerate(requests):
            written = len(journal(session))
            stored_before = known is not None and request.external_id in known.reports
            try:
                check_enrolment(request, program, now)
                # Only a referral code is judged after the report is stored: without one, an enrolment is
                # refused before anything is written and needs no savepoint of its own (two statements fewer).
                async with savepoint(session) if request.referral_code is not None else contextlib.nullcontext():
                    result, made = await _enroll(session, program, request, now, announce=announce, known=known)
            except Rejected as rejection:
                if len(journal(session)) != written and request.referral_code is None:
                    raise RuntimeError("an enrolment was refused after its report was stored") from rejection
                if known is not None and not stored_before:
                    known.forget(request.external_id)
                results.append(rejection.within("input", "members", index))
                continue
            results.append(result)
            events += made if announce else []
        await stage_webhooks(session, program, events, now=now)
    return results, events


async def _enroll(session, program: ActiveProgram, request: EnrolmentInput, now: datetime, *, announce: bool = True,
                  known: Known | None = None) -> tuple[EnrolmentResult, list[Event]]:
    """One enrolment in the caller's transaction: the member at the entry tier, the welcome bonus and coupon,
    the referral's coupon, and what the growth tree makes of them. With `known` (a batch) the member's row is
    deferred like the report naming it, with an id reserved for it."""
    joined_at = request.joined_at or now
    definition = program.definition
    payload = with_channel({"displayName": request.display_name, "birthday": request.birthday, "phone": request.phone,
                            "referralCode": request.referral_code, "joinedAt": request.joined_at},
                           request.channel, request.store_code)
    new_in_batch = known is not None and request.external_id not in known.reports
    # A batch knows a repeat without a statement, so it looks up the referrer first and names the member in the
    # report it defers; one at a time, the report is stored first, and a repeat is told by its UNIQUE key.
    referrer_id = await _referrer(session, program, request) if new_in_batch else None
    member_id = await reserve_id(session, Member.__table__, known.remaining) if new_in_batch else None
    stored = await store_report(session, program, "ENROLMENT", request.external_id, payload,
                                occurred_at=joined_at, now=now, known=known, member_id=member_id,
                                channel=request.channel, store_code=request.store_code)
    if stored.duplicate:
        member_id = (await session.execute(select(Member.id).where(
            Member.program_id == program.id, Member.external_id == request.external_id))).scalar_one()
        return EnrolmentResult(member_id, duplicate=True), []
    if not new_in_batch:
        referrer_id = await _referrer(session, program, request)
    entry = definition.entry_tier
    row = dict(id=member_id, program_id=program.id, external_id=request.external_id, display_name=request.display_name,
               birthday=request.birthday, phone=request.phone, referral_code=new_referral_code(),
               referred_by_id=referrer_id, joined_at=joined_at, tier_code=entry.code, tier_since=joined_at,
               tier_valid_until=None, qualification_started_at=None, growth_value=0, version=0,
               enrolled_via=request.channel, membership_plan=None, membership_started_at=None, membership_until=None)
    member = Member(**row)
    if new_in_batch:
        # Written with the batch's rows (before the rows naming it); the object stands for the row from now on,
        # so what the growth tree changes on it is written as an update.
        defer_insert(session, Member.__table__, row)
        make_transient_to_detached(member)
        session.add(member)
    else:  # its id is the database's
        session.add(member)
        await session.flush()
        await session.execute(update(Report).where(Report.id == stored.report_id).values(member_id=member.id))
    # A new member has done nothing yet: the state before is empty, not read.
    growth = GrowthTracker(session, program, {member.id: MemberState()}, announce=announce)
    await growth.watch(member, joined_at)
    defer_insert(session, TierChange.__table__, dict(member_id=member.id, from_tier=None, to_tier=entry.code,
                                                     changed_at=joined_at, valid_until=None, reason="ENROLMENT",
                                                     report_id=stored.report_id))
    if definition.welcome_points:
        await append_entry(session, program, member.id, "EARN", definition.welcome_points, "Welcome bonus",
                           source="WELCOME", occurred_at=joined_at, report_id=stored.report_id, balance=0)
    if definition.welcome_coupon:
        await issue_coupon(session, program, member.id, definition.welcome_coupon, joined_at, source="ENROLMENT",
                           deferred=new_in_batch)
    if referrer_id is not None and definition.referral_coupon:  # 推荐有礼: the new member's side
        coupon = await issue_coupon(session, program, member.id, definition.referral_coupon, joined_at,
                                    source="REFERRAL", deferred=new_in_batch)
        growth.events.append(Event(program.id, member.id, "COUPON_RECEIVED",
                                   f"Coupon {definition.coupon_template(coupon.template_code).name} received",
                                   joined_at))
    await growth.settle(joined_at)  # the welcome bonus counts toward a running quest
    return EnrolmentResult(member.id, duplicate=False, referred_by_id=referrer_id), growth.events


async def _referrer(session, program: ActiveProgram, request: EnrolmentInput) -> int | None:
    if request.referral_code is None:
        return None
    code = request.referral_code.strip().upper()
    referrer = (await session.execute(select(Member.id, Member.external_id).where(
        Member.program_id == program.id, Member.referral_code == code))).one_or_none()
    if referrer is None:
        raise Rejected.one(ErrorCode.NOT_FOUND, f"no member of this program has referral code {code!r}",
                           "input", "referralCode")
    if referrer.external_id == request.external_id:
        raise Rejected.one(ErrorCode.NOT_ELIGIBLE, "a member cannot refer themself", "input", "referralCode")
    return referrer.id
