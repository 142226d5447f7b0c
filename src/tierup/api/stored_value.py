"""Stored value (储值): the account, its ledger, top-ups and operators' corrections."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Iterable, Optional

import strawberry
from strawberry import relay
from strawberry.types import Info

from ..domain.errors import Rejected
from ..services import stored_value as stored_value_service
from ..store.models import StoredValueEntry as StoredValueEntryRow
from .channels import Channel, channel_value
from .connections import Connection, connection, page_args
from .errors import UserError, user_errors
from .money import Money
from .nodes import rows_by_node_ids
from .permissions import OperatorOnly, ServiceOnly
from .scalars import sent_text

if TYPE_CHECKING:
    from .members import Member

MemberRef = Annotated["Member", strawberry.lazy("tierup.api.members")]


@strawberry.enum(description="What changed a member's stored value.")
class StoredValueEntryKind(Enum):
    TOP_UP = strawberry.enum_value("TOP_UP", description="Money the member paid in.")
    BONUS = strawberry.enum_value("BONUS", description="The program's bonus on a top-up (充值赠送).")
    SPEND = strawberry.enum_value("SPEND", description="Paid an order with it.")
    REFUND = strawberry.enum_value("REFUND", description="Given back by a refund of an order it paid.")
    ADJUST = strawberry.enum_value("ADJUST", description="Corrected by an operator.")


@strawberry.type(description="One change of a member's stored value. The balance is the sum of the ledger.")
class StoredValueEntry(relay.Node):
    entry_id: relay.NodeID[int] = strawberry.field(description="Internal id.")
    kind: StoredValueEntryKind = strawberry.field(description="What kind of change.")
    amount: Money = strawberry.field(description="Added (positive) or taken (negative).")
    balance_after: Money = strawberry.field(description="The balance right after this entry.")
    reason: str = strawberry.field(description="Why, e.g. 'Top-up T-1001'.")
    occurred_at: datetime = strawberry.field(description="When it happened, in program time.")

    @classmethod
    def of(cls, context, row: StoredValueEntryRow, currency: str) -> "StoredValueEntry":
        return cls(entry_id=row.id, kind=StoredValueEntryKind(row.kind), amount=Money.of_fen(row.amount_fen, currency),
                   balance_after=Money.of_fen(row.balance_after_fen, currency), reason=row.reason,
                   occurred_at=context.local_time(row.occurred_at))

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        context = info.context
        loaders = await context.loaders()
        rows = await rows_by_node_ids(loaders.stored_value_entry_by_id, node_ids, "StoredValueEntry")
        for member in await loaders.member_by_id.load_many([r.member_id for r in rows if r is not None]):
            await context.check_member_visible(member)
        currency = (await context.program()).definition.currency
        return [cls.of(context, r, currency) if r is not None else None for r in rows]


@strawberry.type(description="A page of stored-value entries, newest first.")
class StoredValueEntryConnection(Connection[StoredValueEntry]):
    pass


@strawberry.type(description="A member's stored value (账户余额/储值): balance and history. It never expires.")
class StoredValueAccount:
    member_id: strawberry.Private[int]

    @strawberry.field(description="The same on every read of this member's stored value: what normalised client "
                                  "caches key it by. Not a node id.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(relay.to_base64("StoredValueAccount", self.member_id))

    @strawberry.field(description="What the member can pay with: the sum of the ledger.")
    async def balance(self, info: Info) -> Money:
        context = info.context
        fen = await (await context.loaders()).stored_value_by_member_id.load(self.member_id)
        return Money.of_fen(fen, (await context.program()).definition.currency)

    @strawberry.field(description="Ledger entries, newest first.")
    async def entries(self, info: Info, first: Optional[int] = None,
                      after: Optional[str] = None) -> StoredValueEntryConnection:
        context = info.context
        size, after_id = page_args(first, after)
        page = await (await context.loaders()).stored_value_page(self.member_id, first=size, after=after_id)
        currency = (await context.program()).definition.currency
        return connection(page, lambda row: StoredValueEntry.of(context, row, currency), after_id,
                          StoredValueEntryConnection)


@strawberry.input(description="A paid top-up of stored value. Idempotent on externalId.")
class TopUpStoredValueInput:
    external_id: str = strawberry.field(description="The shop's payment id; the idempotency key.")
    member_external_id: str = strawberry.field(description="The member's id in the shop.")
    amount: Decimal = strawberry.field(description="Money paid in, e.g. \"500.00\".")
    paid_at: datetime = strawberry.field(description="When it was paid, ISO 8601 with an offset.")
    channel: Optional[Channel] = strawberry.field(default=None, description="Where it was paid; ONLINE when omitted.")
    store_code: Optional[str] = strawberry.field(default=None, description="Required for STORE top-ups.")


@strawberry.type(description="Result of topUpStoredValue.")
class TopUpStoredValuePayload:
    member: Optional[MemberRef] = strawberry.field(default=None, description="The member after the top-up.")
    bonus: Optional[Money] = strawberry.field(default=None, description="The bonus the program's rules added; null for none.")
    duplicate: bool = strawberry.field(default=False, description="True when this externalId had been recorded before; nothing changed.")
    user_errors: list[UserError] = strawberry.field(default_factory=list, description="Why nothing was recorded, if so.")


@strawberry.input(description="A manual correction of a member's stored value.")
class AdjustStoredValueInput:
    member_id: relay.GlobalID = strawberry.field(description="The member (a Member id).")
    amount: Decimal = strawberry.field(description="Money to add (positive) or take (negative), e.g. \"-20.00\".")
    reason: str = strawberry.field(description="Why; shown in the member's stored-value ledger. At most 200 characters.")
    external_id: str = strawberry.field(description="Idempotency key: the same correction again changes nothing.")


@strawberry.type(description="Result of adjustStoredValue.")
class AdjustStoredValuePayload:
    member: Optional[MemberRef] = strawberry.field(default=None, description="The member after the correction.")
    duplicate: bool = strawberry.field(default=False, description="True when this externalId was applied before; nothing changed.")
    user_errors: list[UserError] = strawberry.field(default_factory=list, description="Why nothing was changed, if so.")


@strawberry.type
class StoredValueMutations:
    @strawberry.mutation(permission_classes=[ServiceOnly], description=(
        "A paid top-up of stored value; idempotent on externalId. The program's top-up bonus rules add a BONUS "
        "entry. SERVICE only."))
    async def top_up_stored_value(self, info: Info, input: TopUpStoredValueInput) -> TopUpStoredValuePayload:
        from .members import member_node

        context = info.context
        program = await context.program()
        request = stored_value_service.TopUpInput(
            external_id=input.external_id, member_external_id=input.member_external_id,
            amount=sent_text(input.amount), paid_at=input.paid_at, channel=channel_value(input.channel),
            store_code=input.store_code)
        try:
            result = await stored_value_service.top_up_stored_value(context.db, program, request, now=context.now,
                                                                    broker=context.broker)
        except Rejected as rejection:
            return TopUpStoredValuePayload(user_errors=user_errors(rejection))
        context.reset_loaders()
        bonus = Money.of_fen(result.bonus_fen, program.definition.currency) if result.bonus_fen else None
        return TopUpStoredValuePayload(member=await member_node(context, result.member_id), bonus=bonus,
                                       duplicate=result.duplicate)

    @strawberry.mutation(permission_classes=[OperatorOnly], description=(
        "Add or take stored value by hand, with a reason; idempotent on externalId. Never below zero "
        "(INSUFFICIENT_BALANCE). OPERATOR only."))
    async def adjust_stored_value(self, info: Info, input: AdjustStoredValueInput) -> AdjustStoredValuePayload:
        from .members import member_id_from_global_id, member_node

        context = info.context
        program = await context.program()
        try:
            member_id = member_id_from_global_id(input.member_id)
            duplicate = await stored_value_service.adjust_stored_value(
                context.db, program, stored_value_service.StoredValueAdjustment(
                    member_id=member_id, amount=sent_text(input.amount), reason=input.reason,
                    external_id=input.external_id),
                operator=context.principal.sub, now=context.now, broker=context.broker)
        except Rejected as rejection:
            return AdjustStoredValuePayload(user_errors=user_errors(rejection))
        context.reset_loaders()
        return AdjustStoredValuePayload(member=await member_node(context, member_id), duplicate=duplicate)
