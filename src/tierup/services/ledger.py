"""The points ledger: every change is an entry; the balance is their sum, never a stored number.

Every positive entry is a lot with an expiry (the program's rule); every negative entry records
which lots it drew from — the lot named first (a refund's own order), then the lots that expire
soonest — so expiry takes exactly what is left of each lot.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.points import Lot, draw_fifo, lot_expiry
from ..store.db import Written, defer_insert, execute_core, journal, member_changed, numbered, reserve_id
from ..store.models import LotDraw, PointsEntry
from .programs import ActiveProgram


# Built once: used again, a statement skips SQLAlchemy's construction and cache-key work.
_BALANCES = (select(PointsEntry.member_id, func.sum(PointsEntry.amount))
             .where(PointsEntry.member_id.in_(bindparam("ids", expanding=True))).group_by(PointsEntry.member_id))


def earned_by_order(report_id, member_id) -> tuple:
    """Conditions on PointsEntry for what an order earned its member: a referred member's first order also
    pays the referrer, under the same report, and that is not the order's."""
    return PointsEntry.report_id == report_id, PointsEntry.kind == "EARN", PointsEntry.member_id == member_id


async def balance_of(session: AsyncSession, member_id: int) -> int:
    return (await balances_of(session, [member_id]))[member_id]


async def balances_of(session: AsyncSession, member_ids: list[int]) -> dict[int, int]:
    found = {i: 0 for i in member_ids}
    found.update((member_id, int(balance)) for member_id, balance in await execute_core(session, _BALANCES,
                                                                                        {"ids": member_ids}))
    return found


def _open_lots(*, due: bool):
    ids = bindparam("ids", expanding=True)
    drawn = (select(LotDraw.lot_entry_id, func.sum(LotDraw.amount).label("drawn"))
             .where(LotDraw.member_id.in_(ids)).group_by(LotDraw.lot_entry_id).subquery())
    remaining = (PointsEntry.amount - func.coalesce(drawn.c.drawn, 0)).label("remaining")
    lots = (select(PointsEntry.member_id, PointsEntry.id, remaining, PointsEntry.expires_at)
            .outerjoin(drawn, drawn.c.lot_entry_id == PointsEntry.id)
            .where(PointsEntry.member_id.in_(ids), PointsEntry.amount > 0, remaining > 0))
    return lots.where(PointsEntry.expires_at <= bindparam("due_by")) if due else lots


_OPEN_LOTS, _DUE_LOTS = _open_lots(due=False), _open_lots(due=True)


async def lots_of(session: AsyncSession, member_ids: list[int], *,
                  due_by: datetime | None = None) -> dict[int, list[Lot]]:
    """Each member's lots that still hold points; with `due_by`, only those expiring by then (the expiry job
    and its reminders, which would otherwise read a year of lots to take a month's)."""
    found: dict[int, list[Lot]] = {i: [] for i in member_ids}
    statement, parameters = ((_OPEN_LOTS, {"ids": member_ids}) if due_by is None
                             else (_DUE_LOTS, {"ids": member_ids, "due_by": due_by}))
    for member_id, entry_id, remaining, expires_at in await execute_core(session, statement, parameters):
        found[member_id].append(Lot(entry_id, int(remaining), expires_at))
    return found


async def append_entry(session: AsyncSession, program: ActiveProgram, member_id: int, kind: str, amount: int,
                       reason: str, *, source: str, occurred_at: datetime, report_id: int | None = None,
                       expires_at: datetime | None = None, shortfall: int = 0, balance: int | None = None,
                       draw_first: int | None = None, draws: list[tuple[int, int]] | None = None,
                       entry_id: int | None = None) -> int | None:
    """Add one ledger entry; the caller holds the member's lock.

    A positive entry becomes a lot expiring by the program's rule; nothing is read back from it, so
    it is deferred (written with the transaction's next statement) and None is returned. A negative
    entry draws its points from lots, `draws` when the caller chose them (expiry, a refund's reversal), else
    first-to-expire first; it is written at once and its id returned, or, with `draws` and an `entry_id` the
    caller reserved (store.db.reserve_id), deferred with its draws. In a transaction whose entries are
    numbered (store.db.numbering) each entry takes a reserved id, returned, and a deduction whose draws
    the caller chose is deferred too.
    """
    if entry_id is not None and (amount >= 0 or draws is None):
        raise ValueError("a reserved entry_id is for a deduction whose draws the caller chose")
    expected = numbered(session, PointsEntry.__table__)
    if entry_id is None and expected:
        entry_id = await reserve_id(session, PointsEntry.__table__, expected)
    if balance is None:
        balance = await balance_of(session, member_id)
    if amount > 0 and expires_at is None:
        expires_at = lot_expiry(occurred_at, program.definition.points_expiry_months, program.definition.zone)
    row = dict(program_id=program.id, member_id=member_id, kind=kind, source=source, amount=amount,
               balance_after=balance + amount, reason=reason[:300], occurred_at=occurred_at,
               expires_at=expires_at if amount > 0 else None, report_id=report_id, shortfall=shortfall)
    if entry_id is not None:
        row["id"] = entry_id
    member_changed(session, member_id)
    journal(session).append(Written("ENTRY", member_id, kind, occurred_at, amount, source=source, entry_id=entry_id,
                                    expires_at=row["expires_at"]))
    if amount >= 0:
        defer_insert(session, PointsEntry.__table__, row)
        return entry_id
    if entry_id is not None and draws is not None:
        defer_insert(session, PointsEntry.__table__, row)
        for lot, take in draws:
            defer_insert(session, LotDraw.__table__, dict(member_id=member_id, entry_id=entry_id, lot_entry_id=lot,
                                                          amount=take))
        return entry_id
    entry_id = (await execute_core(session, _INSERT_ENTRY, row)).scalar_one()
    if draws is None:
        draws = draw_fifo((await lots_of(session, [member_id]))[member_id], -amount, first=draw_first)
    if draws:
        await execute_core(session, insert(LotDraw), [dict(member_id=member_id, entry_id=entry_id,
                                                            lot_entry_id=lot, amount=take) for lot, take in draws])
    return entry_id


_INSERT_ENTRY = insert(PointsEntry).returning(PointsEntry.id)
