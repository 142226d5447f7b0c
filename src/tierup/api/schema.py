"""The schema: every concept's queries and mutations merged, with limits and caches on."""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from typing import Optional

import strawberry
from graphql import GraphQLError, GraphQLObjectType
from strawberry import relay
from strawberry.extensions import MaskErrors
from strawberry.relay.types import GlobalIDValueError
from strawberry.types import ExecutionResult, Info
from strawberry.types.graphql import OperationType
from strawberry.schema.schema import DEFAULT_ALLOWED_OPERATION_TYPES

from ..config import Settings
from . import cache
from .errors import BAD_USER_INPUT, bad_input
from .limits import DEADLINE_EXCEEDED, INTERNAL_SERVER_ERROR, DeadlineExecutionContext, Limits, RequestLimits, deadline
from .members import MemberMutations, MemberQueries
from .operations import current_request_id, tracing_extension
from .orders import OrderMutations
from .points import PointsMutations
from .programs import ProgramQueries
from .activities import ActivityMutations
from .analytics import AnalyticsMutations
from .benefits import BenefitMutations
from .campaigns import CampaignMutations
from .checkins import CheckInMutations
from .coupons import CouponMutations
from .kpis import KpiMutations
from .mall import MallMutations
from .publishing import PublishingMutations
from .simulation import SimulationMutations
from .stored_value import StoredValueMutations
from .memberships import MembershipMutations
from .reviews import ReviewMutations
from .scalars import SCALAR_OVERRIDES
from .subscriptions import Subscription
from .tags import TagMutations
from .tasks import TaskMutations
from .tiers import TierMutations
from .webhooks import WebhookMutations

log = logging.getLogger("tierup.api")

@strawberry.type
class NodeQueries:
    @strawberry.field(description="Any object by its global id, e.g. a Member, Tier or Order; null when unknown.")
    async def node(self, info: Info, id: relay.GlobalID) -> Optional[relay.Node]:
        # A plain resolver rather than relay.node(): that field cannot be shared by two schemas in one process.
        known = info.schema.schema_converter.type_map.get(id.type_name)
        if known is None or not isinstance(known.implementation, GraphQLObjectType) \
                or "Node" not in (i.name for i in known.implementation.interfaces):
            raise bad_input(f"{id.type_name!r} is not a kind of node of this schema")
        return await id.resolve_node(info, required=False)


@strawberry.type(description="Reads. Members see themselves; operators and services see their program.")
class Query(NodeQueries, MemberQueries, ProgramQueries):
    pass


@strawberry.type(description="Writes. Each takes one `input` and answers with a payload carrying `userErrors`.")
class Mutation(MemberMutations, OrderMutations, ReviewMutations, CheckInMutations, TaskMutations, BenefitMutations,
               MallMutations, CouponMutations, PointsMutations, TierMutations, AnalyticsMutations,
               PublishingMutations, KpiMutations, SimulationMutations, StoredValueMutations,
               MembershipMutations, TagMutations, CampaignMutations, ActivityMutations, WebhookMutations):
    pass


def error_code(error: GraphQLError) -> str:
    """The error's code, given one here when nothing raised it with one.

    Errors outside any field (variables that do not coerce, a missing operation) are the
    request's fault, and so is a global id that does not decode; anything else that
    escaped a resolver without a code is unexpected.
    """
    code = (error.extensions or {}).get("code")
    if code is None:
        original = error.original_error
        outside_fields = error.path is None and (original is None or isinstance(original, (ValueError, GraphQLError)))
        code = BAD_USER_INPUT if outside_fields or isinstance(original, GlobalIDValueError) else INTERNAL_SERVER_ERROR
        error.extensions = {**(error.extensions or {}), "code": code}
    return code


class MaskUnexpectedErrors(MaskErrors):
    """Production: an unexpected error reaches the client as a request id, never as a message or trace."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=lambda error: error_code(error) == INTERNAL_SERVER_ERROR,
                         error_message="Unexpected error; quote the requestId when reporting it.")

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        request_id = current_request_id() or uuid.uuid4().hex[:16]  # over HTTP, the id its log line carries
        log.error("unexpected error, request id %s: %s", request_id, error.message, exc_info=error.original_error)
        masked = super().anonymise_error(error)
        masked.extensions = {"code": INTERNAL_SERVER_ERROR, "requestId": request_id}
        return masked


class TierupSchema(strawberry.Schema):
    def __init__(self, *args, limits: Limits, **kwargs):
        super().__init__(*args, execution_context_class=DeadlineExecutionContext, **kwargs)
        self.limits = limits

    def process_errors(self, errors, execution_context=None) -> None:
        # The client's mistakes (bad input, auth, limits) are the client's business, not the server log's.
        unexpected = [e for e in errors if error_code(e) == INTERNAL_SERVER_ERROR]
        if unexpected:
            super().process_errors(unexpected, execution_context)

    def _get_execute_function(self):
        # Production names no fields, types or enum values that the caller did not already send.
        return functools.partial(super()._get_execute_function(), hide_suggestions=self.limits.production)

    async def execute(self, query, variable_values=None, context_value=None, root_value=None, operation_name=None,
                      allowed_operation_types=None, operation_extensions=None) -> ExecutionResult:
        """Every HTTP operation runs under the deadline: awaits are cancelled when it passes,
        and fields starting after it fail at once (see DeadlineExecutionContext). Subscriptions
        are for WebSockets: over HTTP they are refused (400) rather than resolved to nothing."""
        allowed = set(allowed_operation_types or DEFAULT_ALLOWED_OPERATION_TYPES) - {OperationType.SUBSCRIPTION}
        with deadline(self.limits.deadline_seconds) as current:
            try:
                async with asyncio.timeout(current.seconds):
                    result = await cache.answer(context_value, query, variable_values, operation_name, lambda: super(
                        TierupSchema, self).execute(query, variable_values, context_value, root_value, operation_name,
                                                    allowed, operation_extensions))
            except TimeoutError:
                return ExecutionResult(data=None, errors=[current.error()])
        if result.errors and any(error_code(e) == DEADLINE_EXCEEDED for e in result.errors):
            return ExecutionResult(data=None, errors=[current.error()], extensions=result.extensions)
        return result


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    settings = settings or Settings()
    limits = Limits(max_depth=settings.max_query_depth, max_aliases=settings.max_aliases,
                    max_tokens=settings.max_tokens, max_cost=settings.max_query_cost,
                    deadline_seconds=settings.execution_deadline, production=settings.production)
    # Factories: Strawberry builds fresh extension instances per request; limits and caches are shared.
    extensions: list = [lambda: RequestLimits(limits)]
    if settings.production:
        extensions.append(MaskUnexpectedErrors)
    if settings.otel_tracing:
        extensions.append(tracing_extension)
    return TierupSchema(query=Query, mutation=Mutation, subscription=Subscription, extensions=extensions,
                        limits=limits, scalar_overrides=SCALAR_OVERRIDES)


def schema_sdl() -> str:
    return build_schema().as_str() + "\n"
