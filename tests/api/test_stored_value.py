"""Stored value (储值): top-ups with the program's bonus, spending on orders, refunds, corrections."""

import asyncio

import pytest

from helpers import enroll, order, row_counts

TOP_UP = """
mutation($input: TopUpStoredValueInput!) {
  topUpStoredValue(input: $input) {
    duplicate bonus { amount }
    member { points { balance } storedValue { balance { amount }
             entries(first: 10) { edges { node { kind amount { amount } balanceAfter { amount } reason } } } } }
    userErrors { field code message }
  }
}"""
PAY = """
mutation($input: RecordOrderInput!) {
  recordOrder(input: $input) {
    order { pointsEarned storedValueUsed { amount } }
    member { storedValue { balance { amount } } }
    userErrors { field code message }
  }
}"""
REFUND = """
mutation($input: RefundOrderInput!) {
  refundOrder(input: $input) { member { storedValue { balance { amount } } } userErrors { field code } }
}"""
ADJUST = """
mutation($input: AdjustStoredValueInput!) {
  adjustStoredValue(input: $input) {
    duplicate member { storedValue { balance { amount } entries(first: 1) { edges { node { kind reason } } } } }
    userErrors { field code message }
  }
}"""
LIABILITY = """{ program { kpis(from: "2026-01-01", to: "2026-01-31") { storedValueLiability { amount } } } }"""
PAID = "2026-01-04T10:00:00+08:00"


async def top_up(api, external_id: str, amount: str, member: str = "ann") -> dict:
    result = await api.as_service(TOP_UP, {"input": {"externalId": external_id, "memberExternalId": member,
                                                     "amount": amount, "paidAt": PAID}})
    assert "errors" not in result, result
    return result["data"]["topUpStoredValue"]


async def pay(api, external_id: str, amount: str, stored_value: str, member: str = "ann") -> dict:
    result = await api.as_service(PAY, {"input": {"externalId": external_id, "memberExternalId": member,
                                                  "amount": amount, "paidAt": PAID, "storedValueUsed": stored_value}})
    assert "errors" not in result, result
    return result["data"]["recordOrder"]


def balance(answer: dict) -> str:
    return answer["member"]["storedValue"]["balance"]["amount"]


async def test_a_top_up_adds_the_bonus_of_the_highest_rule_met_and_earns_no_points(api):
    await enroll(api, "ann")
    first = await top_up(api, "T-1", "500")
    assert (first["bonus"], balance(first)) == ({"amount": "25.00"}, "525.00")
    assert [e["node"] for e in first["member"]["storedValue"]["entries"]["edges"]] == [
        {"kind": "BONUS", "amount": {"amount": "25.00"}, "balanceAfter": {"amount": "525.00"},
         "reason": "Bonus on a top-up of ¥500"},
        {"kind": "TOP_UP", "amount": {"amount": "500.00"}, "balanceAfter": {"amount": "500.00"},
         "reason": "Top-up T-1"}]
    assert first["member"]["points"]["balance"] == 100  # the welcome bonus only: top-ups earn nothing
    assert (await top_up(api, "T-2", "1000"))["bonus"] == {"amount": "80.00"}  # not both rules
    small = await top_up(api, "T-3", "300")
    assert (small["bonus"], balance(small)) == (None, "1905.00")


async def test_the_same_top_up_again_changes_nothing(api, db):
    await enroll(api, "ann")
    await top_up(api, "T-1", "500")
    before = await row_counts(db)
    again = await top_up(api, "T-1", "500")
    assert (again["duplicate"], again["bonus"], balance(again)) == (True, {"amount": "25.00"}, "525.00")
    clash = await top_up(api, "T-1", "600")
    assert [e["code"] for e in clash["userErrors"]] == ["DUPLICATE"]
    assert await row_counts(db) == before


async def test_an_order_paid_partly_with_stored_value_earns_on_all_it_paid(api):
    await enroll(api, "ann")
    await top_up(api, "T-1", "100")
    paid = await pay(api, "A-1", "150", "60")
    assert paid["order"] == {"pointsEarned": 150, "storedValueUsed": {"amount": "60.00"}}
    assert balance(paid) == "40.00"


@pytest.mark.parametrize("amount, used, code", [("150", "100.01", "INSUFFICIENT_BALANCE"),
                                                ("50", "60", "INVALID"), ("150", "-5", "INVALID")])
async def test_stored_value_beyond_the_balance_or_the_amount_refuses_the_whole_order(api, db, amount, used, code):
    await enroll(api, "ann")
    await top_up(api, "T-1", "100")
    before = await row_counts(db)
    refused = await pay(api, "A-1", amount, used)
    assert refused["order"] is None
    assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [(["input", "storedValueUsed"], code)]
    assert await row_counts(db) == before


async def test_a_refund_gives_back_its_share_of_the_stored_value_spent(api):
    await enroll(api, "ann")
    await top_up(api, "T-1", "100")
    await pay(api, "A-1", "90", "61")  # 39 stored value left

    async def refund(external_id: str, amount: str) -> str:
        result = await api.as_service(REFUND, {"input": {"externalId": external_id, "orderExternalId": "A-1",
                                                         "amount": amount, "refundedAt": "2026-01-05T10:00:00+08:00"}})
        assert result["data"]["refundOrder"]["userErrors"] == []
        return balance(result["data"]["refundOrder"])

    assert await refund("R-1", "30") == "59.33"  # floor(61 × 30/90) = ¥20.33 back
    assert await refund("R-2", "60") == "100.00"  # the rest: exactly the ¥61 spent, never more


async def test_racing_orders_never_spend_more_than_the_balance(api):
    await enroll(api, "ann")
    await top_up(api, "T-1", "100")
    answers = await asyncio.gather(*[pay(api, f"A-{n}", "50", "30") for n in range(8)])
    paid = [a for a in answers if not a["userErrors"]]
    refused = [a for a in answers if a["userErrors"]]
    assert (len(paid), len(refused)) == (3, 5)
    assert {e["code"] for a in refused for e in a["userErrors"]} == {"INSUFFICIENT_BALANCE"}
    assert await api.as_operator('{ member(externalId: "ann") { storedValue { balance { amount } } } }') == {
        "data": {"member": {"storedValue": {"balance": {"amount": "10.00"}}}}}


async def test_operators_correct_stored_value_with_a_reason_never_below_zero(api, db):
    joined = await enroll(api, "ann")
    member_id = joined["member"]["id"]
    await top_up(api, "T-1", "100")
    adjust = {"memberId": member_id, "amount": "-20.50", "reason": "Goodwill reversed", "externalId": "ADJ-1"}
    done = (await api.as_operator(ADJUST, {"input": adjust}))["data"]["adjustStoredValue"]
    assert done["userErrors"] == []
    assert done["member"]["storedValue"] == {"balance": {"amount": "79.50"}, "entries": {"edges": [
        {"node": {"kind": "ADJUST", "reason": "Adjustment by ops: Goodwill reversed"}}]}}
    assert (await api.as_operator(ADJUST, {"input": adjust}))["data"]["adjustStoredValue"]["duplicate"] is True
    before = await row_counts(db)
    too_much = {**adjust, "amount": "-80", "externalId": "ADJ-2"}
    refused = (await api.as_operator(ADJUST, {"input": too_much}))["data"]["adjustStoredValue"]
    assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [(["input", "amount"], "INSUFFICIENT_BALANCE")]
    by_member = await api.as_member("ann", ADJUST, {"input": {**adjust, "externalId": "ADJ-3"}})
    assert by_member["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await row_counts(db) == before


async def test_the_kpis_report_the_stored_value_owed(api):
    for member in ("ann", "bob"):
        await enroll(api, member)
    await top_up(api, "T-1", "500")
    await top_up(api, "T-2", "200", member="bob")
    await pay(api, "A-1", "100", "100")
    await order(api, "A-2", "bob", "10", PAID)
    kpis = (await api.as_operator(LIABILITY))["data"]["program"]["kpis"]
    assert kpis["storedValueLiability"] == {"amount": "625.00"}  # 525 − 100 + 200
