"""The benefit catalogue (权益), each member's standing in it, and claiming."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Iterable, Optional

import strawberry
from strawberry import relay
from strawberry.types import Info

from ..auth import Role
from ..domain.benefits import BenefitStanding, available_from, window_end
from ..domain.errors import ErrorCode, Rejected
from ..domain.program import BenefitRule, ProgramDefinition
from ..services import benefits as benefit_service
from .coupons import Coupon, CouponTemplate
from .errors import UserError, user_errors
from .nodes import node_key, program_data_nodes, rule_from_key
from .permissions import MemberOnly
from .rewards import Badge
from .tiers import Tier

if TYPE_CHECKING:
    from .members import Member

MemberRef = Annotated["Member", strawberry.lazy("tierup.api.members")]


@strawberry.enum(description="The four value dimensions of benefits (四维价值矩阵).")
class BenefitCategory(Enum):
    ECONOMIC = strawberry.enum_value("ECONOMIC", description="经济: discounts, coupons, gifts.")
    SERVICE = strawberry.enum_value("SERVICE", description="服务: priority service, free shipping, fast refunds.")
    SOCIAL = strawberry.enum_value("SOCIAL", description="社交: member events and invitations.")
    IDENTITY = strawberry.enum_value("IDENTITY", description="身份: badges, member-only products.")


@strawberry.type(description="Take-up of a benefit (权益使用率); the playbook's target for core benefits is ≥ 60%.")
class BenefitUsage:
    eligible_members: int = strawberry.field(description="Members whose tier holds the benefit now.")
    claiming_members: int = strawberry.field(description="Of those, how many have claimed it at least once.")
    claims: int = strawberry.field(description="Claims in all.")
    rate: float = strawberry.field(description="claimingMembers ÷ eligibleMembers (0 when nobody is eligible).")


@strawberry.type(description="A benefit of the catalogue.")
class Benefit(relay.Node):
    benefit_key: relay.NodeID[str] = strawberry.field(description="Program code and benefit code.")
    code: str = strawberry.field(description="Stable code clients deep-link to, e.g. MONTHLY_COUPON_SILVER.")
    name: str = strawberry.field(description="Display name.")
    description: str = strawberry.field(description="What it gives and when.")
    category: BenefitCategory = strawberry.field(description="Economic, service, social or identity.")
    quota: Optional[int] = strawberry.field(description="Claims allowed per period; null when unlimited.")
    quota_period: str = strawberry.field(description="day, week, month, quarter, year or lifetime (program time).")
    window_starts_at: Optional[datetime] = strawberry.field(description="When a time-bound benefit opens (without early access).")
    window_ends_at: Optional[datetime] = strawberry.field(description="When a time-bound benefit closes.")
    coupon: Optional[CouponTemplate] = strawberry.field(description="The coupon a claim issues, if it issues one.")
    badge: Optional[Badge] = strawberry.field(description="The badge a claim gives, if it gives one.")
    entitlement: Optional[str] = strawberry.field(description="The entitlement a claim records, e.g. MONTHLY_GIFT.")
    core: bool = strawberry.field(description="Whether it counts toward the core benefit usage rate.")
    rule: strawberry.Private[BenefitRule]
    program: strawberry.Private[ProgramDefinition]

    @classmethod
    def of(cls, definition: ProgramDefinition, rule: BenefitRule) -> "Benefit":
        tz = definition.zone
        opens, closes = available_from(rule, "", tz), window_end(rule, tz)
        coupon = CouponTemplate.of(definition, definition.coupon_template(rule.coupon)) if rule.coupon else None
        return cls(benefit_key=node_key(definition, rule.code), code=rule.code, name=rule.name,
                   description=rule.description, category=BenefitCategory(rule.category), quota=rule.quota,
                   quota_period=rule.period, window_starts_at=opens.astimezone(tz) if opens else None,
                   window_ends_at=closes.astimezone(tz) if closes else None, coupon=coupon,
                   badge=Badge(code=rule.badge.code, name=rule.badge.name) if rule.badge else None,
                   entitlement=rule.entitlement, core=rule.core, rule=rule, program=definition)

    @strawberry.field(description="The tiers that hold it.")
    def tiers(self) -> list[Tier]:
        return [Tier.of(self.program, self.program.tier(code)) for code in self.rule.tiers]

    @strawberry.field(description="Take-up among eligible members (OPERATOR only; null for other roles).")
    async def usage(self, info: Info) -> Optional[BenefitUsage]:
        context = info.context
        if context.principal is None or context.principal.role is not Role.OPERATOR:
            return None
        usage = await (await context.loaders()).usage_by_benefit_code.load(self.code)
        return BenefitUsage(eligible_members=usage.eligible_members, claiming_members=usage.claiming_members,
                            claims=usage.claims, rate=round(usage.rate, 4))

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        return await program_data_nodes(info, node_ids, lambda d: d.benefit, cls.of, "benefit")


@strawberry.type(description="Where a member stands with one benefit now.")
class MemberBenefit:
    id: strawberry.ID = strawberry.field(description="The same on every read of this member's standing with this "
                                                     "benefit: what normalised client caches (Apollo, urql) key it by. "
                                                     "Not a node id.")
    benefit: Benefit = strawberry.field(description="The benefit.")
    remaining: Optional[int] = strawberry.field(description="Claims left in the current period; null where the benefit has no quota.")
    period_ends_at: Optional[datetime] = strawberry.field(description="When the current quota period ends (program time).")
    available_from: Optional[datetime] = strawberry.field(description="Earliest time this member may claim it (early access for higher tiers).")
    can_claim: bool = strawberry.field(description="Whether claimBenefit would succeed now.")
    reason: Optional[str] = strawberry.field(description="Why not, when canClaim is false.")

    @classmethod
    def of(cls, context, definition: ProgramDefinition, position: BenefitStanding, member_id: int) -> "MemberBenefit":
        return cls(id=strawberry.ID(relay.to_base64("MemberBenefit", f"{member_id}:{position.benefit.code}")),
                   benefit=Benefit.of(definition, position.benefit), remaining=position.remaining,
                   period_ends_at=context.local_time(position.period_ends_at),
                   available_from=context.local_time(position.available_from), can_claim=position.can_claim,
                   reason=position.refusal[1] if position.refusal else None)


async def member_benefits(context, member_row) -> list[MemberBenefit]:
    """The benefits the member holds (their tier's, and an active paid membership's), with quota and window
    standing."""
    definition = (await context.program()).definition
    claims = await (await context.loaders()).benefit_claims_by_member_id.load(member_row.id)
    context.changes_at(member_row.membership_started_at)  # a paid membership's benefits come and go with it
    context.changes_at(member_row.membership_until)
    return [MemberBenefit.of(context, definition,
                             benefit_service.member_standing(definition, rule, member_row, claims, context.now),
                             member_row.id)
            for rule in definition.benefits if benefit_service.holds(definition, rule, member_row, context.now)]


@strawberry.input(description="Which benefit to claim.")
class ClaimBenefitInput:
    benefit_id: relay.GlobalID = strawberry.field(description="The benefit (a Benefit id).")


@strawberry.type(description="Result of claimBenefit.")
class ClaimBenefitPayload:
    benefit: Optional[MemberBenefit] = strawberry.field(default=None, description="The member's standing after the claim.")
    coupon: Optional[Coupon] = strawberry.field(default=None, description="The coupon issued, if the benefit issues one.")
    member: Optional[MemberRef] = strawberry.field(default=None, description="The member after the claim.")
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="NOT_ELIGIBLE, LIMIT_REACHED or EXPIRED, and nothing changed.")


@strawberry.type
class BenefitMutations:
    @strawberry.mutation(permission_classes=[MemberOnly], description=(
        "Claim a benefit: the member's tier must hold it, its window (or early access) must be open, birthday "
        "benefits in the birthday month, and the period's quota not used up. MEMBER only."))
    async def claim_benefit(self, info: Info, input: ClaimBenefitInput) -> ClaimBenefitPayload:
        from .members import member_node

        context = info.context
        program = await context.program()
        rule = None
        if input.benefit_id.type_name == "Benefit":
            rule = rule_from_key(program.definition, input.benefit_id.node_id, program.definition.benefit, "benefit")
        try:
            if rule is None:
                raise Rejected.one(ErrorCode.NOT_FOUND, "benefitId is not a benefit of this program",
                                   "input", "benefitId")
            result = await benefit_service.claim_benefit(context.db, program, context.principal.sub, rule.code,
                                                         now=context.now, broker=context.broker)
        except Rejected as rejection:
            return ClaimBenefitPayload(user_errors=user_errors(rejection))
        context.reset_loaders()
        loaders = await context.loaders()
        row = await loaders.member_by_id.load(result.member_id)
        standing = next(b for b in await member_benefits(context, row) if b.benefit.code == rule.code)
        coupon = None
        if result.coupon_id is not None:
            coupon = Coupon.of(context, program.definition, await loaders.coupon_by_id.load(result.coupon_id))
        return ClaimBenefitPayload(benefit=standing, coupon=coupon, member=await member_node(context, result.member_id))
