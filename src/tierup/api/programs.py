"""The caller's program and its ladder."""

from __future__ import annotations

from enum import Enum
from datetime import date
from typing import Annotated, Iterable, Optional

import strawberry
from strawberry import relay
from strawberry.types import Info

from .activities import ActivityKind
from .boosts import PointsBoost
from .campaigns import CampaignConnection, program_campaigns
from .channels import Store
from .memberships import PaidMembershipPlan
from ..services.programs import ActiveProgram
from ..services.webhooks import MAX_ENDPOINTS
from .errors import forbidden
from .permissions import OperatorOnly, OperatorOrService, SignedIn
from .quests import Quest
from .tasks import GrowthTree, Task
from .analytics import QuadrantCount, value_map
from .benefits import Benefit
from .kpis import ProgramKpis, program_kpis
from .publishing import ProgramVersion, program_versions
from .mall import RewardConnection, reward_page
from .tags import MemberTag, program_tags
from .tiers import TierLadder, tier_code_from_global_id
from .webhooks import WebhookEndpoint, program_webhooks


@strawberry.type(description="A member program (会员计划): one brand's tiers, rules and catalogue.")
class Program(relay.Node):
    program_id: relay.NodeID[int] = strawberry.field(description="Internal id.")
    code: str = strawberry.field(description="Stable code, e.g. classic.")
    name: str = strawberry.field(description="Display name.")
    currency: str = strawberry.field(description="ISO 4217 currency of every amount, e.g. CNY.")
    time_zone: str = strawberry.field(description="IANA zone days and months are counted in, e.g. Asia/Shanghai.")
    version: int = strawberry.field(description="The definition version in force; each publication adds one.")
    welcome_points: int = strawberry.field(description="Points a new member receives on enrolment.")
    ladder: TierLadder = strawberry.field(description="The tier ladder.")
    growth_tree: GrowthTree = strawberry.field(description="The growth tree (成长树): every task, prerequisites first.")
    all_quests: strawberry.Private[list[Quest]]

    @strawberry.field(description="Program KPIs between two dates (inclusive, program time), with playbook targets. "
                                  "OPERATOR only.", permission_classes=[OperatorOnly])
    async def kpis(self, info: Info, from_: Annotated[date, strawberry.argument(name="from")], to: date) -> ProgramKpis:
        return await program_kpis(info.context, from_, to)

    @strawberry.field(description="The four-quadrant value map: members per quadrant at the latest RFM refresh. "
                                  "OPERATOR only.", permission_classes=[OperatorOnly])
    async def value_map(self, info: Info) -> list[QuadrantCount]:
        return await value_map(info.context)

    @strawberry.field(description="The program's tags (标签) in the order they were defined, each with its members "
                                  "now. OPERATOR or SERVICE.", permission_classes=[OperatorOrService])
    async def tags(self, info: Info) -> list[MemberTag]:
        return await program_tags(info.context)

    @strawberry.field(description="Campaigns launched, newest first, with what each reached and converted. "
                                  "OPERATOR only.", permission_classes=[OperatorOnly])
    async def campaigns(self, info: Info, first: Optional[int] = None, after: Optional[str] = None) -> CampaignConnection:
        return await program_campaigns(info.context, first, after)

    @strawberry.field(description="The endpoints member events are delivered to (signed webhooks), oldest first; "
                                  "disabled ones too. OPERATOR only.", permission_classes=[OperatorOnly],
                      metadata={"list_estimate": MAX_ENDPOINTS})
    async def webhooks(self, info: Info) -> list[WebhookEndpoint]:
        return await program_webhooks(info.context)

    @strawberry.field(description="Every published version of the definition, newest first. OPERATOR only.",
                      permission_classes=[OperatorOnly])
    async def versions(self, info: Info) -> list[ProgramVersion]:
        return await program_versions(info.context)

    @strawberry.field(description="The paid membership plans (付费会员, PLUS) members can buy.")
    async def membership_plans(self, info: Info) -> list[PaidMembershipPlan]:
        definition = (await info.context.program()).definition
        return [PaidMembershipPlan.of(definition, plan) for plan in definition.membership_plans]

    @strawberry.field(description="The activity kinds the shop may report (分享, 环保行为, 游戏…), with what each earns.")
    async def activities(self, info: Info) -> list[ActivityKind]:
        return [ActivityKind.of(rule) for rule in (await info.context.program()).definition.activities]

    @strawberry.field(description="Points boosts and member days (积分翻倍, 会员日).")
    async def boosts(self, info: Info) -> list[PointsBoost]:
        return [PointsBoost.of(rule) for rule in (await info.context.program()).definition.boosts]

    @strawberry.field(description="The program's physical stores (线下门店): STORE reports name one.")
    async def stores(self, info: Info) -> list[Store]:
        return [Store.of(rule) for rule in (await info.context.program()).definition.stores]

    @strawberry.field(description="The benefit catalogue (权益); with `tier`, only the benefits that tier holds.")
    async def benefits(self, info: Info, tier: Optional[relay.GlobalID] = None) -> list[Benefit]:
        definition = (await info.context.program()).definition
        code = tier_code_from_global_id(definition, tier) if tier is not None else None
        return [Benefit.of(definition, b) for b in definition.benefits if code is None or code in b.tiers]

    @strawberry.field(description="The points mall (积分商城), in catalogue order, with stock left.")
    async def rewards(self, info: Info, first: Optional[int] = None, after: Optional[str] = None) -> RewardConnection:
        return await reward_page(info.context, first, after)

    @strawberry.field(description="Points-level quests (积分闯关); by default only those running now.")
    def quests(self, info: Info, active_only: Optional[bool] = True) -> list[Quest]:
        if not active_only:
            return self.all_quests
        now = info.context.now
        return [q for q in self.all_quests if q.starts_at <= now < q.ends_at]

    @classmethod
    def of(cls, program: ActiveProgram) -> "Program":
        d = program.definition
        return cls(program_id=program.id, code=program.code, name=d.name, currency=d.currency,
                   time_zone=d.time_zone, version=program.version, welcome_points=d.welcome_points,
                   ladder=TierLadder.of(d), growth_tree=GrowthTree(tasks=[Task.of(d, t) for t in d.tasks]),
                   all_quests=[Quest.of(d, q) for q in d.quests])

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        program = await info.context.program()
        result = []
        for node_id in node_ids:
            if node_id != str(program.id):
                raise forbidden("that program is not the caller's")
            result.append(cls.of(program))
        return result


@strawberry.enum(description="What a token allows.")
class Role(Enum):
    MEMBER = strawberry.enum_value("MEMBER", description="A shopper; sees and acts only as themself.")
    OPERATOR = strawberry.enum_value("OPERATOR", description="Runs the program: reads analytics, adjusts points.")
    SERVICE = strawberry.enum_value("SERVICE", description="The shop's back end: reports enrolments, orders, reviews.")


@strawberry.type(description="Who the bearer token says the caller is.")
class Identity:
    subject: str = strawberry.field(description="The token's sub: a member's externalId, or an operator or service name.")
    role: Role = strawberry.field(description="What the token allows.")
    program_code: str = strawberry.field(description="The program the token is for.")


@strawberry.type
class ProgramQueries:
    @strawberry.field(permission_classes=[SignedIn], description="Who the caller is, as the token says; handy in GraphiQL.")
    def identity(self, info: Info) -> Identity:
        principal = info.context.principal
        return Identity(subject=principal.sub, role=Role(principal.role.value), program_code=principal.program)

    @strawberry.field(permission_classes=[SignedIn], description="The caller's program.")
    async def program(self, info: Info) -> Program:
        return Program.of(await info.context.program())
