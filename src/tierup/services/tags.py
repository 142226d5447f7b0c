"""Tags (统一用户标签体系): MANUAL tags operators put on members, RULE tags that stand for an audience.

A RULE tag keeps its rule, never a list of members: who holds it is found when it is read, by the
SQL that lists and exports members (analytics.member_selection), so it follows members as they
change tier, fall silent or order again, with no refresh step anyone must remember. A rule may
name another tag; a definition that would make a tag contain itself is refused, and tag
definitions of a program are made one at a time so that check sees every rule.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, literal, select, union_all, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from ..domain.errors import Checks, ErrorCode, Rejected
from ..domain.program import CHANNELS, ProgramDefinition
from ..domain.rfm import SEGMENTS
from ..store.db import Database, execute_core
from ..store.models import Member, MemberTag, Program, TagAssignment
from ..store.types import UtcDateTime
from .analytics import member_selection
from .programs import ActiveProgram
from .validation import check_id, check_text

MANUAL, RULE = "MANUAL", "RULE"
LIFECYCLE_STAGES = ("NEW", "GROWING", "MATURE", "DECLINING", "CHURNED")
MAX_TAGS = 200  # per program: every tag is counted when the program's tags are read
MAX_TAGGED = 10_000  # member ids in one tagMembers request
MAX_REPORTED = 20  # malformed ids named one by one
MAX_SILENT_DAYS = 3650
NAME_LENGTH = 200
_CODE = re.compile(r"[A-Za-z0-9_-]{1,40}")


@dataclass(frozen=True)
class Audience:
    """Whom a RULE tag or a campaign stands for: every criterion given must hold. `tag` is a tag code."""

    tier_code: str | None = None
    segment: str | None = None
    lifecycle_stage: str | None = None
    silent_for_days: int | None = None
    channel: str | None = None
    tag: str | None = None

    # Stored under the names AudienceInput gives them.
    _NAMES = {"tier_code": "tier", "segment": "segment", "lifecycle_stage": "lifecycleStage",
              "silent_for_days": "silentForDays", "channel": "channel", "tag": "tag"}

    def to_json(self) -> str:
        given = {name: getattr(self, field) for field, name in self._NAMES.items() if getattr(self, field) is not None}
        return json.dumps(given, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Audience:
        stored = json.loads(text)
        return cls(**{field: stored.get(name) for field, name in cls._NAMES.items()})

    def is_empty(self) -> bool:
        return all(getattr(self, field) is None for field in self._NAMES)

    def describe(self, definition: ProgramDefinition) -> str:
        """In words, for operators: 'tier 银卡会员 (SILVER) and silent for 90 days'."""
        parts = []
        if self.tag is not None:
            parts.append(f"tagged {self.tag}")
        if self.tier_code is not None:  # the name as the program in force has it (a later version may drop the tier)
            names = {tier.code: tier.name for tier in definition.tiers}
            parts.append(f"tier {names[self.tier_code]} ({self.tier_code})" if self.tier_code in names
                         else f"tier {self.tier_code}")
        if self.segment is not None:
            parts.append(f"RFM segment {self.segment}")
        if self.lifecycle_stage is not None:
            parts.append(f"lifecycle stage {self.lifecycle_stage}")
        if self.silent_for_days is not None:
            parts.append(f"silent for {self.silent_for_days} days")
        if self.channel is not None:
            parts.append(f"reached through {self.channel}")
        return " and ".join(parts)


@dataclass(frozen=True)
class TagSelection:
    """A tag resolved for member_selection. A MANUAL tag (no rule) selects the members it was put on;
    a RULE tag what its rule selects, `inner` being the rule's own tag resolved in turn. A campaign's
    audience is a rule without a tag of its own (tag_id None)."""

    tag_id: int | None
    rule: Audience | None
    inner: TagSelection | None = None


class TagIndex:
    """A program's tags, read in one statement, and what each selects."""

    def __init__(self, tags: list[MemberTag]):
        self.tags = tags
        self.by_code = {tag.code: tag for tag in tags}

    def selection(self, code: str, chain: frozenset[str] = frozenset()) -> TagSelection:
        """The tag `code` as a selection. defineTag refuses cycles; should one be stored all the same, a
        RULE tag met again on its own chain is read as a MANUAL one: it holds no assignments, so it
        selects nobody rather than recursing forever."""
        tag = self.by_code[code]
        if tag.kind == MANUAL or code in chain:
            return TagSelection(tag.id, None)
        rule = Audience.from_json(tag.rule)
        inner = self.selection(rule.tag, chain | {code}) if rule.tag is not None else None
        return TagSelection(tag.id, rule, inner)

    def audience_selection(self, audience: Audience) -> TagSelection:
        return TagSelection(None, audience, self.selection(audience.tag) if audience.tag is not None else None)

    def reaches(self, start: str | None, target: str) -> bool:
        """Whether following rules' tags from `start` leads to `target`."""
        seen: set[str] = set()
        while start is not None and start not in seen:
            if start == target:
                return True
            seen.add(start)
            tag = self.by_code.get(start)
            start = Audience.from_json(tag.rule).tag if tag is not None and tag.kind == RULE else None
        return False


async def load_tags(session: AsyncSession, program: ActiveProgram) -> TagIndex:
    rows = (await session.execute(select(MemberTag).where(MemberTag.program_id == program.id)
                                  .order_by(MemberTag.id))).scalars().all()
    return TagIndex(list(rows))


async def read_tags(db: Database, program: ActiveProgram) -> TagIndex:
    async with db.read() as session:
        return await load_tags(session, program)


async def tag_selection(db: Database, program: ActiveProgram, code: str) -> TagSelection | None:
    """The tag `code` as a selection (`tierup export members --tag`); None when the program has none."""
    index = await read_tags(db, program)
    return index.selection(code) if code in index.by_code else None


def selected(program: ActiveProgram, at: datetime, selection: TagSelection, *columns,
             member_ids: list[int] | None = None) -> Select:
    """SELECT `columns` FROM the members `selection` takes at `at` (of `member_ids`, when given)."""
    joins, filters = member_selection(program, at, tag=selection, member_ids=member_ids)
    query = select(*columns).select_from(Member)
    for target, on in joins:  # outer joins: a member without orders or scores is still a member
        query = query.outerjoin(target, on)
    return query.where(*filters)


def count_selected(program: ActiveProgram, at: datetime, selection: TagSelection) -> Select:
    return selected(program, at, selection, func.count())


def check_audience(checks: Checks, definition: ProgramDefinition, index: TagIndex, audience: Audience,
                   *field: str) -> None:
    """Every criterion names something of the program; at least one is given."""
    if audience.is_empty():
        checks.fail(ErrorCode.INVALID, f"{field[-1]} needs at least one criterion", *field)
    if audience.tier_code is not None and audience.tier_code not in {t.code for t in definition.tiers}:
        checks.fail(ErrorCode.NOT_FOUND, f"no tier {audience.tier_code[:40]!r} in this program", *field, "tier")
    if audience.segment is not None and audience.segment not in SEGMENTS:
        checks.fail(ErrorCode.INVALID, f"segment must be one of: {', '.join(SEGMENTS)}", *field, "segment")
    if audience.lifecycle_stage is not None and audience.lifecycle_stage not in LIFECYCLE_STAGES:
        checks.fail(ErrorCode.INVALID, f"lifecycleStage must be one of: {', '.join(LIFECYCLE_STAGES)}",
                    *field, "lifecycleStage")
    if audience.silent_for_days is not None and not 1 <= audience.silent_for_days <= MAX_SILENT_DAYS:
        checks.fail(ErrorCode.INVALID, f"silentForDays must be between 1 and {MAX_SILENT_DAYS}", *field,
                    "silentForDays")
    if audience.channel is not None and audience.channel not in CHANNELS:
        checks.fail(ErrorCode.INVALID, f"channel must be one of: {', '.join(CHANNELS)}", *field, "channel")
    if audience.tag is not None and audience.tag not in index.by_code:
        checks.fail(ErrorCode.NOT_FOUND, f"no tag {audience.tag[:40]!r} in this program", *field, "tag")


def _check_code(checks: Checks, code: str, *field: str) -> None:
    if _CODE.fullmatch(code) is None:
        checks.fail(ErrorCode.INVALID, f"{field[-1]} must be 1–40 letters, digits, '_' or '-'", *field)


# --- defining tags -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TagDefinition:
    code: str
    name: str
    rule: Audience | None  # None: a MANUAL tag


async def define_tag(db: Database, program: ActiveProgram, request: TagDefinition, *, now: datetime) -> int:
    """Create the tag, or rename it (and, for a RULE tag, change its rule); returns its id. A tag's
    kind never changes: its members would silently become others."""
    checks = Checks()
    _check_code(checks, request.code, "input", "code")
    check_text(checks, request.name, NAME_LENGTH, "input", "name", required=True)
    checks.raise_any()
    async with db.write() as session:
        # One definition of the program's tags at a time, so the cycle check below sees every rule.
        await session.execute(select(Program.id).where(Program.id == program.id).with_for_update())
        index = await load_tags(session, program)
        existing = index.by_code.get(request.code)
        _check_definition(checks, program.definition, index, request, existing)
        checks.raise_any()
        kind, rule = (RULE, request.rule.to_json()) if request.rule is not None else (MANUAL, None)
        if existing is not None:
            await session.execute(update(MemberTag).where(MemberTag.id == existing.id)
                                  .values(name=request.name, rule=rule, updated_at=now))
            return existing.id
        tag = MemberTag(program_id=program.id, code=request.code, name=request.name, kind=kind, rule=rule,
                        created_at=now, updated_at=now)
        session.add(tag)
        await session.flush()
        return tag.id


def _check_definition(checks: Checks, definition: ProgramDefinition, index: TagIndex, request: TagDefinition,
                      existing: MemberTag | None) -> None:
    if existing is None and len(index.tags) >= MAX_TAGS:
        checks.fail(ErrorCode.LIMIT_REACHED, f"a program holds at most {MAX_TAGS} tags", "input", "code")
    if existing is not None and (existing.kind == RULE) != (request.rule is not None):
        needs = "needs its rule" if existing.kind == RULE else "takes no rule"
        checks.fail(ErrorCode.INVALID, f"tag {request.code} is a {existing.kind} tag and {needs}; "
                                       "a tag's kind cannot change", "input", "rule")
    if request.rule is None:
        return
    check_audience(checks, definition, index, request.rule, "input", "rule")
    if request.rule.tag is not None and index.reaches(request.rule.tag, request.code):
        checks.fail(ErrorCode.INVALID, f"tag {request.code} would contain itself through tag {request.rule.tag}",
                    "input", "rule", "tag")


# --- putting MANUAL tags on members ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Tagging:
    tag: str
    member_external_ids: list[str]
    remove: bool = False


@dataclass(frozen=True)
class TaggingResult:
    tag_id: int
    changed: int  # members the tag was put on (or taken off) by this request
    unknown: list[str]  # ids that name no member of the program: skipped


async def tag_members(db: Database, program: ActiveProgram, request: Tagging, *, now: datetime) -> TaggingResult:
    """Put a MANUAL tag on members (or take it off), by external id, in three statements whatever
    their number. Already tagged (or untagged) members are unchanged; ids naming no member are
    skipped and listed, so a list from another system tags everyone it can and says who it could not."""
    checks = Checks()
    _check_code(checks, request.tag, "input", "tag")
    _check_external_ids(checks, request.member_external_ids, "input", "memberExternalIds")
    checks.raise_any()
    wanted = sorted(set(request.member_external_ids))
    async with db.write() as session:
        tag = (await session.execute(select(MemberTag).where(MemberTag.program_id == program.id,
                                                             MemberTag.code == request.tag))).scalar_one_or_none()
        if tag is None:
            raise Rejected.one(ErrorCode.NOT_FOUND, f"no tag {request.tag!r} in this program", "input", "tag")
        if tag.kind != MANUAL:
            raise Rejected.one(ErrorCode.INVALID, f"tag {tag.code} is a RULE tag: its members follow its rule",
                               "input", "tag")
        found = dict((await session.execute(select(Member.external_id, Member.id).where(
            Member.program_id == program.id, Member.external_id.in_(wanted)))).all())
        ids = sorted(found.values())
        changed = await (_untag(session, tag.id, ids) if request.remove else _tag(session, tag.id, ids, now))
    return TaggingResult(tag.id, changed, [external_id for external_id in wanted if external_id not in found])


def _check_external_ids(checks: Checks, external_ids: list[str], *field: str) -> None:
    if not 1 <= len(external_ids) <= MAX_TAGGED:
        checks.fail(ErrorCode.INVALID, f"{field[-1]} must name 1 to {MAX_TAGGED:,} members", *field)
        return
    bad = Checks()
    for index, external_id in enumerate(external_ids):
        check_id(bad, external_id, *field, str(index))
    # A pasted list with a stray blank on every line would otherwise answer thousands of errors alike.
    checks.problems += bad.problems[:MAX_REPORTED]
    if len(bad.problems) > MAX_REPORTED:
        checks.fail(ErrorCode.INVALID, f"and {len(bad.problems) - MAX_REPORTED:,} more ids like these", *field)


def insert_new(session: AsyncSession, model, columns: list[str], rows: Select):
    """INSERT … SELECT … ON CONFLICT DO NOTHING: rows a UNIQUE key already holds are left as they are."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(model).from_select(columns, rows).on_conflict_do_nothing()


async def _tag(session: AsyncSession, tag_id: int, member_ids: list[int], now: datetime) -> int:
    if not member_ids:
        return 0
    rows = select(literal(tag_id), Member.id, literal(now, UtcDateTime)).where(Member.id.in_(member_ids))
    statement = insert_new(session, TagAssignment, ["tag_id", "member_id", "tagged_at"], rows)
    return len((await execute_core(session, statement.returning(TagAssignment.id))).all())


async def _untag(session: AsyncSession, tag_id: int, member_ids: list[int]) -> int:
    if not member_ids:
        return 0
    statement = (delete(TagAssignment).where(TagAssignment.tag_id == tag_id, TagAssignment.member_id.in_(member_ids))
                 .returning(TagAssignment.id))
    return len((await execute_core(session, statement)).all())


# --- reading who holds which tag ------------------------------------------------------------------------------


async def member_counts(db: Database, program: ActiveProgram, index: TagIndex, tag_ids: list[int], *,
                        at: datetime) -> dict[int, int]:
    """Members holding each tag at `at`, in one statement."""
    by_id = {tag.id: tag for tag in index.tags}
    wanted = [i for i in tag_ids if i in by_id]
    if not wanted:
        return {}
    counts = [count_selected(program, at, index.selection(by_id[i].code)).scalar_subquery() for i in wanted]
    async with db.read() as session:
        return dict(zip(wanted, (await session.execute(select(*counts))).one()))


async def tags_of_members(db: Database, program: ActiveProgram, index: TagIndex, member_ids: list[int], *,
                          at: datetime) -> dict[int, list[MemberTag]]:
    """The tags each member holds at `at` (in the order they were defined), in one statement."""
    found: dict[int, list[MemberTag]] = {i: [] for i in member_ids}
    if not index.tags or not member_ids:
        return found
    holders = union_all(*[selected(program, at, index.selection(tag.code), literal(tag.id).label("tag_id"),
                                   Member.id.label("member_id"), member_ids=member_ids) for tag in index.tags])
    by_id = {tag.id: tag for tag in index.tags}
    async with db.read() as session:
        pairs = sorted((await session.execute(select(holders.subquery()))).all())
    for tag_id, member_id in pairs:
        found[member_id].append(by_id[tag_id])
    return found
