"""Paid membership (付费会员, PLUS): plans, purchases and renewals, the multiplier bonus, free shipping,
the plan's benefits, and the reminders of the jobs."""

from datetime import datetime

import pytest

from helpers import enroll, order, row_counts
from test_jobs import member_id
from tierup.events import MemoryBroker
from tierup.services.memberships import remind_memberships

PLANS = "{ program { membershipPlans { code name price { amount } months pointsMultiplierBonus freeShipping benefits { code } } } }"
BUY = """
mutation($input: PurchaseMembershipInput!) {
  purchaseMembership(input: $input) {
    duplicate membership { plan { code } startedAt validUntil active }
    userErrors { field code message }
  }
}"""
MEMBERSHIP = "{ viewer { membership { plan { code } startedAt validUntil active } benefits { benefit { code } } } }"
QUOTE = """{ viewer { checkoutQuote(input: {lines: [{sku: "A", unitPrice: "10"}]}) { freeShipping pointsToEarn } } }"""
PAID = "2026-01-04T10:00:00+08:00"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def buy(api, external_id: str, plan: str = "PLUS_YEAR", amount: str = "99", paid_at: str = PAID,
              member: str = "ann") -> dict:
    result = await api.as_service(BUY, {"input": {"externalId": external_id, "memberExternalId": member,
                                                  "planCode": plan, "amount": amount, "paidAt": paid_at}})
    assert "errors" not in result, result
    return result["data"]["purchaseMembership"]


async def test_the_program_lists_its_plans(api):
    plans = (await api.as_member("anyone", PLANS))["data"]["program"]["membershipPlans"]
    assert plans == [
        {"code": "PLUS_MONTH", "name": "PLUS 月卡", "price": {"amount": "15.00"}, "months": 1,
         "pointsMultiplierBonus": "1", "freeShipping": True,
         "benefits": [{"code": "PRIORITY_SHIPPING"}, {"code": "EXPRESS_REFUND"}]},
        {"code": "PLUS_YEAR", "name": "PLUS 年卡", "price": {"amount": "99.00"}, "months": 12,
         "pointsMultiplierBonus": "1", "freeShipping": True,
         "benefits": [{"code": "PRIORITY_SHIPPING"}, {"code": "EXPRESS_REFUND"}]}]


async def test_a_purchase_starts_a_run_and_a_renewal_extends_it_from_its_end(api, db, clock):
    await enroll(api, "ann")
    first = await buy(api, "P-1")
    assert first["membership"] == {"plan": {"code": "PLUS_YEAR"}, "startedAt": "2026-01-04T10:00:00+08:00",
                                   "validUntil": "2027-01-04T10:00:00+08:00", "active": True}
    before = await row_counts(db)
    assert (await buy(api, "P-1"))["duplicate"] is True
    assert await row_counts(db) == before
    clock.now = at("2026-06-01T12:00:00+08:00")
    renewed = await buy(api, "P-2", "PLUS_MONTH", "15", "2026-06-01T10:00:00+08:00")
    assert renewed["membership"] == {"plan": {"code": "PLUS_MONTH"}, "startedAt": "2026-01-04T10:00:00+08:00",
                                     "validUntil": "2027-02-04T10:00:00+08:00", "active": True}


async def test_after_a_lapse_a_purchase_starts_a_new_run(api, clock):
    await enroll(api, "ann")
    await buy(api, "P-1", "PLUS_MONTH", "15")
    clock.now = at("2026-03-01T10:00:00+08:00")
    again = await buy(api, "P-2", "PLUS_MONTH", "15", "2026-03-01T09:00:00+08:00")
    assert again["membership"] == {"plan": {"code": "PLUS_MONTH"}, "startedAt": "2026-03-01T09:00:00+08:00",
                                   "validUntil": "2026-04-01T09:00:00+08:00", "active": True}


@pytest.mark.parametrize("plan, amount, field, code", [
    ("PLUS_YEAR", "98.99", ["input", "amount"], "INVALID"),
    ("PLUS_FOREVER", "99", ["input", "planCode"], "NOT_FOUND"),
])
async def test_a_wrong_price_or_plan_buys_nothing(api, db, plan, amount, field, code):
    await enroll(api, "ann")
    before = await row_counts(db)
    refused = await buy(api, "P-1", plan, amount)
    assert refused["membership"] is None
    assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [(field, code)]
    assert await row_counts(db) == before


async def test_while_active_orders_earn_the_bonus_shipping_is_free_and_the_plan_benefits_are_held(api, clock):
    await enroll(api, "ann", joinedAt="2026-01-01T10:00:00+08:00")
    clock.now = at("2026-01-20T10:00:00+08:00")
    before_plus = await order(api, "A-0", "ann", "100", "2026-01-04T09:00:00+08:00")
    await buy(api, "P-1", "PLUS_MONTH", "15")
    during = await order(api, "A-1", "ann", "100", "2026-01-10T10:00:00+08:00")
    assert (before_plus["order"]["pointsEarned"], during["order"]["pointsEarned"]) == (100, 200)  # 1× + 1
    view = (await api.as_member("ann", MEMBERSHIP))["data"]["viewer"]
    assert {"PRIORITY_SHIPPING", "EXPRESS_REFUND"} <= {b["benefit"]["code"] for b in view["benefits"]}
    assert (await api.as_member("ann", QUOTE))["data"]["viewer"]["checkoutQuote"] == {
        "freeShipping": True, "pointsToEarn": 20}
    clock.now = at("2026-02-04T10:00:00+08:00")  # the month is over
    view = (await api.as_member("ann", MEMBERSHIP))["data"]["viewer"]
    assert view["membership"]["active"] is False
    assert not {"PRIORITY_SHIPPING", "EXPRESS_REFUND"} & {b["benefit"]["code"] for b in view["benefits"]}
    assert (await api.as_member("ann", QUOTE))["data"]["viewer"]["checkoutQuote"] == {
        "freeShipping": False, "pointsToEarn": 10}
    after = await order(api, "A-2", "ann", "100", "2026-02-04T10:00:00+08:00")
    assert after["order"]["pointsEarned"] == 100


async def test_the_jobs_remind_a_week_before_the_end_and_announce_the_lapse_once(api, db, program, clock):
    await enroll(api, "ann")
    await buy(api, "P-1", "PLUS_MONTH", "15")  # until 2026-02-04 10:00
    broker = MemoryBroker()
    async with broker.subscribe(program.id, await member_id(api, "ann")) as subscriber:
        assert await remind_memberships(db, program, as_of=at("2026-01-27T10:00:00+08:00"), broker=broker) == 0
        assert await remind_memberships(db, program, as_of=at("2026-01-28T10:00:00+08:00"), broker=broker) == 1
        assert await remind_memberships(db, program, as_of=at("2026-01-29T10:00:00+08:00"), broker=broker) == 0
        assert await remind_memberships(db, program, as_of=at("2026-02-04T10:00:00+08:00"), broker=broker) == 1
        assert await remind_memberships(db, program, as_of=at("2026-02-05T10:00:00+08:00"), broker=broker) == 0
        events = [subscriber.queue.get_nowait() for _ in range(2)]
    assert [(e.kind, e.message) for e in events] == [
        ("MEMBERSHIP_EXPIRING", "PLUS 月卡 ends on 2026-02-04; renew to keep it"),
        ("MEMBERSHIP_CHANGED", "PLUS 月卡 ended on 2026-02-04")]
