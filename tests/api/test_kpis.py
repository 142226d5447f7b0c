"""Program KPIs for Q2 2026 on fixtures/data/sample-history.json, computed by hand.

Members at the end: 6; the shop reports 12 customers → penetration 0.5 (target met).
Silent on 2026-04-01 (no order since 2026-01-01, joined by then): ben (never ordered before),
cai, dan → 3; ben ordered in Q2 → wake-up 1/3.
Tiers now: ana DIAMOND (¥3,500 in 12 months), cai GOLD, dan and fay SILVER (one order ≥ ¥200),
ben and eve REGULAR. Q2 buyers: ana (3 orders) and ben (1) → DIAMOND 1/1, REGULAR 0/1 → gap 1.0.
Core benefits are held by all 6; ana claims MONTHLY_GIFT_DIAMOND in Q2 → 1/6.
Points: welcome 6 × 100; ana 500×1 + 600×2 + 700×3 + 800×3 + 900×3 = 8,900; cai 500×1 + 2,000×2
= 4,500; dan 300; fay 400; ben 100; FIRST_ORDER 50 × 5 → 15,050. Expiring as of 2026-06-30 takes
dan's 450 (earned Nov–Dec 2024) → 14,600 outstanding, ¥146.00 at ¥0.01. Lots matured by the end:
dan's 450 and four welcome lots of June 2025 (expiring 2026-07-01 00:00) → 850, of which 450
expired → breakage 450/850; expected breakage floor(14,600 × 450/850) = 7,729 points (¥77.29).
"""

from datetime import datetime

from helpers import load_sample_history

KPIS = """{ program { kpis(from: "2026-04-01", to: "2026-06-30") {
  members customers penetration { value target met } silentAtStart woken wakeUpRate { value met }
  repurchase { tier buyers repeatBuyers rate } repurchaseGap { value target met }
  coreBenefitUsage { value target met } outstandingPoints liability { amount currency }
  breakageRate expectedBreakage expectedBreakageValue { amount } } } }"""
COUNT = """mutation($i: ReportCustomerCountInput!) { reportCustomerCount(input: $i) { duplicate userErrors { code } } }"""
CLAIM = "mutation($id: ID!) { claimBenefit(input: {benefitId: $id}) { userErrors { code message } } }"
EXPIRE = 'mutation { expirePoints(input: {asOf: "2026-06-30T00:00:00+08:00"}) { pointsExpired } }'


async def test_quarter_kpis_by_hand(api, db, program, clock):
    clock.now = datetime.fromisoformat("2026-06-30T12:00:00+08:00")
    await load_sample_history(db, program)
    counted = await api.as_service(COUNT, {"i": {"externalId": "C-2026-06", "customers": 12,
                                                 "asOf": "2026-06-01T00:00:00+08:00"}})
    assert counted["data"]["reportCustomerCount"] == {"duplicate": False, "userErrors": []}
    benefits = await api.as_operator("{ program { benefits { id code } } }")
    gift = next(b["id"] for b in benefits["data"]["program"]["benefits"] if b["code"] == "MONTHLY_GIFT_DIAMOND")
    assert (await api.as_member("ana", CLAIM, {"id": gift}))["data"]["claimBenefit"]["userErrors"] == []
    assert (await api.as_operator(EXPIRE))["data"]["expirePoints"]["pointsExpired"] == 450

    kpis = (await api.as_operator(KPIS))["data"]["program"]["kpis"]
    assert (kpis["members"], kpis["customers"]) == (6, 12)
    assert kpis["penetration"] == {"value": 0.5, "target": 0.5, "met": True}
    assert (kpis["silentAtStart"], kpis["woken"], kpis["wakeUpRate"]) == (3, 1, {"value": 0.3333, "met": True})
    assert kpis["repurchase"] == [
        {"tier": "REGULAR", "buyers": 1, "repeatBuyers": 0, "rate": 0.0},
        {"tier": "SILVER", "buyers": 0, "repeatBuyers": 0, "rate": None},
        {"tier": "GOLD", "buyers": 0, "repeatBuyers": 0, "rate": None},
        {"tier": "DIAMOND", "buyers": 1, "repeatBuyers": 1, "rate": 1.0},
    ]
    assert kpis["repurchaseGap"] == {"value": 1.0, "target": 0.15, "met": True}
    assert kpis["coreBenefitUsage"] == {"value": 0.1667, "target": 0.6, "met": False}
    assert (kpis["outstandingPoints"], kpis["liability"]) == (14600, {"amount": "146.00", "currency": "CNY"})
    assert (kpis["breakageRate"], kpis["expectedBreakage"], kpis["expectedBreakageValue"]) == (
        0.5294, 7729, {"amount": "77.29"})


async def test_kpis_are_for_operators_and_ranges_must_make_sense(api):
    assert (await api.as_service(KPIS))["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    backwards = await api.as_operator('{ program { kpis(from: "2026-06-30", to: "2026-04-01") { members } } }')
    assert backwards["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
