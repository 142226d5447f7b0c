"""Ids for normalised client caches (Apollo, urql): a member's points account, stored value, check-in status,
task progress, quest standing and benefit standings keep one id across reads and mutation payloads, and no
two members share one."""

from helpers import enroll

IDS = """{ viewer { points { id balance } storedValue { id } checkIn { id } benefits { id benefit { id code } }
  tasks { id task { code } } quests { id quest { code } } } }"""
CHECK_IN = "mutation { checkIn { checkIn { id streak } userErrors { code } } }"
CLAIM = "mutation($id: ID!) { claimBenefit(input: {benefitId: $id}) { benefit { id } userErrors { code } } }"


async def viewer_ids(api, member: str) -> dict:
    viewer = (await api.as_member(member, IDS))["data"]["viewer"]
    return {"points": viewer["points"]["id"], "storedValue": viewer["storedValue"]["id"],
            "checkIn": viewer["checkIn"]["id"], **{b["benefit"]["code"]: b["id"] for b in viewer["benefits"]},
            **{t["task"]["code"]: t["id"] for t in viewer["tasks"]},
            **{q["quest"]["code"]: q["id"] for q in viewer["quests"]}}


async def test_a_members_objects_keep_their_ids_and_no_two_members_share_one(api):
    for member in ("alice", "bob"):
        await enroll(api, member)
    alice, bob = await viewer_ids(api, "alice"), await viewer_ids(api, "bob")
    assert await viewer_ids(api, "alice") == alice
    assert set(alice) == set(bob) and len(set(alice.values())) == len(alice)
    assert not set(alice.values()) & set(bob.values())


async def test_mutation_payloads_carry_the_ids_the_queries_read(api):
    await enroll(api, "alice")
    before = await viewer_ids(api, "alice")
    checked_in = (await api.as_member("alice", CHECK_IN))["data"]["checkIn"]
    assert checked_in["userErrors"] == [] and checked_in["checkIn"]["id"] == before["checkIn"]
    benefits = (await api.as_member("alice", IDS))["data"]["viewer"]["benefits"]
    priority = next(b for b in benefits if b["benefit"]["code"] == "PRIORITY_SERVICE")
    claimed = (await api.as_member("alice", CLAIM, {"id": priority["benefit"]["id"]}))["data"]["claimBenefit"]
    assert claimed["userErrors"] == [] and claimed["benefit"]["id"] == priority["id"]
    assert await viewer_ids(api, "alice") == before


async def test_a_quest_standing_keeps_its_id(api):
    for member in ("alice", "bob"):
        await enroll(api, member)
    query, march = "{ viewer { quests { id quest { code } } } }", "2026-03-10T10:00:00+08:00"
    alice = (await api.as_member("alice", query, now=march))["data"]["viewer"]["quests"]
    bob = (await api.as_member("bob", query, now=march))["data"]["viewer"]["quests"]
    assert [q["quest"]["code"] for q in alice] == ["SPRING_QUEST"]
    assert (await api.as_member("alice", query, now=march))["data"]["viewer"]["quests"] == alice
    assert alice[0]["id"] != bob[0]["id"]
