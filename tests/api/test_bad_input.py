"""Bad input gets a clear error and writes nothing."""

from datetime import datetime, timezone

import pytest

from documents import ENROLL, RECORD_ORDER
from helpers import publish_classic_ladder_only, enroll, row_counts


@pytest.fixture
async def program(db, clock):
    """These rules are the ladder's and the ledger's: the growth tree stays out of the figures."""
    return await publish_classic_ladder_only(db, clock())



@pytest.fixture
async def alice(api, clock):
    clock.now = datetime(2026, 3, 1, tzinfo=timezone.utc)
    await enroll(api, "alice")


def order_input(**overrides):
    return {"input": {"externalId": "O-1", "memberExternalId": "alice", "amount": "100",
                      "paidAt": "2026-02-01T10:00:00+08:00", **overrides}}


@pytest.mark.parametrize("amount, message", [
    ("-5", "amount must be greater than zero"),
    ("0", "amount must be greater than zero"),
    ("1000000.01", "amount is above the program's ceiling of ¥1,000,000 per order"),
    ("10.001", "amount: 10.001 has more than two decimal places"),
])
async def test_amounts_that_cannot_be_an_order(api, db, alice, amount, message):
    before = await row_counts(db)
    result = await api.as_service(RECORD_ORDER, order_input(amount=amount))
    assert result["data"]["recordOrder"]["userErrors"] == [
        {"field": ["input", "amount"], "message": message, "code": "INVALID"}]
    assert await row_counts(db) == before


async def test_the_ceiling_itself_is_accepted(api, alice):
    result = await api.as_service(RECORD_ORDER, order_input(amount="1000000"))
    assert result["data"]["recordOrder"]["order"]["pointsEarned"] == 1_000_000


@pytest.mark.parametrize("overrides, field, code", [
    ({"memberExternalId": "nobody"}, ["input", "memberExternalId"], "NOT_FOUND"),
    ({"externalId": "x" * 201}, ["input", "externalId"], "INVALID"),
    ({"externalId": ""}, ["input", "externalId"], "INVALID"),
    ({"paidAt": "2026-02-01T10:00:00"}, ["input", "paidAt"], "INVALID"),
    ({"paidAt": "2027-01-01T10:00:00+08:00"}, ["input", "paidAt"], "INVALID"),
    ({"couponCodes": ["NO-SUCH-COUPON"]}, ["input", "couponCodes", "0"], "NOT_FOUND"),
])
async def test_business_rejections_are_user_errors(api, db, alice, overrides, field, code):
    before = await row_counts(db)
    result = await api.as_service(RECORD_ORDER, order_input(**overrides))
    errors = result["data"]["recordOrder"]["userErrors"]
    assert [(e["field"], e["code"]) for e in errors] == [(field, code)]
    assert await row_counts(db) == before


@pytest.mark.parametrize("overrides, fragment", [
    ({"paidAt": "2026-13-01T10:00:00+08:00"}, "2026-13-01"),
    ({"amount": "ten"}, "ten"),
])
async def test_malformed_values_are_graphql_errors(api, db, alice, overrides, fragment):
    before = await row_counts(db)
    result = await api.as_service(RECORD_ORDER, order_input(**overrides))
    assert result.get("data") is None
    assert fragment in result["errors"][0]["message"]
    assert await row_counts(db) == before


async def test_several_problems_are_reported_together(api, db, alice):
    result = await api.as_service(RECORD_ORDER, order_input(amount="-1", externalId="y" * 300))
    fields = sorted(e["field"][-1] for e in result["data"]["recordOrder"]["userErrors"])
    assert fields == ["amount", "externalId"]


async def test_enrolment_input_is_checked(api, db, alice):
    before = await row_counts(db)
    result = await api.as_service(ENROLL, {"input": {"externalId": "bob", "birthday": "2999-01-01",
                                                     "phone": "call me", "referralCode": "NOPE1234"}})
    errors = {e["field"][-1]: e["code"] for e in result["data"]["enrollMember"]["userErrors"]}
    assert errors == {"birthday": "INVALID", "phone": "INVALID"}
    unknown = await api.as_service(ENROLL, {"input": {"externalId": "bob", "referralCode": "NOPE1234"}})
    assert unknown["data"]["enrollMember"]["userErrors"][0]["code"] == "NOT_FOUND"
    assert await row_counts(db) == before


@pytest.mark.parametrize("first", [0, 101, -1])
async def test_page_size_is_bounded(api, alice, first):
    result = await api.as_operator("query($first: Int) { members(first: $first) { totalCount } }", {"first": first})
    assert result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "between 1 and 100" in result["errors"][0]["message"]


async def test_a_forged_cursor_is_bad_input(api, alice):
    result = await api.as_operator('{ members(first: 5, after: "bm9wZQ==") { totalCount } }')
    assert result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_malformed_tester_clock_is_bad_input(api, db, alice):
    before = await row_counts(db)
    result = await api.as_service(ENROLL, {"input": {"externalId": "bob"}}, now="yesterday")
    assert result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert await row_counts(db) == before
