"""Signed webhooks: WebhookEndpoint, its deliveries and their attempts; createWebhook, deleteWebhook,
enableWebhook. OPERATOR only: an endpoint's URL and what it was sent are the operator's business."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from enum import Enum
from typing import Iterable, Optional
from weakref import WeakKeyDictionary

import strawberry
from aiodataloader import DataLoader
from strawberry import relay
from strawberry.types import Info

from ..auth import Role
from ..domain.errors import Rejected
from ..domain.webhooks import MAX_ATTEMPTS
from ..services import webhooks as webhook_service
from ..store.models import WebhookEndpoint as EndpointRow
from .connections import Connection, connection, page_args
from .errors import UserError, user_errors
from .loaders import Page
from .nodes import input_row_id, row_ids
from .permissions import OperatorOnly
from .subscriptions import MemberEventKind


@strawberry.enum(description="Where a delivery stands.")
class WebhookDeliveryStatus(Enum):
    PENDING = strawberry.enum_value("PENDING", description="Not delivered yet: sent soon, or tried again at "
                                                           "nextAttemptAt.")
    DELIVERED = strawberry.enum_value("DELIVERED", description="The endpoint answered 2xx.")
    FAILED = strawberry.enum_value("FAILED", description="Every attempt failed for 24 hours; not tried again.")
    CANCELLED = strawberry.enum_value("CANCELLED", description="Its endpoint was deleted or disabled before it "
                                                               "could be delivered.")


@strawberry.type(description="One try at sending a delivery.")
class WebhookAttempt:
    at: datetime = strawberry.field(description="When it was sent.")
    status_code: Optional[int] = strawberry.field(description="The HTTP status the endpoint answered; null when "
                                                              "it did not answer (refused, timed out, TLS).")
    error: Optional[str] = strawberry.field(description="Why it failed, e.g. 'HTTP 500' or 'no answer in time'; "
                                                        "null when it succeeded.")
    duration_ms: int = strawberry.field(description="How long the endpoint took, in milliseconds.")


@strawberry.type(description="One member event sent (or to be sent) to one endpoint.")
class WebhookDelivery(relay.Node):
    delivery_id: relay.NodeID[int] = strawberry.field(description="Internal id.")
    message_id: str = strawberry.field(description="The webhook-id header: the same on every attempt, so a "
                                                   "receiver can ignore a message it already handled.")
    kind: MemberEventKind = strawberry.field(description="The event.")
    payload: str = strawberry.field(description="The JSON body, exactly as sent.")
    status: WebhookDeliveryStatus = strawberry.field(description="PENDING, DELIVERED, FAILED or CANCELLED.")
    created_at: datetime = strawberry.field(description="When the event's transaction wrote it.")
    next_attempt_at: Optional[datetime] = strawberry.field(
        description="PENDING after a failed attempt: when it is tried again. Null when it is sent as soon as "
                    "possible, or not again.")
    finished_at: Optional[datetime] = strawberry.field(description="When it was delivered, failed for good or "
                                                                   "was cancelled.")
    attempts: list[WebhookAttempt] = strawberry.field(description="Every try, oldest first.",
                                                      metadata={"list_estimate": MAX_ATTEMPTS})

    @classmethod
    def of(cls, context, row, attempts) -> "WebhookDelivery":
        waiting = row.status == webhook_service.PENDING and row.attempts > 0
        return cls(delivery_id=row.id, message_id=row.message_id, kind=MemberEventKind(row.kind),
                   payload=row.payload, status=WebhookDeliveryStatus(row.status),
                   created_at=context.local_time(row.created_at),
                   next_attempt_at=context.local_time(row.next_attempt_at) if waiting else None,
                   finished_at=context.local_time(row.finished_at),
                   attempts=[WebhookAttempt(at=context.local_time(a.attempted_at), status_code=a.status_code,
                                            error=a.error, duration_ms=a.duration_ms) for a in attempts])

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        context = info.context
        context.require(Role.OPERATOR)
        program = await context.program()
        ids = row_ids(node_ids, "WebhookDelivery")
        found = await webhook_service.deliveries_by_id(context.db, program, [i for i in ids if i is not None])
        return [cls.of(context, *found[i]) if i in found else None for i in ids]


@strawberry.type(description="A page of an endpoint's deliveries, newest first.")
class WebhookDeliveryConnection(Connection[WebhookDelivery]):
    pass


@strawberry.type(description="A shop's URL that receives the member events it chose, signed per the Standard "
                             "Webhooks spec with the secret shown when it was created.")
class WebhookEndpoint(relay.Node):
    endpoint_id: relay.NodeID[int] = strawberry.field(description="Internal id.")
    url: str = strawberry.field(description="Where the events are POSTed.")
    events: list[MemberEventKind] = strawberry.field(description="The member events it receives.")
    active: bool = strawberry.field(description="False once disabled (see disabledReason): it receives nothing "
                                                "until enableWebhook.")
    created_at: datetime = strawberry.field(description="When it was created.")
    failing_since: Optional[datetime] = strawberry.field(
        description="The first failed attempt since the last success; null while it answers. After 24 hours of "
                    "failures it is disabled.")
    disabled_at: Optional[datetime] = strawberry.field(description="When it was disabled; null while active.")
    disabled_reason: Optional[str] = strawberry.field(description="Why it was disabled, with the last attempt's "
                                                                  "error; null while active.")

    @strawberry.field(description="What was sent to it, newest first; `status` keeps only deliveries in that state.")
    async def deliveries(self, info: Info, first: Optional[int] = None, after: Optional[str] = None,
                         status: Optional[WebhookDeliveryStatus] = None) -> WebhookDeliveryConnection:
        size, after_id = page_args(first, after)
        key = (self.endpoint_id, size, after_id, status.value if status is not None else None)
        page = await (await _delivery_loader(info.context)).load(key)
        to_node = lambda row: WebhookDelivery.of(info.context, row, page.attempts[row.id])  # noqa: E731
        return connection(Page(page.rows, page.has_next, page.total), to_node, after_id, WebhookDeliveryConnection)

    @classmethod
    def of(cls, context, row: EndpointRow) -> "WebhookEndpoint":
        return cls(endpoint_id=row.id, url=row.url, events=[MemberEventKind(k) for k in row.events.split(",")],
                   active=row.active, created_at=context.local_time(row.created_at),
                   failing_since=context.local_time(row.failing_since), disabled_at=context.local_time(row.disabled_at),
                   disabled_reason=row.disabled_reason)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        context = info.context
        context.require(Role.OPERATOR)
        by_id = {row.id: row for row in await webhook_service.program_endpoints(context.db, await context.program())}
        return [cls.of(context, by_id[i]) if i in by_id else None for i in row_ids(node_ids, "WebhookEndpoint")]


# Keyed by the request's loaders: a write resets them (context.reset_loaders), and this loader goes with them.
_loaders: WeakKeyDictionary = WeakKeyDictionary()


async def _delivery_loader(context) -> DataLoader:
    loaders = await context.loaders()
    loader = _loaders.get(loaders)
    if loader is None:
        async def pages(keys: list[tuple]) -> list:
            # Endpoints asked for with the same paging and status share one read.
            by_paging = defaultdict(list)
            for endpoint_id, *paging in keys:
                by_paging[tuple(paging)].append(endpoint_id)
            found = {}
            for (first, after, status), endpoint_ids in by_paging.items():
                read = await webhook_service.delivery_pages(context.db, endpoint_ids, first=first, after=after,
                                                            status=status)
                found.update({(i, first, after, status): page for i, page in read.items()})
            return [found[key] for key in keys]

        loader = _loaders[loaders] = DataLoader(pages)
    return loader


async def program_webhooks(context) -> list[WebhookEndpoint]:
    return [WebhookEndpoint.of(context, row)
            for row in await webhook_service.program_endpoints(context.db, await context.program())]


@strawberry.input(description="An endpoint to deliver member events to.")
class CreateWebhookInput:
    url: str = strawberry.field(description="https:// URL (http:// too outside production), at most 2,000 "
                                            "characters, without user name, password or #fragment.")
    events: list[MemberEventKind] = strawberry.field(description="The member events to deliver; at least one.")


@strawberry.type(description="Result of createWebhook.")
class CreateWebhookPayload:
    webhook: Optional[WebhookEndpoint] = strawberry.field(default=None, description="The endpoint created.")
    secret: Optional[str] = strawberry.field(
        default=None, description="The signing secret (whsec_…), shown once: keep it to verify the "
                                  "webhook-signature header. No query shows it again.")
    user_errors: list[UserError] = strawberry.field(default_factory=list, description="Why nothing was created, if so.")


@strawberry.input(description="The endpoint to delete.")
class DeleteWebhookInput:
    webhook_id: relay.GlobalID = strawberry.field(description="The WebhookEndpoint's id.")


@strawberry.type(description="Result of deleteWebhook.")
class DeleteWebhookPayload:
    deleted: bool = strawberry.field(default=False, description="True when the endpoint was deleted.")
    user_errors: list[UserError] = strawberry.field(default_factory=list, description="Why nothing changed, if so.")


@strawberry.input(description="A disabled endpoint to turn back on.")
class EnableWebhookInput:
    webhook_id: relay.GlobalID = strawberry.field(description="The WebhookEndpoint's id.")


@strawberry.type(description="Result of enableWebhook.")
class EnableWebhookPayload:
    webhook: Optional[WebhookEndpoint] = strawberry.field(default=None, description="The endpoint, active again.")
    user_errors: list[UserError] = strawberry.field(default_factory=list, description="Why nothing changed, if so.")


@strawberry.type
class WebhookMutations:
    @strawberry.mutation(permission_classes=[OperatorOnly], description=(
        "OPERATOR: deliver these events to the shop's endpoint, signed per the Standard Webhooks spec (webhook-id, "
        "webhook-timestamp, webhook-signature) and retried with backoff."))
    async def create_webhook(self, info: Info, input: CreateWebhookInput) -> CreateWebhookPayload:
        context = info.context
        request = webhook_service.NewWebhook(url=input.url, events=tuple(kind.value for kind in input.events))
        try:
            created = await webhook_service.create_webhook(
                context.db, await context.program(), request, operator=context.principal.sub, now=context.now,
                allow_http=not context.services.settings.production,
                allow_private=context.services.settings.webhooks_reach_private)
        except Rejected as rejection:
            return CreateWebhookPayload(user_errors=user_errors(rejection))
        return CreateWebhookPayload(webhook=WebhookEndpoint.of(context, created.endpoint), secret=created.secret)

    @strawberry.mutation(permission_classes=[OperatorOnly], description=(
        "OPERATOR: stop delivering to an endpoint; deliveries still waiting for it are cancelled."))
    async def delete_webhook(self, info: Info, input: DeleteWebhookInput) -> DeleteWebhookPayload:
        context = info.context
        try:
            endpoint_id = input_row_id(input.webhook_id, "WebhookEndpoint", "input", "webhookId")
            await webhook_service.delete_webhook(context.db, await context.program(), endpoint_id, now=context.now)
        except Rejected as rejection:
            return DeleteWebhookPayload(user_errors=user_errors(rejection))
        return DeleteWebhookPayload(deleted=True)

    @strawberry.mutation(permission_classes=[OperatorOnly], description=(
        "OPERATOR: turn a disabled endpoint back on, with the same secret; it receives the events of what "
        "happens from now on."))
    async def enable_webhook(self, info: Info, input: EnableWebhookInput) -> EnableWebhookPayload:
        context = info.context
        try:
            endpoint_id = input_row_id(input.webhook_id, "WebhookEndpoint", "input", "webhookId")
            row = await webhook_service.enable_webhook(context.db, await context.program(), endpoint_id,
                                                       now=context.now)
        except Rejected as rejection:
            return EnableWebhookPayload(user_errors=user_errors(rejection))
        return EnableWebhookPayload(webhook=WebhookEndpoint.of(context, row))
