"""Engagement that pays: reviews earn once per order, referrals reward both sides, and a tier change
announces the benefits it opens."""

from conftest import START
from helpers import enroll, member_view, order, refund, row_counts
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
    first = await order(api, "B-1", "bob", "30", PAID)
    await order(api, "B-2", "bob", "30", PAID)  # only the first order pays the referrer
    after = await member_view(api, "alice")
    referral = [e["node"] for e in after["points"]["ledger"]["edges"] if e["node"]["reason"].startswith("Referral")]
    assert [(e["kind"], e["amount"], e["reason"]) for e in referral] == [("EARN", 200, "Referral: first order of bob")]
    assert after["points"]["balance"] == before + 200  # REFER_A_FRIEND is a challenge alice claims herself
    # The order's points are bob's own, as answered and as read again; alice's 200 are hers.
    again = (await api.as_operator(ORDER_POINTS, {"id": "bob"}))["data"]["member"]["orders"]["edges"]
    assert first["order"]["pointsEarned"] == again[-1]["node"]["pointsEarned"] == 30


async def test_a_referral_pays_once_even_when_the_first_orders_are_refunded(api):
    """The referrer's points come with the referred member's first order, once: an order after the earlier
    ones were refunded in full is not a first order again."""
    alice = await enroll(api, "alice")
    await enroll(api, "bob", referralCode=alice["member"]["referralCode"])
    before = (await member_view(api, "alice"))["points"]["balance"]
    await order(api, "B-1", "bob", "30", PAID)
    await refund(api, "RF-1", "B-1", "30", PAID)
    await order(api, "B-2", "bob", "40", PAID)
    after = await member_view(api, "alice")
    referral = [e["node"] for e in after["points"]["ledger"]["edges"] if e["node"]["reason"].startswith("Referral")]
    assert [(e["amount"], e["reason"]) for e in referral] == [(200, "Referral: first order of bob")]
    assert after["points"]["balance"] == before + 200


async def test_an_upgrade_announces_the_benefits_it_opens(api, db, program):
    await enroll(api, "ann")
    broker = MemoryBroker()
    async with broker.subscribe(program.id, await member_id(api, "ann")) as subscriber:
        await record_order(db, program, OrderInput("A-1", "ann", "250", START), now=START, broker=broker)
        events = [subscriber.queue.get_nowait() for _ in range(subscriber.queue.qsize())]
    unlocked = [e.message for e in events if e.kind == "BENEFIT_UNLOCKED"]
    assert unlocked == ["Benefits unlocked: 银卡月度9折券, 包邮券, 会员专享商品"]


ORDER_POINTS = """query($id: String!) { member(externalId: $id) { orders(first: 5) { edges { node { externalId
  pointsEarned } } } } }"""
BOOSTS = "{ program { boosts { code name multiplier appliesWhen } } }"
LEDGER_TOP = """query($id: String!) { member(externalId: $id) { points { ledger(first: 1) { edges { node { amount reason } } } } } }"""
QUOTE_EARN = """query($input: CheckoutQuoteInput!) { viewer { checkoutQuote(input: $input) { pointsToEarn } } }"""


async def test_the_program_lists_its_boosts_in_words(api):
    boosts = (await api.as_member("anyone", BOOSTS))["data"]["program"]["boosts"]
    assert boosts == [
        {"code": "MEMBER_DAY", "name": "会员日双倍积分", "multiplier": "2", "appliesWhen": "2× points on day 18 of every month"},
        {"code": "ECO_PRODUCTS", "name": "可持续消费奖励", "multiplier": "2",
         "appliesWhen": "2× points every day, on lines in ECO"}]


async def test_a_boost_doubles_what_qualifies_and_the_ledger_names_it(api, clock):
    from datetime import datetime

    clock.now = datetime.fromisoformat("2026-01-19T10:00:00+08:00")
    await enroll(api, "ann")
    await order(api, "A-0", "ann", "10", "2026-01-16T10:00:00+08:00")  # the first order's task is paid now

    async def earned(external_id: str, paid_at: str, **fields) -> tuple[int, str]:
        answer = await order(api, external_id, "ann", "100", paid_at, **fields)
        top = (await api.as_operator(LEDGER_TOP, {"id": "ann"}))["data"]["member"]["points"]["ledger"]["edges"][0]
        return answer["order"]["pointsEarned"], top["node"]["reason"]

    assert await earned("A-1", "2026-01-17T10:00:00+08:00") == (100, "Order A-1 at 1×")
    assert await earned("A-2", "2026-01-18T10:00:00+08:00") == (200, "Order A-2 at 1× (会员日双倍积分 2×)")
    # Half the money paid was for ECO lines: those earn double, the rest once; on the member day both are 2×.
    eco = [{"sku": "ECO-1", "unitPrice": "60", "categories": ["ECO"]}, {"sku": "TEE", "unitPrice": "60"}]
    assert await earned("A-3", "2026-01-17T11:00:00+08:00", lines=eco) == (150, "Order A-3 at 1× (可持续消费奖励 2×)")
    assert (await earned("A-4", "2026-01-18T11:00:00+08:00", lines=eco))[0] == 200  # never stacked: 2×, not 4×
    quote = await api.as_member("ann", QUOTE_EARN, {"input": {"lines": eco, "couponCodes": []}})
    assert quote["data"]["viewer"]["checkoutQuote"]["pointsToEarn"] == 180  # ¥120 on the 19th, ECO half doubled


async def test_the_birthday_coupon_comes_on_the_day_once_and_a_missed_one_can_still_be_claimed(api, db, program):
    from datetime import datetime

    from tierup.services.benefits import give_birthday_benefits

    await enroll(api, "ann", birthday="1990-03-14")
    await enroll(api, "bob", birthday="1992-03-20")
    broker = MemoryBroker()
    on_the_day = datetime.fromisoformat("2026-03-14T00:30:00+08:00")
    async with broker.subscribe(program.id, await member_id(api, "ann")) as subscriber:
        assert await give_birthday_benefits(db, program, as_of=on_the_day, broker=broker) == 1  # ann, not bob
        assert await give_birthday_benefits(db, program, as_of=on_the_day, broker=broker) == 0  # never twice
        events = [subscriber.queue.get_nowait() for _ in range(subscriber.queue.qsize())]
    assert [(e.kind, e.message) for e in events] == [("COUPON_RECEIVED", "Happy birthday: 生日8折券")]
    coupons = (await api.as_operator(COUPONS, {"id": "ann"}))["data"]["member"]["coupons"]["edges"]
    assert [(c["node"]["template"]["code"], c["node"]["source"]) for c in coupons].count(("BIRTHDAY_80", "BENEFIT")) == 1
    # bob's day passed without the jobs: he may still claim it in his birthday month, once.
    claim = 'mutation($id: ID!) { claimBenefit(input: {benefitId: $id}) { userErrors { code } } }'
    ids = {b["code"]: b["id"] for b in (await api.as_operator("{ program { benefits { id code } } }"))["data"]["program"]["benefits"]}
    late = datetime.fromisoformat("2026-03-25T10:00:00+08:00").isoformat()
    first = await api.as_member("bob", claim, {"id": ids["BIRTHDAY_COUPON"]}, now=late)
    again = await api.as_member("bob", claim, {"id": ids["BIRTHDAY_COUPON"]}, now=late)
    assert (first["data"]["claimBenefit"]["userErrors"], again["data"]["claimBenefit"]["userErrors"]) == (
        [], [{"code": "LIMIT_REACHED"}])


ACTIVITY = """mutation($input: RecordActivityInput!) { recordActivity(input: $input) {
  pointsAwarded duplicate member { growthValue } userErrors { field code } } }"""
ECO_WEEK = """{ viewer { tasks { task { code } status current target } badges { code } } }"""


async def act(api, external_id: str, kind: str, at: str, member: str = "ann") -> dict:
    result = await api.as_service(ACTIVITY, {"input": {"externalId": external_id, "memberExternalId": member,
                                                       "kind": kind, "occurredAt": at}})
    assert "errors" not in result, result
    return result["data"]["recordActivity"]


async def test_activities_earn_up_to_their_daily_cap(api, db):
    await enroll(api, "ann")
    shares = [await act(api, f"S-{n}", "SHARE", "2026-01-04T10:00:00+08:00") for n in range(4)]
    assert [s["pointsAwarded"] for s in shares] == [5, 5, 5, 0]  # 3 a day; the 4th is recorded with 0
    assert (await act(api, "S-4", "SHARE", "2026-01-05T09:00:00+08:00"))["pointsAwarded"] == 5  # a new day
    again = await act(api, "S-3", "SHARE", "2026-01-04T10:00:00+08:00")
    assert (again["duplicate"], again["pointsAwarded"]) == (True, 0)
    before = await row_counts(db)
    unknown = await act(api, "X-1", "DANCE", "2026-01-04T10:00:00+08:00")
    assert [(e["field"], e["code"]) for e in unknown["userErrors"]] == [(["input", "kind"], "NOT_FOUND")]
    assert await row_counts(db) == before


async def test_three_eco_actions_in_a_week_complete_the_eco_week(api, clock):
    from datetime import datetime

    clock.now = datetime.fromisoformat("2026-01-10T12:00:00+08:00")
    await enroll(api, "ann", joinedAt="2026-01-01T10:00:00+08:00")
    first = await act(api, "E-1", "ECO_ACTION", "2026-01-05T10:00:00+08:00")  # Monday
    assert (first["pointsAwarded"], first["member"]["growthValue"]) == (20, 2)
    await act(api, "E-2", "ECO_ACTION", "2026-01-06T10:00:00+08:00")
    view = (await api.as_member("ann", ECO_WEEK, now="2026-01-06T12:00:00+08:00"))["data"]["viewer"]
    eco = next(t for t in view["tasks"] if t["task"]["code"] == "ECO_WEEK")
    assert (eco["status"], eco["current"], eco["target"]) == ("IN_PROGRESS", 2, 3)
    await act(api, "E-3", "ECO_ACTION", "2026-01-07T10:00:00+08:00")
    view = (await api.as_member("ann", ECO_WEEK, now="2026-01-07T12:00:00+08:00"))["data"]["viewer"]
    eco = next(t for t in view["tasks"] if t["task"]["code"] == "ECO_WEEK")
    assert eco["status"] in ("COMPLETED", "CLAIMED")
    assert {"code": "ECO_HERO"} in view["badges"]
