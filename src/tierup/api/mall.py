"""The points mall (积分商城): items to redeem points for."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Iterable, Optional

import strawberry
from strawberry import relay
from strawberry.types import Info

from ..domain.errors import ErrorCode, Rejected
from ..domain.program import ProgramDefinition, RewardItemRule
from ..services import rewards as reward_service
from .connections import Connection, Edge, list_connection
from .coupons import Coupon, CouponTemplate
from .errors import UserError, user_errors
from .nodes import node_key, rule_from_key
from .permissions import MemberOnly
from .rewards import Reward

if TYPE_CHECKING:
    from .members import Member

MemberRef = Annotated["Member", strawberry.lazy("tierup.api.members")]


@strawberry.type(description="An item of the points mall (积分商城).")
class RewardItem(relay.Node):
    item_key: relay.NodeID[str] = strawberry.field(description="Program code and item code.")
    code: str = strawberry.field(description="Stable code, e.g. TOTE_BAG.")
    name: str = strawberry.field(description="Display name.")
    description: str = strawberry.field(description="What it is.")
    points_cost: int = strawberry.field(description="Points per item.")
    stock: Optional[int] = strawberry.field(description="Items left; null when unlimited.")
    per_member_limit: Optional[int] = strawberry.field(description="How many one member may redeem in all; null when unlimited.")
    reward: Reward = strawberry.field(description="What redeeming gives (a coupon per item, when it gives coupons).")
    goods: Optional[str] = strawberry.field(description="The goods the shop hands over, when it gives goods, e.g. TOTE_BAG.")

    @classmethod
    def of(cls, definition: ProgramDefinition, item: RewardItemRule, stock: Optional[int]) -> "RewardItem":
        coupon = CouponTemplate.of(definition, definition.coupon_template(item.coupon)) if item.coupon else None
        return cls(item_key=node_key(definition, item.code), code=item.code, name=item.name,
                   description=item.description, points_cost=item.points_cost, stock=stock,
                   per_member_limit=item.per_member_limit,
                   reward=Reward(points=0, growth_value=0, badge=None, coupon=coupon), goods=item.goods)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        definition = (await info.context.program()).definition
        items = [rule_from_key(definition, key, definition.reward_item, "reward") for key in node_ids]
        known = [i.code for i in items if i is not None]
        left = dict(zip(known, await (await info.context.loaders()).reward_stock_by_code.load_many(known)))
        return [cls.of(definition, i, left[i.code]) if i else None for i in items]


@strawberry.type(description="One item of the points mall, with the cursor to page on after it.")
class RewardEdge(Edge[RewardItem]):
    pass


@strawberry.type(description="A page of points-mall items, in catalogue order.")
class RewardConnection(Connection[RewardItem]):
    edges: list[RewardEdge] = strawberry.field(description="The items of this page, in order.")


async def reward_page(context, first: Optional[int], after: Optional[str]) -> RewardConnection:
    """Catalogue order, with the stock left of each item."""
    definition = (await context.program()).definition
    codes = [item.code for item in definition.rewards]
    stock = dict(zip(codes, await (await context.loaders()).reward_stock_by_code.load_many(codes)))
    return list_connection(list(definition.rewards), first, after,
                           lambda item: RewardItem.of(definition, item, stock[item.code]), RewardConnection, RewardEdge)


@strawberry.input(description="What to redeem, and how many.")
class RedeemRewardInput:
    reward_id: relay.GlobalID = strawberry.field(description="The item (a RewardItem id).")
    quantity: Optional[int] = strawberry.field(default=1, description="How many, 1–20 (default 1).")


@strawberry.type(description="Result of redeemReward.")
class RedeemRewardPayload:
    member: Optional[MemberRef] = strawberry.field(default=None, description="The member after spending the points.")
    coupons: list[Coupon] = strawberry.field(default_factory=list, description="Coupons issued by the redemption.")
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="INSUFFICIENT_POINTS, OUT_OF_STOCK or LIMIT_REACHED, and nothing changed.")


@strawberry.type
class MallMutations:
    @strawberry.mutation(permission_classes=[MemberOnly], description=(
        "Redeem points for an item: spends the points that expire soonest first, takes stock and issues what "
        "the item gives, all in one transaction. MEMBER only."))
    async def redeem_reward(self, info: Info, input: RedeemRewardInput) -> RedeemRewardPayload:
        from .members import member_node

        context = info.context
        program = await context.program()
        item = None
        if input.reward_id.type_name == "RewardItem":
            item = rule_from_key(program.definition, input.reward_id.node_id, program.definition.reward_item, "reward")
        try:
            if item is None:
                raise Rejected.one(ErrorCode.NOT_FOUND, "rewardId is not an item of this program", "input", "rewardId")
            result = await reward_service.redeem_reward(context.db, program, context.principal.sub, item.code,
                                                        input.quantity if input.quantity is not None else 1,
                                                        now=context.now, broker=context.broker)
        except Rejected as rejection:
            return RedeemRewardPayload(user_errors=user_errors(rejection))
        context.reset_loaders()
        loaders = await context.loaders()
        coupons = [Coupon.of(context, program.definition, row)
                   for row in await loaders.coupon_by_id.load_many(list(result.coupon_ids))]
        return RedeemRewardPayload(member=await member_node(context, result.member_id), coupons=coupons)
