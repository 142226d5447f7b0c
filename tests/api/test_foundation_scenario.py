"""The foundation scenario of the classic program, through the GraphQL API with exact numbers."""

import pytest
from datetime import datetime, timezone

from sqlalchemy import func, select

from helpers import publish_classic_ladder_only, enroll, member_view, order, refund
from tierup.store.models import PointsEntry


@pytest.fixture
async def program(db, clock):
    """These rules are the ladder's and the ledger's: the growth tree stays out of the figures."""
    return await publish_classic_ladder_only(db, clock())



async def test_member_climbs_from_regular_to_gold_with_exact_points(api, db, clock):
    clock.now = datetime(2026, 3, 1, tzinfo=timezone.utc)

    joined = await enroll(api, "alice", displayName="Alice", joinedAt="2026-01-05T10:00:00+08:00")
    assert joined["userErrors"] == []
    assert joined["member"]["tier"]["code"] == "REGULAR"
    assert joined["member"]["points"]["balance"] == 100

    first = await order(api, "A-1", "alice", "150", "2026-01-10T12:00:00+08:00")
    assert first["order"]["pointsEarned"] == 150
    assert first["member"]["tier"]["code"] == "REGULAR"
    assert first["member"]["points"]["balance"] == 250

    second = await order(api, "A-2", "alice", "250", "2026-01-20T12:00:00+08:00")
    assert second["order"]["pointsEarned"] == 250  # earned at 1×, the tier held before the order
    assert second["member"]["tier"] == {"code": "SILVER", "name": "银卡会员", "rank": 1, "pointsMultiplier": "2"}
    assert second["member"]["tierValidUntil"] == "2027-01-20T12:00:00+08:00"

    third = await order(api, "A-3", "alice", "100", "2026-02-01T12:00:00+08:00")
    assert third["order"]["pointsEarned"] == 200
    assert third["member"]["points"]["balance"] == 700

    again = await order(api, "A-2", "alice", "250", "2026-01-20T12:00:00+08:00")
    assert again["duplicate"] is True and again["userErrors"] == []
    assert again["member"]["points"]["balance"] == 700

    refunded = await refund(api, "R-3", "A-3", "100", "2026-02-05T12:00:00+08:00")
    assert refunded["userErrors"] == []
    assert refunded["order"]["refundedAmount"] == {"amount": "100.00"}
    assert refunded["member"]["points"]["balance"] == 500
    assert refunded["member"]["tier"]["code"] == "SILVER"

    big = await order(api, "A-4", "alice", "700", "2026-02-10T12:00:00+08:00")
    assert big["order"]["pointsEarned"] == 1400
    assert big["member"]["tier"]["code"] == "GOLD"

    alice = await member_view(api, "alice")
    assert alice["points"]["balance"] == 1900
    ledger = alice["points"]["ledger"]
    assert ledger["totalCount"] == 6
    assert [e["node"]["amount"] for e in ledger["edges"]] == [1400, -200, 200, 250, 150, 100]
    assert [e["node"]["kind"] for e in ledger["edges"]] == ["EARN", "REVERSE", "EARN", "EARN", "EARN", "EARN"]
    assert ledger["edges"][0]["node"]["balanceAfter"] == 1900
    assert alice["tier"]["code"] == "GOLD"
    assert alice["nextTier"] == {"tier": {"code": "DIAMOND"}, "conditions": [
        {"description": "cumulative spend ≥ ¥5,000", "current": "1100.00", "target": "5000.00", "met": False},
        {"description": "≥ ¥3,000 spent in the past 12 months", "current": "1100.00", "target": "3000.00", "met": False},
    ]}
    assert alice["orders"]["totalCount"] == 4

    async with db.read() as session:
        total = (await session.execute(select(func.sum(PointsEntry.amount)))).scalar_one()
    assert total == 1900  # the balance is the sum of the ledger
