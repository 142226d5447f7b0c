"""The graphql-transport-ws protocol as a client meets it on a real server: the handshake and its
deadlines, operations of every kind, the errors and close codes the protocol names, and what an
ended socket or operation leaves behind (nothing)."""

import asyncio
import gc
import time
import types
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
import websockets

from helpers import enroll, order
from tierup.api import websocket as transport
from tierup.app import MAX_SUBSCRIPTIONS_PER_CONNECTION
from tierup.auth import Role
from tierup.events import Event
from tierup.events.broker import QUEUE_SIZE
from wsclient import PROTOCOL, GraphQLSocket

MEMBER_EVENTS = "subscription { memberEvents { kind } }"
TASK_PROGRESS = "subscription { taskProgress { progress { status } } }"
VIEWER_POINTS = "query { viewer { externalId points { balance } } }"
CHECK_IN = "mutation { checkIn { userErrors { code } } }"
CYCLE = "{ program { ladder { tiers { benefits { tiers { benefits { tiers { benefits { tiers { benefits { tiers " \
        "{ benefits { id } } } } } } } } } } } } }"


def graphql_view(app):
    """The app's GraphQL endpoint, whose settings a test may narrow."""
    return next(route.app for route in app.routes if getattr(route, "path", None) == "/graphql")


async def until(condition, what: str, timeout: float = 10) -> None:
    """Wait for the server to get there; the timeout only bounds a failing test."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"still waiting for: {what}"
        await asyncio.sleep(0.02)


async def raw_socket(server, subprotocol: str = PROTOCOL) -> GraphQLSocket:
    """A socket that has sent nothing yet; closed when the test ends."""
    client = GraphQLSocket(await websockets.connect(server.ws, subprotocols=[subprotocol]))
    server.sockets.append(client)
    return client


async def member_socket(server, member: str = "alice") -> GraphQLSocket:
    return await server.socket(server.api.token(Role.MEMBER, member))


async def closed_with(socket: GraphQLSocket, timeout: float = 5) -> tuple[int, str]:
    """The close code and reason the server ends the socket with, skipping what arrives before."""
    try:
        while True:
            await socket.receive(timeout)
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code, closed.rcvd.reason


async def subscribe(socket: GraphQLSocket, id: str, query: str) -> None:
    await socket.send({"id": id, "type": "subscribe", "payload": {"query": query}})


def points_changed(broker, n: int) -> Event:
    """An event for the one member subscribed on the server."""
    [(program_id, member_id)] = broker._subscribers
    return Event(program_id, member_id, "POINTS_CHANGED", f"#{n}", datetime.now(timezone.utc))


async def overflow_then_complete(socket: GraphQLSocket, id: str) -> None:
    message = await socket.receive()
    assert message["id"] == id and message["type"] == "next" and message["payload"]["data"] is None
    assert "resubscribe and refetch" in message["payload"]["errors"][0]["message"]
    assert await socket.receive() == {"id": id, "type": "complete"}


# The handshake ---------------------------------------------------------------------------------

async def test_a_socket_without_connection_init_closes_with_4408(server, app, monkeypatch):
    monkeypatch.setattr(graphql_view(app), "connection_init_wait_timeout", timedelta(seconds=0.1))
    socket = await raw_socket(server)
    assert await closed_with(socket) == (4408, "Connection initialisation timeout")


async def test_a_socket_initialised_in_time_outlives_the_init_deadline(server, app, monkeypatch):
    await enroll(server.api, "alice")
    monkeypatch.setattr(graphql_view(app), "connection_init_wait_timeout", timedelta(seconds=0.5))
    socket = await member_socket(server)  # acknowledged within milliseconds
    await asyncio.sleep(0.8)  # past the deadline: connection_init cancelled it
    await socket.send({"type": "ping"})
    assert await socket.receive() == {"type": "pong"}


async def test_a_second_connection_init_closes_with_4429(server):
    await enroll(server.api, "alice")
    socket = await member_socket(server)
    await socket.send({"type": "connection_init", "payload": {}})
    assert await closed_with(socket) == (4429, "Too many initialisation requests")


async def test_a_refused_token_closes_with_4403_forbidden(server):
    socket = await server.socket("not-a-token", ack=False)
    assert await closed_with(socket) == (4403, "Forbidden")


async def test_subscribing_before_the_ack_closes_with_4401(server):
    socket = await raw_socket(server)
    await subscribe(socket, "1", MEMBER_EVENTS)
    assert await closed_with(socket) == (4401, "Unauthorized")


@pytest.mark.parametrize("message, reason", [
    ("not json", "WebSocket message must be valid JSON"),
    (b"\x00binary", "WebSocket message type must be text"),
    ('["type", "ping"]', "Failed to parse message"),
    ('{"payload": {}}', "Failed to parse message"),
    ('{"type": "start"}', "Unknown message type: start"),
    ('{"type": "connection_init", "payload": "token"}', "Invalid connection init payload"),
])
async def test_a_malformed_message_closes_with_4400(server, message, reason):
    socket = await raw_socket(server)
    await socket.connection.send(message)
    assert await closed_with(socket) == (4400, reason)


@pytest.mark.parametrize("message", [
    {"type": "subscribe", "payload": {"query": MEMBER_EVENTS}},
    {"id": 1, "type": "subscribe", "payload": {"query": MEMBER_EVENTS}},
    {"id": "1", "type": "subscribe"},
    {"id": "1", "type": "subscribe", "payload": {"query": MEMBER_EVENTS, "variables": [1]}},
    {"id": ["1"], "type": "complete"},
])
async def test_a_malformed_operation_message_closes_with_4400(server, message):
    await enroll(server.api, "alice")
    socket = await member_socket(server)
    await socket.send(message)
    code, _ = await closed_with(socket)
    assert code == 4400


async def test_ping_is_answered_with_pong_and_pong_is_ignored(server):
    socket = await raw_socket(server)  # ping is allowed before connection_init
    await socket.send({"type": "ping", "payload": {"at": 1}})
    assert await socket.receive() == {"type": "pong"}
    await socket.send({"type": "pong"})
    await socket.send({"type": "ping"})
    assert await socket.receive() == {"type": "pong"}  # the pong got no answer, the ping did


# Operations ------------------------------------------------------------------------------------

async def test_a_query_answers_one_next_then_complete(server):
    await enroll(server.api, "alice")
    socket = await member_socket(server)
    await subscribe(socket, "q", VIEWER_POINTS)
    assert await socket.receive() == {"id": "q", "type": "next", "payload": {
        "data": {"viewer": {"externalId": "alice", "points": {"balance": 100}}}}}
    assert await socket.receive() == {"id": "q", "type": "complete"}


async def test_a_mutation_answers_one_next_then_complete(server):
    await enroll(server.api, "alice")
    socket = await member_socket(server)
    await subscribe(socket, "m", CHECK_IN)
    assert await socket.receive() == {"id": "m", "type": "next", "payload": {"data": {"checkIn": {"userErrors": []}}}}
    assert await socket.receive() == {"id": "m", "type": "complete"}
    await subscribe(socket, "m", CHECK_IN)  # the id is free again once completed
    assert (await socket.receive())["payload"]["data"]["checkIn"]["userErrors"][0]["code"] == "ALREADY_DONE"
    assert await socket.receive() == {"id": "m", "type": "complete"}


@pytest.mark.parametrize("query, code", [
    ("query { viewer { noSuchField } }", "GRAPHQL_VALIDATION_FAILED"),
    ("query { viewer {", "GRAPHQL_PARSE_FAILED"),
    (CYCLE, "QUERY_TOO_COMPLEX"),
    ("query A { viewer { id } } query B { viewer { id } }", "BAD_USER_INPUT"),
    ("fragment F on Query { viewer { id } }", "BAD_USER_INPUT"),
])
async def test_an_operation_refused_before_execution_answers_error_and_the_socket_goes_on(server, query, code):
    await enroll(server.api, "alice")
    socket = await member_socket(server)
    await subscribe(socket, "bad", query)
    message = await socket.receive()
    assert message["type"] == "error" and message["id"] == "bad"
    assert message["payload"][0]["extensions"]["code"] == code
    await subscribe(socket, "bad", VIEWER_POINTS)  # same id, same socket: it goes on
    assert (await socket.receive())["type"] == "next"
    assert await socket.receive() == {"id": "bad", "type": "complete"}


async def test_an_unknown_operation_name_answers_error(server):
    await enroll(server.api, "alice")
    socket = await member_socket(server)
    await socket.send({"id": "1", "type": "subscribe", "payload": {"query": VIEWER_POINTS, "operationName": "Home"}})
    assert await socket.receive() == {"id": "1", "type": "error", "payload": [{
        "message": 'Unknown operation named "Home".', "extensions": {"code": "BAD_USER_INPUT"}}]}


class TestDeadline:
    @pytest.fixture
    def settings(self, settings):
        return replace(settings, max_query_cost=10**15, execution_deadline=0.5)

    async def test_a_query_over_the_socket_stops_at_the_deadline_as_over_http(self, server):
        await enroll(server.api, "alice")
        socket = await member_socket(server)
        await subscribe(socket, "slow", CYCLE)
        assert await socket.receive(timeout=30) == {"id": "slow", "type": "next", "payload": {"data": None, "errors": [{
            "message": "The operation ran longer than the server's limit of 0.5 s and was stopped.",
            "extensions": {"code": "DEADLINE_EXCEEDED"}}]}}
        assert await socket.receive() == {"id": "slow", "type": "complete"}


async def test_a_subscription_streams_events_until_the_client_completes_it(server, app):
    api, broker = server.api, app.state.services.broker
    await enroll(api, "alice")
    socket = await member_socket(server)
    await subscribe(socket, "live", MEMBER_EVENTS)
    await until(lambda: broker.subscriber_count == 1, "the subscription registered")
    await order(api, "A-1", "alice", "100", "2026-01-05T09:00:00+08:00")
    assert await socket.next_data() == {"memberEvents": {"kind": "TASK_COMPLETED"}}

    await socket.send({"id": "live", "type": "complete"})
    await until(lambda: broker.subscriber_count == 0, "the subscriber forgotten")
    await socket.send({"id": "live", "type": "complete"})  # completing it again, or an unknown id: ignored
    await socket.send({"type": "ping"})
    while (message := await socket.receive()) != {"type": "pong"}:  # the order's other events, sent before
        assert message["id"] == "live" and message["type"] == "next"

    await order(api, "A-2", "alice", "100", "2026-01-06T09:00:00+08:00")  # published after the response
    await socket.send({"type": "ping"})
    assert await socket.receive() == {"type": "pong"}  # nothing more for the completed subscription


async def test_a_duplicate_operation_id_closes_with_4409(server, app):
    await enroll(server.api, "alice")
    socket = await member_socket(server)
    await subscribe(socket, "1", MEMBER_EVENTS)
    await subscribe(socket, "1", TASK_PROGRESS)
    assert await closed_with(socket) == (4409, "Subscriber for 1 already exists")
    await until(lambda: app.state.services.broker.subscriber_count == 0, "the first subscription ended")


async def test_past_the_limit_an_operation_gets_an_error_and_the_others_go_on(server, app):
    broker = app.state.services.broker
    await enroll(server.api, "alice")
    socket = await member_socket(server)
    for n in range(MAX_SUBSCRIPTIONS_PER_CONNECTION):
        await subscribe(socket, str(n), MEMBER_EVENTS)
    await until(lambda: broker.subscriber_count == MAX_SUBSCRIPTIONS_PER_CONNECTION, "every subscription registered")
    await subscribe(socket, "one-too-many", VIEWER_POINTS)
    message = await socket.receive()
    assert message["type"] == "error" and message["id"] == "one-too-many"
    assert message["payload"][0]["message"] == "Subscription limit reached"

    await socket.send({"id": "0", "type": "complete"})  # one place frees up
    await until(lambda: broker.subscriber_count == MAX_SUBSCRIPTIONS_PER_CONNECTION - 1, "one subscription ended")
    await subscribe(socket, "one-too-many", VIEWER_POINTS)
    assert (await socket.receive())["type"] == "next"


async def test_events_arriving_faster_than_they_are_resolved_end_the_subscription_with_overflow(server, app):
    broker = app.state.services.broker
    await enroll(server.api, "alice")
    socket = await member_socket(server)
    tasks_before = set(asyncio.all_tasks())
    await subscribe(socket, "live", MEMBER_EVENTS)
    await until(lambda: broker.subscriber_count == 1, "the subscription registered")
    await broker.publish([points_changed(broker, n) for n in range(QUEUE_SIZE + 1)])  # none resolved yet
    await overflow_then_complete(socket, "live")
    assert broker.subscriber_count == 0 and broker.subscribed_members == 0
    await until(lambda: not (set(asyncio.all_tasks()) - tasks_before), "the fan-out's task ended")

    await subscribe(socket, "again", MEMBER_EVENTS)  # resubscribing works
    await until(lambda: broker.subscriber_count == 1, "the new subscription registered")
    await broker.publish([points_changed(broker, 0)])
    assert await socket.receive() == {"id": "again", "type": "next", "payload": {
        "data": {"memberEvents": {"kind": "POINTS_CHANGED"}}}}


async def test_a_peer_that_stops_reading_loses_its_subscription_and_holds_up_no_other(server, app):
    broker = app.state.services.broker
    await enroll(server.api, "alice")
    reading, stalled = await member_socket(server), await member_socket(server)
    await subscribe(reading, "reading", MEMBER_EVENTS)
    await subscribe(stalled, "stalled", MEMBER_EVENTS)
    await until(lambda: broker.subscriber_count == 2, "both subscriptions registered")
    # The server's side of `stalled`: its sends wait, as when the peer's buffers are full.
    gc.collect()
    [connection] = [o for o in gc.get_objects()
                    if isinstance(o, transport.TransportWSConnection) and "stalled" in o.operations]
    peer_reads = asyncio.Event()
    send = connection.send

    async def stalled_send(message: dict) -> None:
        if message["type"] == "websocket.send":
            await peer_reads.wait()
        await send(message)

    connection.send = stalled_send
    # One event in flight and QUEUE_SIZE waiting fill the socket's outbox; the next one drops its subscription.
    for n in range(QUEUE_SIZE + 2):
        await broker.publish([points_changed(broker, n)])
        assert await reading.next_data() == {"memberEvents": {"kind": "POINTS_CHANGED"}}
    await until(lambda: broker.subscriber_count == 1, "the stalled subscription dropped")

    peer_reads.set()
    for _ in range(QUEUE_SIZE + 1):
        assert await stalled.next_data() == {"memberEvents": {"kind": "POINTS_CHANGED"}}
    await overflow_then_complete(stalled, "stalled")


# The socket's end ------------------------------------------------------------------------------

async def test_the_socket_closes_with_4403_when_its_token_expires(server, app, monkeypatch):
    broker = app.state.services.broker
    await enroll(server.api, "alice")
    issued = int(time.time())
    token = server.api.token(Role.MEMBER, "alice", ttl=3600, now=issued)
    # The handler's clock reads the hour as nearly over: 1.5 s after connection_init the token expires.
    monkeypatch.setattr(transport, "time", types.SimpleNamespace(time=lambda: issued + 3600 - 1.5))
    socket = await server.socket(token)
    await subscribe(socket, "1", MEMBER_EVENTS)
    await until(lambda: broker.subscriber_count == 1, "the subscription registered")
    assert await closed_with(socket) == (4403, "Token expired; reconnect with a fresh token")
    await until(lambda: broker.subscriber_count == 0, "the subscription ended with the socket")


async def test_closing_the_socket_ends_every_operation_and_leaves_no_task(server, app):
    broker = app.state.services.broker
    await enroll(server.api, "alice")
    tasks_before = set(asyncio.all_tasks())
    socket = await member_socket(server)
    tasks_open = set(asyncio.all_tasks())  # the socket's own, on both ends
    await subscribe(socket, "1", MEMBER_EVENTS)
    await subscribe(socket, "2", TASK_PROGRESS)
    await subscribe(socket, "3", MEMBER_EVENTS)
    await until(lambda: broker.subscriber_count == 3, "three subscriptions registered")
    await until(lambda: not (set(asyncio.all_tasks()) - tasks_open), "no task while they wait")

    await socket.close()
    await until(lambda: broker.subscriber_count == 0 and broker.subscribed_members == 0, "every subscriber forgotten")
    await until(lambda: not (set(asyncio.all_tasks()) - tasks_before), "every task of the socket ended")


class TestLegacyProtocol:
    @pytest.fixture
    def settings(self, settings):
        return replace(settings, legacy_graphql_ws=True)

    async def test_graphql_ws_is_still_served_when_enabled(self, server, app):
        await enroll(server.api, "alice")
        socket = await raw_socket(server, subprotocol="graphql-ws")
        assert socket.connection.subprotocol == "graphql-ws"
        token = server.api.token(Role.MEMBER, "alice")
        await socket.send({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        assert (await socket.receive())["type"] == "connection_ack"
        # Strawberry's handler streams the subscription field itself: the member's events still arrive.
        await socket.send({"id": "1", "type": "start", "payload": {"query": MEMBER_EVENTS}})
        broker = app.state.services.broker
        await until(lambda: broker.subscriber_count == 1, "the subscription registered")
        await broker.publish([points_changed(broker, 1)])
        while (message := await socket.receive())["type"] == "ka":
            pass
        assert message == {"id": "1", "type": "data", "payload": {"data": {"memberEvents": {"kind": "POINTS_CHANGED"}}}}
