"""Tags (标签): MemberTag, audiences, defineTag and tagMembers.

Tags are the operators' tool: OPERATOR defines them and puts them on members; OPERATOR and SERVICE
(the shop's back end, which targets members too) read them. Members never see tags, their own
included: a tag such as "silent, to win back" is not for the member's eyes.
"""

from __future__ import annotations

from enum import Enum
from typing import Iterable, Optional
from weakref import WeakKeyDictionary

import strawberry
from aiodataloader import DataLoader
from strawberry import relay
from strawberry.types import Info

from ..auth import Role
from ..domain.errors import Rejected
from ..services import tags as tag_service
from ..services.programs import ActiveProgram
from ..services.tags import Audience, TagIndex, TagSelection
from ..store.models import MemberTag as TagRow
from .analytics import LifecycleStage
from .channels import Channel
from .errors import UserError, bad_input, user_errors
from .nodes import row_ids
from .permissions import OperatorOnly


@strawberry.enum(description="How a tag's members are decided.")
class TagKind(Enum):
    MANUAL = strawberry.enum_value("MANUAL", description="Operators put it on members and take it off (tagMembers).")
    RULE = strawberry.enum_value("RULE", description="Stands for an audience: its members are whoever the audience "
                                                     "selects at the moment it is read.")


@strawberry.type(description="A tag (标签) of the program: put on members by operators (MANUAL) or standing for "
                             "an audience (RULE).")
class MemberTag(relay.Node):
    tag_id: relay.NodeID[int] = strawberry.field(description="Internal id.")
    code: str = strawberry.field(description="Stable code, e.g. SILENT_90.")
    name: str = strawberry.field(description="Display name, e.g. 沉默90天.")
    kind: TagKind = strawberry.field(description="MANUAL or RULE.")
    rule: Optional[str] = strawberry.field(description="RULE tags: the audience the tag stands for, in words.")

    @strawberry.field(description="Members holding the tag now.")
    async def member_count(self, info: Info) -> int:
        return await (await tag_reader(info.context)).member_count_by_tag_id.load(self.tag_id)

    @classmethod
    def of(cls, program: ActiveProgram, row: TagRow) -> "MemberTag":
        rule = Audience.from_json(row.rule).describe(program.definition) if row.rule is not None else None
        return cls(tag_id=row.id, code=row.code, name=row.name, kind=TagKind(row.kind), rule=rule)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        context = info.context
        context.require(Role.OPERATOR, Role.SERVICE)
        program = await context.program()
        by_id = {tag.id: tag for tag in (await (await tag_reader(context)).index()).tags}
        return [cls.of(program, by_id[i]) if i in by_id else None for i in row_ids(node_ids, "MemberTag")]


class TagReader:
    """One request's view of the program's tags: the definitions read once, member counts and
    members' tags each batched into one statement."""

    def __init__(self, context, program: ActiveProgram):
        self.db = context.db
        self.program = program
        self.now = context.now
        self._index: TagIndex | None = None
        self.member_count_by_tag_id = DataLoader(self._member_counts)
        self.tags_by_member_id = DataLoader(self._tags_of_members)

    async def index(self) -> TagIndex:
        if self._index is None:
            self._index = await tag_service.read_tags(self.db, self.program)
        return self._index

    async def _member_counts(self, tag_ids: list[int]) -> list[int]:
        found = await tag_service.member_counts(self.db, self.program, await self.index(), list(tag_ids), at=self.now)
        return [found.get(i, 0) for i in tag_ids]

    async def _tags_of_members(self, member_ids: list[int]) -> list[list[TagRow]]:
        found = await tag_service.tags_of_members(self.db, self.program, await self.index(), list(member_ids),
                                                  at=self.now)
        return [found[i] for i in member_ids]


# Keyed by the request's loaders: a write resets them (context.reset_loaders), and the reader goes with them.
_readers: WeakKeyDictionary = WeakKeyDictionary()


async def tag_reader(context) -> TagReader:
    loaders = await context.loaders()
    reader = _readers.get(loaders)
    if reader is None:
        reader = _readers[loaders] = TagReader(context, await context.program())
    return reader


async def program_tags(context) -> list[MemberTag]:
    program = await context.program()
    return [MemberTag.of(program, row) for row in (await (await tag_reader(context)).index()).tags]


async def member_tags(context, member_id: int) -> list[MemberTag]:
    program = await context.program()
    return [MemberTag.of(program, row) for row in await (await tag_reader(context)).tags_by_member_id.load(member_id)]


async def tag_selection(context, code: str) -> TagSelection:
    """members(tag:): an unknown code is the query's mistake, like an unknown segment."""
    index = await (await tag_reader(context)).index()
    if code not in index.by_code:
        raise bad_input(f"no tag {code[:40]!r} in this program")
    return index.selection(code)


@strawberry.input(description="An audience: every criterion given must hold. At least one criterion.")
class AudienceInput:
    tag: Optional[str] = strawberry.field(default=None, description="A tag code (MANUAL or RULE): members holding it.")
    tier: Optional[str] = strawberry.field(default=None, description="Tier code.")
    segment: Optional[str] = strawberry.field(default=None, description="RFM segment at the latest refresh, e.g. "
                                                                        "'At risk'.")
    lifecycle_stage: Optional[LifecycleStage] = strawberry.field(default=None, description="Lifecycle stage now.")
    silent_for_days: Optional[int] = strawberry.field(
        default=None, description="No order for this many days (members who never ordered count from joining), 1–3650.")
    channel: Optional[Channel] = strawberry.field(default=None, description="Members the channel reached: joined or "
                                                                            "ordered through it.")

    def audience(self) -> Audience:
        return Audience(tier_code=self.tier, segment=self.segment,
                        lifecycle_stage=self.lifecycle_stage.value if self.lifecycle_stage else None,
                        silent_for_days=self.silent_for_days, channel=self.channel.value if self.channel else None,
                        tag=self.tag)


@strawberry.input(description="A tag to create, or to rename (and for a RULE tag, to give a new rule).")
class DefineTagInput:
    code: str = strawberry.field(description="Stable code: 1–40 letters, digits, '_' or '-'. An existing code renames.")
    name: str = strawberry.field(description="Display name.")
    rule: Optional[AudienceInput] = strawberry.field(
        default=None, description="Makes a RULE tag: its members follow this audience. Without it, a MANUAL tag. "
                                  "A tag's kind cannot change.")


@strawberry.type(description="Result of defineTag.")
class DefineTagPayload:
    tag: Optional[MemberTag] = strawberry.field(default=None, description="The tag as defined now.")
    user_errors: list[UserError] = strawberry.field(default_factory=list, description="Why nothing changed, if so.")


@strawberry.input(description="A MANUAL tag to put on members (or take off), by their external ids.")
class TagMembersInput:
    tag: str = strawberry.field(description="The tag's code; a MANUAL tag.")
    member_external_ids: list[str] = strawberry.field(description="The members, 1–10,000 external ids.")
    remove: Optional[bool] = strawberry.field(default=False, description="Take the tag off instead.")


@strawberry.type(description="Result of tagMembers.")
class TagMembersPayload:
    tag: Optional[MemberTag] = strawberry.field(default=None, description="The tag.")
    changed: int = strawberry.field(default=0, description="Members the tag was put on (or taken off) by this "
                                                           "request; those who had it (or had not) are not counted.")
    unknown_external_ids: list[str] = strawberry.field(
        default_factory=list, description="Ids naming no member of the program: skipped, the others were tagged.")
    user_errors: list[UserError] = strawberry.field(default_factory=list, description="Why nothing changed, if so.")


@strawberry.type
class TagMutations:
    @strawberry.mutation(permission_classes=[OperatorOnly], description=(
        "Create or rename a tag; with `rule`, membership follows the audience. OPERATOR only."))
    async def define_tag(self, info: Info, input: DefineTagInput) -> DefineTagPayload:
        context = info.context
        program = await context.program()
        request = tag_service.TagDefinition(code=input.code, name=input.name,
                                            rule=input.rule.audience() if input.rule is not None else None)
        try:
            tag_id = await tag_service.define_tag(context.db, program, request, now=context.now)
        except Rejected as rejection:
            return DefineTagPayload(user_errors=user_errors(rejection))
        return DefineTagPayload(tag=await _tag_after_write(context, tag_id))

    @strawberry.mutation(permission_classes=[OperatorOnly], description=(
        "Add (or remove) a MANUAL tag on members, up to 10,000 at once; ids naming no member are listed and "
        "skipped. OPERATOR only."))
    async def tag_members(self, info: Info, input: TagMembersInput) -> TagMembersPayload:
        context = info.context
        program = await context.program()
        request = tag_service.Tagging(tag=input.tag, member_external_ids=input.member_external_ids,
                                      remove=bool(input.remove))
        try:
            result = await tag_service.tag_members(context.db, program, request, now=context.now)
        except Rejected as rejection:
            return TagMembersPayload(user_errors=user_errors(rejection))
        return TagMembersPayload(tag=await _tag_after_write(context, result.tag_id), changed=result.changed,
                                 unknown_external_ids=result.unknown)


async def _tag_after_write(context, tag_id: int) -> MemberTag:
    context.reset_loaders()
    program = await context.program()
    index = await (await tag_reader(context)).index()
    return MemberTag.of(program, next(tag for tag in index.tags if tag.id == tag_id))
