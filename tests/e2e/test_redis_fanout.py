"""Several server processes share live events through Redis (TIERUP_TEST_REDIS_URL)."""

import asyncio
import os

import httpx
import pytest

from helpers import SECRET, enroll, order
from servers import start_server, stop, wait_ready
from wsclient import GraphQLSocket, free_port
from test_live_progress import MEMBER_EVENTS, TASK_PROGRESS
from test_websocket_protocol import until
from tierup.app import create_app
from tierup.auth import Role, mint_token
from tierup.events import RedisBroker

REDIS_URL = os.environ.get("TIERUP_TEST_REDIS_URL")
pytestmark = pytest.mark.skipif(not REDIS_URL, reason="set TIERUP_TEST_REDIS_URL to run the Redis tests")

ENROLL = 'mutation($id: String!) { enrollMember(input: {externalId: $id}) { userErrors { code } } }'
ORDER = """mutation($id: String!) { recordOrder(input: {externalId: $id, memberExternalId: "alice", amount: "100",
  paidAt: "2026-01-05T09:00:00+08:00"}) { userErrors { code } } }"""


@pytest.fixture
async def two_servers(database_url, program, tmp_path):
    ports = [free_port(), free_port()]
    processes = [start_server(database_url, port, tmp_path, TIERUP_BROKER_URL=REDIS_URL) for port in ports]
    try:
        for port, process in zip(ports, processes):
            await wait_ready(port, process, tmp_path)
        yield ports
    finally:
        stop(processes)


async def test_an_order_on_one_process_reaches_a_subscriber_on_the_other(two_servers):
    first, second = two_servers
    service = {"Authorization": "Bearer " + mint_token(SECRET, sub="shop", program="classic", role=Role.SERVICE)}
    async with httpx.AsyncClient() as client:
        await client.post(f"http://127.0.0.1:{second}/graphql", headers=service,
                          json={"query": ENROLL, "variables": {"id": "alice"}})
        socket = await GraphQLSocket.open(f"ws://127.0.0.1:{first}/graphql", {
            "Authorization": "Bearer " + mint_token(SECRET, sub="alice", program="classic", role=Role.MEMBER)})
        try:
            await socket.ack()
            await socket.subscribe(TASK_PROGRESS)
            await asyncio.sleep(0.3)
            response = await client.post(f"http://127.0.0.1:{second}/graphql", headers=service,
                                         json={"query": ORDER, "variables": {"id": "A-1"}})
            assert response.json()["data"]["recordOrder"]["userErrors"] == []
            event = await socket.next_data(timeout=2)
            assert event["taskProgress"]["progress"]["task"]["code"] == "FIRST_ORDER"
            assert event["taskProgress"]["progress"]["status"] == "COMPLETED"
        finally:
            await socket.close()


async def test_subscribe_cycles_leave_no_state_behind():
    """Hundreds of subscribe/unsubscribe cycles: local maps empty again, one Redis subscription per process,
    no task left behind."""
    import redis.asyncio as redis

    from tierup.events import RedisBroker

    probe = redis.from_url(REDIS_URL)
    channel = f"tierup:test:{os.getpid()}"
    broker = RedisBroker(REDIS_URL, channel=channel)
    await broker.start()
    try:
        assert (await probe.pubsub_numsub(channel))[0][1] == 1
        tasks = asyncio.all_tasks()  # the broker's one reader among them
        for member in range(300):
            async with broker.subscribe(1, member % 7):
                pass
        assert broker.subscriber_count == 0 and broker.subscribed_members == 0
        assert (await probe.pubsub_numsub(channel))[0][1] == 1
        assert asyncio.all_tasks() == tasks  # no task per subscription, none left behind
    finally:
        await broker.close()
        await probe.aclose()


@pytest.fixture
async def app(settings, db, clock, program):
    """The app on a Redis broker of its own channel (the live `server` fixture serves it)."""
    return create_app(settings, db=db, clock=clock, broker=RedisBroker(REDIS_URL, channel=f"tierup:test:{os.getpid()}"))


async def test_sockets_closing_leave_no_subscriber_task_or_channel_behind(server, app):
    import redis.asyncio as redis

    broker = app.state.services.broker
    await enroll(server.api, "alice")
    tasks_before = set(asyncio.all_tasks())  # the broker's one reader among them
    sockets = [await server.socket(server.api.token(Role.MEMBER, "alice")) for _ in range(3)]
    for socket in sockets:
        await socket.subscribe(MEMBER_EVENTS)
        await socket.subscribe(TASK_PROGRESS)
    await until(lambda: broker.subscriber_count == 6, "six subscriptions registered")
    await order(server.api, "A-1", "alice", "100", "2026-01-05T09:00:00+08:00")  # back through Redis
    for socket in sockets:
        assert {next(iter(await socket.next_data())) for _ in range(2)} <= {"memberEvents", "taskProgress"}

    for socket in sockets:
        await socket.close()
    await until(lambda: broker.subscriber_count == 0 and broker.subscribed_members == 0, "every subscriber forgotten")
    await until(lambda: not (set(asyncio.all_tasks()) - tasks_before), "every socket's tasks ended")
    probe = redis.from_url(REDIS_URL)
    try:
        assert (await probe.pubsub_numsub(broker.channel))[0][1] == 1  # the process's one subscription, still
    finally:
        await probe.aclose()
