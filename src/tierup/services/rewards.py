"""The points mall (积分商城): redeeming points for coupons and goods."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update

from ..domain.errors import Checks, ErrorCode, Rejected
from ..events import Broker
from ..store.db import Database
from ..store.models import Redemption, RewardStock
from ..store.queries import lock_member
from .activity import insert_once
from .coupons import issue_coupon
from .growth import GrowthTracker, publish
from .ledger import append_entry, balance_of
from .programs import ActiveProgram
from .webhooks import stage_webhooks

MAX_QUANTITY = 20


@dataclass(frozen=True)
class RedemptionResult:
    member_id: int
    coupon_ids: tuple[int, ...]


async def redeem_reward(db: Database, program: ActiveProgram, member_external_id: str, reward_code: str,
                        quantity: int, *, now: datetime, broker: Broker | None = None) -> RedemptionResult:
    """Spend points (soonest-expiring lots first), take stock and issue what the item gives, in one
    transaction. The stock is taken by a conditional UPDATE, so racing redemptions never oversell."""
    definition = program.definition
    checks = Checks()
    if not 1 <= quantity <= MAX_QUANTITY:
        checks.fail(ErrorCode.INVALID, f"quantity must be between 1 and {MAX_QUANTITY}", "input", "quantity")
    checks.raise_any()
    try:
        item = definition.reward_item(reward_code)
    except KeyError:
        raise Rejected.one(ErrorCode.NOT_FOUND, f"no reward {reward_code!r} in this program",
                           "input", "rewardId") from None
    cost = item.points_cost * quantity
    async with db.write() as session:
        member = await lock_member(session, program.id, external_id=member_external_id, field=("viewer",))
        if item.per_member_limit is not None:
            taken = (await session.execute(select(func.coalesce(func.sum(Redemption.quantity), 0)).where(
                Redemption.member_id == member.id, Redemption.reward_code == item.code))).scalar_one()
            if taken + quantity > item.per_member_limit:
                raise Rejected.one(ErrorCode.LIMIT_REACHED, f"{item.name}: at most {item.per_member_limit} per member, "
                                   f"{taken} already redeemed", "input", "quantity")
        balance = await balance_of(session, member.id)
        if balance < cost:
            raise Rejected.one(ErrorCode.INSUFFICIENT_POINTS, f"{item.name} costs {cost} points; the member has "
                               f"{balance}", "input", "rewardId")
        if item.stock is not None:
            await insert_once(session, RewardStock, program_id=program.id, reward_code=item.code, remaining=item.stock)
            left = (await session.execute(
                update(RewardStock).where(RewardStock.program_id == program.id, RewardStock.reward_code == item.code,
                                          RewardStock.remaining >= quantity)
                .values(remaining=RewardStock.remaining - quantity).returning(RewardStock.remaining))).scalar_one_or_none()
            if left is None:
                raise Rejected.one(ErrorCode.OUT_OF_STOCK, f"{item.name} is out of stock", "input", "rewardId")
        growth = GrowthTracker(session, program)
        await growth.watch(member, now)
        spend = await append_entry(session, program, member.id, "SPEND", -cost, f"Redeemed {quantity} × {item.name}",
                                   source="REDEMPTION", occurred_at=now, balance=balance)
        coupons = []
        if item.coupon is not None:
            for _ in range(quantity):
                coupons.append((await issue_coupon(session, program, member.id, item.coupon, now,
                                                   source="REDEMPTION")).id)
        session.add(Redemption(program_id=program.id, member_id=member.id, reward_code=item.code, quantity=quantity,
                               points=cost, entry_id=spend, redeemed_at=now))
        await growth.settle(now)
        await stage_webhooks(session, program, growth.events, now=now)
    await publish(broker, growth.events)
    return RedemptionResult(member.id, tuple(coupons))

