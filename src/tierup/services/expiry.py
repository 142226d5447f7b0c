"""Points expiry (积分清零) and the reminders before it."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from sqlalchemy import func, select

from ..domain.clock import local
from ..domain.points import Lot
from ..events import Broker, Event
from ..store.db import Database, reserve_id
from ..store.models import LotDraw, Member, PointsEntry
from .activity import held_states, keep_states, new_reminders
from .growth import publish
from .ledger import append_entry, balances_of, lots_of
from .programs import ActiveProgram
from .webhooks import stage_webhooks

REMINDER_DAYS = 30
BATCH = 500


@dataclass(frozen=True)
class ExpiryRun:
    members_affected: int = 0
    points_expired: int = 0
    reminders: int = 0


async def expire_points(db: Database, program: ActiveProgram, *, as_of: datetime,
                        broker: Broker | None = None, since: datetime | None = None,
                        announce: bool = True) -> ExpiryRun:
    """Expire what is left of every lot due by `as_of`, one EXPIRE entry per member drawing exactly
    from those lots; remind members once per lot 30 days before. Running it again for the same
    `as_of` finds nothing left to expire and nobody left to remind; two runs at once serialise
    on each member's lock and recompute under it, so nothing is doubled. `since`: every lot due by
    then was expired by an earlier run and none has been added since (an import of history, which
    runs the job as time passes): only members with lots due after it are looked at. Not `announce`
    (that import): no reminders."""
    members = points = 0
    due_members = await _members_with_lots(db, program, until=as_of, after=since)
    for start in range(0, len(due_members), BATCH):
        batch = due_members[start:start + BATCH]
        async with db.write() as session:
            locked = (await session.execute(select(Member).where(Member.id.in_(batch)).order_by(Member.id)
                                            .with_for_update())).scalars().all()
            # Read under the locks, at once: the entries are then written together (their ids reserved).
            due, balances = await lots_of(session, batch, due_by=as_of), await balances_of(session, batch)
            expiring = [member for member in locked if due[member.id]]
            states = held_states(db, session, program, expiring)  # an import's: they hold, but for the balance
            # The entries' ids are reserved together (the first call reserves them all; nothing is written
            # between), so they and their draws are deferred and written in one statement each.
            for member in expiring:
                lots = due[member.id]
                total = sum(lot.remaining for lot in lots)
                await append_entry(session, program, member.id, "EXPIRE", -total,
                                   f"{total} points expired (earned before {_month(lots, program)})",
                                   source="EXPIRY", occurred_at=as_of, balance=balances[member.id],
                                   draws=[(lot.entry_id, lot.remaining) for lot in lots],
                                   entry_id=await reserve_id(session, PointsEntry.__table__, len(expiring)))
                if member.id in states:
                    states[member.id].balance = balances[member.id] - total
                members += 1
                points += total
            keep_states(session, program, expiring, states)
    reminders = await remind_expiring(db, program, as_of=as_of, broker=broker) if announce else 0
    return ExpiryRun(members, points, reminders)


async def lot_expiries(db: Database, program: ActiveProgram) -> set[datetime]:
    """Every moment at which some of the program's lots expire (an import runs the job at each as it passes)."""
    async with db.read() as session:
        return set((await session.execute(select(PointsEntry.expires_at).distinct().where(
            PointsEntry.program_id == program.id, PointsEntry.amount > 0,
            PointsEntry.expires_at.is_not(None)))).scalars())


def _month(lots: list[Lot], program: ActiveProgram) -> str:
    return _local_day(max(lot.expires_at for lot in lots), program.definition.zone)


@functools.lru_cache(maxsize=64)
def _local_day(moment: datetime, zone: tzinfo) -> str:
    """Lots expire by the month: a run's thousands of members share a few of these."""
    return local(moment, zone).strftime("%Y-%m-%d")


async def _members_with_lots(db: Database, program: ActiveProgram, *, until: datetime,
                             after: datetime | None = None) -> list[int]:
    """The members with lots expiring by `until` (after `after`) that still hold points: found by the index on
    expiry, each lot's draws summed by the index on them. Lots expired before hold nothing: a job run every hour
    does not read again every member whose lots ever expired."""
    drawn = select(func.coalesce(func.sum(LotDraw.amount), 0)).where(LotDraw.lot_entry_id == PointsEntry.id)
    async with db.read() as session:
        query = (select(PointsEntry.member_id).distinct()
                 .where(PointsEntry.program_id == program.id, PointsEntry.amount > 0,
                        PointsEntry.expires_at.is_not(None), PointsEntry.expires_at <= until,
                        PointsEntry.amount > drawn.scalar_subquery()))
        if after is not None:
            query = query.where(PointsEntry.expires_at > after)
        return list((await session.execute(query.order_by(PointsEntry.member_id))).scalars())


async def remind_expiring(db: Database, program: ActiveProgram, *, as_of: datetime,
                          broker: Broker | None = None) -> int:
    """A POINTS_EXPIRING event once per lot that still holds points and expires within 30 days."""
    horizon = as_of + timedelta(days=REMINDER_DAYS)
    candidates = await _members_with_lots(db, program, until=horizon, after=as_of)
    events: list[Event] = []
    for start in range(0, len(candidates), BATCH):
        async with db.write() as session:
            batch_start = len(events)
            lots = await lots_of(session, candidates[start:start + BATCH], due_by=horizon)
            expiring = [(member_id, lot) for member_id, member_lots in lots.items() for lot in member_lots
                        if lot.expires_at > as_of]
            reminders = [(member_id, "POINTS_EXPIRING", f"lot:{lot.entry_id}") for member_id, lot in expiring]
            new = await new_reminders(session, reminders, sent_at=as_of)
            for (member_id, lot), reminder in zip(expiring, reminders):
                if reminder in new:
                    when = local(lot.expires_at, program.definition.zone).strftime("%Y-%m-%d %H:%M")
                    events.append(Event(program.id, member_id, "POINTS_EXPIRING",
                                        f"{lot.remaining} points expire at {when}", as_of))
            await stage_webhooks(session, program, events[batch_start:], now=as_of)
    await publish(broker, events)
    return len(events)
