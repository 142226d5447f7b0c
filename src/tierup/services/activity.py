"""Reading what members did, batched: one statement per kind of activity for any number of members."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, Integer, String, bindparam, cast, func, literal, null, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.activity import Activity
from ..domain.clock import local_date
from ..domain.program import ProgramDefinition
from ..domain.quests import points_counted_from
from ..domain.tasks import Completion, Completions
from ..store.db import Database, execute_core, insert_once_statement, keep_value, kept_value, member_changed
from ..store.types import UtcDateTime
from ..store.models import Member, MemberBadge, Notification, PointsEntry, QuestPass, Report, TaskCompletion
from .programs import ActiveProgram


async def load_activity(session: AsyncSession, definition: ProgramDefinition, member_ids: Iterable[int],
                        exclude_report: int | None = None) -> dict[int, Activity]:
    """Each member's orders (net of refunds), check-ins, photo reviews, referred first orders and
    points earned. `exclude_report` leaves one report out (the state just before it)."""
    ids = list(member_ids)
    found = {i: Activity() for i in ids}
    if not ids:
        return found
    tz = definition.zone
    for what, member_id, at, number in await execute_core(session, _ACTIVITY,
                                                          _parameters(definition, ids, exclude_report)):
        _add_done(found[member_id], what, at, number, tz)
    return found


@dataclass
class MemberState:
    """What the rules of tasks and quests read about a member, and the points balance."""

    activity: Activity = field(default_factory=Activity)
    completions: Completions = field(default_factory=dict)
    passes: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    badges: set[str] = field(default_factory=set)  # the codes of the badges the member holds
    balance: int = 0
    # When the member's latest refund was reported: the net amounts of `activity.orders` hold for tier
    # metrics judged at that time or later (member_metrics counts the refunds reported by then).
    refunded_until: datetime | None = None

    def orders_as_of(self, at: datetime) -> list[tuple[datetime, int]] | None:
        """The orders as tier metrics count them at `at`, or None when a refund reported later changes them."""
        return self.activity.orders if self.refunded_until is None or self.refunded_until <= at else None


def held_states(db: Database, session: AsyncSession, program: ActiveProgram,
                members: Iterable[Member]) -> dict[int, MemberState]:
    """The states a batch before kept for these members (keep_states) that still hold, taken: a batch goes on
    from them instead of reading them again. A job that changes members but not what their states hold, or
    only their balance (tier evaluation, points expiry), takes them before it changes the members and keeps
    them again after, so that an import's next batch need not read them again either."""
    found = {}
    for member in members:
        state = kept_value(db, session, member, program.version)
        if state is not None:
            found[member.id] = state
    return found


def keep_states(session: AsyncSession, program: ActiveProgram, members: Iterable[Member],
                states: dict[int, MemberState]) -> None:
    """At the end of a batch (or of a job, held_states): keep the states it leaves for its members, for the next
    batch. A state a failed order took out is not there, and is read again. Nor is a referrer's kept: a
    referred member's order reported late can move the referrer's referred first orders without
    changing the referrer."""
    for member in members:
        state = states.get(member.id)
        if state is not None and not state.activity.referral_first_orders:
            keep_value(session, member, program.version, state)


async def read_states(session: AsyncSession, definition: ProgramDefinition, member_ids: Iterable[int],
                      exclude_report: int | None = None) -> dict[int, MemberState]:
    """What load_activity, load_completions and load_quest_passes read, the badges held and the points balance,
    in one statement for every STATES_PER_STATEMENT members."""
    ids = list(member_ids)
    found = {i: MemberState() for i in ids}
    for start in range(0, len(ids), STATES_PER_STATEMENT):
        parameters = _parameters(definition, ids[start:start + STATES_PER_STATEMENT], exclude_report)
        for row in await execute_core(session, _STATES, parameters):
            _read(found[row[1]], definition.zone, *row)
    return found


# The most members one statement reads states of: it names their ids a dozen times, and PostgreSQL (as do many
# SQLite builds) takes at most 32,767 parameters.
STATES_PER_STATEMENT = 2000


def _read(state: MemberState, tz: ZoneInfo, what: str, member_id: int, at: datetime, number, code: str | None,
          period: str | None, claimed_at: datetime | None) -> None:
    """One row of the states statement into the member's state."""
    if what == "COMPLETION":
        state.completions[(code, period)] = Completion(code, period, at, claimed_at)
    elif what == "PASS":
        state.passes[code].add(number)
    elif what == "BADGE":
        state.badges.add(code)
    elif what == "BALANCE":
        state.balance = number
    elif what == "REFUNDED":
        state.refunded_until = at
    else:
        _add_done(state.activity, what, at, number, tz)


# Points earned are read only as far back as a quest counts them: a member's ledger grows with every order.
_NO_QUESTS = datetime(9999, 1, 1, tzinfo=timezone.utc)


def _parameters(definition: ProgramDefinition, ids: list[int], exclude_report: int | None) -> dict:
    return {"ids": ids, "exclude": -1 if exclude_report is None else exclude_report,
            "earned_from": points_counted_from(definition.quests, definition.zone) or _NO_QUESTS}


def _add_done(activity: Activity, what: str, at, number, tz) -> None:
    if what == "ORDER":
        activity.orders.append((at, int(number)))
    elif what == "CHECK_IN":
        activity.check_ins.append(local_date(at, tz))
    elif what == "REVIEW":
        if number:
            activity.photo_reviews.append(at)
    elif what == "REFERRAL":
        activity.referral_first_orders.append(at)
    elif what == "EARN":
        activity.points_earned.append((at, number))
    else:  # ACTIVITY:<kind>
        activity.actions.append((at, what.removeprefix(ACTIVITY_PREFIX)))


def _done():
    """What load_activity reads, one select per kind of thing done (parameters: ids, exclude, earned_from); one row
    per thing: (what, member, when, a number: net fen, photos 0/1 or points)."""
    ids = bindparam("ids", expanding=True)
    other = Report.id != bindparam("exclude")
    refunded = (select(Report.order_id, func.sum(Report.amount_fen).label("refunded"))
                .where(Report.kind == "REFUND", Report.member_id.in_(ids), other).group_by(Report.order_id).subquery())
    # PostgreSQL sums a BIGINT as NUMERIC, and a UNION gives its column the type of its first select.
    net = cast(Report.amount_fen - func.coalesce(refunded.c.refunded, 0), BigInteger)
    orders = (select(literal("ORDER"), Report.member_id, Report.occurred_at, net)
              .outerjoin(refunded, refunded.c.order_id == Report.id)
              .where(Report.kind == "ORDER", Report.member_id.in_(ids), net > 0, other))
    check_ins_and_reviews = (select(Report.kind, Report.member_id, Report.occurred_at, cast(Report.with_photos, Integer))
                             .where(Report.kind.in_(("CHECK_IN", "REVIEW")), Report.member_id.in_(ids), other))
    referred_first_orders = (select(literal("REFERRAL"), Member.referred_by_id, func.min(Report.occurred_at),
                                    cast(null(), Integer))
                             .join(Report, (Report.member_id == Member.id) & (Report.kind == "ORDER") & other)
                             .where(Member.referred_by_id.in_(ids)).group_by(Member.id, Member.referred_by_id))
    points = (select(literal("EARN"), PointsEntry.member_id, PointsEntry.occurred_at, PointsEntry.amount)
              .where(PointsEntry.member_id.in_(ids), PointsEntry.kind == "EARN", PointsEntry.source != "QUEST",
                     PointsEntry.occurred_at >= bindparam("earned_from", type_=UtcDateTime)))
    actions = (select(literal(ACTIVITY_PREFIX) + Report.reference, Report.member_id, Report.occurred_at,
                      cast(null(), Integer))
               .where(Report.kind == "ACTIVITY", Report.member_id.in_(ids), other))
    return [orders, check_ins_and_reviews, referred_first_orders, points, actions]


def _in_time_order(*parts):
    rows = union_all(*parts).subquery()
    return select(rows).order_by(rows.c[2])


def _states_statement():
    """_done's rows and, in the same columns, task completions, quest levels passed, badges held and the balance:
    (what, member, when, number, code, period, claimed at); the first select types the columns."""
    ids = bindparam("ids", expanding=True)

    def no(kind):  # a new NULL each time: a select keeps one of two equal column expressions
        return cast(null(), kind)
    completions = (select(literal("COMPLETION"), TaskCompletion.member_id, TaskCompletion.completed_at, no(Integer),
                          TaskCompletion.task_code, TaskCompletion.period_key, TaskCompletion.claimed_at)
                   .where(TaskCompletion.member_id.in_(ids)))
    passes = (select(literal("PASS"), QuestPass.member_id, no(UtcDateTime), QuestPass.level, QuestPass.quest_code,
                     no(String), no(UtcDateTime)).where(QuestPass.member_id.in_(ids)))
    badges = (select(literal("BADGE"), MemberBadge.member_id, no(UtcDateTime), no(Integer), MemberBadge.code,
                     no(String), no(UtcDateTime)).where(MemberBadge.member_id.in_(ids)))
    balances = (select(literal("BALANCE"), PointsEntry.member_id, no(UtcDateTime), func.sum(PointsEntry.amount),
                       no(String), no(String), no(UtcDateTime))
                .where(PointsEntry.member_id.in_(ids)).group_by(PointsEntry.member_id))
    refunded = (select(literal("REFUNDED"), Report.member_id, func.max(Report.occurred_at), no(Integer), no(String),
                       no(String), no(UtcDateTime))
                .where(Report.kind == "REFUND", Report.member_id.in_(ids), Report.id != bindparam("exclude"))
                .group_by(Report.member_id))
    padded = [part.add_columns(no(String).label("code"), no(String).label("period"),
                               no(UtcDateTime).label("claimed_at")) for part in _done()]
    return _in_time_order(*padded, completions, passes, badges, balances, refunded)


# Built once: used again, a statement skips SQLAlchemy's construction and cache-key work.
ACTIVITY_PREFIX = "ACTIVITY:"  # an ACTIVITY report's row names its kind after this
_ACTIVITY = _in_time_order(*_done())
_STATES = _states_statement()
_COMPLETIONS = (select(TaskCompletion.member_id, TaskCompletion.task_code, TaskCompletion.period_key,
                       TaskCompletion.completed_at, TaskCompletion.claimed_at)
                .where(TaskCompletion.member_id.in_(bindparam("ids", expanding=True))))
_QUEST_PASSES = (select(QuestPass.member_id, QuestPass.quest_code, QuestPass.level)
                 .where(QuestPass.member_id.in_(bindparam("ids", expanding=True))))


async def load_completions(session: AsyncSession, member_ids: Iterable[int]) -> dict[int, Completions]:
    found: dict[int, Completions] = defaultdict(dict)
    for member_id, task, period, completed_at, claimed_at in await execute_core(
            session, _COMPLETIONS, {"ids": list(member_ids)}):
        found[member_id][(task, period)] = Completion(task, period, completed_at, claimed_at)
    return found


async def load_quest_passes(session: AsyncSession, member_ids: Iterable[int]) -> dict[int, dict[str, set[int]]]:
    found: dict[int, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    for member_id, quest, level in await execute_core(session, _QUEST_PASSES, {"ids": list(member_ids)}):
        found[member_id][quest].add(level)
    return found


async def load_badges(session: AsyncSession, member_ids: Iterable[int]) -> dict[int, list[MemberBadge]]:
    found: dict[int, list[MemberBadge]] = defaultdict(list)
    for badge in (await session.execute(select(MemberBadge).where(MemberBadge.member_id.in_(list(member_ids)))
                                         .order_by(MemberBadge.id))).scalars():
        found[badge.member_id].append(badge)
    return found


async def insert_once(session: AsyncSession, model, **values) -> int | None:
    """INSERT … ON CONFLICT DO NOTHING RETURNING id: the id, or None when the row already existed."""
    if "member_id" in values:
        member_changed(session, values["member_id"])
    statement = insert_once_statement(session.get_bind().dialect.name, model)
    return (await execute_core(session, statement, values)).scalar_one_or_none()


Reminder = tuple[int, str, str]  # a notification's unique key: member, kind, key


async def new_reminders(session: AsyncSession, reminders: list[Reminder], *, sent_at: datetime) -> set[Reminder]:
    """The Notification rows of many reminders inserted once each, together (insert_once a row at a time cost a
    job half a millisecond a reminder): those that were new, to send. One already there, from a run before or
    one at the same time elsewhere, is not sent again."""
    if not reminders:
        return set()
    for member_id, _, _ in reminders:
        member_changed(session, member_id)
    statement = insert_once_statement(session.get_bind().dialect.name, Notification,
                                      returning=("member_id", "kind", "key"))
    rows = [dict(member_id=member_id, kind=kind, key=key, sent_at=sent_at) for member_id, kind, key in reminders]
    return {tuple(row) for row in await execute_core(session, statement, rows)}
