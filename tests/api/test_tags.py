"""Tags (标签): MANUAL tags operators put on members by external id, RULE tags that follow an audience."""

import io
from datetime import datetime, timezone

import pytest

from helpers import enroll, order, row_counts
from tierup.services.export import export_members
from tierup.services.seed import SeedPlan, seed
from tierup.services.tags import tag_selection
from tierup.store.db import count_statements

DEFINE = """mutation($input: DefineTagInput!) { defineTag(input: $input) {
  tag { code name kind rule memberCount } userErrors { field code message } } }"""
TAG = """mutation($input: TagMembersInput!) { tagMembers(input: $input) {
  tag { code memberCount } changed unknownExternalIds userErrors { field code message } } }"""
TAGS = "{ program { tags { code kind rule memberCount } } }"
TAGGED = """query($tag: String) { members(first: 50, tag: $tag) {
  totalCount edges { node { externalId tags { code } } } } }"""
MEMBER_TAGS = """query($id: String!) { member(externalId: $id) { tags { code kind } } }"""
VIEWER_TAGS = "{ viewer { externalId tags { code } } }"
PAID = "2026-01-05T10:00:00+08:00"


async def define(api, code: str, name: str, rule: dict | None = None, **kw) -> dict:
    result = await api.as_operator(DEFINE, {"input": {"code": code, "name": name, "rule": rule}}, **kw)
    assert "errors" not in result, result
    return result["data"]["defineTag"]


async def tag(api, code: str, ids: list[str], remove: bool = False) -> dict:
    result = await api.as_operator(TAG, {"input": {"tag": code, "memberExternalIds": ids, "remove": remove}})
    assert "errors" not in result, result
    return result["data"]["tagMembers"]


async def holders(api, code: str, **kw) -> list[str]:
    result = await api.as_operator(TAGGED, {"tag": code}, **kw)
    assert "errors" not in result, result
    found = result["data"]["members"]
    assert found["totalCount"] == len(found["edges"])
    return [edge["node"]["externalId"] for edge in found["edges"]]


async def counts(api, **kw) -> dict[str, int]:
    return {t["code"]: t["memberCount"] for t in (await api.as_operator(TAGS, **kw))["data"]["program"]["tags"]}


async def test_operators_put_a_manual_tag_on_members_and_take_it_off(api):
    for name in ("ann", "bob", "cy"):
        await enroll(api, name)
    assert await define(api, "VIP", "重要客户") == {
        "tag": {"code": "VIP", "name": "重要客户", "kind": "MANUAL", "rule": None, "memberCount": 0}, "userErrors": []}
    # Unknown ids are skipped and named; the rest are tagged (sending the list again is harmless).
    assert await tag(api, "VIP", ["ann", "bob", "ghost", "ann"]) == {
        "tag": {"code": "VIP", "memberCount": 2}, "changed": 2, "unknownExternalIds": ["ghost"], "userErrors": []}
    assert (await tag(api, "VIP", ["ann", "cy"]))["changed"] == 1  # ann had it already
    assert await holders(api, "VIP") == ["ann", "bob", "cy"]
    taken_off = await tag(api, "VIP", ["bob", "dan"], remove=True)
    assert (taken_off["changed"], taken_off["unknownExternalIds"], taken_off["tag"]["memberCount"]) == (1, ["dan"], 2)
    assert (await tag(api, "VIP", ["bob"], remove=True))["changed"] == 0
    assert await holders(api, "VIP") == ["ann", "cy"]
    assert (await api.as_operator(MEMBER_TAGS, {"id": "bob"}))["data"]["member"]["tags"] == []
    # Renaming keeps the members.
    assert (await define(api, "VIP", "贵宾"))["tag"] == {"code": "VIP", "name": "贵宾", "kind": "MANUAL", "rule": None,
                                                         "memberCount": 2}


async def test_a_rule_tag_follows_a_member_who_moves_tier(api):
    for name in ("ann", "bob"):
        await enroll(api, name)
    await define(api, "VIP", "重要客户")
    await tag(api, "VIP", ["ann", "bob"])
    silver = await define(api, "SILVER", "银卡", {"tier": "SILVER"})
    assert silver["tag"] == {"code": "SILVER", "name": "银卡", "kind": "RULE", "rule": "tier 银卡会员 (SILVER)",
                             "memberCount": 0}
    vip_silver = await define(api, "VIP_SILVER", "银卡贵宾", {"tag": "SILVER", "channel": "ONLINE"})
    assert vip_silver["tag"]["rule"] == "tagged SILVER and reached through ONLINE"
    assert await define(api, "VIP_SILVER", "银卡贵宾", {"tag": "VIP", "tier": "SILVER"}) == {"tag": {
        "code": "VIP_SILVER", "name": "银卡贵宾", "kind": "RULE", "rule": "tagged VIP and tier 银卡会员 (SILVER)",
        "memberCount": 0}, "userErrors": []}

    await order(api, "A-1", "ann", "250", PAID)  # ¥250 in one order: SILVER, nothing to refresh
    assert await counts(api) == {"VIP": 2, "SILVER": 1, "VIP_SILVER": 1}
    assert await holders(api, "SILVER") == await holders(api, "VIP_SILVER") == ["ann"]
    assert (await api.as_operator(MEMBER_TAGS, {"id": "ann"}))["data"]["member"]["tags"] == [
        {"code": "VIP", "kind": "MANUAL"}, {"code": "SILVER", "kind": "RULE"}, {"code": "VIP_SILVER", "kind": "RULE"}]
    await tag(api, "VIP", ["ann"], remove=True)  # a rule naming a tag follows that tag too
    assert await counts(api) == {"VIP": 1, "SILVER": 1, "VIP_SILVER": 0}
    listed = (await api.as_operator(TAGGED, {"tag": None}))["data"]["members"]["edges"]
    assert [(e["node"]["externalId"], [t["code"] for t in e["node"]["tags"]]) for e in listed] == [
        ("ann", ["SILVER"]), ("bob", ["VIP"])]


async def test_a_silence_rule_is_judged_at_the_time_it_is_read(api, db, program, clock):
    clock.now = datetime(2026, 6, 1, tzinfo=timezone.utc)
    for name in ("ann", "bob"):
        await enroll(api, name, joinedAt="2026-01-05T10:00:00+08:00")
    await order(api, "B-1", "bob", "30", "2026-03-01T10:00:00+08:00")
    await define(api, "SILENT_90", "沉默90天", {"silentForDays": 90})
    await define(api, "DECLINING", "流失预警", {"lifecycleStage": "DECLINING", "tier": "REGULAR"})
    assert await counts(api, now="2026-04-05T09:59:00+08:00") == {"SILENT_90": 0, "DECLINING": 0}
    assert await counts(api, now="2026-04-05T10:00:00+08:00") == {"SILENT_90": 1, "DECLINING": 1}
    assert await holders(api, "SILENT_90", now="2026-05-30T10:00:00+08:00") == ["ann", "bob"]
    await order(api, "A-1", "ann", "30", "2026-04-06T10:00:00+08:00")
    assert await holders(api, "SILENT_90", now="2026-05-30T10:00:00+08:00") == ["bob"]
    # The CSV export selects by tag exactly as members(tag:) lists.
    out = io.StringIO()
    written = await export_members(db, program, out, at=datetime(2026, 5, 30, 2, tzinfo=timezone.utc),
                                   progress=lambda done, total: None,
                                   tag=await tag_selection(db, program, "SILENT_90"))
    assert written == 1 and [line.split(",")[0] for line in out.getvalue().splitlines()] == ["external_id", "bob"]


async def test_a_tag_never_contains_itself(api, db):
    await define(api, "SILVER", "银卡", {"tier": "SILVER"})
    await define(api, "SILVER_ONLINE", "线上银卡", {"tag": "SILVER", "channel": "ONLINE"})
    before = await row_counts(db)
    for code, rule in (("SILVER", {"tag": "SILVER_ONLINE"}), ("SILVER_ONLINE", {"tag": "SILVER_ONLINE"})):
        refused = await define(api, code, "loop", rule)
        assert refused["tag"] is None
        assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [(["input", "rule", "tag"], "INVALID")]
    assert await row_counts(db) == before
    assert await counts(api) == {"SILVER": 0, "SILVER_ONLINE": 0}


@pytest.mark.parametrize("request_, field, code", [
    ({"code": "has space", "name": "x"}, ["input", "code"], "INVALID"),
    ({"code": "X" * 41, "name": "x"}, ["input", "code"], "INVALID"),
    ({"code": "OK", "name": " "}, ["input", "name"], "INVALID"),
    ({"code": "OK", "name": "x", "rule": {}}, ["input", "rule"], "INVALID"),
    ({"code": "OK", "name": "x", "rule": {"tier": "PLATINUM"}}, ["input", "rule", "tier"], "NOT_FOUND"),
    ({"code": "OK", "name": "x", "rule": {"segment": "Sleepy"}}, ["input", "rule", "segment"], "INVALID"),
    ({"code": "OK", "name": "x", "rule": {"silentForDays": 0}}, ["input", "rule", "silentForDays"], "INVALID"),
    ({"code": "OK", "name": "x", "rule": {"tag": "NOPE"}}, ["input", "rule", "tag"], "NOT_FOUND"),
    ({"code": "VIP", "name": "x", "rule": {"tier": "GOLD"}}, ["input", "rule"], "INVALID"),  # MANUAL stays MANUAL
    ({"code": "SILVER", "name": "x"}, ["input", "rule"], "INVALID"),  # RULE stays RULE
])
async def test_a_bad_definition_changes_nothing(api, db, request_, field, code):
    await define(api, "VIP", "重要客户")
    await define(api, "SILVER", "银卡", {"tier": "SILVER"})
    before = await row_counts(db)
    refused = (await api.as_operator(DEFINE, {"input": request_}))["data"]["defineTag"]
    assert refused["tag"] is None
    assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [(field, code)]
    assert await row_counts(db) == before


@pytest.mark.parametrize("request_, field, code", [
    ({"tag": "NOPE", "memberExternalIds": ["ann"]}, ["input", "tag"], "NOT_FOUND"),
    ({"tag": "SILVER", "memberExternalIds": ["ann"]}, ["input", "tag"], "INVALID"),  # a RULE tag follows its rule
    ({"tag": "VIP", "memberExternalIds": []}, ["input", "memberExternalIds"], "INVALID"),
    ({"tag": "VIP", "memberExternalIds": ["ann", " bob"]}, ["input", "memberExternalIds", "1"], "INVALID"),
    ({"tag": "VIP", "memberExternalIds": ["ann", ""]}, ["input", "memberExternalIds", "1"], "INVALID"),
])
async def test_bad_tagging_changes_nothing(api, db, request_, field, code):
    await enroll(api, "ann")
    await define(api, "VIP", "重要客户")
    await define(api, "SILVER", "银卡", {"tier": "SILVER"})
    before = await row_counts(db)
    refused = (await api.as_operator(TAG, {"input": request_}))["data"]["tagMembers"]
    assert (refused["tag"], refused["changed"]) == (None, 0)
    assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [(field, code)]
    assert await row_counts(db) == before


async def test_a_list_malformed_throughout_names_twenty_ids_and_counts_the_rest(api, db):
    await define(api, "VIP", "重要客户")
    refused = (await api.as_operator(TAG, {"input": {"tag": "VIP", "memberExternalIds": [
        f"m{i} " for i in range(50)]}}))["data"]["tagMembers"]
    assert len(refused["userErrors"]) == 21
    assert refused["userErrors"][-1] == {"field": ["input", "memberExternalIds"], "code": "INVALID",
                                         "message": "and 30 more ids like these"}


async def test_thousands_are_tagged_in_a_few_statements(api, db, program):
    await seed(db, program, SeedPlan(members=2000, orders=0), now=datetime(2026, 7, 1, tzinfo=timezone.utc),
               progress=lambda label: lambda done, total: None)
    await define(api, "IMPORTED", "CRM 导入")
    ids = [f"seed-{n:07d}" for n in range(2000)] + ["crm-1", "crm-2"]
    with count_statements() as statements:
        result = await api.as_operator("""mutation($input: TagMembersInput!) { tagMembers(input: $input) {
          changed unknownExternalIds userErrors { code } } }""", {"input": {"tag": "IMPORTED", "memberExternalIds": ids}})
    assert result["data"]["tagMembers"] == {"changed": 2000, "unknownExternalIds": ["crm-1", "crm-2"], "userErrors": []}
    # The program in force, the tag, the members named, one INSERT, the tag again for the answer.
    assert statements[0] == 5
    assert await counts(api) == {"IMPORTED": 2000}
    assert (await tag(api, "IMPORTED", ids[:1500], remove=True))["changed"] == 1500
    assert await counts(api) == {"IMPORTED": 500}


async def test_tags_are_for_operators_and_the_shop_never_for_members(api):
    await enroll(api, "ann")
    await define(api, "VIP", "重要客户")
    await tag(api, "VIP", ["ann"])
    as_member = await api.as_member("ann", VIEWER_TAGS)
    assert [e["extensions"]["code"] for e in as_member["errors"]] == ["FORBIDDEN"]
    assert [e["extensions"]["code"] for e in (await api.as_member("ann", TAGS))["errors"]] == ["FORBIDDEN"]
    assert (await api.as_service(MEMBER_TAGS, {"id": "ann"}))["data"]["member"]["tags"] == [
        {"code": "VIP", "kind": "MANUAL"}]
    for document, variables in ((DEFINE, {"input": {"code": "X", "name": "x"}}),
                                (TAG, {"input": {"tag": "VIP", "memberExternalIds": ["ann"]}})):
        for caller in (api.as_service, lambda d, v: api.as_member("ann", d, v)):
            assert [e["extensions"]["code"] for e in (await caller(document, variables))["errors"]] == ["FORBIDDEN"]


async def test_listing_by_an_unknown_tag_is_bad_input(api):
    result = await api.as_operator(TAGGED, {"tag": "NOPE"})
    assert [(e["message"], e["extensions"]["code"]) for e in result["errors"]] == [
        ("no tag 'NOPE' in this program", "BAD_USER_INPUT")]
