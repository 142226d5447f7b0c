"""Exporting a selection of members as CSV, for campaigns outside tierup (`tierup export members`)."""

from __future__ import annotations

import csv
from datetime import datetime
from typing import Callable, TextIO

from sqlalchemy import func, select

from ..domain.clock import local
from ..domain.money import to_yuan
from ..store.db import Database
from ..store.models import Member, PointsEntry, RfmScore
from .analytics import lifecycle_stage_sql, member_selection, order_figures
from .programs import ActiveProgram

PAGE = 1000
COLUMNS = ("external_id", "display_name", "tier", "joined_at", "points_balance", "last_order_at", "orders_12m",
           "spend_12m", "rfm_r", "rfm_f", "rfm_m", "rfm_segment", "lifecycle_stage")


async def export_members(db: Database, program: ActiveProgram, out: TextIO, *, at: datetime,
                         progress: Callable[[int, int], None], **selection) -> int:
    """Write the members the selection names (the same as members(...) lists) as CSV; returns the row count."""
    definition = program.definition
    joins, filters = member_selection(program, at, **selection)
    if not any(target is RfmScore for target, _ in joins):
        joins.append((RfmScore, RfmScore.member_id == Member.id))
    figures = order_figures(program, at)
    balances = (select(PointsEntry.member_id, func.sum(PointsEntry.amount).label("balance"))
                .where(PointsEntry.program_id == program.id).group_by(PointsEntry.member_id).subquery())
    joins += [(figures, figures.c.member_id == Member.id), (balances, balances.c.member_id == Member.id)]
    columns = select(Member.id, Member.external_id, Member.display_name, Member.tier_code, Member.joined_at,
                     func.coalesce(balances.c.balance, 0), figures.c.last_order_at,
                     func.coalesce(figures.c.orders_12m, 0), func.coalesce(figures.c.spend_12m, 0),
                     RfmScore.r, RfmScore.f, RfmScore.m, RfmScore.segment,
                     lifecycle_stage_sql(definition.lifecycle, figures, at))
    counted = select(func.count()).select_from(Member)
    for target, on in joins:
        columns, counted = columns.outerjoin(target, on), counted.outerjoin(target, on)
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    written, after = 0, 0
    async with db.read() as session:
        total = (await session.execute(counted.where(*filters))).scalar_one()
        while True:
            rows = (await session.execute(columns.where(*filters, Member.id > after).order_by(Member.id)
                                          .limit(PAGE))).all()
            for row in rows:
                _, external_id, name, tier, joined, balance, last, orders, spend, r, f, m, segment, stage = row
                writer.writerow([external_id, name or "", tier, _time(joined, definition), balance,
                                 _time(last, definition), orders, to_yuan(int(spend)), r or "", f or "", m or "",
                                 segment or "", stage])
            written += len(rows)
            progress(written, total)
            if len(rows) < PAGE:
                return written
            after = rows[-1][0]


def _time(value: datetime | None, definition) -> str:
    return local(value, definition.zone).isoformat() if value is not None else ""
