"""recordOrders: many orders in one transaction, each by the rules of one and idempotent on its own key;
a rejected order rejects only itself."""

from datetime import datetime

from sqlalchemy import select

from documents import MEMBER_BY_EXTERNAL_ID
from helpers import enroll, member_view, order
from tierup.services import orders as order_service

RECORD_ORDERS = """
mutation($orders: [RecordOrderInput!]!) {
  recordOrders(input: {orders: $orders}) {
    recorded duplicates rejected
    results { externalId duplicate pointsEarned order { externalId amount { amount } } userErrors { field code } }
  }
}"""

PAID = "2026-01-04T10:00:00+08:00"


def sent(external_id: str, member: str, amount: str, paid_at: str = PAID) -> dict:
    return {"externalId": external_id, "memberExternalId": member, "amount": amount, "paidAt": paid_at}


async def record_orders(api, orders: list[dict]) -> dict:
    result = await api.as_service(RECORD_ORDERS, {"orders": orders})
    assert "errors" not in result, result
    return result["data"]["recordOrders"]


async def ledger(api, member: str) -> list[tuple[str, int]]:
    view = await member_view(api, member)
    return [(e["node"]["kind"], e["node"]["amount"]) for e in view["points"]["ledger"]["edges"]]


async def test_a_batch_records_each_order_by_the_rules_of_one(api):
    await enroll(api, "ann")
    batch = [sent("B-1", "ann", "150"), sent("B-2", "ann", "150"), sent("B-3", "ann", "250"), sent("B-4", "ann", "100")]
    answer = await record_orders(api, batch)
    assert (answer["recorded"], answer["duplicates"], answer["rejected"]) == (4, 0, 0)
    # B-3 (¥250, a single order of at least ¥200) upgrades her to SILVER after earning at 1×; B-4 earns at 2×.
    assert [r["pointsEarned"] for r in answer["results"]] == [150, 150, 250, 200]
    assert [r["order"]["externalId"] for r in answer["results"]] == ["B-1", "B-2", "B-3", "B-4"]
    # The same orders reported one by one give another member exactly the same state.
    await enroll(api, "bob")
    for sent_order in batch:
        await order(api, "bob-" + sent_order["externalId"], "bob", sent_order["amount"], sent_order["paidAt"])
    ann, bob = await member_view(api, "ann"), await member_view(api, "bob")
    assert ann["tier"]["code"] == bob["tier"]["code"] == "SILVER"
    assert ann["points"]["balance"] == bob["points"]["balance"] == 750 + 100 + 50  # and the welcome points, and the first-order task
    assert await ledger(api, "ann") == await ledger(api, "bob")


async def test_the_same_batch_again_answers_all_duplicates_and_changes_nothing(api):
    await enroll(api, "ann")
    batch = [sent("B-1", "ann", "120"), sent("B-2", "ann", "80")]
    await record_orders(api, batch)
    before = await ledger(api, "ann")
    again = await record_orders(api, batch)
    assert (again["recorded"], again["duplicates"], again["rejected"]) == (0, 2, 0)
    assert [(r["duplicate"], r["pointsEarned"], r["order"]["externalId"]) for r in again["results"]] == [
        (True, 0, "B-1"), (True, 0, "B-2")]
    assert await ledger(api, "ann") == before
    assert {("EARN", 80), ("EARN", 120)} <= set(before)


async def test_a_rejected_order_rejects_only_itself(api):
    await enroll(api, "ann")
    await order(api, "OLD-1", "ann", "50", PAID)
    batch = [
        sent("B-1", "ann", "100"),
        sent("B-2", "nobody", "100"),  # unknown member
        sent("B-3", "ann", "12.345"),  # three decimals
        sent("OLD-1", "ann", "999"),  # the key again with other content
        sent("B-5", "ann", "40"),
    ]
    answer = await record_orders(api, batch)
    assert (answer["recorded"], answer["duplicates"], answer["rejected"]) == (2, 0, 3)
    results = answer["results"]
    assert [r["externalId"] for r in results] == ["B-1", "B-2", "B-3", "OLD-1", "B-5"]
    assert [r["pointsEarned"] for r in results] == [100, 0, 0, 0, 40]
    assert results[1]["userErrors"] == [{"field": ["input", "orders", "1", "memberExternalId"], "code": "NOT_FOUND"}]
    assert results[2]["userErrors"] == [{"field": ["input", "orders", "2", "amount"], "code": "INVALID"}]
    assert [e["code"] for e in results[3]["userErrors"]] == ["DUPLICATE"]
    assert all(r["order"] is None for r in results[1:4])
    view = await member_view(api, "ann")
    assert [o["node"]["externalId"] for o in view["orders"]["edges"]] == ["B-5", "B-1", "OLD-1"]
    assert [o["node"]["pointsEarned"] for o in view["orders"]["edges"]] == [40, 100, 50]


async def test_more_than_500_orders_are_refused_whole(api):
    await enroll(api, "ann")
    answer = await record_orders(api, [sent(f"B-{i}", "ann", "1") for i in range(501)])
    assert (answer["recorded"], answer["rejected"]) == (0, 501)
    assert answer["results"][0]["userErrors"] == [{"field": ["input", "orders"], "code": "INVALID"}]
    view = await api.as_operator(MEMBER_BY_EXTERNAL_ID, {"externalId": "ann"})
    assert view["data"]["member"]["orders"]["totalCount"] == 0


async def test_a_rolled_back_order_leaves_nothing_the_next_report_could_count(db, program, clock):
    """SQLite gives a rolled-back report's id to the next one: the refused order must not stay in the
    transaction's journal, or the next order of the member would see two (a streak of months never bought)."""
    from tierup.services.members import EnrolmentInput, enroll_member
    from tierup.store.models import TaskCompletion

    now = datetime.fromisoformat("2026-04-01T00:00:00+00:00")
    await enroll_member(db, program, EnrolmentInput(external_id="ann"), now=now)
    await order_service.record_order(db, program, order_service.OrderInput(
        "J-1", "ann", "10", datetime.fromisoformat("2026-01-10T10:00:00+08:00")), now=now)
    results = await order_service.record_orders(db, program, [
        order_service.OrderInput("F-1", "ann", "10", datetime.fromisoformat("2026-02-10T10:00:00+08:00"),
                                 coupon_codes=("NOPE",)),
        order_service.OrderInput("M-1", "ann", "10", datetime.fromisoformat("2026-03-10T10:00:00+08:00"))], now=now)
    assert [type(r).__name__ for r in results] == ["Rejected", "OrderResult"]
    async with db.read() as session:
        tasks = set((await session.execute(select(TaskCompletion.task_code))).scalars())
    assert "THREE_MONTH_STREAK" not in tasks


REFUND_ORDERS = """
mutation($refunds: [RefundOrderInput!]!) {
  refundOrders(input: {refunds: $refunds}) {
    refunded duplicates rejected
    results { externalId duplicate pointsReversed order { externalId refundedAmount { amount } }
              userErrors { field code } }
  }
}"""
REFUNDED = "2026-01-04T12:00:00+08:00"  # two hours after PAID, before the tests' clock


async def refund_orders(api, refunds: list[tuple[str, str, str]]) -> dict:
    result = await api.as_service(REFUND_ORDERS, {"refunds": [
        {"externalId": external_id, "orderExternalId": order_id, "amount": amount, "refundedAt": REFUNDED}
        for external_id, order_id, amount in refunds]})
    assert "errors" not in result, result
    return result["data"]["refundOrders"]


async def test_refunds_in_a_batch_apply_in_order_and_a_bad_one_rejects_only_itself(api):
    """refundOrders: each refund by the rules of refundOrder, the refunds before it in the batch counted; a bad
    one is refused with its index in the path; the same batch again answers duplicates and changes nothing."""
    await enroll(api, "ann")
    await record_orders(api, [sent("B-1", "ann", "100"), sent("B-2", "ann", "60")])  # 100 and 60 points (1×)
    batch = [("F-1", "B-1", "30"), ("F-2", "B-9", "10"), ("F-3", "B-1", "80"), ("F-1", "B-1", "31"),
             ("F-4", "B-1", "70"), ("F-5", "B-2", "60")]
    answer = await refund_orders(api, batch)
    assert (answer["refunded"], answer["duplicates"], answer["rejected"]) == (3, 0, 3)
    results = answer["results"]
    assert [(r["externalId"], r["pointsReversed"]) for r in results] == [
        ("F-1", 30), ("F-2", 0), ("F-3", 0), ("F-1", 0), ("F-4", 70), ("F-5", 60)]
    assert results[1]["userErrors"] == [{"field": ["input", "refunds", "1", "orderExternalId"], "code": "NOT_FOUND"}]
    assert results[2]["userErrors"] == [{"field": ["input", "refunds", "2", "amount"], "code": "INVALID"}]  # 70 left
    assert results[3]["userErrors"] == [{"field": ["input", "refunds", "3", "externalId"], "code": "DUPLICATE"}]
    assert results[4]["order"] == {"externalId": "B-1", "refundedAmount": {"amount": "100.00"}}
    before = await ledger(api, "ann")
    assert [entry for entry in before if entry[0] == "REVERSE"] == [("REVERSE", -60), ("REVERSE", -70),
                                                                     ("REVERSE", -30)]  # newest first
    again = await refund_orders(api, [refund for refund in batch if refund[0] != "F-2"])
    assert (again["refunded"], again["duplicates"], again["rejected"]) == (0, 3, 2)
    assert await ledger(api, "ann") == before


async def test_more_than_500_refunds_are_refused_whole(api):
    await enroll(api, "ann")
    await order(api, "B-1", "ann", "600", PAID)
    answer = await refund_orders(api, [(f"F-{i}", "B-1", "1") for i in range(501)])
    assert (answer["refunded"], answer["rejected"]) == (0, 501)
    assert answer["results"][0]["userErrors"] == [{"field": ["input", "refunds"], "code": "INVALID"}]
    view = await member_view(api, "ann")
    assert [o["node"]["refundedAmount"]["amount"] for o in view["orders"]["edges"]] == ["0.00"]
