"""Points: the account, its ledger, and operators' adjustments."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Iterable, Optional

import strawberry
from strawberry import relay
from strawberry.types import Info

from ..domain.errors import Rejected
from ..services import expiry as expiry_service
from ..services.expiry import REMINDER_DAYS
from ..services import points as points_service
from ..store.models import PointsEntry as PointsEntryRow
from .connections import Connection, connection, page_args
from .errors import UserError, user_errors
from .nodes import rows_by_node_ids
from .permissions import OperatorOnly

if TYPE_CHECKING:
    from .members import Member

MemberRef = Annotated["Member", strawberry.lazy("tierup.api.members")]


@strawberry.enum(description="What changed a member's points.")
class PointsEntryKind(Enum):
    EARN = strawberry.enum_value("EARN", description="Earned: orders, the welcome bonus, tasks, check-ins.")
    SPEND = strawberry.enum_value("SPEND", description="Spent on a reward, or paying for an order (积分抵扣).")
    EXPIRE = strawberry.enum_value("EXPIRE", description="Expired unspent (积分清零).")
    REVERSE = strawberry.enum_value("REVERSE", description="Taken back by a refund.")
    ADJUST = strawberry.enum_value("ADJUST", description="Corrected by an operator.")
    RETURN = strawberry.enum_value("RETURN", description="Given back by a refund: points that had paid for the order.")


@strawberry.type(description="One change of a member's points. The balance is the sum of the ledger.")
class PointsEntry(relay.Node):
    entry_id: relay.NodeID[int] = strawberry.field(description="Internal id.")
    kind: PointsEntryKind = strawberry.field(description="What kind of change.")
    amount: int = strawberry.field(description="Points added (positive) or taken (negative).")
    balance_after: int = strawberry.field(description="The balance right after this entry.")
    reason: str = strawberry.field(description="Why, e.g. 'Order A-1001 at 2×'.")
    occurred_at: datetime = strawberry.field(description="When the event that caused it happened.")
    expires_at: Optional[datetime] = strawberry.field(description="When these points expire, if they do.")
    shortfall: int = strawberry.field(
        description="For a reversal: points the refund should have taken but that had already been spent.")

    @classmethod
    def of(cls, context, row: PointsEntryRow) -> "PointsEntry":
        return cls(entry_id=row.id, kind=PointsEntryKind(row.kind), amount=row.amount,
                   balance_after=row.balance_after, reason=row.reason,
                   occurred_at=context.local_time(row.occurred_at), expires_at=context.local_time(row.expires_at),
                   shortfall=row.shortfall)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        context = info.context
        loaders = await context.loaders()
        rows = await rows_by_node_ids(loaders.points_entry_by_id, node_ids, "PointsEntry")
        members = await loaders.member_by_id.load_many([r.member_id for r in rows if r is not None])
        for member in members:
            await context.check_member_visible(member)
        return [cls.of(context, r) if r is not None else None for r in rows]


@strawberry.type(description="A page of ledger entries, newest first.")
class PointsEntryConnection(Connection[PointsEntry]):
    pass


@strawberry.type(description="A member's points: balance and history.")
class PointsAccount:
    member_id: strawberry.Private[int]

    @strawberry.field(description="The same on every read of this member's points: what normalised client caches "
                                  "(Apollo, urql) key it by. Not a node id.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(relay.to_base64("PointsAccount", self.member_id))

    @strawberry.field(description="Points available to spend: the sum of the ledger.")
    async def balance(self, info: Info) -> int:
        return await (await info.context.loaders()).points_balance_by_member_id.load(self.member_id)

    @strawberry.field(description="Points that expire within the next 30 days.")
    async def expiring_soon(self, info: Info) -> int:
        context = info.context
        lots = await (await context.loaders()).lots_by_member_id.load(self.member_id)
        horizon = context.now + timedelta(days=REMINDER_DAYS)
        return sum(lot.remaining for lot in lots if lot.expires_at and context.now < lot.expires_at <= horizon)

    @strawberry.field(description="When the next points expire (the end of a month, program time); null when none do.")
    async def next_expiry_at(self, info: Info) -> Optional[datetime]:
        context = info.context
        lots = await (await context.loaders()).lots_by_member_id.load(self.member_id)
        upcoming = [lot.expires_at for lot in lots if lot.expires_at and lot.expires_at > context.now]
        return context.local_time(min(upcoming)) if upcoming else None

    @strawberry.field(description="Ledger entries, newest first.")
    async def ledger(self, info: Info, first: Optional[int] = None, after: Optional[str] = None) -> PointsEntryConnection:
        size, after_id = page_args(first, after)
        page = await (await info.context.loaders()).ledger_page(self.member_id, first=size, after=after_id)
        return connection(page, lambda row: PointsEntry.of(info.context, row), after_id, PointsEntryConnection)


@strawberry.input(description="A manual correction of a member's points.")
class AdjustPointsInput:
    member_id: relay.GlobalID = strawberry.field(description="The member (a Member id).")
    amount: int = strawberry.field(description="Points to add (positive) or take (negative); not zero, at most ±1,000,000.")
    reason: str = strawberry.field(description="Why; shown to the member in their ledger. At most 200 characters.")
    external_id: str = strawberry.field(description="Idempotency key: the same adjustment again changes nothing.")


@strawberry.type(description="Result of adjustPoints.")
class AdjustPointsPayload:
    member: Optional[MemberRef] = strawberry.field(default=None, description="The member after the adjustment.")
    duplicate: bool = strawberry.field(default=False, description="True when this externalId was applied before; nothing changed.")
    user_errors: list[UserError] = strawberry.field(default_factory=list, description="Why nothing was changed, if so.")


@strawberry.input(description="When to expire points as of; defaults to now.")
class ExpirePointsInput:
    as_of: Optional[datetime] = strawberry.field(default=None, description="Expire what is due by this time (ISO 8601 with offset).")


@strawberry.type(description="What a points expiry run did.")
class ExpirePointsPayload:
    members_affected: int = strawberry.field(default=0, description="Members who lost points.")
    points_expired: int = strawberry.field(default=0, description="Points expired in all.")
    user_errors: list[UserError] = strawberry.field(default_factory=list, description="Why nothing was done, if so.")


@strawberry.type
class PointsMutations:
    @strawberry.mutation(permission_classes=[OperatorOnly], description=(
        "Expire what is left of every lot due by `asOf` (default now) with EXPIRE entries, and remind members "
        "of points expiring within 30 days. Running it again for the same time changes nothing. OPERATOR only."))
    async def expire_points(self, info: Info, input: Optional[ExpirePointsInput] = None) -> ExpirePointsPayload:
        context = info.context
        try:
            as_of = context.as_of(input.as_of if input else None)
        except Rejected as rejection:
            return ExpirePointsPayload(user_errors=user_errors(rejection))
        run = await expiry_service.expire_points(context.db, await context.program(), as_of=as_of,
                                                 broker=context.broker)
        context.reset_loaders()
        return ExpirePointsPayload(members_affected=run.members_affected, points_expired=run.points_expired)

    @strawberry.mutation(permission_classes=[OperatorOnly], description=(
        "Add or take points by hand, with a reason; idempotent on externalId. Never drives a balance below zero "
        "(INSUFFICIENT_POINTS). OPERATOR only."))
    async def adjust_points(self, info: Info, input: AdjustPointsInput) -> AdjustPointsPayload:
        context = info.context
        program = await context.program()
        from .members import member_id_from_global_id, member_node  # Member's module imports this one

        try:
            member_id = member_id_from_global_id(input.member_id)
            result = await points_service.adjust_points(
                context.db, program,
                points_service.AdjustmentInput(member_id=member_id, amount=input.amount, reason=input.reason,
                                               external_id=input.external_id),
                operator=context.principal.sub, now=context.now, broker=context.broker)
        except Rejected as rejection:
            return AdjustPointsPayload(user_errors=user_errors(rejection))
        context.reset_loaders()
        return AdjustPointsPayload(member=await member_node(context, result.member_id), duplicate=result.duplicate)
