"""Reports are idempotent on externalId, refunds reverse in proportion, adjustments keep balances whole."""

from datetime import datetime, timezone

import pytest

from documents import ADJUST_POINTS, ENROLL, RECORD_ORDER
from helpers import publish_classic_ladder_only, enroll, member_view, order, refund, row_counts


@pytest.fixture
async def program(db, clock):
    """These rules are the ladder's and the ledger's: the growth tree stays out of the figures."""
    return await publish_classic_ladder_only(db, clock())


NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def june(clock):
    clock.now = NOW


async def test_enrolment_again_is_a_duplicate_and_changes_nothing(api, db):
    first = await enroll(api, "alice", displayName="Alice", birthday="1990-05-20")
    before = await row_counts(db)
    again = await enroll(api, "alice", displayName="Alice", birthday="1990-05-20")
    assert again["duplicate"] is True and again["userErrors"] == []
    assert again["member"]["id"] == first["member"]["id"]
    assert again["member"]["points"]["balance"] == 100
    assert await row_counts(db) == before


async def test_same_id_with_different_content_is_a_duplicate_error(api, db):
    await enroll(api, "alice", displayName="Alice")
    await order(api, "O-1", "alice", "300", "2026-05-01T10:00:00+08:00")
    before = await row_counts(db)
    changed = await api.as_service(ENROLL, {"input": {"externalId": "alice", "displayName": "Mallory"}})
    assert changed["data"]["enrollMember"]["userErrors"] == [
        {"field": ["input", "externalId"], "code": "DUPLICATE",
         "message": "externalId 'alice' was already used for a different enrolment report"}]
    other = await order(api, "O-1", "alice", "301", "2026-05-01T10:00:00+08:00")
    assert other["userErrors"][0]["code"] == "DUPLICATE"
    assert other["order"] is None and other["duplicate"] is False
    assert await row_counts(db) == before
    assert (await member_view(api, "alice"))["points"]["balance"] == 400


async def test_partial_refunds_reverse_floored_and_never_more_than_earned(api):
    await enroll(api, "alice")
    await order(api, "O-1", "alice", "99.99", "2026-05-01T10:00:00+08:00")  # 99 points at 1×
    first = await refund(api, "R-1", "O-1", "10", "2026-05-02T10:00:00+08:00")
    assert first["member"]["points"]["balance"] == 100 + 99 - 9  # floor(99 × 10 / 99.99) = floor(9.90) = 9
    second = await refund(api, "R-2", "O-1", "50", "2026-05-03T10:00:00+08:00")
    assert second["member"]["points"]["balance"] == 100 + 99 - 59  # floor(99 × 60 / 99.99) = 59 in all
    last = await refund(api, "R-3", "O-1", "39.99", "2026-05-04T10:00:00+08:00")
    assert last["member"]["points"]["balance"] == 100  # a full refund takes back exactly the 99 earned
    assert last["order"]["refundedAmount"] == {"amount": "99.99"}
    again = await refund(api, "R-3", "O-1", "39.99", "2026-05-04T10:00:00+08:00")
    assert again["duplicate"] is True
    over = await refund(api, "R-4", "O-1", "0.01", "2026-05-05T10:00:00+08:00")
    assert over["userErrors"][0]["code"] == "INVALID"
    assert "left to refund" in over["userErrors"][0]["message"]


async def test_refund_of_spent_points_records_the_shortfall(api):
    alice = (await enroll(api, "alice"))["member"]
    await order(api, "O-1", "alice", "100", "2026-05-01T10:00:00+08:00")  # balance 200
    spent = await api.as_operator(ADJUST_POINTS, {"input": {
        "memberId": alice["id"], "amount": -150, "reason": "gift redeemed at the counter", "externalId": "ADJ-1"}})
    assert spent["data"]["adjustPoints"]["member"]["points"]["balance"] == 50
    result = await refund(api, "R-1", "O-1", "100", "2026-05-02T10:00:00+08:00")
    assert result["member"]["points"]["balance"] == 0
    reversal = (await member_view(api, "alice"))["points"]["ledger"]["edges"][0]["node"]
    assert reversal["kind"] == "REVERSE" and reversal["amount"] == -50 and reversal["shortfall"] == 50


async def test_refund_keeps_the_tier_until_evaluation(api):
    await enroll(api, "alice")
    upgraded = await order(api, "O-1", "alice", "250", "2026-05-01T10:00:00+08:00")
    assert upgraded["member"]["tier"]["code"] == "SILVER"
    refunded = await refund(api, "R-1", "O-1", "250", "2026-05-02T10:00:00+08:00")
    assert refunded["member"]["tier"]["code"] == "SILVER"


async def test_adjustments_are_idempotent_and_never_go_below_zero(api, db):
    alice = (await enroll(api, "alice"))["member"]
    variables = {"input": {"memberId": alice["id"], "amount": 25, "reason": "sorry for the late parcel",
                           "externalId": "ADJ-1"}}
    first = await api.as_operator(ADJUST_POINTS, variables)
    assert first["data"]["adjustPoints"]["member"]["points"]["balance"] == 125
    again = await api.as_operator(ADJUST_POINTS, variables)
    assert again["data"]["adjustPoints"]["duplicate"] is True
    assert again["data"]["adjustPoints"]["member"]["points"]["balance"] == 125
    before = await row_counts(db)
    too_much = await api.as_operator(ADJUST_POINTS, {"input": {
        "memberId": alice["id"], "amount": -126, "reason": "correction", "externalId": "ADJ-2"}})
    assert too_much["data"]["adjustPoints"]["userErrors"][0]["code"] == "INSUFFICIENT_POINTS"
    assert await row_counts(db) == before


async def test_only_operators_adjust_points(api):
    alice = (await enroll(api, "alice"))["member"]
    result = await api.as_service(ADJUST_POINTS, {"input": {
        "memberId": alice["id"], "amount": 5, "reason": "x", "externalId": "ADJ-1"}})
    assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_concurrent_orders_of_one_member_keep_the_ledger_whole(api, db):
    import asyncio

    await enroll(api, "alice")
    results = await asyncio.gather(*[
        api.as_service(RECORD_ORDER, {"input": {"externalId": f"O-{i}", "memberExternalId": "alice",
                                                "amount": "10", "paidAt": "2026-05-01T10:00:00+08:00"}})
        for i in range(10)])
    assert all(r["data"]["recordOrder"]["userErrors"] == [] for r in results)
    ledger = (await member_view(api, "alice"))["points"]["ledger"]["edges"]
    running = [e["node"]["balanceAfter"] for e in reversed(ledger)]
    assert running == [100 + 10 * i for i in range(11)]


async def test_a_refund_takes_back_the_members_own_points_not_the_referrers_reward(db, program, clock):
    """A referred member's first order pays the referrer under the same report; refunding it reverses the
    member's points only, from the order's own lot."""
    from datetime import datetime

    from sqlalchemy import select

    from tierup.services.members import EnrolmentInput, enroll_member
    from tierup.services.orders import OrderInput, RefundInput, record_order, refund_order
    from tierup.store.models import Member

    now = datetime.fromisoformat("2026-02-01T00:00:00+00:00")
    ann = await enroll_member(db, program, EnrolmentInput(external_id="ref-ann"), now=now)
    async with db.read() as session:
        code = (await session.execute(select(Member.referral_code).where(Member.id == ann.member_id))).scalar_one()
    await enroll_member(db, program, EnrolmentInput(external_id="ref-bob", referral_code=code), now=now)
    paid = await record_order(db, program, OrderInput("RB-1", "ref-bob", "100",
                                                      datetime.fromisoformat("2026-01-20T10:00:00+08:00")), now=now)
    refunded = await refund_order(db, program, RefundInput("RR-1", "RB-1", "100",
                                                           datetime.fromisoformat("2026-01-21T10:00:00+08:00")), now=now)
    assert (refunded.points_reversed, refunded.shortfall) == (paid.points, 0)
