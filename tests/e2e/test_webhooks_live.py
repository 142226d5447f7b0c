"""A shop tries webhooks against a real `tierup serve`: an operator registers its endpoint, and member
events reach it signed, with nothing scheduled by hand — the server delivers them after commit."""

import json

import httpx
import pytest
from standardwebhooks import Webhook

from helpers import SECRET
from servers import start_server, stop, wait_ready
from tierup.auth import Role, mint_token
from webhook_receiver import receiving
from wsclient import free_port

CREATE = """mutation($url: String!) {
  createWebhook(input: {url: $url, events: [POINTS_CHANGED, TIER_CHANGED]}) { secret userErrors { code message } } }"""
ENROLL = """mutation($input: EnrollMemberInput!) { enrollMember(input: $input) { userErrors { code message } } }"""
ORDER = """mutation($input: RecordOrderInput!) { recordOrder(input: $input) { userErrors { code message } } }"""
EVALUATE = """mutation($asOf: DateTime!) { evaluateTiers(input: {asOf: $asOf}) { downgraded userErrors { code } } }"""


@pytest.fixture
async def serve(database_url, program, tmp_path):
    port = free_port()
    process = start_server(database_url, port, tmp_path)
    try:
        await wait_ready(port, process, tmp_path)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            yield client
    finally:
        stop([process])


async def call(client: httpx.AsyncClient, query: str, variables: dict, role: Role, sub: str) -> dict:
    token = mint_token(SECRET, sub=sub, program="classic", role=role)
    response = await client.post("/graphql", json={"query": query, "variables": variables},
                                 headers={"Authorization": f"Bearer {token}"})
    result = response.json()
    assert "errors" not in result, result
    [payload] = result["data"].values()
    assert payload["userErrors"] == [], payload
    return payload


async def test_member_events_reach_the_shop_signed(serve):
    async with receiving() as receiver:
        secret = (await call(serve, CREATE, {"url": receiver.url}, Role.OPERATOR, "ops"))["secret"]
        # Joined and bought in 2024: SILVER until January 2025, kept at the first evaluation (the order counts
        # in the period it closes), lost at the second after a year without orders.
        await call(serve, ENROLL, {"input": {"externalId": "alice", "joinedAt": "2024-01-01T10:00:00+08:00"}},
                   Role.SERVICE, "shop")
        await call(serve, ORDER, {"input": {"externalId": "A-1", "memberExternalId": "alice", "amount": "250",
                                            "paidAt": "2024-01-20T12:00:00+08:00"}}, Role.SERVICE, "shop")
        for as_of in ("2025-02-01T00:00:00+08:00", "2026-02-01T00:00:00+08:00"):
            await call(serve, EVALUATE, {"asOf": as_of}, Role.OPERATOR, "ops")
        seen: list[dict] = []
        while not any(p["data"]["message"] == "Tier is now 普通会员" for p in seen):
            received = await receiver.wait_for(len(seen) + 1, timeout=30)
            request = received[len(seen)]
            seen.append(Webhook(secret).verify(request.body, request.headers))
    assert seen[0] == {"type": "POINTS_CHANGED", "timestamp": "2024-01-01T10:00:00+08:00", "data": {
        "program": "classic", "memberExternalId": "alice", "message": "Points balance is now 100 (+100)"}}
    assert json.dumps(seen[-1]["data"], ensure_ascii=False) == (
        '{"program": "classic", "memberExternalId": "alice", "message": "Tier is now 普通会员"}')
