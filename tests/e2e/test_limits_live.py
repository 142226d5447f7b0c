"""Limits on a real server: an expensive query never stalls it, and a socket ends with its token."""

import asyncio
from dataclasses import replace

import pytest
import websockets

from helpers import enroll
from tierup.auth import Role

CYCLE = "{ program { ladder { tiers { benefits { tiers { benefits { tiers { benefits { tiers { benefits { tiers " \
        "{ benefits { id } } } } } } } } } } } } }"
CHECK_IN = "mutation { checkIn { userErrors { code } } }"
MEMBER_EVENTS = "subscription { memberEvents { kind } }"


async def _while_running(server, operation) -> tuple[dict, list[int]]:
    """Run `operation` while polling /healthz; the health answers' status codes come back with its result."""
    task = asyncio.create_task(operation)
    statuses = []
    while not task.done():
        statuses.append((await server.api.client.get("/healthz", timeout=30)).status_code)
        await asyncio.sleep(0.05)
    return await task, statuses


async def test_the_cyclic_query_is_refused_at_once_while_health_answers(server):
    await enroll(server.api, "alice")
    result, statuses = await _while_running(server, server.api.as_member("alice", CYCLE))
    assert result["data"] is None
    assert result["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert all(status == 200 for status in statuses)


class TestDeadline:
    @pytest.fixture
    def settings(self, settings):
        # No cost limit to stop it first: the deadline alone must.
        return replace(settings, max_query_cost=10**15, execution_deadline=1.0)

    async def test_a_query_past_the_deadline_stops_and_health_keeps_answering(self, server):
        await enroll(server.api, "alice")
        result, statuses = await _while_running(server, server.api.as_member("alice", CYCLE))
        assert result == {"data": None, "errors": [{
            "message": "The operation ran longer than the server's limit of 1 s and was stopped.",
            "extensions": {"code": "DEADLINE_EXCEEDED"}}]}
        assert statuses and all(status == 200 for status in statuses)
        assert (await server.api.client.get("/healthz")).status_code == 200


async def _close_code(socket, within: float) -> int:
    while True:
        try:
            message = await socket.receive(within)
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code
        if message["type"] == "ping":
            await socket.send({"type": "pong"})


async def test_a_socket_closes_when_its_token_expires(server):
    await enroll(server.api, "alice")
    socket = await server.socket(server.api.token(Role.MEMBER, "alice", ttl=2))
    await socket.subscribe(MEMBER_EVENTS)
    operation = await socket.subscribe(CHECK_IN)
    while True:  # the socket works while the token is valid
        message = await socket.receive()
        if message.get("id") == operation:
            assert message["payload"]["data"]["checkIn"]["userErrors"] == []
            break
    assert await _close_code(socket, within=10) == 4403
    with pytest.raises(websockets.ConnectionClosed):
        await socket.subscribe(CHECK_IN)
        await socket.receive(2)


async def test_an_expired_token_cannot_open_a_socket(server):
    await enroll(server.api, "alice")
    expired = server.api.token(Role.MEMBER, "alice", ttl=60, now=0)
    socket = await server.socket(expired, ack=False)
    assert await _close_code(socket, within=5) == 4403
