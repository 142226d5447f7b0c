"""Engagement that pays: reviews earn once per order, referrals reward both sides, and a tier change
announces the benefits it opens."""

from conftest import START
from helpers import enroll, member_view, order
from test_jobs import member_id
from tierup.events import MemoryBroker
from tierup.services.orders import OrderInput, record_order

REVIEW = """mutation($input: RecordReviewInput!) { recordReview(input: $input) {
  pointsEarned member { points { balance } } userErrors { field code } } }"""
COUPONS = """query($id: String!) { member(externalId: $id) { coupons(first: 5) { edges { node { template { code } source } } } } }"""
PAID = "2026-01-04T10:00:00+08:00"


async def review(api, external_id: str, order_id: str | None, photos: bool) -> dict:
    result = await api.as_service(REVIEW, {"input": {"externalId": external_id, "memberExternalId": "ann",
                                                     "orderExternalId": order_id, "withPhotos": photos,
                                                     "postedAt": "2026-01-04T12:00:00+08:00"}})
    assert "errors" not in result, result
    return result["data"]["recordReview"]


async def test_the_first_review_of_an_order_earns_more_with_photos_and_only_once(api):
    await enroll(api, "ann")
    for order_id in ("A-1", "A-2"):
        await order(api, order_id, "ann", "10", PAID)
    plain = await review(api, "R-1", "A-1", photos=False)
    with_photos = await review(api, "R-2", "A-2", photos=True)
    again = await review(api, "R-3", "A-1", photos=True)  # A-1 was reviewed already
    no_order = await review(api, "R-4", None, photos=True)
    assert [r["pointsEarned"] for r in (plain, with_photos, again, no_order)] == [10, 30, 0, 0]
    entries = [e["node"] for e in (await member_view(api, "ann"))["points"]["ledger"]["edges"]]
    assert [(e["amount"], e["reason"]) for e in entries if e["reason"].startswith("Review")] == [
        (30, "Review of order A-2 with photos"), (10, "Review of order A-1")]
    assert again["member"]["points"]["balance"] == no_order["member"]["points"]["balance"]


async def test_a_referral_rewards_both_sides(api, db, program):
    alice = await enroll(api, "alice")
    await enroll(api, "bob", referralCode=alice["member"]["referralCode"])
    coupons = (await api.as_operator(COUPONS, {"id": "bob"}))["data"]["member"]["coupons"]["edges"]
    assert sorted((c["node"]["template"]["code"], c["node"]["source"]) for c in coupons) == [
        ("WELCOME_10_OFF_50", "ENROLMENT"), ("WELCOME_10_OFF_50", "REFERRAL")]
    before = (await member_view(api, "alice"))["points"]["balance"]
    await order(api, "B-1", "bob", "30", PAID)
    await order(api, "B-2", "bob", "30", PAID)  # only the first order pays the referrer
    after = await member_view(api, "alice")
    referral = [e["node"] for e in after["points"]["ledger"]["edges"] if e["node"]["reason"].startswith("Referral")]
    assert [(e["kind"], e["amount"], e["reason"]) for e in referral] == [("EARN", 200, "Referral: first order of bob")]
    assert after["points"]["balance"] == before + 200  # REFER_A_FRIEND is a challenge alice claims herself


async def test_an_upgrade_announces_the_benefits_it_opens(api, db, program):
    await enroll(api, "ann")
    broker = MemoryBroker()
    async with broker.subscribe(program.id, await member_id(api, "ann")) as subscriber:
        await record_order(db, program, OrderInput("A-1", "ann", "250", START), now=START, broker=broker)
        events = [subscriber.queue.get_nowait() for _ in range(subscriber.queue.qsize())]
    unlocked = [e.message for e in events if e.kind == "BENEFIT_UNLOCKED"]
    assert unlocked == ["Benefits unlocked: 银卡月度9折券, 包邮券, 会员专享商品"]
