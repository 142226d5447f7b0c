"""Checkout money: the quote (member price → coupons → points as cash → stored value → payable) and
orders paid partly with points."""

from datetime import datetime

import pytest

from helpers import enroll, order, row_counts
from test_benefits import benefit_ids, claim, member_at_tier

QUOTE = """
query($input: CheckoutQuoteInput!) { viewer { checkoutQuote(input: $input) {
  listAmount { amount } memberPriceDiscount { amount } couponDiscount { amount } coupons { template { code } }
  pointsUsed pointsDiscount { amount } storedValueUsed { amount } payable { amount } freeShipping pointsToEarn
  userErrors { field code message }
} } }"""
TOP_UP = """mutation($input: TopUpStoredValueInput!) { topUpStoredValue(input: $input) { userErrors { code } } }"""
ADJUST_POINTS = """mutation($input: AdjustPointsInput!) { adjustPoints(input: $input) { userErrors { code } } }"""
PAY = """
mutation($input: RecordOrderInput!) {
  recordOrder(input: $input) {
    order { pointsEarned pointsUsed }
    member { points { balance ledger(first: 3) { edges { node { kind amount } } } } }
    userErrors { field code message }
  }
}"""
REFUND = """
mutation($input: RefundOrderInput!) {
  refundOrder(input: $input) {
    member { points { balance ledger(first: 2) { edges { node { kind amount reason } } } } } userErrors { code }
  }
}"""


def basket(*prices: str) -> list[dict]:
    return [{"sku": f"SKU-{n}", "unitPrice": price} for n, price in enumerate(prices)]


async def quote(api, member: str, **fields) -> dict:
    result = await api.as_member(member, QUOTE, {"input": fields})
    assert "errors" not in result, result
    return result["data"]["viewer"]["checkoutQuote"]


async def silver_with_money(api, clock, points: int, stored_value: str) -> None:
    """silvia: SILVER (one ¥250 order), her monthly 9折 coupon, `points` points and stored value."""
    await member_at_tier(api, clock, "silvia", "250")
    clock.now = datetime.fromisoformat("2026-02-10T10:00:00+08:00")
    await claim(api, "silvia", (await benefit_ids(api))["MONTHLY_COUPON_SILVER"])
    view = await api.as_operator('{ member(externalId: "silvia") { id points { balance } } }')
    member = view["data"]["member"]
    await api.as_operator(ADJUST_POINTS, {"input": {"memberId": member["id"], "externalId": "ADJ-1",
                                                    "amount": points - member["points"]["balance"], "reason": "test"}})
    await api.as_service(TOP_UP, {"input": {"externalId": "T-1", "memberExternalId": "silvia", "amount": stored_value,
                                            "paidAt": "2026-02-10T09:00:00+08:00"}})


async def test_the_worked_example(api, clock):
    """Classic, a SILVER member without PLUS, a ¥300 basket, the monthly 9折 coupon, 1,000 points and ¥60 of
    stored value: coupon −¥30 → ¥270; points −¥10 → ¥260; stored value ¥60 → ¥200 payable; 260 × 2 = 520."""
    await silver_with_money(api, clock, 1000, "60")
    coupon = (await api.as_member("silvia", "{ viewer { coupons(first: 5) { edges { node { code template { code } } } } } }"))
    code = next(e["node"]["code"] for e in coupon["data"]["viewer"]["coupons"]["edges"]
                if e["node"]["template"]["code"] == "SILVER_MONTHLY_90")
    answer = await quote(api, "silvia", lines=basket("100", "200"), couponCodes=[code], usePoints=1000,
                         useStoredValue="60")
    assert answer == {
        "listAmount": {"amount": "300.00"}, "memberPriceDiscount": {"amount": "0.00"},
        "couponDiscount": {"amount": "30.00"}, "coupons": [{"template": {"code": "SILVER_MONTHLY_90"}}],
        "pointsUsed": 1000, "pointsDiscount": {"amount": "10.00"}, "storedValueUsed": {"amount": "60.00"},
        "payable": {"amount": "200.00"}, "freeShipping": False, "pointsToEarn": 520, "userErrors": []}


async def test_without_codes_the_best_coupons_apply_and_nothing_changes(api, db, clock):
    await silver_with_money(api, clock, 1000, "60")
    await claim(api, "silvia", (await benefit_ids(api))["FREE_SHIPPING"])
    before = await row_counts(db)
    answer = await quote(api, "silvia", lines=[{"sku": "A", "unitPrice": "50", "quantity": 2}])
    assert (answer["couponDiscount"], answer["freeShipping"], answer["payable"]) == (
        {"amount": "10.00"}, True, {"amount": "90.00"})
    assert sorted(c["template"]["code"] for c in answer["coupons"]) == ["FREE_SHIPPING", "SILVER_MONTHLY_90"]
    assert await row_counts(db) == before  # a quote has no side effect


@pytest.mark.parametrize("fields, field, code", [
    ({"usePoints": 1001}, ["input", "usePoints"], "INSUFFICIENT_POINTS"),
    ({"usePoints": 501}, ["input", "usePoints"], "LIMIT_REACHED"),  # half of ¥10 is 500 points
    ({"useStoredValue": "60.01"}, ["input", "useStoredValue"], "INSUFFICIENT_BALANCE"),
    ({"couponCodes": ["CPNOSUCHCODE"]}, ["input", "couponCodes", "0"], "NOT_FOUND"),
])
async def test_what_cannot_be_applied_is_a_user_error_and_the_rest_is_quoted(api, clock, fields, field, code):
    await silver_with_money(api, clock, 1000, "60")
    answer = await quote(api, "silvia", lines=basket("10"), **fields)
    assert [(e["field"], e["code"]) for e in answer["userErrors"]] == [(field, code)]
    assert answer["listAmount"] == {"amount": "10.00"}
    assert answer["pointsUsed"] == 0 or code != "INSUFFICIENT_POINTS"


@pytest.mark.parametrize("line, field", [
    ({"sku": "A", "unitPrice": "0"}, ["input", "lines", "0", "unitPrice"]),
    ({"sku": "A", "unitPrice": "1.001"}, ["input", "lines", "0", "unitPrice"]),
    ({"sku": "A", "unitPrice": "10", "quantity": 0}, ["input", "lines", "0", "quantity"]),
    ({"sku": "", "unitPrice": "10"}, ["input", "lines", "0", "sku"]),
])
async def test_bad_lines_are_named(api, line, field):
    await enroll(api, "ann")
    answer = await quote(api, "ann", lines=[line])
    assert [(e["field"], e["code"]) for e in answer["userErrors"]] == [(field, "INVALID")]


async def test_the_member_price_of_the_tier_comes_first(api, db, clock):
    from tierup.programs import bundled_program_path, load_program_file
    from tierup.services.programs import publish_program

    await publish_program(db, load_program_file(bundled_program_path("nine-levels")), published_by="test",
                          now=clock())
    api.program_code = "nine-levels"
    await enroll(api, "vic")
    assert (await quote(api, "vic", lines=basket("300")))["memberPriceDiscount"] == {"amount": "0.00"}  # V1
    for n in range(3):  # three orders: V2, the base stage's 99折
        await order(api, f"V-{n}", "vic", "10", "2026-01-04T10:00:00+08:00")
    answer = await quote(api, "vic", lines=basket("300", "0.50"))
    # ¥297 and ¥0.495 → ¥0.50 (each line to the nearest fen); V2 earns floor(297.50 × 1.1) on what is paid
    assert (answer["memberPriceDiscount"], answer["payable"], answer["pointsToEarn"]) == (
        {"amount": "3.00"}, {"amount": "297.50"}, 327)
    tiers = (await api.as_member("vic", "{ program { ladder { tiers { code memberPricePercent } } } }"))
    assert [t["memberPricePercent"] for t in tiers["data"]["program"]["ladder"]["tiers"]] == [
        None, "99", "99", "99", "99", "99", "80", "80", "80"]


async def test_an_order_paid_partly_with_points_takes_them_and_a_refund_gives_back_its_share(api, db, clock):
    await enroll(api, "ann")  # 100 welcome points
    paid = (await api.as_service(PAY, {"input": {"externalId": "A-1", "memberExternalId": "ann", "amount": "60",
                                                 "paidAt": "2026-01-04T10:00:00+08:00", "pointsUsed": 40}}))
    paid = paid["data"]["recordOrder"]
    assert paid["userErrors"] == [] and paid["order"] == {"pointsEarned": 60, "pointsUsed": 40}
    entries = [(e["node"]["kind"], e["node"]["amount"]) for e in paid["member"]["points"]["ledger"]["edges"]]
    assert entries == [("EARN", 50), ("EARN", 60), ("SPEND", -40)]  # FIRST_ORDER's reward, the order, its points
    balance = paid["member"]["points"]["balance"]
    refund = (await api.as_service(REFUND, {"input": {"externalId": "R-1", "orderExternalId": "A-1", "amount": "30",
                                                      "refundedAt": "2026-01-05T10:00:00+08:00"}}))
    refund = refund["data"]["refundOrder"]
    assert [(e["node"]["kind"], e["node"]["amount"]) for e in refund["member"]["points"]["ledger"]["edges"]] == [
        ("REVERSE", -30), ("RETURN", 20)]  # half the order: half its points back, half what it earned taken
    assert refund["member"]["points"]["balance"] == balance + 20 - 30


# 1 point pays ¥0.01: with ¥0.60 paid, 61 points (¥0.61) would pay more than half of ¥1.21.
@pytest.mark.parametrize("points, code", [(101, "INSUFFICIENT_POINTS"), (61, "LIMIT_REACHED")])
async def test_points_beyond_the_balance_or_the_cap_refuse_the_whole_order(api, db, points, code):
    await enroll(api, "ann")
    before = await row_counts(db)
    refused = (await api.as_service(PAY, {"input": {"externalId": "A-1", "memberExternalId": "ann", "amount": "0.60",
                                                    "paidAt": "2026-01-04T10:00:00+08:00", "pointsUsed": points}}))
    refused = refused["data"]["recordOrder"]
    assert refused["order"] is None
    assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [(["input", "pointsUsed"], code)]
    assert await row_counts(db) == before


async def test_order_lines_are_part_of_the_report(api):
    await enroll(api, "ann")
    lines = [{"sku": "ECO-1", "unitPrice": "30", "quantity": 2, "categories": ["ECO"]}]
    first = await order(api, "A-1", "ann", "60", "2026-01-04T10:00:00+08:00", lines=lines)
    again = await order(api, "A-1", "ann", "60", "2026-01-04T10:00:00+08:00", lines=lines)
    other = await order(api, "A-1", "ann", "60", "2026-01-04T10:00:00+08:00",
                        lines=[{**lines[0], "categories": []}])
    assert (first["duplicate"], again["duplicate"]) == (False, True)
    assert [e["code"] for e in other["userErrors"]] == ["DUPLICATE"]


async def test_the_same_basket_at_v7_pays_the_peak_stages_member_price(api, db, clock):
    from tierup.programs import bundled_program_path, load_program_file
    from tierup.services.programs import publish_program

    await publish_program(db, load_program_file(bundled_program_path("nine-levels")), published_by="test",
                          now=clock())
    api.program_code = "nine-levels"
    await enroll(api, "vic")
    await order(api, "V-1", "vic", "30000", "2026-01-04T10:00:00+08:00")  # ¥30,000 in 12 months: V7
    view = await api.as_member("vic", "{ viewer { tier { code memberPricePercent } } }")
    assert view["data"]["viewer"]["tier"] == {"code": "V7", "memberPricePercent": "80"}
    answer = await quote(api, "vic", lines=basket("100", "200"))
    assert (answer["memberPriceDiscount"], answer["payable"]) == ({"amount": "60.00"}, {"amount": "240.00"})


STORE_ORDER = """
mutation($input: RecordOrderInput!) {
  recordOrder(input: $input) {
    order { channel storeCode pointsEarned pointsUsed storedValueUsed { amount } }
    member { points { balance } storedValue { balance { amount } } }
    userErrors { field code message }
  }
}"""
BALANCES = """{ member(externalId: "silvia") { points { balance } storedValue { balance { amount } }
  coupons(first: 10, status: USED) { totalCount } } }"""


async def test_an_order_paid_every_way_at_a_store_then_half_refunded(api, clock):
    """silvia (SILVER, 2×) quotes ¥300 with her 9折 coupon, 1,000 points and ¥60 stored value, pays the rest
    at SH-001 and reports the order as quoted; then half of it is refunded."""
    await silver_with_money(api, clock, 1000, "60")
    code = next(e["node"]["code"] for e in (await api.as_member(
        "silvia", "{ viewer { coupons(first: 5) { edges { node { code template { code } } } } } }"))
        ["data"]["viewer"]["coupons"]["edges"] if e["node"]["template"]["code"] == "SILVER_MONTHLY_90")
    quoted = await quote(api, "silvia", lines=basket("100", "200"), couponCodes=[code], usePoints=1000,
                         useStoredValue="60")
    money_paid = "260"  # ¥200 cash + ¥60 stored value: the ¥10 of points is not money paid
    paid = (await api.as_service(STORE_ORDER, {"input": {
        "externalId": "S-1", "memberExternalId": "silvia", "amount": money_paid,
        "paidAt": "2026-02-10T10:00:00+08:00", "couponCodes": [code], "pointsUsed": quoted["pointsUsed"],
        "storedValueUsed": quoted["storedValueUsed"]["amount"], "channel": "STORE", "storeCode": "SH-001",
        "lines": basket("100", "200")}}))["data"]["recordOrder"]
    assert paid["userErrors"] == []
    assert paid["order"] == {"channel": "STORE", "storeCode": "SH-001", "pointsEarned": quoted["pointsToEarn"],
                             "pointsUsed": 1000, "storedValueUsed": {"amount": "60.00"}}
    assert paid["member"] == {"points": {"balance": 1000 - 1000 + 520}, "storedValue": {"balance": {"amount": "0.00"}}}
    clock.now = datetime.fromisoformat("2026-02-11T12:00:00+08:00")
    refunded = await api.as_service("""mutation { refundOrder(input: {externalId: "SR-1", orderExternalId: "S-1",
        amount: "130", refundedAt: "2026-02-11T10:00:00+08:00", channel: STORE, storeCode: "SH-001"}) {
        userErrors { code } } }""")
    assert refunded["data"]["refundOrder"]["userErrors"] == []
    after = (await api.as_operator(BALANCES))["data"]["member"]
    # Half back: 500 of the points used, ¥30 of stored value; half of the 520 earned taken back.
    assert after == {"points": {"balance": 520 + 500 - 260}, "storedValue": {"balance": {"amount": "30.00"}},
                     "coupons": {"totalCount": 1}}
