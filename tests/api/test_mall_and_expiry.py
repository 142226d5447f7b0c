"""The points mall and points expiry: FIFO lots, stock and balance races, 积分清零."""

import asyncio
from datetime import datetime

from sqlalchemy import func, select

from documents import ADJUST_POINTS
from helpers import enroll, member_view, order, row_counts
from tierup.store.models import LotDraw, PointsEntry

REDEEM = """mutation($id: ID!, $q: Int) { redeemReward(input: {rewardId: $id, quantity: $q}) {
  member { points { balance } } coupons { template { code } source } userErrors { code message } } }"""
MALL = "{ program { rewards(first: 10) { totalCount edges { node { id code pointsCost stock perMemberLimit } } } } }"
EXPIRE = """mutation($asOf: DateTime) { expirePoints(input: {asOf: $asOf}) { membersAffected pointsExpired userErrors { code } } }"""
EXPIRING = "{ viewer { points { balance expiringSoon nextExpiryAt } } }"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def mall(api) -> dict[str, dict]:
    result = await api.as_operator(MALL)
    return {e["node"]["code"]: e["node"] for e in result["data"]["program"]["rewards"]["edges"]}


async def give_points(api, member_id: str, points: int, key: str) -> None:
    result = await api.as_operator(ADJUST_POINTS, {"input": {"memberId": member_id, "amount": points,
                                                             "reason": "bench stock", "externalId": key}})
    assert result["data"]["adjustPoints"]["userErrors"] == []


async def test_redeeming_coupons_within_the_per_member_limit(api, db, clock):
    clock.now = at("2026-02-01T10:00:00+08:00")
    alice = (await enroll(api, "alice"))["member"]
    await give_points(api, alice["id"], 500, "ADJ-1")  # 600 points
    items = await mall(api)
    assert items["TOTE_BAG"] == {"id": items["TOTE_BAG"]["id"], "code": "TOTE_BAG", "pointsCost": 500, "stock": 5,
                                 "perMemberLimit": 1}
    three = (await api.as_member("alice", REDEEM, {"id": items["REWARD_COUPON_5"]["id"], "q": 3}))["data"]["redeemReward"]
    assert three["userErrors"] == [] and three["member"]["points"]["balance"] == 300
    assert three["coupons"] == [{"template": {"code": "REWARD_5_OFF_50"}, "source": "REDEMPTION"}] * 3
    before = await row_counts(db)
    over = (await api.as_member("alice", REDEEM, {"id": items["REWARD_COUPON_5"]["id"], "q": 3}))["data"]["redeemReward"]
    assert [e["code"] for e in over["userErrors"]] == ["LIMIT_REACHED"]
    poor = (await api.as_member("alice", REDEEM, {"id": items["TOTE_BAG"]["id"]}))["data"]["redeemReward"]
    assert [e["code"] for e in poor["userErrors"]] == ["INSUFFICIENT_POINTS"]
    assert await row_counts(db) == before


async def test_twenty_members_race_for_five_tote_bags(api, db, clock):
    clock.now = at("2026-02-01T10:00:00+08:00")
    members = [(await enroll(api, f"m{i:02}"))["member"] for i in range(20)]
    for i, member in enumerate(members):
        await give_points(api, member["id"], 400, f"ADJ-{i}")  # 500 points each
    bag = (await mall(api))["TOTE_BAG"]["id"]
    results = await asyncio.gather(*[api.as_member(f"m{i:02}", REDEEM, {"id": bag}) for i in range(20)])
    codes = [r["data"]["redeemReward"]["userErrors"][0]["code"] if r["data"]["redeemReward"]["userErrors"] else "OK"
             for r in results]
    assert codes.count("OK") == 5 and codes.count("OUT_OF_STOCK") == 15
    assert (await mall(api))["TOTE_BAG"]["stock"] == 0
    async with db.read() as session:
        spent = (await session.execute(select(func.count()).where(PointsEntry.kind == "SPEND"))).scalar_one()
    assert spent == 5


async def test_racing_redemptions_never_overdraw_a_balance(api, db, clock):
    clock.now = at("2026-02-01T10:00:00+08:00")
    alice = (await enroll(api, "alice"))["member"]
    await give_points(api, alice["id"], 150, "ADJ-1")  # 250 points: room for two coupons
    coupon = (await mall(api))["REWARD_COUPON_5"]["id"]
    results = await asyncio.gather(*[api.as_member("alice", REDEEM, {"id": coupon}) for _ in range(5)])
    codes = sorted(r["data"]["redeemReward"]["userErrors"][0]["code"] if r["data"]["redeemReward"]["userErrors"]
                   else "OK" for r in results)
    assert codes == ["INSUFFICIENT_POINTS"] * 3 + ["OK"] * 2
    view = await member_view(api, "alice")
    assert view["points"]["balance"] == 50
    assert sum(e["node"]["amount"] for e in view["points"]["ledger"]["edges"]) == 50


async def test_january_points_expire_at_the_end_of_january_next_year_unless_spent_first(api, db, clock):
    clock.now = at("2026-01-10T13:00:00+08:00")
    await enroll(api, "alice", joinedAt="2026-01-05T10:00:00+08:00")  # 100, expires end of Jan 2027
    await order(api, "A-1", "alice", "300", "2026-01-10T12:00:00+08:00")  # 300 + FIRST_ORDER 50, same expiry; SILVER
    clock.now = at("2026-03-10T13:00:00+08:00")
    await order(api, "A-2", "alice", "200", "2026-03-10T12:00:00+08:00")  # 400 at 2×, expires end of Mar 2027
    clock.now = at("2026-06-01T10:00:00+08:00")
    coupon = (await mall(api))["REWARD_COUPON_5"]["id"]
    spent = (await api.as_member("alice", REDEEM, {"id": coupon, "q": 2}))["data"]["redeemReward"]
    assert spent["member"]["points"]["balance"] == 850 - 200
    async with db.read() as session:
        drawn = (await session.execute(select(PointsEntry.expires_at).join(
            LotDraw, LotDraw.lot_entry_id == PointsEntry.id))).scalars().all()
    assert set(drawn) == {at("2027-02-01T00:00:00+08:00")}  # January's lots, expiring first, were drawn

    clock.now = at("2027-01-05T10:00:00+08:00")
    soon = (await api.as_member("alice", EXPIRING))["data"]["viewer"]["points"]
    assert soon == {"balance": 650, "expiringSoon": 250, "nextExpiryAt": "2027-02-01T00:00:00+08:00"}
    early = (await api.as_operator(EXPIRE, {"asOf": "2027-01-31T23:59:59+08:00"}))["data"]["expirePoints"]
    assert (early["membersAffected"], early["pointsExpired"]) == (0, 0)
    run = (await api.as_operator(EXPIRE, {"asOf": "2027-02-01T00:00:00+08:00"}))["data"]["expirePoints"]
    assert (run["membersAffected"], run["pointsExpired"]) == (1, 250)
    before = await row_counts(db)
    again = (await api.as_operator(EXPIRE, {"asOf": "2027-02-01T00:00:00+08:00"}))["data"]["expirePoints"]
    assert (again["membersAffected"], again["pointsExpired"]) == (0, 0)
    assert await row_counts(db) == before
    view = await member_view(api, "alice")
    assert view["points"]["balance"] == 400
    assert view["points"]["ledger"]["edges"][0]["node"]["kind"] == "EXPIRE"


async def test_expiry_reminders_go_out_once_per_lot(api, db, program, clock):
    from tierup.events import MemoryBroker
    from tierup.services.expiry import remind_expiring

    clock.now = at("2026-01-10T13:00:00+08:00")
    await enroll(api, "alice", joinedAt="2026-01-05T10:00:00+08:00")
    await order(api, "A-1", "alice", "300", "2026-01-10T12:00:00+08:00")
    broker = MemoryBroker()
    member_id = (await member_view(api, "alice"))["id"]
    from strawberry.relay import GlobalID

    async with broker.subscribe(program.id, int(GlobalID.from_id(member_id).node_id)) as subscriber:
        assert await remind_expiring(db, program, as_of=at("2026-12-01T00:00:00+08:00"), broker=broker) == 0
        assert await remind_expiring(db, program, as_of=at("2027-01-05T00:00:00+08:00"), broker=broker) == 3
        assert await remind_expiring(db, program, as_of=at("2027-01-06T00:00:00+08:00"), broker=broker) == 0
        messages = sorted(subscriber.queue.get_nowait().message for _ in range(3))
    assert messages == ["100 points expire at 2027-02-01 00:00", "300 points expire at 2027-02-01 00:00",
                        "50 points expire at 2027-02-01 00:00"]


async def test_only_operators_expire_points(api):
    result = await api.as_service(EXPIRE)
    assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"
