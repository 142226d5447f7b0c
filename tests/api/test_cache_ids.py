"""Ids for normalised client caches (Apollo, urql): a member's points account, check-in status and
benefit standings keep one id across reads and mutation payloads, and no two members share one."""

from helpers import enroll

IDS = "{ viewer { points { id balance } checkIn { id } benefits { id benefit { id code } } } }"
CHECK_IN = "mutation { checkIn { checkIn { id streak } userErrors { code } } }"
CLAIM = "mutation($id: ID!) { claimBenefit(input: {benefitId: $id}) { benefit { id } userErrors { code } } }"


async def viewer_ids(api, member: str) -> dict:
    viewer = (await api.as_member(member, IDS))["data"]["viewer"]
    return {"points": viewer["points"]["id"], "checkIn": viewer["checkIn"]["id"],
            **{b["benefit"]["code"]: b["id"] for b in viewer["benefits"]}}


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
