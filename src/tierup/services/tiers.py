"""Tiers in operation: metrics from the stored reports, upgrades on the qualifying order,
re-evaluation when validity ends."""

from __future__ import annotations

import collections
import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable, Sequence

from sqlalchemy import Select, and_, bindparam, case, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.activity import job_midnight, midnight_before
from ..domain.benefits import unlocked_by
from ..domain.clock import add_months, leaves_window, local, months_before, utc
from ..domain.program import ProgramDefinition, TierRule
from ..domain.money import format_yuan
from ..domain.tiers import (METRICS, MemberMetrics, condition_progress, metric_windows, order_metrics,
                            plain_number, qualifying_tier, tier_reached_above)
from ..events import Broker, Event
from ..store.db import Database, defer_insert, execute_core, flush, write_members
from ..store.models import Member, Report, TierChange
from ..store.types import UtcDateTime
from .activity import MemberState, held_states, keep_states, new_reminders
from .programs import ActiveProgram
from .webhooks import stage_webhooks

EVALUATION_BATCH = 500


async def member_metrics(session: AsyncSession, definition: ProgramDefinition, members: Iterable[Member], *,
                         as_of: datetime) -> dict[int, MemberMetrics]:
    """Tier metrics for many members in one statement, as the rules judge them at `as_of`.

    The one place the live path measures members — upgrades, re-evaluation, reminders and the
    next-tier view alike. Cumulative spend, the largest order and the order count cover each
    member's current qualification period (`counting_since`, from the member's stored row); rolling
    windows end at `as_of`; growth value is the member row's. Spend is net of refunds reported up
    to `as_of`.
    """
    members = list(members)
    if not members:
        return {}
    growth = {m.id: m.growth_value for m in members}
    spend_windows, order_windows = metric_windows(definition)
    tz = definition.zone
    statement = _metrics_statement(definition.tier_validity_months is not None, spend_windows | order_windows)
    rows = (await execute_core(session, statement, {
        "ids": list(growth), "as_of": as_of,
        **{f"from_{months}": months_before(as_of, months, tz) for months in spend_windows | order_windows}})).mappings()
    found = {
        row["member_id"]: MemberMetrics(
            cumulative_spend_fen=int(row["cumulative"]), largest_order_fen=int(row["largest"]),
            order_count=int(row["orders"]),
            spend_fen_in_months={m: int(row[f"spend_{m}"]) for m in spend_windows},
            orders_in_months={m: int(row[f"orders_{m}"]) for m in order_windows},
            growth_value=growth[row["member_id"]],
            changes_at=min((leaves_window(row[f"oldest_{m}"], m, tz) for m in spend_windows | order_windows
                            if row[f"oldest_{m}"] is not None), default=None),
        )
        for row in rows
    }
    return {member_id: found.get(member_id, MemberMetrics(growth_value=value)) for member_id, value in growth.items()}


@functools.lru_cache(maxsize=64)
def _metrics_statement(in_periods: bool, windows: frozenset[int]) -> Select:
    """The metrics statement for a ladder's shape, built once: a statement object used again skips
    SQLAlchemy's construction and cache-key work, which cost more than running it. Parameters: ids,
    as_of and from_<months> (each window's start)."""
    as_of = bindparam("as_of", type_=UtcDateTime)
    ids = bindparam("ids", expanding=True)
    refunded = (
        select(Report.order_id, func.sum(Report.amount_fen).label("refunded"))
        .where(Report.kind == "REFUND", Report.member_id.in_(ids), Report.occurred_at <= as_of)
        .group_by(Report.order_id).subquery()
    )
    net = (Report.amount_fen - func.coalesce(refunded.c.refunded, 0))
    # The period starts at the member's latest evaluation (none yet: the whole history counts).
    since = Member.qualification_started_at
    in_period = or_(since.is_(None), Report.occurred_at > since) if in_periods else true()
    columns = [
        Report.member_id,
        func.coalesce(func.sum(case((in_period, net), else_=0)), 0).label("cumulative"),
        func.coalesce(func.max(case((in_period, net), else_=0)), 0).label("largest"),
        func.coalesce(func.sum(case((and_(in_period, net > 0), 1), else_=0)), 0).label("orders"),
    ]
    for months in sorted(windows):
        inside = Report.occurred_at > bindparam(f"from_{months}", type_=UtcDateTime)
        columns.append(func.coalesce(func.sum(case((inside, net), else_=0)), 0).label(f"spend_{months}"))
        columns.append(func.coalesce(func.sum(case((and_(inside, net > 0), 1), else_=0)), 0).label(f"orders_{months}"))
        # The oldest order in the window: the figures change by themselves when it leaves.
        columns.append(func.min(case((inside, Report.occurred_at))).label(f"oldest_{months}"))
    return (select(*columns)
            .select_from(Report)
            .join(Member, Member.id == Report.member_id)
            .outerjoin(refunded, refunded.c.order_id == Report.id)
            .where(Report.kind == "ORDER", Report.member_id.in_(ids), Report.occurred_at <= as_of)
            .group_by(Report.member_id))


def restart_qualification(member: Member, at: datetime) -> None:
    """Every evaluation outcome (kept, raised, lowered) opens a new qualification period at `at`."""
    member.qualification_started_at = at


def validity_end(definition: ProgramDefinition, tier: TierRule, start: datetime) -> datetime | None:
    """When a tier reached at `start` must be re-earned; the entry tier and permanent ladders never lapse."""
    if tier.rank == 0 or definition.tier_validity_months is None:
        return None
    return utc(add_months(local(start, definition.zone), definition.tier_validity_months))


def move_to_tier(session: AsyncSession, definition: ProgramDefinition, member: Member, tier: TierRule, *,
                 at: datetime, reason: str, report_id: int | None = None,
                 valid_until: datetime | None = None) -> None:
    """Move the member and write the change."""
    _tier_change(session, member, tier.code, at=at, reason=reason, report_id=report_id, valid_until=valid_until)
    member.tier_code = tier.code
    member.tier_since = at
    member.tier_valid_until = valid_until


def _tier_change(session: AsyncSession, member: Member, to_tier: str, *, at: datetime, reason: str,
                 report_id: int | None, valid_until: datetime | None) -> None:
    """The change from the member's tier; nothing is read back from it, so its row is deferred."""
    defer_insert(session, TierChange.__table__, dict(member_id=member.id, from_tier=member.tier_code, to_tier=to_tier,
                                                     changed_at=at, valid_until=valid_until, reason=reason,
                                                     report_id=report_id))


async def upgrade_if_qualified(session: AsyncSession, program: ActiveProgram, member: Member, *, at: datetime,
                               report_id: int | None, reason: str,
                               orders: Sequence[tuple[datetime, int]] | None = None) -> TierRule | None:
    """Upgrade at once when the member's metrics now reach a higher tier (系统自动升级), and return it. Never
    downgrades.

    `orders`, when the caller holds them (all the member's orders, paid at and net, in time order, as
    they count at `at`), are counted in memory instead of by member_metrics. The upgrade does not
    restart the qualification period: a member who reached SILVER keeps counting the same period
    toward GOLD.
    """
    definition = program.definition
    current = definition.tier(member.tier_code)
    if current.rank == len(definition.tiers) - 1:
        return None  # at the top of the ladder: nothing to measure
    target = tier_reached_above(await _metrics_of(session, definition, member, orders, at), definition, current)
    if target is None:
        return None
    move_to_tier(session, definition, member, target, at=at, reason=reason, report_id=report_id,
                 valid_until=validity_end(definition, target, at))
    return target


async def _metrics_of(session: AsyncSession, definition: ProgramDefinition, member: Member,
                      orders: Sequence[tuple[datetime, int]] | None, at: datetime) -> MemberMetrics:
    """The member's metrics at `at`: counted in memory from `orders` when the caller holds them (as they count at
    `at`), else by member_metrics, once the member is written (its row holds the qualification period, which
    the transaction may have restarted)."""
    if orders is not None:
        return order_metrics(definition, orders, as_of=at, period_started_at=member.qualification_started_at,
                             growth_value=member.growth_value)
    await flush(session)
    return (await member_metrics(session, definition, [member], as_of=at))[member.id]


@dataclass(frozen=True)
class Evaluation:
    evaluated: int = 0
    upgraded: int = 0
    downgraded: int = 0
    kept: int = 0


async def evaluate_tiers(db: Database, program: ActiveProgram, *, as_of: datetime,
                         broker: Broker | None = None, announce: bool = True) -> Evaluation:
    """Re-evaluate every member whose tier validity ended by `as_of` (升降级).

    Judged as an upgrade is, on the member's current qualification period (cumulative figures
    since its start, rolling windows ending at `as_of`). Kept or higher: validity renews by whole
    periods past `as_of`. Lower: moved down to the highest tier still qualified for. Whatever the
    outcome, a new qualification period starts at `as_of`. Batches keep write transactions
    short; a member done is no longer due, so a second run for the same `as_of` changes nothing.
    Not `announce` (an import of history): no events, webhooks or reminders.
    """
    definition = program.definition
    total = Evaluation()
    if definition.tier_validity_months is None:
        return total
    while True:
        events: list[Event] = []
        async with db.write() as session:
            due = await _lapsed_by(session, program, as_of)
            if not due:
                break
            metrics = await member_metrics(session, definition, due, as_of=as_of)
            outcomes = collections.Counter()
            for member in due:
                current, target = definition.tier(member.tier_code), qualifying_tier(metrics[member.id], definition)
                if announce:
                    events += _evaluation_events(program, member, current, target, as_of)
                outcomes[_evaluated(session, definition, member, current, target, as_of)] += 1
            await write_members(session, due, EVALUATION_CHANGES)
            total = Evaluation(total.evaluated + len(due), total.upgraded + outcomes["upgraded"],
                               total.downgraded + outcomes["downgraded"], total.kept + outcomes["kept"])
            await stage_webhooks(session, program, events, now=as_of)
        if broker is not None and events:
            await broker.publish(events)  # this batch has committed
        if len(due) < EVALUATION_BATCH:  # none was left behind it (those done are no longer due)
            break
    if announce:
        await remind_tier_expiring(db, program, as_of=as_of, broker=broker)
    return total


async def evaluate_if_lapsed(session: AsyncSession, program: ActiveProgram, member: Member, state: MemberState,
                             *, before: datetime) -> None:
    """Evaluate the member as the daily job would have before `before`, each time its tier's validity ended by a
    job's midnight before then, as of that midnight, by evaluate_tiers' rules: for an import of history, whose
    batches run on past those midnights. The metrics are counted from the member's `state` (its orders before
    `before`), unless a refund reported later changes them. Under permanent tiers nothing lapses, whatever
    validity a member was given before."""
    definition = program.definition
    while member.tier_valid_until is not None and definition.tier_validity_months is not None:
        as_of = job_midnight(member.tier_valid_until, definition.zone)
        if as_of >= before:  # a report at the midnight itself comes before the job
            return
        metrics = await _metrics_of(session, definition, member, state.orders_as_of(as_of), as_of)
        _evaluated(session, definition, member, definition.tier(member.tier_code), qualifying_tier(metrics, definition),
                   as_of)


async def evaluate_lapsed_before(db: Database, program: ActiveProgram, *, before: datetime) -> int:
    """The daily evaluations due before `before`, together: every member whose tier lapsed by a job's midnight
    before then, evaluated as of that midnight (and again at the next, should its renewed validity end by one
    before `before`) by evaluate_tiers' rules, announcing nothing. For an import of history, between its
    batches: the evaluations of the days a batch ran past, a transaction for every EVALUATION_BATCH members
    instead of one a day. Returns how many it made."""
    definition = program.definition
    if definition.tier_validity_months is None:
        return 0
    lapsed_by = midnight_before(before, definition.zone)
    made = 0
    while True:
        async with db.write() as session:
            due = await _lapsed_by(session, program, lapsed_by)
            states = held_states(db, session, program, due)  # an evaluation changes nothing they hold
            by_midnight = collections.defaultdict(list)
            for member in due:
                by_midnight[job_midnight(member.tier_valid_until, definition.zone)].append(member)
            for as_of, members in sorted(by_midnight.items()):  # each member's metrics read as of its midnight
                metrics = await member_metrics(session, definition, members, as_of=as_of)
                for member in members:
                    _evaluated(session, definition, member, definition.tier(member.tier_code),
                               qualifying_tier(metrics[member.id], definition), as_of)
            await write_members(session, due, EVALUATION_CHANGES)
            keep_states(session, program, due, states)
        made += len(due)
        # Done unless more were due than a batch takes, or one was renewed into another lapse before `before`.
        if len(due) < EVALUATION_BATCH and all(m.tier_valid_until is None or m.tier_valid_until > lapsed_by
                                               for m in due):
            return made


async def _lapsed_by(session: AsyncSession, program: ActiveProgram, moment: datetime) -> list[Member]:
    """The next EVALUATION_BATCH members (by id) whose tier validity ended by `moment`, locked."""
    return list((await session.execute(
        select(Member).where(Member.program_id == program.id, Member.tier_valid_until <= moment)
        .order_by(Member.id).limit(EVALUATION_BATCH).with_for_update())).scalars())


def _evaluated(session: AsyncSession, definition: ProgramDefinition, member: Member, current: TierRule,
               target: TierRule, as_of: datetime) -> str:
    """Move the member to the tier its period qualifies it for, or renew the one it holds; what happened."""
    restart_qualification(member, as_of)
    if target.rank != current.rank:
        move_to_tier(session, definition, member, target, at=as_of, reason="EVALUATION",
                     valid_until=validity_end(definition, target, as_of))
        return "upgraded" if target.rank > current.rank else "downgraded"
    renewed = _renewed_until(definition, member.tier_valid_until, as_of)
    _tier_change(session, member, current.code, at=as_of, reason="RENEWAL", report_id=None, valid_until=renewed)
    member.tier_valid_until = renewed
    return "kept"


def _evaluation_events(program: ActiveProgram, member: Member, current: TierRule, target: TierRule,
                       as_of: datetime) -> list[Event]:
    events = []
    if target.rank != current.rank:
        events.append(Event(program.id, member.id, "TIER_CHANGED", f"Tier is now {target.name}", as_of))
    if opened := unlocked_by(program.definition, current.code, target.code):
        events.append(Event(program.id, member.id, "BENEFIT_UNLOCKED", f"Benefits unlocked: {', '.join(opened)}",
                            as_of))
    return events


# What an evaluation changes on its members (kept, raised or lowered): written with all of them, in one
# statement for the batch (store.db.write_members).
EVALUATION_CHANGES = ("tier_code", "tier_since", "tier_valid_until", "qualification_started_at")


async def earliest_validity_end(db: Database, program: ActiveProgram) -> datetime | None:
    """When the first of the program's members' tier validity ends (None: no tier lapses)."""
    async with db.read() as session:
        return (await session.execute(select(func.min(Member.tier_valid_until)).where(
            Member.program_id == program.id))).scalar_one()


TIER_REMINDER_DAYS = 30


async def remind_tier_expiring(db: Database, program: ActiveProgram, *, as_of: datetime,
                               broker: Broker | None = None) -> int:
    """A TIER_EXPIRING event once per validity period, 30 days before it ends, saying what keeps the tier
    (with the figures the evaluation will count: the current qualification period's)."""
    definition = program.definition
    if definition.tier_validity_months is None:
        return 0
    horizon = as_of + timedelta(days=TIER_REMINDER_DAYS)
    events: list[Event] = []
    async with db.write() as session:
        members = list((await session.execute(select(Member).where(
            Member.program_id == program.id, Member.tier_valid_until > as_of,
            Member.tier_valid_until <= horizon))).scalars())
        metrics = await member_metrics(session, definition, members, as_of=as_of)
        reminders = [(member.id, "TIER_EXPIRING", member.tier_valid_until.isoformat()[:19]) for member in members]
        new = await new_reminders(session, reminders, sent_at=as_of)
        events.extend(Event(program.id, member.id, "TIER_EXPIRING",
                            _keep_message(definition, member, metrics[member.id]), as_of)
                      for member, reminder in zip(members, reminders) if reminder in new)
        await stage_webhooks(session, program, events, now=as_of)
    if broker is not None and events:
        await broker.publish(events)
    return len(events)


def _keep_message(definition: ProgramDefinition, member: Member, metrics: MemberMetrics) -> str:
    tier = definition.tier(member.tier_code)
    until = local(member.tier_valid_until, definition.zone).strftime("%Y-%m-%d")
    progress = [condition_progress(metrics, c, definition.currency_symbol) for c in tier.conditions]
    keeps = " or ".join(f"{p.description} (now {_figure(p.current, c.metric, definition)})"
                        for p, c in zip(progress, tier.conditions))
    return f"{tier.name} lasts until {until}; to keep it: {keeps}"


def _figure(value, metric: str, definition: ProgramDefinition) -> str:
    return format_yuan(value, definition.currency_symbol) if METRICS[metric].money else f"{plain_number(value):f}"


def _renewed_until(definition: ProgramDefinition, valid_until: datetime, as_of: datetime) -> datetime:
    end = valid_until
    while end <= as_of:
        end = utc(add_months(local(end, definition.zone), definition.tier_validity_months))
    return end
