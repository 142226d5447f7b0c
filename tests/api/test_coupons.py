"""Coupons: the welcome coupon, using coupons on orders, and checkout quotes."""

from datetime import datetime

import pytest

from documents import RECORD_ORDER
from helpers import enroll, row_counts

COUPONS = """query($status: CouponStatus) { viewer { coupons(status: $status, first: 10) { totalCount edges { node {
  code status validUntil source template { code kind value minSpend { amount } } } } } } }"""
QUOTES = """query($amount: Decimal!) { viewer { couponQuotes(amount: $amount) {
  coupon { template { code } } discount { amount } payable { amount } } } }"""


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def coupons_of(api, member: str, status: str | None = None) -> list[dict]:
    result = await api.as_member(member, COUPONS, {"status": status})
    return [e["node"] for e in result["data"]["viewer"]["coupons"]["edges"]]


async def give(db, program, member_external_id: str, template: str, when: datetime) -> None:
    from sqlalchemy import select

    from tierup.services.coupons import issue_coupon
    from tierup.store.models import Member

    async with db.write() as session:
        member_id = (await session.execute(select(Member.id).where(Member.external_id == member_external_id))).scalar_one()
        await issue_coupon(session, program, member_id, template, when, source="OPERATOR")


def order_input(external_id: str, amount: str, paid_at: str, codes: list[str], member: str = "alice") -> dict:
    return {"input": {"externalId": external_id, "memberExternalId": member, "amount": amount, "paidAt": paid_at,
                      "couponCodes": codes}}


@pytest.fixture
async def alice(api, clock):
    clock.now = at("2026-01-05T10:00:00+08:00")
    await enroll(api, "alice")
    return (await coupons_of(api, "alice"))[0]


async def test_enrolment_issues_the_welcome_coupon_for_seven_days(alice):
    assert alice["template"] == {"code": "WELCOME_10_OFF_50", "kind": "THRESHOLD_REDUCTION", "value": "10",
                                 "minSpend": {"amount": "50.00"}}
    assert (alice["status"], alice["source"]) == ("ISSUED", "ENROLMENT")
    assert alice["validUntil"] == "2026-01-12T23:59:59+08:00"


async def test_an_order_uses_the_welcome_coupon_once(api, db, clock, alice):
    clock.now = at("2026-01-06T12:00:00+08:00")
    first = (await api.as_service(RECORD_ORDER, order_input("O-1", "40", "2026-01-06T11:00:00+08:00",
                                                            [alice["code"]])))["data"]["recordOrder"]
    assert first["userErrors"] == [] and first["order"]["pointsEarned"] == 40
    assert (await coupons_of(api, "alice", "USED"))[0]["code"] == alice["code"]
    before = await row_counts(db)
    second = (await api.as_service(RECORD_ORDER, order_input("O-2", "90", "2026-01-06T11:30:00+08:00",
                                                             [alice["code"]])))["data"]["recordOrder"]
    assert [(e["code"], e["field"]) for e in second["userErrors"]] == [("ALREADY_DONE", ["input", "couponCodes", "0"])]
    assert second["order"] is None
    assert await row_counts(db) == before


@pytest.mark.parametrize("amount, paid_at, code", [
    ("39.99", "2026-01-06T11:00:00+08:00", "NOT_ELIGIBLE"),  # ¥49.99 before the ¥10 off: below ¥50
    ("40", "2026-01-13T00:00:00+08:00", "EXPIRED"),  # the day after its last day
])
async def test_a_coupon_that_cannot_be_used_rejects_the_whole_report(api, db, clock, alice, amount, paid_at, code):
    clock.now = at("2026-01-20T00:00:00+08:00")
    before = await row_counts(db)
    result = (await api.as_service(RECORD_ORDER, order_input("O-1", amount, paid_at, [alice["code"]])))
    assert [e["code"] for e in result["data"]["recordOrder"]["userErrors"]] == [code]
    assert await row_counts(db) == before
    assert (await coupons_of(api, "alice"))[0]["status"] in ("ISSUED", "EXPIRED")


async def test_another_members_coupon_is_unknown(api, db, clock, alice):
    await enroll(api, "bob")
    before = await row_counts(db)
    result = await api.as_service(RECORD_ORDER, order_input("O-1", "80", "2026-01-05T09:00:00+08:00",
                                                            [alice["code"]], member="bob"))
    assert [e["code"] for e in result["data"]["recordOrder"]["userErrors"]] == ["NOT_FOUND"]
    assert await row_counts(db) == before


async def test_quotes_put_the_best_saving_first(api, db, program, clock, alice):
    await give(db, program, "alice", "BIRTHDAY_80", clock())
    await give(db, program, "alice", "FREE_SHIPPING", clock())
    quotes = (await api.as_member("alice", QUOTES, {"amount": "100"}))["data"]["viewer"]["couponQuotes"]
    assert quotes == [
        {"coupon": {"template": {"code": "BIRTHDAY_80"}}, "discount": {"amount": "20.00"}, "payable": {"amount": "80.00"}},
        {"coupon": {"template": {"code": "WELCOME_10_OFF_50"}}, "discount": {"amount": "10.00"}, "payable": {"amount": "90.00"}},
        {"coupon": {"template": {"code": "FREE_SHIPPING"}}, "discount": {"amount": "0.00"}, "payable": {"amount": "100.00"}},
    ]
    small = (await api.as_member("alice", QUOTES, {"amount": "30"}))["data"]["viewer"]["couponQuotes"]
    assert [q["coupon"]["template"]["code"] for q in small] == ["BIRTHDAY_80", "FREE_SHIPPING"]


async def test_one_discount_coupon_per_order(api, db, program, clock, alice):
    await give(db, program, "alice", "BIRTHDAY_80", clock())
    codes = [c["code"] for c in await coupons_of(api, "alice")]
    result = await api.as_service(RECORD_ORDER, order_input("O-1", "80", "2026-01-05T09:30:00+08:00", codes))
    assert "at most one discount coupon" in result["data"]["recordOrder"]["userErrors"][-1]["message"]


ISSUE = """mutation($input: IssueCouponInput!) { issueCoupon(input: $input) {
  duplicate coupon { id code status source template { code } } userErrors { code field } } }"""
VOID = "mutation($id: ID!) { voidCoupon(input: {couponId: $id}) { coupon { status } userErrors { code } } }"


async def test_operators_issue_and_void_coupons(api, db, alice):
    member = await api.as_operator('{ member(externalId: "alice") { id } }')
    templates = await api.as_operator("{ program { benefits { coupon { id code } } } }")
    birthday = next(b["coupon"]["id"] for b in templates["data"]["program"]["benefits"]
                    if b["coupon"] and b["coupon"]["code"] == "BIRTHDAY_80")
    variables = {"input": {"memberId": member["data"]["member"]["id"], "templateId": birthday, "externalId": "G-1"}}
    first = (await api.as_operator(ISSUE, variables))["data"]["issueCoupon"]
    assert (first["coupon"]["template"]["code"], first["coupon"]["source"], first["duplicate"]) == (
        "BIRTHDAY_80", "OPERATOR", False)
    before = await row_counts(db)
    again = (await api.as_operator(ISSUE, variables))["data"]["issueCoupon"]
    assert (again["duplicate"], again["coupon"]["code"]) == (True, first["coupon"]["code"])
    assert await row_counts(db) == before
    voided = (await api.as_operator(VOID, {"id": first["coupon"]["id"]}))["data"]["voidCoupon"]
    assert voided == {"coupon": {"status": "VOID"}, "userErrors": []}
    twice = (await api.as_operator(VOID, {"id": first["coupon"]["id"]}))["data"]["voidCoupon"]
    assert [e["code"] for e in twice["userErrors"]] == ["ALREADY_DONE"]
    forbidden = await api.as_member("alice", VOID, {"id": first["coupon"]["id"]})
    assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"
