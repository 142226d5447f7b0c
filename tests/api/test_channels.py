"""Channels and stores (线上线下融合): every report names where it came from; one member, one ledger."""

import pytest

from helpers import enroll, order, row_counts
from tierup.services.importing import ImportRefused, import_file

CHANNEL_ORDER = """
mutation($input: RecordOrderInput!) {
  recordOrder(input: $input) {
    duplicate
    order { externalId channel storeCode pointsEarned }
    member { enrolledVia points { balance } }
    userErrors { field code message }
  }
}"""
ENROLL_VIA = """
mutation($input: EnrollMemberInput!) {
  enrollMember(input: $input) { member { externalId enrolledVia } userErrors { field code message } }
}"""
REFUND_VIA = """
mutation($input: RefundOrderInput!) {
  refundOrder(input: $input) { order { refundedAmount { amount } } userErrors { field code } }
}"""
STORES = "{ program { stores { code name city } } }"
MEMBERS_VIA = """query($channel: Channel) { members(first: 20, channel: $channel) { totalCount edges { node { externalId } } } }"""
SALES = """{ program { kpis(from: "2026-01-01", to: "2026-01-31") {
  salesByChannel { channel orders amount { amount } members } omnichannelMembers } } }"""
PAID = "2026-01-04T10:00:00+08:00"


def sent(external_id: str, member: str = "ann", amount: str = "100", **where) -> dict:
    return {"input": {"externalId": external_id, "memberExternalId": member, "amount": amount, "paidAt": PAID, **where}}


async def test_the_program_lists_its_stores(api):
    stores = (await api.as_member("nobody", STORES))["data"]["program"]["stores"]
    assert stores == [{"code": "SH-001", "name": "上海南京西路店", "city": "上海"},
                      {"code": "BJ-001", "name": "北京三里屯店", "city": "北京"}]


async def test_a_member_joins_through_a_channel(api):
    joined = (await api.as_service(ENROLL_VIA, {"input": {"externalId": "ann", "channel": "STORE",
                                                          "storeCode": "SH-001"}}))["data"]["enrollMember"]
    assert joined == {"member": {"externalId": "ann", "enrolledVia": "STORE"}, "userErrors": []}
    plain = (await api.as_service(ENROLL_VIA, {"input": {"externalId": "bob"}}))["data"]["enrollMember"]
    assert plain["member"]["enrolledVia"] == "ONLINE"


@pytest.mark.parametrize("where, field, code", [
    ({"channel": "STORE"}, ["input", "storeCode"], "INVALID"),
    ({"channel": "STORE", "storeCode": "GZ-404"}, ["input", "storeCode"], "NOT_FOUND"),
    ({"channel": "APP", "storeCode": "SH-001"}, ["input", "storeCode"], "INVALID"),
    ({"storeCode": "SH-001"}, ["input", "storeCode"], "INVALID"),  # no channel: ONLINE, which names no store
])
async def test_a_report_naming_no_store_or_the_wrong_one_changes_nothing(api, db, where, field, code):
    await enroll(api, "ann")
    before = await row_counts(db)
    answer = (await api.as_service(CHANNEL_ORDER, sent("A-1", **where)))["data"]["recordOrder"]
    assert answer["order"] is None
    assert [(e["field"], e["code"]) for e in answer["userErrors"]] == [(field, code)]
    joined = (await api.as_service(ENROLL_VIA, {"input": {"externalId": "cy", **where}}))["data"]["enrollMember"]
    assert [(e["field"], e["code"]) for e in joined["userErrors"]] == [(field, code)]
    assert await row_counts(db) == before


async def test_orders_carry_their_channel_and_earn_the_same_whatever_it_is(api):
    await enroll(api, "ann")
    online = (await api.as_service(CHANNEL_ORDER, sent("A-1")))["data"]["recordOrder"]
    assert online["order"] == {"externalId": "A-1", "channel": "ONLINE", "storeCode": None, "pointsEarned": 100}
    in_store = (await api.as_service(CHANNEL_ORDER, sent("A-2", channel="STORE", storeCode="BJ-001")))
    in_store = in_store["data"]["recordOrder"]
    assert in_store["order"] == {"externalId": "A-2", "channel": "STORE", "storeCode": "BJ-001", "pointsEarned": 100}
    assert in_store["member"]["points"]["balance"] == online["member"]["points"]["balance"] + 100  # one ledger


async def test_the_channel_is_part_of_the_report(api, db):
    await enroll(api, "ann")
    first = (await api.as_service(CHANNEL_ORDER, sent("A-1", channel="APP")))["data"]["recordOrder"]
    again = (await api.as_service(CHANNEL_ORDER, sent("A-1", channel="APP")))["data"]["recordOrder"]
    assert (first["duplicate"], again["duplicate"]) == (False, True)
    before = await row_counts(db)
    elsewhere = (await api.as_service(CHANNEL_ORDER, sent("A-1", channel="MINI_PROGRAM")))["data"]["recordOrder"]
    assert [e["code"] for e in elsewhere["userErrors"]] == ["DUPLICATE"]
    assert await row_counts(db) == before
    # An online order sent again without naming its channel is the same report.
    await order(api, "A-2", "ann", "100", PAID)
    assert (await api.as_service(CHANNEL_ORDER, sent("A-2", channel="ONLINE")))["data"]["recordOrder"]["duplicate"]


async def test_refunds_name_their_channel_too(api):
    await enroll(api, "ann")
    await order(api, "A-1", "ann", "100", PAID, channel="STORE", storeCode="SH-001")
    refund = {"externalId": "R-1", "orderExternalId": "A-1", "amount": "40", "refundedAt": "2026-01-04T12:00:00+08:00"}
    refused = (await api.as_service(REFUND_VIA, {"input": {**refund, "channel": "STORE"}}))["data"]["refundOrder"]
    assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [(["input", "storeCode"], "INVALID")]
    done = (await api.as_service(REFUND_VIA, {"input": {**refund, "channel": "STORE", "storeCode": "SH-001"}}))
    assert done["data"]["refundOrder"] == {"order": {"refundedAmount": {"amount": "40.00"}}, "userErrors": []}


async def test_members_reached_through_a_channel_and_sales_by_channel(api, clock):
    await api.as_service(ENROLL_VIA, {"input": {"externalId": "ann", "channel": "STORE", "storeCode": "SH-001"}})
    for member in ("bob", "cy"):
        await enroll(api, member)
    await order(api, "A-1", "ann", "100", PAID)
    await order(api, "B-1", "bob", "250", PAID, channel="STORE", storeCode="BJ-001")
    await order(api, "B-2", "bob", "50", PAID, channel="MINI_PROGRAM")
    await order(api, "C-1", "cy", "80", PAID, channel="MINI_PROGRAM")

    async def via(channel):
        found = (await api.as_operator(MEMBERS_VIA, {"channel": channel}))["data"]["members"]
        return sorted(e["node"]["externalId"] for e in found["edges"])

    assert await via("STORE") == ["ann", "bob"]  # ann joined there, bob bought there
    assert await via("MINI_PROGRAM") == ["bob", "cy"]
    assert await via("APP") == []
    assert await via(None) == ["ann", "bob", "cy"]

    kpis = (await api.as_operator(SALES))["data"]["program"]["kpis"]
    assert kpis["salesByChannel"] == [
        {"channel": "ONLINE", "orders": 1, "amount": {"amount": "100.00"}, "members": 1},
        {"channel": "APP", "orders": 0, "amount": {"amount": "0.00"}, "members": 0},
        {"channel": "MINI_PROGRAM", "orders": 2, "amount": {"amount": "130.00"}, "members": 2},
        {"channel": "STORE", "orders": 1, "amount": {"amount": "250.00"}, "members": 1},
    ]
    assert kpis["omnichannelMembers"] == 1  # bob: in store and in the mini-program


async def test_an_import_names_channels_and_refuses_unknown_stores(db, program, clock, tmp_path, api):
    await enroll(api, "ann")
    good = tmp_path / "orders.csv"
    good.write_text("externalId,memberExternalId,amount,paidAt,channel,storeCode\n"
                    f"I-1,ann,100,{PAID},STORE,SH-001\nI-2,ann,50,{PAID},APP,\n", encoding="utf-8")
    imported = await import_file(db, program, "orders", good, now=clock())
    assert imported.new == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("externalId,memberExternalId,amount,paidAt,channel,storeCode\n"
                   f"I-3,ann,100,{PAID},STORE,XX-9\nI-4,ann,100,{PAID},SHOP,\n", encoding="utf-8")
    before = await row_counts(db)
    with pytest.raises(ImportRefused) as refused:
        await import_file(db, program, "orders", bad, now=clock())
    assert refused.value.problems == ["line 2: storeCode: no store 'XX-9' in this program; its stores: SH-001, BJ-001",
                                      "line 3: channel must be one of ONLINE, APP, MINI_PROGRAM, STORE"]
    assert await row_counts(db) == before


async def test_the_members_of_a_channel_export_as_csv(api, db, program, clock):
    import csv
    import io

    from tierup.services.export import export_members

    await api.as_service(ENROLL_VIA, {"input": {"externalId": "ann", "channel": "STORE", "storeCode": "SH-001"}})
    await enroll(api, "bob")
    out = io.StringIO()
    written = await export_members(db, program, out, at=clock(), progress=lambda done, total: None, channel="STORE")
    assert written == 1
    assert [row["external_id"] for row in csv.DictReader(io.StringIO(out.getvalue()))] == ["ann"]
