"""Operator analytics in SQL: per-member order figures, RFM quintiles, lifecycle stages, silence.

Everything here is computed by the database over the whole program; no member list is loaded
into Python to score it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import and_, case, delete, func, insert, literal, or_, select, true
from sqlalchemy.sql import Select

from ..domain.clock import months_before
from ..domain.rfm import ACTIVE_MIN_R, HIGH_VALUE_MIN_M, QUADRANTS, RFM_MONTHS, SEGMENT_GRID, LifecycleRules
from ..store.db import Database
from ..store.models import Member, Report, RfmScore, TagAssignment
from ..store.types import UtcDateTime
from .programs import ActiveProgram

if TYPE_CHECKING:  # tags build on this module's selection
    from .tags import TagSelection


def order_figures(program: ActiveProgram, as_of: datetime, member_ids: list[int] | None = None):
    """Per member of the program (or of `member_ids`): last order up to `as_of`, and orders and net spend
    in the past 12 months."""
    since = months_before(as_of, RFM_MONTHS, program.definition.zone)
    refunded = (select(Report.order_id, func.sum(Report.amount_fen).label("refunded"))
                .where(Report.program_id == program.id, Report.kind == "REFUND", Report.occurred_at <= as_of)
                .group_by(Report.order_id).subquery())
    net = Report.amount_fen - func.coalesce(refunded.c.refunded, 0)
    recent = and_(Report.occurred_at > literal(since, UtcDateTime), net > 0)
    return (select(Report.member_id.label("member_id"),
                   func.max(Report.occurred_at).label("last_order_at"),
                   func.sum(case((recent, 1), else_=0)).label("orders_12m"),
                   func.min(case((recent, Report.occurred_at))).label("oldest_recent_at"),
                   func.sum(case((recent, net), else_=0)).label("spend_12m"))
            .outerjoin(refunded, refunded.c.order_id == Report.id)
            .where(Report.program_id == program.id, Report.kind == "ORDER", Report.occurred_at <= as_of,
                   Report.member_id.in_(member_ids) if member_ids is not None else true())
            .group_by(Report.member_id).subquery())


def lifecycle_stage_sql(rules: LifecycleRules, figures, at: datetime):
    """The lifecycle stage as one SQL expression (see LifecycleRules), so listing and filtering agree."""
    silent_since = func.coalesce(figures.c.last_order_at, Member.joined_at)

    def before(days: int):
        return literal(at - timedelta(days=days), UtcDateTime)

    return case(
        (silent_since <= before(rules.churned_days), "CHURNED"),
        (Member.joined_at > before(rules.new_days), "NEW"),
        (silent_since <= before(rules.declining_days), "DECLINING"),
        (func.coalesce(figures.c.orders_12m, 0) >= rules.mature_orders, "MATURE"),
        else_="GROWING",
    )


def silent_for_sql(figures, at: datetime, days: int):
    """No order for `days` days (members who never ordered count from joining): 沉默预警."""
    return func.coalesce(figures.c.last_order_at, Member.joined_at) <= literal(at - timedelta(days=days), UtcDateTime)


def _quintile(rank):
    """percent_rank 0…1 (ties equal) → 1…5, portable across SQLite and PostgreSQL."""
    return case((rank >= 0.8, 5), (rank >= 0.6, 4), (rank >= 0.4, 3), (rank >= 0.2, 2), else_=1)


def _segment(r, f, m):
    fm = (f + m + 1) // 2  # floor division, rendered per back end
    return case(*[((and_(fm == row, r == column + 1)), name)
                  for row, names in SEGMENT_GRID.items() for column, name in enumerate(names)], else_="Lost")


def rfm_select(program: ActiveProgram, as_of: datetime) -> Select:
    figures = order_figures(program, as_of)
    last = figures.c.last_order_at
    frequency = func.coalesce(figures.c.orders_12m, 0)
    monetary = func.coalesce(figures.c.spend_12m, 0)
    ranked = (select(Member.id.label("member_id"), last.label("last_order_at"), frequency.label("frequency"),
                     monetary.label("monetary_fen"),
                     func.percent_rank().over(order_by=last.asc().nulls_first()).label("pr_r"),
                     func.percent_rank().over(order_by=frequency).label("pr_f"),
                     func.percent_rank().over(order_by=monetary).label("pr_m"))
              .select_from(Member).outerjoin(figures, figures.c.member_id == Member.id)
              .where(Member.program_id == program.id, Member.joined_at <= literal(as_of, UtcDateTime))
              .subquery("ranked"))
    scored = select(ranked.c.member_id, ranked.c.last_order_at, ranked.c.frequency, ranked.c.monetary_fen,
                    _quintile(ranked.c.pr_r).label("r"), _quintile(ranked.c.pr_f).label("f"),
                    _quintile(ranked.c.pr_m).label("m")).subquery("scored")
    return select(literal(program.id).label("program_id"), scored.c.member_id,
                  literal(as_of, UtcDateTime).label("as_of"), scored.c.last_order_at, scored.c.frequency,
                  scored.c.monetary_fen, scored.c.r, scored.c.f, scored.c.m,
                  _segment(scored.c.r, scored.c.f, scored.c.m).label("segment"))


async def refresh_rfm(db: Database, program: ActiveProgram, *, as_of: datetime) -> int:
    """Score every member of the program as of `as_of`, replacing the previous refresh, in one transaction."""
    columns = ["program_id", "member_id", "as_of", "last_order_at", "frequency", "monetary_fen", "r", "f", "m",
               "segment"]
    async with db.write() as session:
        await session.execute(delete(RfmScore).where(RfmScore.program_id == program.id))
        await session.execute(insert(RfmScore).from_select(columns, rfm_select(program, as_of)))
        return (await session.execute(select(func.count()).select_from(RfmScore).where(
            RfmScore.program_id == program.id))).scalar_one()


async def lifecycle_stages(db: Database, program: ActiveProgram, member_ids: list[int], at: datetime
                           ) -> dict[int, tuple[str, datetime | None]]:
    """Each member's stage at `at`, and when time alone would next move it."""
    rules = program.definition.lifecycle
    figures = order_figures(program, at, member_ids)
    async with db.read() as session:
        rows = await session.execute(
            select(Member.id, lifecycle_stage_sql(rules, figures, at), Member.joined_at, figures.c.last_order_at,
                   figures.c.oldest_recent_at)
            .outerjoin(figures, figures.c.member_id == Member.id).where(Member.id.in_(member_ids)))
        return {member_id: (stage, rules.changes_at(joined_at, last_order_at, oldest_recent_at, at,
                                                     program.definition.zone))
                for member_id, stage, joined_at, last_order_at, oldest_recent_at in rows}


def quadrant_sql(scores=RfmScore):
    high = scores.m >= HIGH_VALUE_MIN_M
    active = scores.r >= ACTIVE_MIN_R
    return case((and_(high, active), "HIGH_VALUE_ACTIVE"), (high, "HIGH_VALUE_SILENT"),
                (active, "LOW_VALUE_ACTIVE"), else_="LOW_VALUE_SILENT")


def member_selection(program: ActiveProgram, at: datetime, *, tier_code: str | None = None, search: str | None = None,
                     segment: str | None = None, lifecycle_stage: str | None = None,
                     silent_for_days: int | None = None, quadrant: str | None = None,
                     channel: str | None = None, tag: TagSelection | None = None,
                     member_ids: list[int] | None = None) -> tuple[list, list]:
    """(outer joins, filters) selecting members of the program: the operator's list and its CSV export,
    tags' members and campaigns' audiences. A channel selects the members it reached: those who joined
    or ordered through it. A tag selects its holders now (see services.tags); `member_ids` narrows the
    selection to those members, and the order figures read to theirs."""
    selection = _Selection(program, at, member_ids)
    selection.add(tier_code=tier_code, segment=segment, lifecycle_stage=lifecycle_stage,
                  silent_for_days=silent_for_days, channel=channel, tag=tag)
    if search:
        pattern = f"%{escape_like(search.lower())}%"
        selection.filters.append(or_(func.lower(Member.external_id).like(pattern, escape="\\"),
                                     func.lower(Member.display_name).like(pattern, escape="\\")))
    if quadrant is not None:
        selection.join_scores()
        selection.filters.append(quadrant_sql() == quadrant)
    return selection.joins, selection.filters


class _Selection:
    """Filters of one selection, each join added once however many criteria (and tags' rules) need it."""

    def __init__(self, program: ActiveProgram, at: datetime, member_ids: list[int] | None):
        self.program = program
        self.at = at
        self.member_ids = member_ids
        self.joins: list = []
        self.filters: list = [Member.program_id == program.id]
        if member_ids is not None:
            self.filters.append(Member.id.in_(member_ids))
        self._scores = False
        self._figures = None

    def join_scores(self) -> None:
        if not self._scores:
            self._scores = True
            self.joins.append((RfmScore, RfmScore.member_id == Member.id))

    def figures(self):
        if self._figures is None:
            self._figures = order_figures(self.program, self.at, self.member_ids)
            self.joins.append((self._figures, self._figures.c.member_id == Member.id))
        return self._figures

    def add(self, *, tier_code: str | None, segment: str | None, lifecycle_stage: str | None,
            silent_for_days: int | None, channel: str | None, tag: TagSelection | None) -> None:
        """The criteria of an audience: every one given must hold."""
        filters = self.filters
        if tier_code is not None:
            filters.append(Member.tier_code == tier_code)
        if channel is not None:
            ordered_there = (select(Report.id).where(Report.member_id == Member.id, Report.kind == "ORDER",
                                                     Report.channel == channel).exists())
            filters.append(or_(Member.enrolled_via == channel, ordered_there))
        if segment is not None:
            self.join_scores()
            filters.append(RfmScore.segment == segment)
        if lifecycle_stage is not None:
            filters.append(lifecycle_stage_sql(self.program.definition.lifecycle, self.figures(), self.at)
                           == lifecycle_stage)
        if silent_for_days is not None:
            filters.append(silent_for_sql(self.figures(), self.at, silent_for_days))
        if tag is not None:
            self.add_tag(tag)

    def add_tag(self, tag: TagSelection) -> None:
        rule = tag.rule
        if rule is None:  # a MANUAL tag: the members it was put on
            filters = (TagAssignment.tag_id == tag.tag_id, TagAssignment.member_id == Member.id)
            self.filters.append(select(TagAssignment.id).where(*filters).exists())
            return
        # A RULE tag: its audience's criteria join the others, so one statement selects either way.
        self.add(tier_code=rule.tier_code, segment=rule.segment, lifecycle_stage=rule.lifecycle_stage,
                 silent_for_days=rule.silent_for_days, channel=rule.channel, tag=tag.inner)


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def value_map(db: Database, program: ActiveProgram) -> dict[str, int]:
    """Members per quadrant, on the latest RFM refresh."""
    quadrant = quadrant_sql()
    async with db.read() as session:
        counts = dict((await session.execute(select(quadrant, func.count()).where(RfmScore.program_id == program.id)
                                             .group_by(quadrant))).all())
    return {name: counts.get(name, 0) for name in QUADRANTS}
