"""The schema: every concept's queries and mutations merged, with limits and caches on."""

from __future__ import annotations

import logging
import uuid
from typing import Optional

import strawberry
from graphql import GraphQLError
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry import relay
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.types import Info

from ..config import Settings
from .errors import BAD_USER_INPUT, FORBIDDEN, UNAUTHENTICATED, bad_input
from .members import MemberMutations, MemberQueries
from .orders import OrderMutations
from .points import PointsMutations
from .programs import ProgramQueries
from .analytics import AnalyticsMutations
from .benefits import BenefitMutations
from .checkins import CheckInMutations
from .coupons import CouponMutations
from .kpis import KpiMutations
from .mall import MallMutations
from .publishing import PublishingMutations
from .simulation import SimulationMutations
from .reviews import ReviewMutations
from .subscriptions import Subscription
from .tasks import TaskMutations
from .tiers import TierMutations

log = logging.getLogger("tierup.api")

EXPECTED_CODES = {UNAUTHENTICATED, FORBIDDEN, BAD_USER_INPUT}


@strawberry.type
class NodeQueries:
    @strawberry.field(description="Any object by its global id, e.g. a Member, Tier or Order; null when unknown.")
    async def node(self, info: Info, id: relay.GlobalID) -> Optional[relay.Node]:
        # A plain resolver rather than relay.node(): that field cannot be shared by two schemas in one process.
        if id.type_name not in info.schema.schema_converter.type_map:
            raise bad_input(f"{id.type_name!r} is not a type of this schema")
        return await id.resolve_node(info, required=False)


@strawberry.type(description="Reads. Members see themselves; operators and services see their program.")
class Query(NodeQueries, MemberQueries, ProgramQueries):
    pass


@strawberry.type(description="Writes. Each takes one `input` and answers with a payload carrying `userErrors`.")
class Mutation(MemberMutations, OrderMutations, ReviewMutations, CheckInMutations, TaskMutations, BenefitMutations,
               MallMutations, CouponMutations, PointsMutations, TierMutations, AnalyticsMutations,
               PublishingMutations, KpiMutations, SimulationMutations):
    pass


class MaskUnexpectedErrors(MaskErrors):
    """Production: an unexpected error reaches the client as a request id, never as a message or trace.

    Errors raised on purpose (auth, bad input) and GraphQL's own validation errors pass unchanged.
    """

    def __init__(self) -> None:
        super().__init__(should_mask_error=self._unexpected,
                         error_message="Unexpected error; quote the requestId when reporting it.")

    @staticmethod
    def _unexpected(error: GraphQLError) -> bool:
        if error.original_error is None:  # a validation error: about the query, safe to show
            return False
        return (error.extensions or {}).get("code") not in EXPECTED_CODES

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        request_id = uuid.uuid4().hex[:16]
        log.error("unexpected error, request id %s: %s", request_id, error.message, exc_info=error.original_error)
        masked = super().anonymise_error(error)
        masked.extensions = {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}
        return masked


class TierupSchema(strawberry.Schema):
    def process_errors(self, errors, execution_context=None) -> None:
        # Auth failures and bad input are the client's business, not the server log's.
        unexpected = [e for e in errors if e.original_error is not None
                      and (e.extensions or {}).get("code") not in EXPECTED_CODES]
        if unexpected:
            super().process_errors(unexpected, execution_context)


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    settings = settings or Settings()
    # Factories: Strawberry builds fresh extension instances per request; the caches live at module level.
    extensions: list = [
        lambda: ParserCache(maxsize=1000),
        lambda: ValidationCache(maxsize=1000),
        lambda: QueryDepthLimiter(max_depth=settings.max_query_depth),
        lambda: MaxAliasesLimiter(max_alias_count=settings.max_aliases),
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
    ]
    if settings.production:
        extensions.append(lambda: AddValidationRules([NoSchemaIntrospectionCustomRule]))
        extensions.append(MaskUnexpectedErrors)
    return TierupSchema(query=Query, mutation=Mutation, subscription=Subscription, extensions=extensions)


def schema_sdl() -> str:
    return build_schema().as_str() + "\n"
