"""Who may see and do what: UNAUTHENTICATED without a valid token, FORBIDDEN outside one's role or reach."""

import jwt
import pytest

from documents import ENROLL, RECORD_ORDER, VIEWER
from helpers import enroll, member_view, row_counts
from tierup.auth import Role

MEMBER_BY_ID = "query($id: ID!) { node(id: $id) { id ... on Member { externalId points { balance } } } }"
ORDER_INPUT = {"externalId": "O-1", "memberExternalId": "alice", "amount": "10", "paidAt": "2026-01-05T09:00:00+08:00"}


def codes(result: dict) -> list[str]:
    return [e["extensions"]["code"] for e in result.get("errors", [])]


async def test_no_token_is_unauthenticated(api):
    result = await api.post(VIEWER)
    assert codes(result) == ["UNAUTHENTICATED"]
    assert result["data"] == {"viewer": None}


async def test_expired_token_is_unauthenticated(api):
    token = api.token(Role.SERVICE, "shop", ttl=60, now=1_000_000)
    result = await api.post(VIEWER, token=token)
    assert codes(result) == ["UNAUTHENTICATED"]
    assert "expired" in result["errors"][0]["message"]


async def test_forged_token_is_unauthenticated(api):
    forged = jwt.encode({"sub": "ops", "program": "classic", "role": "OPERATOR", "exp": 4102444800}, "not-the-secret-at-all-not-the-secret", algorithm="HS256")
    result = await api.post(VIEWER, token=forged)
    assert codes(result) == ["UNAUTHENTICATED"]
    assert "signature" in result["errors"][0]["message"]


async def test_malformed_header_is_unauthenticated(api):
    result = await api.post(VIEWER, headers={"Authorization": "Token abc"})
    assert codes(result) == ["UNAUTHENTICATED"]


@pytest.mark.parametrize("role", [Role.MEMBER, Role.OPERATOR])
async def test_only_the_service_reports_orders_and_enrolments(api, db, role):
    before = await row_counts(db)
    token = api.token(role, "alice")
    assert codes(await api.post(RECORD_ORDER, {"input": ORDER_INPUT}, token=token)) == ["FORBIDDEN"]
    assert codes(await api.post(ENROLL, {"input": {"externalId": "bob"}}, token=token)) == ["FORBIDDEN"]
    assert await row_counts(db) == before


async def test_a_member_sees_only_themself(api):
    alice = (await enroll(api, "alice"))["member"]
    bob = (await enroll(api, "bob"))["member"]
    own = await api.as_member("alice", MEMBER_BY_ID, {"id": alice["id"]})
    assert own["data"]["node"]["externalId"] == "alice"
    other = await api.as_member("alice", MEMBER_BY_ID, {"id": bob["id"]})
    assert codes(other) == ["FORBIDDEN"]
    assert other["data"]["node"] is None
    viewer = await api.as_member("bob", VIEWER)
    assert viewer["data"]["viewer"]["externalId"] == "bob"


async def test_members_queries_are_for_operators_and_services(api):
    await enroll(api, "alice")
    result = await api.as_member("alice", "{ members(first: 5) { totalCount } }")
    assert codes(result) == ["FORBIDDEN"]
    assert (await member_view(api, "alice"))["externalId"] == "alice"


async def test_another_program_is_forbidden(api, db, clock):
    from tierup.programs import bundled_program_path, load_program_file
    from tierup.services.programs import publish_program

    await publish_program(db, load_program_file(bundled_program_path("nine-levels")), published_by="t", now=clock())
    alice = (await enroll(api, "alice"))["member"]
    outsider = api.token(Role.OPERATOR, "ops", program="nine-levels")
    result = await api.post(MEMBER_BY_ID, {"id": alice["id"]}, token=outsider)
    assert codes(result) == ["FORBIDDEN"]
    listed = await api.post("{ members(first: 10) { totalCount } program { code } }", token=outsider)
    assert listed["data"] == {"members": {"totalCount": 0}, "program": {"code": "nine-levels"}}


async def test_a_token_for_an_unknown_program_is_forbidden(api):
    result = await api.post("{ program { code } }", token=api.token(Role.OPERATOR, "ops", program="nope"))
    assert codes(result) == ["FORBIDDEN"]


async def test_viewer_is_null_for_operators(api):
    result = await api.as_operator(VIEWER)
    assert result == {"data": {"viewer": None}}
