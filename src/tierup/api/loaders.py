"""Per-request dataloaders: every per-object lookup a resolver makes goes through here.

A list of N members with tier, points and next tier costs the same number of statements for
N = 1 and N = 100. Build a fresh Loaders for every request, every mutation and every
subscription event, so nothing read is ever stale.
"""

from __future__ import annotations

import base64
import functools
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Sequence

from aiodataloader import DataLoader
from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import aliased

from ..domain.activity import Activity
from ..domain.clock import Horizon
from ..domain.coupons import EXPIRED_AFTER
from ..domain.tasks import Completions
from ..domain.tiers import MemberMetrics
from ..domain.points import Lot
from ..services.analytics import lifecycle_stages, member_selection
from ..services.expiry import REMINDER_DAYS
from ..services.ledger import balances_of, earned_by_order, lots_of
from ..services.benefits import Usage, benefit_usage, claims_by_member
from ..services.activity import load_activity, load_badges, load_completions, load_quest_passes
from ..services.programs import ActiveProgram
from ..services.tiers import member_metrics
from ..store.db import Database
from .nodes import MAX_ROW_ID
from ..store.models import Coupon, Member, MemberBadge, PointsEntry, Report, RewardStock, RfmScore, StoredValueEntry


@dataclass(frozen=True)
class OrderFigures:
    points_earned: int
    refunded_fen: int
    stored_value_fen: int  # paid from stored value
    points_used: int  # points that paid beside the amount


@dataclass(frozen=True)
class Page:
    rows: list
    has_next: bool
    total: int


class Loaders:
    def __init__(self, db: Database, program: ActiveProgram, now: datetime, horizon: Horizon):
        self.db = db
        self.program = program
        self.now = now
        self.horizon = horizon  # loaders that filter by time say when their answer changes
        self.member_by_id = DataLoader(self._members_by_id)
        self.member_by_external_id = DataLoader(self._members_by_external_id)
        self.points_balance_by_member_id = DataLoader(self._balances)
        self.metrics_by_member_id = DataLoader(self._metrics)
        self.order_by_id = DataLoader(self._orders_by_id)
        self.order_figures_by_order_id = DataLoader(self._order_figures)
        self.points_entry_by_id = DataLoader(self._points_entries)
        self.stored_value_by_member_id = DataLoader(self._stored_values)
        self.stored_value_entry_by_id = DataLoader(self._stored_value_entries)
        self.activity_by_member_id = DataLoader(self._activities)
        self.completions_by_member_id = DataLoader(self._completions)
        self.quest_passes_by_member_id = DataLoader(self._quest_passes)
        self.badges_by_member_id = DataLoader(self._badges)
        self.coupon_by_id = DataLoader(self._coupons_by_id)
        self.benefit_claims_by_member_id = DataLoader(self._benefit_claims)
        self.reward_stock_by_code = DataLoader(self._reward_stock)
        self.rfm_by_member_id = DataLoader(self._rfm)
        self.lifecycle_by_member_id = DataLoader(self._lifecycle)
        self.lots_by_member_id = DataLoader(self._lots)
        self.usage_by_benefit_code = DataLoader(self._benefit_usage)
        self.coupons_by_member_id = DataLoader(self._coupons_by_member)

    async def _members_by_id(self, ids: Sequence[int]) -> list[Member | None]:
        async with self.db.read() as session:
            rows = (await session.execute(select(Member).where(Member.id.in_(ids)))).scalars()
            found = {m.id: m for m in rows}
        for member in found.values():
            self.member_by_external_id.prime((member.program_id, member.external_id), member)
        return [found.get(i) for i in ids]

    async def _members_by_external_id(self, keys: Sequence[tuple[int, str]]) -> list[Member | None]:
        program_ids = {program_id for program_id, _ in keys}
        async with self.db.read() as session:
            rows = (await session.execute(select(Member).where(
                Member.program_id.in_(program_ids), Member.external_id.in_({e for _, e in keys})))).scalars()
            found = {(m.program_id, m.external_id): m for m in rows}
        for member in found.values():
            self.member_by_id.prime(member.id, member)
        return [found.get(k) for k in keys]

    async def _balances(self, member_ids: Sequence[int]) -> list[int]:
        async with self.db.read() as session:
            found = await balances_of(session, list(member_ids))
        return [found[i] for i in member_ids]

    async def _metrics(self, member_ids: Sequence[int]) -> list[MemberMetrics]:
        """The figures the tier rules would judge now: the same qualification period as upgrades and evaluation."""
        members = await self.member_by_id.load_many(member_ids)
        async with self.db.read() as session:
            found = await member_metrics(session, self.program.definition, [m for m in members if m is not None],
                                         as_of=self.now)
        for metrics in found.values():
            self.horizon.changes_at(metrics.changes_at)
        return [found.get(i, MemberMetrics()) for i in member_ids]

    async def _orders_by_id(self, ids: Sequence[int]) -> list[Report | None]:
        """Orders with their figures in the same statement: a client asking for an order mostly asks
        for the points it earned too."""
        async with self.db.read() as session:
            rows = await session.execute(_orders_statement(), {"ids": list(ids)})
            found = {}
            for order, *figures in rows:
                found[order.id] = order
                self.order_figures_by_order_id.prime(order.id, OrderFigures(*map(int, figures)))
        return [found.get(i) for i in ids]

    async def _stored_values(self, member_ids: Sequence[int]) -> list[int]:
        async with self.db.read() as session:
            found = dict((await session.execute(
                select(StoredValueEntry.member_id, func.sum(StoredValueEntry.amount_fen))
                .where(StoredValueEntry.member_id.in_(member_ids)).group_by(StoredValueEntry.member_id))).all())
        return [int(found.get(i, 0)) for i in member_ids]

    async def _stored_value_entries(self, ids: Sequence[int]) -> list[StoredValueEntry | None]:
        async with self.db.read() as session:
            found = {e.id: e for e in (await session.execute(
                select(StoredValueEntry).where(StoredValueEntry.id.in_(ids)))).scalars()}
        return [found.get(i) for i in ids]

    async def _points_entries(self, ids: Sequence[int]) -> list[PointsEntry | None]:
        async with self.db.read() as session:
            found = {e.id: e for e in (await session.execute(select(PointsEntry).where(PointsEntry.id.in_(ids)))).scalars()}
        return [found.get(i) for i in ids]

    async def _activities(self, member_ids: Sequence[int]) -> list[Activity]:
        async with self.db.read() as session:
            found = await load_activity(session, self.program.definition, member_ids)
        return [found[i] for i in member_ids]

    async def _completions(self, member_ids: Sequence[int]) -> list[Completions]:
        async with self.db.read() as session:
            found = await load_completions(session, member_ids)
        return [found.get(i, {}) for i in member_ids]

    async def _quest_passes(self, member_ids: Sequence[int]) -> list[dict[str, set[int]]]:
        async with self.db.read() as session:
            found = await load_quest_passes(session, member_ids)
        return [found.get(i, {}) for i in member_ids]

    async def _badges(self, member_ids: Sequence[int]) -> list[list[MemberBadge]]:
        async with self.db.read() as session:
            found = await load_badges(session, member_ids)
        return [found.get(i, []) for i in member_ids]

    async def _rfm(self, member_ids: Sequence[int]) -> list[RfmScore | None]:
        async with self.db.read() as session:
            found = {row.member_id: row for row in (await session.execute(
                select(RfmScore).where(RfmScore.member_id.in_(member_ids)))).scalars()}
        return [found.get(i) for i in member_ids]

    async def _lifecycle(self, member_ids: Sequence[int]) -> list[str]:
        found = await lifecycle_stages(self.db, self.program, list(member_ids), self.now)
        for _, changes_at in found.values():
            self.horizon.changes_at(changes_at)
        return [found[i][0] for i in member_ids]

    async def _reward_stock(self, codes: Sequence[str]) -> list[int | None]:
        """Stock left per item: the stored count once redemptions began, else the catalogue's; None = unlimited."""
        async with self.db.read() as session:
            stored = dict((await session.execute(select(RewardStock.reward_code, RewardStock.remaining).where(
                RewardStock.program_id == self.program.id, RewardStock.reward_code.in_(codes)))).all())
        definition = self.program.definition
        return [stored.get(code, definition.reward_item(code).stock) for code in codes]

    async def _lots(self, member_ids: Sequence[int]) -> list[list[Lot]]:
        async with self.db.read() as session:
            found = await lots_of(session, list(member_ids))
        for lots in found.values():  # what expires, and what comes within the reminder's horizon, changes answers
            for lot in lots:
                if lot.expires_at is not None:
                    self.horizon.changes_at(lot.expires_at)
                    self.horizon.changes_at(lot.expires_at - timedelta(days=REMINDER_DAYS))
        return [found[i] for i in member_ids]

    async def _benefit_claims(self, member_ids: Sequence[int]) -> list[Counter]:
        async with self.db.read() as session:
            found = await claims_by_member(session, member_ids)
        return [found.get(i, Counter()) for i in member_ids]

    async def _benefit_usage(self, codes: Sequence[str]) -> list[Usage]:
        found = await benefit_usage(self.db, self.program, list(codes))
        return [found[code] for code in codes]

    async def _coupons_by_id(self, ids: Sequence[int]) -> list[Coupon | None]:
        async with self.db.read() as session:
            found = {c.id: c for c in (await session.execute(select(Coupon).where(Coupon.id.in_(ids)))).scalars()}
        return [found.get(i) for i in ids]

    async def _coupons_by_member(self, member_ids: Sequence[int]) -> list[list[Coupon]]:
        """Coupons still in play (ISSUED), for checkout quotes."""
        found: dict[int, list[Coupon]] = {i: [] for i in member_ids}
        async with self.db.read() as session:
            for coupon in (await session.execute(select(Coupon).where(
                    Coupon.member_id.in_(member_ids), Coupon.status == "ISSUED"))).scalars():
                found[coupon.member_id].append(coupon)
        return [found[i] for i in member_ids]

    async def coupons_page(self, member_id: int, *, first: int, after: int | None, status: str | None) -> Page:
        filters = [Coupon.member_id == member_id]
        if status in ("EXPIRED", "ISSUED"):  # the page changes as any issued coupon runs out
            for coupon in await self.coupons_by_member_id.load(member_id):
                self.horizon.changes_at(coupon.valid_until + EXPIRED_AFTER)
        if status == "EXPIRED":
            filters += [Coupon.status == "ISSUED", Coupon.valid_until < self.now]
        elif status == "ISSUED":
            filters += [Coupon.status == "ISSUED", Coupon.valid_until >= self.now]
        elif status is not None:
            filters.append(Coupon.status == status)
        return await self._page(Coupon, filters, first=first, after=after, newest_first=True)

    async def _order_figures(self, order_ids: Sequence[int]) -> list[OrderFigures]:
        async with self.db.read() as session:
            found = {order_id: OrderFigures(*map(int, figures))
                     for order_id, *figures in await session.execute(_figures_statement(), {"ids": list(order_ids)})}
        return [found.get(i, OrderFigures(0, 0, 0, 0)) for i in order_ids]

    # Pages of a list. Keyset pagination on the primary key: stable while rows are appended.

    async def members_page(self, *, first: int, after: int | None, **selection) -> Page:
        joins, filters = member_selection(self.program, self.now, **selection)
        page = await self._page(Member, filters, first=first, after=after, newest_first=False, joins=joins)
        for member in page.rows:
            self.member_by_id.prime(member.id, member)
        return page

    async def ledger_page(self, member_id: int, *, first: int, after: int | None) -> Page:
        return await self._page(PointsEntry, [PointsEntry.member_id == member_id], first=first, after=after,
                                newest_first=True)

    async def stored_value_page(self, member_id: int, *, first: int, after: int | None) -> Page:
        return await self._page(StoredValueEntry, [StoredValueEntry.member_id == member_id], first=first, after=after,
                                newest_first=True)

    async def orders_page(self, member_id: int, *, first: int, after: int | None) -> Page:
        page = await self._page(Report, [Report.member_id == member_id, Report.kind == "ORDER"], first=first,
                                after=after, newest_first=True)
        for order in page.rows:
            self.order_by_id.prime(order.id, order)
        return page

    async def _page(self, model, filters: list, *, first: int, after: int | None, newest_first: bool,
                    joins: list = ()) -> Page:
        """One statement: the page's rows, each carrying the count of all rows the filters select."""
        counted = select(func.count()).select_from(model)
        for target, on in joins:  # outer joins: a member without orders or scores is still a member
            counted = counted.outerjoin(target, on)
        counted = counted.where(*filters)
        query = select(model, counted.scalar_subquery().correlate(None))
        for target, on in joins:
            query = query.outerjoin(target, on)
        query = query.where(*filters)
        if after is not None:
            query = query.where(model.id < after if newest_first else model.id > after)
        query = query.order_by(model.id.desc() if newest_first else model.id).limit(first + 1)
        async with self.db.read() as session:
            found = (await session.execute(query)).all()
            if found:
                total = found[0][1]
            elif after is None:
                total = 0  # nothing on the first page: nothing at all
            else:  # past the last page: the count alone
                total = (await session.execute(counted)).scalar_one()
        rows = [row for row, _ in found]
        return Page(rows[:first], len(rows) > first, total)


def encode_cursor(row_id: int) -> str:
    return base64.urlsafe_b64encode(f"cursor:{row_id}".encode()).decode()


def decode_cursor(cursor: str) -> int | None:
    try:
        kind, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        # ASCII digits of a row id (isdigit() alone takes "１" and "²"); beyond the id column nothing is.
        if kind == "cursor" and value.isascii() and value.isdigit() and len(value) <= len(str(MAX_ROW_ID)) \
                and int(value) <= MAX_ROW_ID:
            return int(value)
    except (ValueError, UnicodeError):
        pass
    return None


# Built once: four correlated subqueries take SQLAlchemy longer to construct than SQLite to run.
@functools.cache
def _orders_statement():
    return select(Report, *_order_figure_columns()).where(Report.id.in_(bindparam("ids", expanding=True)),
                                                          Report.kind == "ORDER")


@functools.cache
def _figures_statement():
    return select(Report.id, *_order_figure_columns()).where(Report.id.in_(bindparam("ids", expanding=True)))


def _order_figure_columns():
    """OrderFigures as columns of a statement over Report: points earned, fen refunded, fen paid from
    stored value, points that paid."""
    refunds = aliased(Report)
    earned = (select(func.coalesce(func.sum(PointsEntry.amount), 0))
              .where(*earned_by_order(Report.id, Report.member_id)).scalar_subquery())
    refunded = (select(func.coalesce(func.sum(refunds.amount_fen), 0))
                .where(refunds.order_id == Report.id, refunds.kind == "REFUND").scalar_subquery())
    stored_value = (select(-func.coalesce(func.sum(StoredValueEntry.amount_fen), 0))
                    .where(StoredValueEntry.report_id == Report.id, StoredValueEntry.kind == "SPEND").scalar_subquery())
    spent = aliased(PointsEntry)
    points_used = (select(-func.coalesce(func.sum(spent.amount), 0))
                   .where(spent.report_id == Report.id, spent.kind == "SPEND").scalar_subquery())
    return earned, refunded, stored_value, points_used
