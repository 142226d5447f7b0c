"""Odd input gets a clear coded error and changes nothing, on SQLite and PostgreSQL alike.

Global ids that are not row ids, amounts that only Python's Decimal would read as money, times no zone can
convert, birthdays before 1900, and program definitions nested past any parser's patience.
"""

import base64
import json
from datetime import datetime, timezone

import pytest

from documents import ADJUST_POINTS, ENROLL, EVALUATE_TIERS, RECORD_ORDER, REFUND_ORDER
from helpers import enroll, order, row_counts

PUBLISH = """mutation($input: PublishProgramInput!) { publishProgram(input: $input) {
  changed version { version } userErrors { field message code } } }"""
NODE = "query($id: ID!) { node(id: $id) { id } }"
MEMBER_BY_ID = "query($id: ID!) { member(id: $id) { externalId } }"
ISSUE = """mutation($input: IssueCouponInput!) { issueCoupon(input: $input) {
  coupon { code } userErrors { field message code } } }"""
VOID = """mutation($id: ID!) { voidCoupon(input: {couponId: $id}) { coupon { status } userErrors { field message code } } }"""
QUOTES = "query($amount: Decimal!) { viewer { couponQuotes(amount: $amount) { payable { amount } } } }"
EXPIRE = """mutation($input: ExpirePointsInput) { expirePoints(input: $input) {
  pointsExpired userErrors { field message code } } }"""
REFRESH_RFM = """mutation($input: RefreshRfmInput) { refreshRfm(input: $input) { scored userErrors { field message code } } }"""
VERSION = "{ program { version } }"

INT4_MAX = 2_147_483_647


def global_id(type_name: str, node_id: str) -> str:
    return base64.b64encode(f"{type_name}:{node_id}".encode()).decode()


@pytest.fixture
async def alice(api, clock):
    """Alice, enrolled (with her welcome coupon and points), and one order of ¥100."""
    clock.now = datetime(2026, 3, 1, tzinfo=timezone.utc)
    await enroll(api, "alice", birthday="1990-05-01")
    await order(api, "O-1", "alice", "100", "2026-02-01T10:00:00+08:00")


def only_error(result: dict) -> dict:
    assert len(result["errors"]) == 1, result
    return result["errors"][0]


# --- 1. global ids of database rows -------------------------------------------------------------------------

MALFORMED_ROW_IDS = [
    ("Order", "abc"), ("Member", "1.5"), ("Member", "0"), ("Member", "-1"), ("Member", "+1"), ("Member", "01"),
    ("Member", " 1"), ("Member", "１"), ("Member", "²"), ("Member", ""), ("Coupon", "x"), ("PointsEntry", "1e3"),
]


async def test_a_row_id_that_is_not_a_positive_integer_is_bad_input(api, db, alice):
    before = await row_counts(db)
    for type_name, node_id in MALFORMED_ROW_IDS:
        result = await api.as_operator(NODE, {"id": global_id(type_name, node_id)})
        error = only_error(result)
        assert error["extensions"]["code"] == "BAD_USER_INPUT", (type_name, node_id)
        assert error["message"] == (f"malformed {type_name} id: its number must be a positive whole number in ASCII "
                                    f"digits, without sign or leading zeros; got {node_id!r}")
        assert result["data"] == {"node": None}
    assert await row_counts(db) == before


async def test_a_row_id_beyond_the_id_column_names_nothing(api, alice):
    for type_name, node_id in [("Member", "9" * 30), ("Order", str(INT4_MAX + 1)), ("Coupon", str(INT4_MAX + 1)),
                               ("PointsEntry", "99999999999"), ("Member", str(INT4_MAX))]:
        result = await api.as_operator(NODE, {"id": global_id(type_name, node_id)})
        assert result == {"data": {"node": None}}, (type_name, node_id)


async def test_member_by_id_reads_ids_the_same_way(api, alice):
    assert await api.as_operator(MEMBER_BY_ID, {"id": global_id("Member", "9" * 30)}) == {"data": {"member": None}}
    malformed = await api.as_operator(MEMBER_BY_ID, {"id": global_id("Member", "1.0")})
    assert only_error(malformed)["extensions"]["code"] == "BAD_USER_INPUT"
    found = await api.as_operator(MEMBER_BY_ID, {"id": global_id("Member", "1")})
    assert found == {"data": {"member": {"externalId": "alice"}}}


async def welcome_template_id(api) -> str:
    templates = await api.as_operator("{ program { benefits { coupon { id code } } } }")
    return next(b["coupon"]["id"] for b in templates["data"]["program"]["benefits"] if b["coupon"])


async def test_mutation_ids_beyond_the_id_column_are_not_found(api, db, alice):
    for node_id in [str(INT4_MAX + 1), "9" * 30]:
        await ids_are_not_found(api, db, node_id)


async def ids_are_not_found(api, db, node_id):
    before = await row_counts(db)
    adjusted = await api.as_operator(ADJUST_POINTS, {"input": {
        "memberId": global_id("Member", node_id), "amount": 10, "reason": "goodwill", "externalId": "ADJ-1"}})
    issued = await api.as_operator(ISSUE, {"input": {
        "memberId": global_id("Member", node_id), "templateId": await welcome_template_id(api), "externalId": "G-1"}})
    voided = await api.as_operator(VOID, {"id": global_id("Coupon", node_id)})
    for payload, field in [(adjusted["data"]["adjustPoints"], "memberId"), (issued["data"]["issueCoupon"], "memberId"),
                           (voided["data"]["voidCoupon"], "couponId")]:
        assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(["input", field], "NOT_FOUND")]
    assert await row_counts(db) == before


async def test_malformed_ids_in_mutation_inputs_are_bad_input(api, db, alice):
    before = await row_counts(db)
    for node_id in ["abc", "0", "-3", "1.5", "０"]:
        adjusted = await api.as_operator(ADJUST_POINTS, {"input": {
            "memberId": global_id("Member", node_id), "amount": 10, "reason": "goodwill", "externalId": "ADJ-1"}})
        issued = await api.as_operator(ISSUE, {"input": {
            "memberId": global_id("Member", node_id), "templateId": await welcome_template_id(api),
            "externalId": "G-1"}})
        voided = await api.as_operator(VOID, {"id": global_id("Coupon", node_id)})
        for result in (adjusted, issued, voided):
            error = only_error(result)
            assert error["extensions"]["code"] == "BAD_USER_INPUT", node_id
            assert error["message"].startswith("malformed")
    assert await row_counts(db) == before


# --- 2. money is only what it looks like ---------------------------------------------------------------------

ODD_AMOUNTS = ["１２３", "١٢٣", "1_000", " 12.00 ", "+5.00", "1e3", "1e999999", "NaN", "Infinity", "-Infinity",
               ".5", "5.", "10.000", "9" * 5000, 1e16]


def order_input(amount, **overrides):
    return {"input": {"externalId": "O-2", "memberExternalId": "alice", "amount": amount,
                      "paidAt": "2026-02-02T10:00:00+08:00", **overrides}}


@pytest.mark.parametrize("amount", ODD_AMOUNTS)
async def test_an_odd_amount_is_invalid_and_writes_nothing(api, db, alice, amount):
    before = await row_counts(db)
    ordered = (await api.as_service(RECORD_ORDER, order_input(amount)))["data"]["recordOrder"]
    assert [(e["field"], e["code"]) for e in ordered["userErrors"]] == [(["input", "amount"], "INVALID")]
    assert ordered["order"] is None
    refunded = (await api.as_service(REFUND_ORDER, {"input": {
        "externalId": "R-1", "orderExternalId": "O-1", "amount": amount,
        "refundedAt": "2026-02-03T10:00:00+08:00"}}))["data"]["refundOrder"]
    assert [(e["field"], e["code"]) for e in refunded["userErrors"]] == [(["input", "amount"], "INVALID")]
    assert await row_counts(db) == before


async def test_the_message_says_what_money_looks_like(api, alice):
    result = await api.as_service(RECORD_ORDER, order_input("１２３"))
    assert result["data"]["recordOrder"]["userErrors"][0]["message"] == (
        "amount: '１２３' is not an amount: write ASCII digits with at most one \".\" and two decimals, e.g. \"250.00\"")


async def test_plain_amounts_and_json_numbers_are_money(api, alice):
    for n, (amount, paid) in enumerate([("250", "250.00"), ("250.5", "250.50"), ("0250.50", "250.50"),
                                        (250, "250.00"), (12.5, "12.50")]):
        result = await api.as_service(RECORD_ORDER, order_input(amount, externalId=f"O-ok-{n}"))
        assert result["data"]["recordOrder"]["userErrors"] == [], amount
        assert result["data"]["recordOrder"]["order"]["amount"]["amount"] == paid


async def test_inline_literals_are_judged_on_their_text(api, db, alice):
    def record(n, literal):
        return api.as_service(f"""mutation {{ recordOrder(input: {{externalId: "O-lit-{n}", memberExternalId: "alice",
            amount: {literal}, paidAt: "2026-02-02T10:00:00+08:00"}}) {{ order {{ amount {{ amount }} }}
            userErrors {{ field code }} }} }}""")

    before = await row_counts(db)
    for n, literal in enumerate(["1e3", '"1e3"', "-0.5e1", "1000.0e0", '"１２３"']):
        errors = (await record(n, literal))["data"]["recordOrder"]["userErrors"]
        assert errors == [{"field": ["input", "amount"], "code": "INVALID"}], literal
    assert await row_counts(db) == before
    for n, literal in enumerate(["250", "250.50", '"250.00"'], start=10):
        result = (await record(n, literal))["data"]["recordOrder"]
        assert result["userErrors"] == [] and result["order"]["amount"]["amount"] in ("250.00", "250.50"), literal


async def test_an_odd_quote_amount_is_bad_input(api, alice):
    for amount in ODD_AMOUNTS + ["0", "-5"]:
        result = await api.as_member("alice", QUOTES, {"amount": amount})
        error = only_error(result)
        assert error["extensions"]["code"] == "BAD_USER_INPUT", amount
        assert error["message"].startswith("amount")
    fine = await api.as_member("alice", QUOTES, {"amount": "60.00"})
    assert fine["data"]["viewer"]["couponQuotes"] == [{"payable": {"amount": "50.00"}}]


@pytest.mark.parametrize("amount", ["ten", "1.2.3", "12,00", "", True, [1], {"a": 1}])
async def test_a_value_that_is_no_number_is_still_a_graphql_error(api, db, alice, amount):
    before = await row_counts(db)
    result = await api.as_service(RECORD_ORDER, order_input(amount))
    assert result.get("data") is None
    assert only_error(result)["extensions"]["code"] == "BAD_USER_INPUT"
    assert await row_counts(db) == before


# --- 3. times and birthdays ----------------------------------------------------------------------------------

YEAR_1 = "0001-01-01T00:00:00+00:00"
YEAR_9999 = "9999-12-31T23:59:59-05:00"


@pytest.mark.parametrize("paid_at, message", [
    (YEAR_1, "paidAt lies before 2000-01-01"),
    ("0001-01-01T00:00:00+08:00", "paidAt lies before 2000-01-01"),
    ("1999-12-31T23:59:59+00:00", "paidAt lies before 2000-01-01"),
    (YEAR_9999, "paidAt lies in the future"),
    ("2026-03-01T00:05:01+00:00", "paidAt lies in the future"),
])
async def test_order_times_out_of_range_are_invalid(api, db, alice, paid_at, message):
    before = await row_counts(db)
    result = await api.as_service(RECORD_ORDER, order_input("10", paidAt=paid_at))
    assert result["data"]["recordOrder"]["userErrors"] == [
        {"field": ["input", "paidAt"], "message": message, "code": "INVALID"}]
    assert await row_counts(db) == before


async def test_times_within_range_and_skew_are_accepted(api, alice):
    at_skew = await api.as_service(RECORD_ORDER, order_input("10", paidAt="2026-03-01T00:05:00+00:00"))
    assert at_skew["data"]["recordOrder"]["userErrors"] == []
    first_day = await api.as_service(ENROLL, {"input": {"externalId": "bob", "joinedAt": "2000-01-01T00:00:00+00:00"}})
    assert first_day["data"]["enrollMember"]["userErrors"] == []


@pytest.mark.parametrize("when", [YEAR_1, YEAR_9999, "1999-12-31T23:59:59+00:00"])
async def test_refund_and_enrolment_times_out_of_range_are_invalid(api, db, alice, when):
    before = await row_counts(db)
    refund = await api.as_service(REFUND_ORDER, {"input": {
        "externalId": "R-1", "orderExternalId": "O-1", "amount": "10", "refundedAt": when}})
    assert [(e["field"], e["code"]) for e in refund["data"]["refundOrder"]["userErrors"]] == [
        (["input", "refundedAt"], "INVALID")]
    enrolled = await api.as_service(ENROLL, {"input": {"externalId": "bob", "joinedAt": when}})
    assert [(e["field"], e["code"]) for e in enrolled["data"]["enrollMember"]["userErrors"]] == [
        (["input", "joinedAt"], "INVALID")]
    assert await row_counts(db) == before


@pytest.mark.parametrize("document, name", [(EXPIRE, "expirePoints"), (EVALUATE_TIERS, "evaluateTiers"),
                                            (REFRESH_RFM, "refreshRfm")])
async def test_a_job_as_of_no_calendar_can_reach_is_invalid(api, db, alice, document, name):
    before = await row_counts(db)
    for as_of in [YEAR_1, YEAR_9999, "1999-12-31T23:59:59+00:00", "9000-01-01T00:00:00+00:00"]:
        result = await api.as_operator(document, {"input": {"asOf": as_of}})
        assert result["data"][name]["userErrors"] == [{"field": ["input", "asOf"], "code": "INVALID",
                                                       "message": "asOf must lie between 2000-01-01 and 9000-01-01"}]
    offsetless = await api.as_operator(document, {"input": {"asOf": "2027-01-01T00:00:00"}})
    assert [(e["field"], e["code"]) for e in offsetless["data"][name]["userErrors"]] == [(["input", "asOf"], "INVALID")]
    assert await row_counts(db) == before


@pytest.mark.parametrize("document, name", [(EXPIRE, "expirePoints"), (EVALUATE_TIERS, "evaluateTiers"),
                                            (REFRESH_RFM, "refreshRfm")])
async def test_operators_may_still_run_jobs_as_of_the_far_future(api, alice, document, name):
    result = await api.as_operator(document, {"input": {"asOf": "8999-12-31T23:59:59+08:00"}})
    assert result["data"][name]["userErrors"] == []


async def test_a_tester_clock_out_of_range_is_bad_input(api, db, alice):
    before = await row_counts(db)
    for now in [YEAR_1, YEAR_9999, "1999-12-31T00:00:00+00:00"]:
        result = await api.as_service(ENROLL, {"input": {"externalId": "bob"}}, now=now)
        error = only_error(result)
        assert error["extensions"]["code"] == "BAD_USER_INPUT", now
        assert error["message"] == "X-Tierup-Now must lie between 2000-01-01 and 9000-01-01"
    assert await row_counts(db) == before


@pytest.mark.parametrize("birthday, message", [
    ("0001-01-01", "birthday lies before 1900-01-01"),
    ("1899-12-31", "birthday lies before 1900-01-01"),
    ("2026-03-02", "birthday lies in the future"),  # tomorrow in Shanghai: now is 2026-03-01 08:00 there
    ("9999-12-31", "birthday lies in the future"),
])
async def test_a_birthday_outside_1900_to_today_is_invalid(api, db, alice, birthday, message):
    before = await row_counts(db)
    result = await api.as_service(ENROLL, {"input": {"externalId": "bob", "birthday": birthday}})
    assert result["data"]["enrollMember"]["userErrors"] == [
        {"field": ["input", "birthday"], "message": message, "code": "INVALID"}]
    assert await row_counts(db) == before


@pytest.mark.parametrize("birthday", ["1900-01-01", "2026-03-01"])
async def test_birthdays_at_the_bounds_are_accepted(api, alice, birthday):
    result = await api.as_service(ENROLL, {"input": {"externalId": "bob", "birthday": birthday}})
    assert result["data"]["enrollMember"]["userErrors"] == []


# --- 4. definitions nested past any parser ---------------------------------------------------------------------

@pytest.mark.parametrize("form, text", [
    ("JSON", "[" * 100_000),
    ("TOML", "a = " + "[" * 100_000),
    ("JSON", '{"code": "classic", "tasks": ' + "[" * 100_000 + "]" * 100_000 + "}"),
    ("TOML", 'code = "classic"\ntasks = ' + "[" * 100_000 + "]" * 100_000),
])
async def test_a_definition_nested_past_the_parser_is_invalid(api, db, alice, form, text):
    before = await row_counts(db)
    result = await api.as_operator(PUBLISH, {"input": {"definition": text, "format": form}})
    assert result["data"]["publishProgram"] == {"changed": False, "version": None, "userErrors": [
        {"field": ["input", "definition"], "code": "INVALID",
         "message": "nested too deeply: arrays and tables may nest at most 32 levels"}]}
    assert await row_counts(db) == before
    assert (await api.as_operator(VERSION))["data"]["program"]["version"] == 1


@pytest.mark.parametrize("form", ["JSON", "TOML"])
async def test_a_readable_but_deep_definition_names_where(api, db, alice, form):
    deep = [[]]
    for _ in range(100):
        deep = [deep]
    text = (json.dumps({"code": "classic", "tasks": deep}) if form == "JSON"
            else f'code = "classic"\ntasks = {json.dumps(deep)}')
    before = await row_counts(db)
    errors = (await api.as_operator(PUBLISH, {"input": {"definition": text, "format": form}}))[
        "data"]["publishProgram"]["userErrors"]
    assert errors == [{"field": ["input", "definition", "tasks", *["0"] * 31], "code": "INVALID",
                       "message": "nested too deeply: arrays and tables may nest at most 32 levels"}]
    assert await row_counts(db) == before


@pytest.mark.parametrize("form, text", [("JSON", '{"code": ' + "9" * 5000 + "}"), ("TOML", "code = " + "9" * 5000)])
async def test_a_number_too_long_to_read_is_invalid(api, db, alice, form, text):
    before = await row_counts(db)
    errors = (await api.as_operator(PUBLISH, {"input": {"definition": text, "format": form}}))[
        "data"]["publishProgram"]["userErrors"]
    assert [(e["field"], e["code"]) for e in errors] == [(["input", "definition"], "INVALID")]
    assert errors[0]["message"].startswith(f"not valid {form}")
    assert await row_counts(db) == before


async def test_a_huge_definition_is_refused_quickly_with_a_bounded_list_of_problems(api, db, alice):
    """30,000 tiers used to take minutes (duplicate checks are quadratic); now the list is cut at its limit
    and at most 100 problems come back."""
    text = 'code = "classic"\n' + '[[ladder.tiers]]\ncode = "A"\n' * 30_000  # under the 1 MiB body limit
    before = await row_counts(db)
    errors = (await api.as_operator(PUBLISH, {"input": {"definition": text}}))["data"]["publishProgram"]["userErrors"]
    assert {"field": ["input", "definition", "ladder", "tiers"], "code": "INVALID",
            "message": "at most 1000 entries, got 30000"} in errors
    assert len(errors) == 101 and errors[-1]["message"].endswith("more problems not listed")
    assert await row_counts(db) == before


async def test_benefits_of_a_broken_ladder_are_problems_not_a_crash(api, db, alice):
    text = json.dumps({"code": "classic", "benefits": [{"code": "GIFT", "tiers": ["GOLD"]}]})
    before = await row_counts(db)
    errors = (await api.as_operator(PUBLISH, {"input": {"definition": text, "format": "JSON"}}))[
        "data"]["publishProgram"]["userErrors"]
    assert {"field": ["input", "definition", "ladder", "tiers"], "code": "INVALID",
            "message": "at least one tier is required"} in errors
    assert {e["code"] for e in errors} == {"INVALID"}
    assert await row_counts(db) == before


async def test_a_ceiling_that_would_overflow_the_points_ledger_is_invalid(api, db, alice):
    from pathlib import Path

    classic = (Path(__file__).resolve().parents[2] / "fixtures" / "programs" / "classic.toml").read_text("utf-8")
    text = classic.replace('max_amount = "1000000"', 'max_amount = "1000000000"')
    before = await row_counts(db)
    errors = (await api.as_operator(PUBLISH, {"input": {"definition": text}}))["data"]["publishProgram"]["userErrors"]
    assert errors == [{"field": ["input", "definition", "orders", "max_amount"], "code": "INVALID",
                       "message": "an order of this amount at the highest multiplier would earn more than "
                                  "2,147,483,647 points; lower the ceiling or the multiplier"}]
    assert await row_counts(db) == before
