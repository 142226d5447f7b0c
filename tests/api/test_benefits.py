"""The benefit catalogue: tiers, quotas per period, windows with early access, birthdays, usage."""

from datetime import datetime

from helpers import enroll, order, row_counts

CLAIM = """mutation($id: ID!) { claimBenefit(input: {benefitId: $id}) {
  benefit { remaining periodEndsAt canClaim } coupon { template { code } validUntil source }
  userErrors { code message } } }"""
BENEFITS = """{ viewer { benefits { benefit { id code category } remaining periodEndsAt availableFrom canClaim reason } } }"""
CATALOGUE = """{ program { benefits { id code tiers { code } usage { eligibleMembers claimingMembers claims rate } } } }"""


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def benefit_ids(api) -> dict[str, str]:
    result = await api.as_operator(CATALOGUE)
    return {b["code"]: b["id"] for b in result["data"]["program"]["benefits"]}


async def member_at_tier(api, clock, name: str, amount: str, **fields) -> None:
    clock.now = at("2026-01-02T10:00:00+08:00")
    await enroll(api, name, joinedAt="2026-01-01T10:00:00+08:00", **fields)
    await order(api, f"{name}-1", name, amount, "2026-01-02T09:00:00+08:00")


async def claim(api, member: str, benefit_id: str) -> dict:
    return (await api.as_member(member, CLAIM, {"id": benefit_id}))["data"]["claimBenefit"]


async def test_silver_claims_the_monthly_coupon_once_a_month(api, db, clock):
    await member_at_tier(api, clock, "silvia", "250")  # a single order ≥ ¥200: SILVER
    ids = await benefit_ids(api)
    clock.now = at("2026-02-10T10:00:00+08:00")
    first = await claim(api, "silvia", ids["MONTHLY_COUPON_SILVER"])
    assert first["userErrors"] == []
    assert first["coupon"] == {"template": {"code": "SILVER_MONTHLY_90"}, "validUntil": "2026-03-12T23:59:59+08:00",
                               "source": "BENEFIT"}
    assert first["benefit"] == {"remaining": 0, "periodEndsAt": "2026-03-01T00:00:00+08:00", "canClaim": False}
    before = await row_counts(db)
    clock.now = at("2026-02-28T23:59:00+08:00")
    again = await claim(api, "silvia", ids["MONTHLY_COUPON_SILVER"])
    assert [e["code"] for e in again["userErrors"]] == ["LIMIT_REACHED"]
    assert await row_counts(db) == before
    clock.now = at("2026-03-01T00:00:00+08:00")
    assert (await claim(api, "silvia", ids["MONTHLY_COUPON_SILVER"]))["userErrors"] == []


async def test_a_regular_member_does_not_hold_silver_benefits(api, db, clock):
    await member_at_tier(api, clock, "reggie", "100")
    ids = await benefit_ids(api)
    before = await row_counts(db)
    result = await claim(api, "reggie", ids["MONTHLY_COUPON_SILVER"])
    assert [e["code"] for e in result["userErrors"]] == ["NOT_ELIGIBLE"]
    assert await row_counts(db) == before
    held = [b["benefit"]["code"] for b in (await api.as_member("reggie", BENEFITS))["data"]["viewer"]["benefits"]]
    assert held == ["BIRTHDAY_COUPON", "PRIORITY_SERVICE", "COUPON_618"]


async def test_diamond_claims_the_618_coupon_three_days_early(api, db, clock):
    await member_at_tier(api, clock, "dina", "3000")  # ≥ ¥3,000 in 12 months: DIAMOND
    await member_at_tier(api, clock, "goldie", "1000")  # ≥ ¥1,000 in 12 months: GOLD
    ids = await benefit_ids(api)
    clock.now = at("2026-05-30T10:00:00+08:00")
    diamond = await claim(api, "dina", ids["COUPON_618"])
    assert diamond["userErrors"] == [] and diamond["coupon"]["template"]["code"] == "SALE_618_30_OFF_199"
    gold = await claim(api, "goldie", ids["COUPON_618"])
    assert gold["userErrors"] == [{"code": "NOT_ELIGIBLE", "message": "618 满199减30 opens at 2026-06-01T00:00:00+08:00"}]
    standing = {b["benefit"]["code"]: b for b in (await api.as_member("goldie", BENEFITS))["data"]["viewer"]["benefits"]}
    assert (standing["COUPON_618"]["availableFrom"], standing["COUPON_618"]["canClaim"]) == (
        "2026-06-01T00:00:00+08:00", False)
    clock.now = at("2026-06-01T00:00:00+08:00")
    assert (await claim(api, "goldie", ids["COUPON_618"]))["userErrors"] == []
    clock.now = at("2026-06-19T00:00:00+08:00")
    await member_at_tier(api, clock, "late", "100")
    clock.now = at("2026-06-19T00:00:00+08:00")
    assert [e["code"] for e in (await claim(api, "late", ids["COUPON_618"]))["userErrors"]] == ["EXPIRED"]


async def test_the_birthday_coupon_comes_in_the_birthday_month_once_a_year(api, clock):
    await member_at_tier(api, clock, "betty", "50", birthday="1990-03-15")
    ids = await benefit_ids(api)
    clock.now = at("2026-02-28T10:00:00+08:00")
    assert [e["code"] for e in (await claim(api, "betty", ids["BIRTHDAY_COUPON"]))["userErrors"]] == ["NOT_ELIGIBLE"]
    clock.now = at("2026-03-02T10:00:00+08:00")
    assert (await claim(api, "betty", ids["BIRTHDAY_COUPON"]))["coupon"]["template"]["code"] == "BIRTHDAY_80"
    clock.now = at("2026-03-30T10:00:00+08:00")
    assert [e["code"] for e in (await claim(api, "betty", ids["BIRTHDAY_COUPON"]))["userErrors"]] == ["LIMIT_REACHED"]


async def test_usage_figures_are_for_operators(api, clock):
    await member_at_tier(api, clock, "s1", "250")
    await member_at_tier(api, clock, "s2", "250")
    await member_at_tier(api, clock, "r1", "100")
    ids = await benefit_ids(api)
    clock.now = at("2026-02-10T10:00:00+08:00")
    await claim(api, "s1", ids["MONTHLY_COUPON_SILVER"])
    clock.now = at("2026-03-10T10:00:00+08:00")
    await claim(api, "s1", ids["MONTHLY_COUPON_SILVER"])
    usage = {b["code"]: b["usage"] for b in (await api.as_operator(CATALOGUE))["data"]["program"]["benefits"]}
    assert usage["MONTHLY_COUPON_SILVER"] == {"eligibleMembers": 2, "claimingMembers": 1, "claims": 2, "rate": 0.5}
    assert usage["PRIORITY_SERVICE"] == {"eligibleMembers": 3, "claimingMembers": 0, "claims": 0, "rate": 0.0}
    as_member = await api.as_member("s1", CATALOGUE)
    assert all(b["usage"] is None for b in as_member["data"]["program"]["benefits"])


async def test_tiers_list_their_benefits(api):
    result = await api.as_operator("{ program { ladder { tiers { code benefits { code } } } } }")
    tiers = {t["code"]: [b["code"] for b in t["benefits"]] for t in result["data"]["program"]["ladder"]["tiers"]}
    assert tiers["REGULAR"] == ["BIRTHDAY_COUPON", "PRIORITY_SERVICE", "COUPON_618"]
    assert "MONTHLY_COUPON_SILVER" in tiers["DIAMOND"] and "MONTHLY_GIFT_DIAMOND" in tiers["DIAMOND"]
    assert "MONTHLY_GIFT_DIAMOND" not in tiers["GOLD"]
