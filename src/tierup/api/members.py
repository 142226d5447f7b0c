"""Members: who they are, their tier and progress, points and orders; enrolment."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Iterable, Optional

import strawberry
from strawberry import relay
from strawberry.types import Info

from .stored_value import StoredValueAccount
from .checkout import CheckoutQuote, CheckoutQuoteInput, checkout_quote
from .memberships import PaidMembership, member_membership
from .channels import Channel, channel_value
from ..auth import Role
from ..domain.coupons import EXPIRED_AFTER
from ..domain.errors import Rejected
from ..services import members as member_service
from ..store.models import Member as MemberRow
from .connections import Connection, connection, page_args
from .errors import UserError, bad_input, user_errors
from .orders import Order, OrderConnection
from .permissions import OperatorOrService, ServiceOnly, SignedIn
from .points import PointsAccount
from ..domain.money import MoneyError, format_yuan, to_fen, to_yuan
from ..domain.quests import quest_active, quest_state
from ..services.coupons import quote_coupons
from .coupons import Coupon, CouponConnection, CouponQuote, CouponStatus
from .money import Money
from .nodes import input_row_id, row_id, row_ids
from .scalars import sent_text
from ..domain.rfm import SEGMENTS
from .analytics import LifecycleStage, RfmScore, ValueQuadrant
from .benefits import MemberBenefit, member_benefits
from .checkins import CheckInStatus, member_check_in_status
from .quests import QuestProgress
from .rewards import Badge
from .tags import MemberTag, member_tags, tag_selection
from .tasks import TaskKind, TaskProgress, TaskStatus, member_task_states
from .tiers import Tier, TierProgress, tier_code_from_global_id, tier_progress

MAX_SEARCH_LENGTH = 100


@strawberry.type(description="A member (会员) of the caller's program.")
class Member(relay.Node):
    member_id: relay.NodeID[int] = strawberry.field(description="Internal id.")
    external_id: str = strawberry.field(description="The member's id in the shop.")
    display_name: Optional[str] = strawberry.field(description="Name to greet the member with.")
    birthday: Optional[date] = strawberry.field(description="Birthday, for birthday benefits.")
    joined_at: datetime = strawberry.field(description="When the member enrolled, in program time.")
    tier_valid_until: Optional[datetime] = strawberry.field(
        description="When the current tier is re-evaluated (等级有效期); null for the entry tier or permanent tiers.")
    growth_value: int = strawberry.field(description="Growth value (成长值) accumulated from tasks and activities.")
    referral_code: str = strawberry.field(description="Code a friend enters on enrolment to be referred by this member.")
    enrolled_via: Channel = strawberry.field(description="The channel the member joined through.")
    row: strawberry.Private[MemberRow]

    @classmethod
    def of(cls, context, row: MemberRow) -> "Member":
        return cls(member_id=row.id, external_id=row.external_id, display_name=row.display_name,
                   birthday=row.birthday, joined_at=context.local_time(row.joined_at),
                   tier_valid_until=context.local_time(row.tier_valid_until), growth_value=row.growth_value,
                   referral_code=row.referral_code, enrolled_via=Channel(row.enrolled_via), row=row)

    @strawberry.field(description="The tier the member holds now.")
    async def tier(self, info: Info) -> Tier:
        definition = (await info.context.program()).definition
        return Tier.of(definition, definition.tier(self.row.tier_code))

    @strawberry.field(description="What is missing to reach the next tier; null at the top.")
    async def next_tier(self, info: Info) -> Optional[TierProgress]:
        context = info.context
        definition = (await context.program()).definition
        metrics = await (await context.loaders()).metrics_by_member_id.load(self.member_id)
        return tier_progress(definition, self.row.tier_code, metrics)

    @strawberry.field(description="Points balance and ledger.")
    def points(self) -> PointsAccount:
        return PointsAccount(member_id=self.member_id)

    @strawberry.field(description="What the member would pay for a basket now: member price, then coupons, then "
                                  "points as cash, then stored value. No side effect.")
    async def checkout_quote(self, info: Info, input: CheckoutQuoteInput) -> CheckoutQuote:
        return await checkout_quote(info.context, self.row, input)

    @strawberry.field(description="The paid membership (PLUS) the member holds or last held; null if never bought.")
    async def membership(self, info: Info) -> Optional[PaidMembership]:
        return member_membership(info.context, (await info.context.program()).definition, self.row)

    @strawberry.field(description="Stored value (储值): balance and ledger.")
    def stored_value(self) -> StoredValueAccount:
        return StoredValueAccount(member_id=self.member_id)

    @strawberry.field(description="The member's orders, newest first.")
    async def orders(self, info: Info, first: Optional[int] = None, after: Optional[str] = None) -> OrderConnection:
        size, after_id = page_args(first, after)
        context = info.context
        currency = (await context.program()).definition.currency
        page = await (await context.loaders()).orders_page(self.member_id, first=size, after=after_id)
        return connection(page, lambda row: Order.of(context, row, currency), after_id, OrderConnection)

    @strawberry.field(description="Progress on each task of the growth tree, optionally of one kind or status.")
    async def tasks(self, info: Info, kind: Optional[TaskKind] = None,
                    status: Optional[TaskStatus] = None) -> list[TaskProgress]:
        context = info.context
        definition = (await context.program()).definition
        progress = [TaskProgress.of(context, definition, s, self.member_id)
                    for s in await member_task_states(context, self.member_id)]
        return [p for p in progress if (kind is None or p.task.kind == kind) and (status is None or p.status == status)]

    @strawberry.field(description="Standing in each quest running now.")
    async def quests(self, info: Info) -> list[QuestProgress]:
        context = info.context
        definition = (await context.program()).definition
        loaders = await context.loaders()
        activity = await loaders.activity_by_member_id.load(self.member_id)
        passes = await loaders.quest_passes_by_member_id.load(self.member_id)
        tz = definition.zone
        return [QuestProgress.of(definition, quest_state(q, activity, passes.get(q.code, set()), tz), self.member_id)
                for q in definition.quests if quest_active(q, context.now, tz)]

    @strawberry.field(description="Badges earned, oldest first.")
    async def badges(self, info: Info) -> list[Badge]:
        rows = await (await info.context.loaders()).badges_by_member_id.load(self.member_id)
        return [Badge(code=b.code, name=b.name) for b in rows]

    @strawberry.field(description="The member's coupons, newest first; filter by status.")
    async def coupons(self, info: Info, status: Optional[CouponStatus] = None, first: Optional[int] = None,
                      after: Optional[str] = None) -> CouponConnection:
        size, after_id = page_args(first, after)
        context = info.context
        definition = (await context.program()).definition
        page = await (await context.loaders()).coupons_page(self.member_id, first=size, after=after_id,
                                                             status=status.value if status else None)
        return connection(page, lambda row: Coupon.of(context, definition, row), after_id, CouponConnection)

    @strawberry.field(description="The member's usable coupons for an order of this amount, best saving first.")
    async def coupon_quotes(self, info: Info, amount: Decimal) -> list[CouponQuote]:
        context = info.context
        program = await context.program()
        try:
            amount_fen = to_fen(sent_text(amount))
        except MoneyError as exc:
            raise bad_input(f"amount: {exc}") from exc
        if not 0 < amount_fen <= program.definition.max_order_fen:
            ceiling = format_yuan(to_yuan(program.definition.max_order_fen), program.definition.currency_symbol)
            raise bad_input(f"amount must be greater than zero and at most the program's ceiling of {ceiling}")
        coupons = await (await context.loaders()).coupons_by_member_id.load(self.member_id)
        for coupon in coupons:  # a coupon enters and leaves the quotes at these moments
            context.changes_at(coupon.valid_from)
            context.changes_at(coupon.valid_until + EXPIRED_AFTER)
        currency = program.definition.currency
        return [CouponQuote(coupon=Coupon.of(context, program.definition, q.coupon),
                            discount=Money.of_fen(q.discount_fen, currency), payable=Money.of_fen(q.payable_fen, currency))
                for q in quote_coupons(program, coupons, amount_fen, context.now)]

    @strawberry.field(description="The benefits the member's tier holds, with remaining quota and whether each can be claimed now.")
    async def benefits(self, info: Info) -> list[MemberBenefit]:
        return await member_benefits(info.context, self.row)

    @strawberry.field(description="RFM scores and segment from the latest refresh; null for members themselves and "
                                  "before the first refresh.")
    async def rfm(self, info: Info) -> Optional[RfmScore]:
        context = info.context
        if context.principal.role is Role.MEMBER:
            return None
        row = await (await context.loaders()).rfm_by_member_id.load(self.member_id)
        return RfmScore.of(context, row, (await context.program()).definition.currency) if row else None

    @strawberry.field(description="Lifecycle stage now (会员生命周期), from the program's lifecycle rules.")
    async def lifecycle_stage(self, info: Info) -> LifecycleStage:
        return LifecycleStage(await (await info.context.loaders()).lifecycle_by_member_id.load(self.member_id))

    @strawberry.field(permission_classes=[OperatorOrService],
                      description="Tags the member holds now: MANUAL tags put on them and RULE tags whose audience "
                                  "includes them, in the order they were defined. OPERATOR or SERVICE.")
    async def tags(self, info: Info) -> list[MemberTag]:
        return await member_tags(info.context, self.member_id)

    @strawberry.field(description="Daily check-in status (签到).")
    async def check_in(self, info: Info) -> CheckInStatus:
        return await member_check_in_status(info.context, self.member_id)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        return [await member_node(info.context, i) if i is not None else None for i in row_ids(node_ids, "Member")]


async def member_node(context, member_id: int) -> Member | None:
    row = await (await context.loaders()).member_by_id.load(member_id)
    if row is None:
        return None
    await context.check_member_visible(row)
    return Member.of(context, row)


def member_id_from_global_id(value: relay.GlobalID) -> int:
    """input.memberId of a mutation: malformed → BAD_USER_INPUT; another type's or an impossible id → NOT_FOUND."""
    return input_row_id(value, "Member", "input", "memberId")


@strawberry.type(description="A page of members.")
class MemberConnection(Connection[Member]):
    pass


@strawberry.type
class MemberQueries:
    @strawberry.field(permission_classes=[SignedIn],
                      description="The signed-in member (MEMBER role); null for other roles or before enrolment.")
    async def viewer(self, info: Info) -> Optional[Member]:
        context = info.context
        if context.principal.role is not Role.MEMBER:
            return None
        program = await context.program()
        row = await (await context.loaders()).member_by_external_id.load((program.id, context.principal.sub))
        if row is None:
            return None
        context.changes_at(row.tier_valid_until)
        return Member.of(context, row)

    @strawberry.field(permission_classes=[OperatorOrService],
                      description="A member of the caller's program, by id or by externalId (exactly one). OPERATOR or SERVICE.")
    async def member(self, info: Info, id: Optional[relay.GlobalID] = None,
                     external_id: Optional[str] = None) -> Optional[Member]:
        context = info.context
        if (id is None) == (external_id is None):
            raise bad_input("give exactly one of id and externalId")
        if id is not None:
            if id.type_name != "Member":
                raise bad_input("id is not a Member id")
            member_id = row_id(id.node_id, "Member")
            return await member_node(context, member_id) if member_id is not None else None
        program = await context.program()
        row = await (await context.loaders()).member_by_external_id.load((program.id, external_id))
        return Member.of(context, row) if row is not None else None

    @strawberry.field(permission_classes=[OperatorOrService],
                      description="Members of the caller's program, oldest first, with the total. Filter by tier, "
                                  "search in externalId and displayName, RFM segment, lifecycle stage, or silence "
                                  "(no order for `silentForDays` days: the 沉默预警 list), value quadrant, channel or tag; filters "
                                  "combine (all must hold). `first` is 1–100 "
                                  "(default 20). OPERATOR or SERVICE.")
    async def members(self, info: Info, first: Optional[int] = None, after: Optional[str] = None,
                      tier: Annotated[Optional[relay.GlobalID], strawberry.argument(
                          description="A tier's id (`Tier.id`, as `program { ladder { tiers { id code } } }` "
                                      "lists them), not its code.")] = None,
                      search: Optional[str] = None,
                      segment: Optional[str] = None, lifecycle_stage: Optional[LifecycleStage] = None,
                      silent_for_days: Optional[int] = None,
                      quadrant: Optional[ValueQuadrant] = None,
                      channel: Annotated[Optional[Channel], strawberry.argument(
                          description="Members the channel reached: joined or ordered through it.")] = None,
                      tag: Annotated[Optional[str], strawberry.argument(
                          description="A tag code (MANUAL or RULE): the members holding it now.")] = None,
                      ) -> MemberConnection:
        context = info.context
        size, after_id = page_args(first, after)
        definition = (await context.program()).definition
        tier_code = tier_code_from_global_id(definition, tier) if tier is not None else None
        if search is not None and len(search) > MAX_SEARCH_LENGTH:
            raise bad_input(f"search is longer than {MAX_SEARCH_LENGTH} characters")
        if segment is not None and segment not in SEGMENTS:
            raise bad_input(f"segment must be one of: {', '.join(SEGMENTS)}")
        if silent_for_days is not None and not 1 <= silent_for_days <= 3650:
            raise bad_input("silentForDays must be between 1 and 3650")
        page = await (await context.loaders()).members_page(
            first=size, after=after_id, tier_code=tier_code, search=search, segment=segment,
            lifecycle_stage=lifecycle_stage.value if lifecycle_stage else None, silent_for_days=silent_for_days,
            quadrant=quadrant.value if quadrant else None, channel=channel.value if channel else None,
            tag=await tag_selection(context, tag) if tag is not None else None)
        return connection(page, lambda row: Member.of(context, row), after_id, MemberConnection)


@strawberry.input(description="A shopper joining the program. Idempotent on externalId.")
class EnrollMemberInput:
    external_id: str = strawberry.field(description="The member's id in the shop; the idempotency key.")
    display_name: Optional[str] = strawberry.field(default=None, description="Name to greet the member with.")
    birthday: Optional[date] = strawberry.field(default=None, description="Birthday (YYYY-MM-DD).")
    phone: Optional[str] = strawberry.field(default=None, description="Phone number, digits with optional + and separators.")
    referral_code: Optional[str] = strawberry.field(default=None, description="Referral code of the member who brought this one.")
    joined_at: Optional[datetime] = strawberry.field(default=None, description="When they joined (default now), ISO 8601 with an offset.")
    channel: Optional[Channel] = strawberry.field(default=None, description="Where they joined; ONLINE when omitted.")
    store_code: Optional[str] = strawberry.field(default=None, description="Required for STORE enrolments: one of the program's stores.")


@strawberry.type(description="Result of enrollMember.")
class EnrollMemberPayload:
    member: Optional[Member] = strawberry.field(default=None, description="The enrolled member.")
    duplicate: bool = strawberry.field(default=False, description="True when this member had been enrolled before with the same details; nothing changed.")
    user_errors: list[UserError] = strawberry.field(default_factory=list, description="Why nothing was changed, if so.")


@strawberry.type
class MemberMutations:
    @strawberry.mutation(permission_classes=[ServiceOnly], description=(
        "Enrol a shopper: entry tier and the program's welcome bonus. The same externalId again with the same "
        "details is `duplicate: true`; with different details a DUPLICATE userError. SERVICE only."))
    async def enroll_member(self, info: Info, input: EnrollMemberInput) -> EnrollMemberPayload:
        context = info.context
        program = await context.program()
        request = member_service.EnrolmentInput(
            external_id=input.external_id, display_name=input.display_name, birthday=input.birthday,
            phone=input.phone, referral_code=input.referral_code, joined_at=input.joined_at,
            channel=channel_value(input.channel), store_code=input.store_code)
        try:
            result = await member_service.enroll_member(context.db, program, request, now=context.now,
                                                        broker=context.broker)
        except Rejected as rejection:
            return EnrollMemberPayload(user_errors=user_errors(rejection))
        context.reset_loaders()
        return EnrollMemberPayload(member=await member_node(context, result.member_id), duplicate=result.duplicate)
