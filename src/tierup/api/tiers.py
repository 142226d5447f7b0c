"""Tier ladder types, progress to the next tier, and the evaluateTiers job as a mutation."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Iterable, Optional

import strawberry
from strawberry import relay
from strawberry.types import Info

from ..domain.errors import Rejected
from ..domain.program import ProgramDefinition, TierRule
from ..domain.tiers import METRICS, MemberMetrics, condition_progress, describe_condition, plain_number
from ..services import tiers as tier_service
from .errors import UserError, bad_input, user_errors
from .nodes import node_key, program_data_nodes, rule_from_key
from .permissions import OperatorOnly

MONEY_PLACES = Decimal("0.01")

if TYPE_CHECKING:
    from .benefits import Benefit

BenefitRef = Annotated["Benefit", strawberry.lazy("tierup.api.benefits")]


@strawberry.type(description="A level of the ladder (等级), e.g. 银卡会员.")
class Tier(relay.Node):
    tier_key: relay.NodeID[str] = strawberry.field(description="Program code and tier code.")
    code: str = strawberry.field(description="Stable code, e.g. REGULAR, SILVER, GOLD, DIAMOND.")
    name: str = strawberry.field(description="Localised display name, e.g. 银卡会员.")
    rank: int = strawberry.field(description="Position on the ladder; 0 = entry tier.")
    points_multiplier: Decimal = strawberry.field(description="Points per unit of currency spent at this tier.")
    qualification: list[str] = strawberry.field(
        description="Human-readable qualifying rules, e.g. 'cumulative spend ≥ ¥500', 'one order ≥ ¥200'; "
                    "any one of them reaches the tier. Empty for the entry tier.")
    stage_code: Optional[str] = strawberry.field(description="Code of the stage this tier belongs to, if any.")
    member_price_percent: Optional[Decimal] = strawberry.field(description=(
        "Member price (会员价): the share of the list price members of this tier pay, in percent (99 = 99折, "
        "80 = 8折); null = no member price."))
    program: strawberry.Private[ProgramDefinition]

    @strawberry.field(description="The benefits this tier holds (lower tiers' included unless a benefit says otherwise).")
    def benefits(self) -> list[BenefitRef]:
        from .benefits import Benefit  # benefits refer to tiers too

        return [Benefit.of(self.program, b) for b in self.program.benefits if self.code in b.tiers]

    @classmethod
    def of(cls, definition: ProgramDefinition, rule: TierRule) -> "Tier":
        return cls(tier_key=node_key(definition, rule.code), code=rule.code, name=rule.name, rank=rule.rank,
                   points_multiplier=rule.points_multiplier,
                   qualification=[describe_condition(c, definition.currency_symbol) for c in rule.conditions],
                   stage_code=rule.stage, member_price_percent=rule.member_price_percent, program=definition)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        return await program_data_nodes(info, node_ids, lambda d: d.tier, Tier.of, "tier")


def tier_code_from_global_id(definition: ProgramDefinition, value: relay.GlobalID) -> str:
    if value.type_name != "Tier":
        raise bad_input(f"expected a Tier id, got a {value.type_name} id")
    rule = rule_from_key(definition, value.node_id, definition.tier, "tier")
    if rule is None:
        raise bad_input("no such tier in this program")
    return rule.code


@strawberry.type(description="A group of tiers (阶), as in 三阶九级.")
class TierStage:
    code: str = strawberry.field(description="Stable code, e.g. BASE.")
    name: str = strawberry.field(description="Display name, e.g. 基础阶.")
    description: str = strawberry.field(description="What the stage asks and gives.")
    tiers: list[Tier] = strawberry.field(description="The stage's tiers, lowest first.")


@strawberry.type(description="The program's tiers, lowest first, and the stages grouping them.")
class TierLadder:
    tiers: list[Tier] = strawberry.field(description="All tiers, entry tier first.")
    stages: list[TierStage] = strawberry.field(description="Stages in order; empty when the ladder has none.")
    validity_months: Optional[int] = strawberry.field(
        description="Months a reached tier lasts before re-evaluation; null when tiers are permanent (长期).")

    @classmethod
    def of(cls, definition: ProgramDefinition) -> "TierLadder":
        tiers = [Tier.of(definition, t) for t in definition.tiers]
        stages = [TierStage(code=s.code, name=s.name, description=s.description,
                            tiers=[t for t in tiers if t.stage_code == s.code]) for s in definition.stages]
        return cls(tiers=tiers, stages=stages, validity_months=definition.tier_validity_months)


@strawberry.type(description="How far a member is on one qualifying condition.")
class ConditionProgress:
    description: str = strawberry.field(description="The condition, e.g. 'cumulative spend ≥ ¥5,000'.")
    current: Decimal = strawberry.field(description="Where the member stands (money in currency units, or a count).")
    target: Decimal = strawberry.field(description="What the condition asks for.")
    met: bool = strawberry.field(description="Whether current ≥ target.")


@strawberry.type(description="The next tier and, per qualifying condition, what is still missing. Any one met condition reaches it.")
class TierProgress:
    tier: Tier = strawberry.field(description="The next tier up.")
    conditions: list[ConditionProgress] = strawberry.field(
        description="One entry per qualifying condition of the next tier, with how far the member is.")


def tier_progress(definition: ProgramDefinition, current_code: str, metrics: MemberMetrics) -> TierProgress | None:
    following = definition.next_tier(current_code)
    if following is None:
        return None
    conditions = []
    for condition in following.conditions:
        progress = condition_progress(metrics, condition, definition.currency_symbol)
        money = METRICS[condition.metric].money
        conditions.append(ConditionProgress(
            description=progress.description,
            current=progress.current.quantize(MONEY_PLACES) if money else plain_number(progress.current),
            target=progress.target.quantize(MONEY_PLACES) if money else plain_number(progress.target),
            met=progress.met))
    return TierProgress(tier=Tier.of(definition, following), conditions=conditions)


@strawberry.input(description="When to evaluate as of; defaults to now.")
class EvaluateTiersInput:
    as_of: Optional[datetime] = strawberry.field(default=None, description="Evaluate as of this time (ISO 8601 with offset).")


@strawberry.type(description="What a tier evaluation did.")
class EvaluateTiersPayload:
    evaluated: int = strawberry.field(default=0, description="Members whose tier validity had ended.")
    upgraded: int = strawberry.field(default=0, description="Members moved up.")
    downgraded: int = strawberry.field(default=0, description="Members moved down.")
    user_errors: list[UserError] = strawberry.field(default_factory=list, description="Why nothing was done, if so.")


@strawberry.type
class TierMutations:
    @strawberry.mutation(permission_classes=[OperatorOnly], description=(
        "Re-evaluate members whose tier validity ended by `asOf` (default now): kept, or moved down to the "
        "highest tier still qualified for. Running it again for the same time changes nothing. OPERATOR only."))
    async def evaluate_tiers(self, info: Info, input: Optional[EvaluateTiersInput] = None) -> EvaluateTiersPayload:
        context = info.context
        try:
            as_of = context.as_of(input.as_of if input else None)
        except Rejected as rejection:
            return EvaluateTiersPayload(user_errors=user_errors(rejection))
        result = await tier_service.evaluate_tiers(context.db, await context.program(), as_of=as_of,
                                                   broker=context.broker)
        context.reset_loaders()
        return EvaluateTiersPayload(evaluated=result.evaluated, upgraded=result.upgraded, downgraded=result.downgraded)
