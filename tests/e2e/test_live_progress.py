"""Live task progress over a real WebSocket, from a real server."""

import asyncio

from helpers import enroll, order
from tierup.auth import Role

TASK_PROGRESS = """
subscription($taskId: ID) {
  taskProgress(taskId: $taskId) { previousStatus at progress { status current target task { code } } }
}"""
MEMBER_EVENTS = "subscription { memberEvents { kind message member { points { balance } tier { code } } } }"


async def test_first_order_completes_first_order_live(server, clock):
    api = server.api
    await enroll(api, "alice")
    await enroll(api, "bob")
    alice = await server.socket(api.token(Role.MEMBER, "alice"))
    bob = await server.socket(api.token(Role.MEMBER, "bob"))
    await alice.subscribe(TASK_PROGRESS)
    await bob.subscribe(TASK_PROGRESS)
    await asyncio.sleep(0.1)  # let both subscriptions register

    await order(api, "A-1", "alice", "100", "2026-01-05T09:00:00+08:00")
    first = await alice.next_data(timeout=2)
    assert first["taskProgress"]["progress"] == {"status": "COMPLETED", "current": 1, "target": 1,
                                                 "task": {"code": "FIRST_ORDER"}}
    assert first["taskProgress"]["previousStatus"] == "AVAILABLE"
    second = await alice.next_data(timeout=2)
    assert second["taskProgress"]["progress"]["task"]["code"] == "THREE_MONTH_STREAK"
    assert (second["taskProgress"]["previousStatus"], second["taskProgress"]["progress"]["status"]) == (
        "LOCKED", "IN_PROGRESS")
    assert await bob.nothing_within(0.5)


async def test_member_events_follow_points_and_tier(server):
    api = server.api
    await enroll(api, "alice")
    alice = await server.socket(api.token(Role.MEMBER, "alice"))
    await alice.subscribe(MEMBER_EVENTS)
    await asyncio.sleep(0.1)
    await order(api, "A-1", "alice", "250", "2026-01-05T09:00:00+08:00")
    kinds = []
    for _ in range(4):
        event = (await alice.next_data(timeout=2))["memberEvents"]
        kinds.append(event["kind"])
    assert kinds == ["TASK_COMPLETED", "TIER_CHANGED", "BENEFIT_UNLOCKED", "POINTS_CHANGED"]
    assert event["member"] == {"points": {"balance": 100 + 250 + 50}, "tier": {"code": "SILVER"}}


async def test_a_rejected_report_publishes_nothing(server):
    api = server.api
    await enroll(api, "alice")
    alice = await server.socket(api.token(Role.MEMBER, "alice"))
    await alice.subscribe(MEMBER_EVENTS)
    await asyncio.sleep(0.1)
    rejected = await order(api, "A-1", "alice", "100", "2026-01-05T09:00:00+08:00", couponCodes=["NOPE"])
    assert rejected["userErrors"][0]["code"] == "NOT_FOUND"
    assert await alice.nothing_within(0.5)


async def test_a_bad_token_is_refused_with_4403(server):
    api = server.api
    import websockets

    for token in ("not-a-token", None, api.token(Role.MEMBER, "alice", ttl=1, now=1_000_000)):
        client = await server.socket(token, ack=False)
        try:
            await client.receive(timeout=3)
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd.code == 4403
        else:
            raise AssertionError("the connection was not refused")


async def test_only_members_subscribe(server):
    api = server.api
    client = await server.socket(api.token(Role.OPERATOR, "ops"))
    await client.subscribe(MEMBER_EVENTS)
    message = await client.receive(timeout=3)
    assert message["type"] in ("next", "error")
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == "FORBIDDEN"
