"""What a live socket keeps on the server: while it waits, no task, no loaders and no buffers; once
closed, no task and no broker entry; and the sockets of one member share the work of each event.
(Structural checks; the bytes are measured by bench/subscribers_bench.py.)"""

import asyncio
import gc
from collections import deque
from datetime import datetime, timezone

from helpers import enroll, order
from tierup.api.context import Context
from tierup.api.subscriptions import _ViewerLookup
from tierup.auth import Role
from tierup.events import Event
from tierup.store.db import count_statements

from test_live_progress import MEMBER_EVENTS, TASK_PROGRESS


async def _until(condition, what: str, timeout: float = 10) -> None:
    """Wait for the server to get there; the timeout only bounds a failing test."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"still waiting for: {what}"
        await asyncio.sleep(0.02)


def _socket_contexts(services, sub: str) -> list[Context]:
    """The live socket contexts of this app (an earlier test's may linger in a recorded warning)."""
    gc.collect()
    return [o for o in gc.get_objects()
            if isinstance(o, Context) and o.services is services and o.connection_params is not None
            and o.principal is not None and o.principal.sub == sub]


async def test_closed_sockets_leave_no_task_and_no_subscriber(server, app):
    api, broker = server.api, app.state.services.broker
    await enroll(api, "alice")
    tasks_before = set(asyncio.all_tasks())
    sockets = [await server.socket(api.token(Role.MEMBER, "alice")) for _ in range(5)]
    for socket in sockets:
        await socket.subscribe(MEMBER_EVENTS)
        await socket.subscribe(TASK_PROGRESS)
    await _until(lambda: broker.subscriber_count == 10, "ten subscriptions registered")
    assert broker.subscribed_members == 1

    await order(api, "A-1", "alice", "100", "2026-01-05T09:00:00+08:00")
    for socket in sockets:
        received = {next(iter(await socket.next_data(timeout=5))) for _ in range(2)}
        assert received <= {"memberEvents", "taskProgress"}

    for socket in sockets:
        await socket.close()
    await _until(lambda: broker.subscriber_count == 0, "every subscriber forgotten")
    assert broker.subscribed_members == 0
    await _until(lambda: not (set(asyncio.all_tasks()) - tasks_before), "every socket's tasks ended")


async def test_a_completed_subscription_leaves_no_task_on_an_open_socket(server, app):
    api, broker = server.api, app.state.services.broker
    await enroll(api, "alice")
    socket = await server.socket(api.token(Role.MEMBER, "alice"))
    tasks_before = set(asyncio.all_tasks())
    operation = await socket.subscribe(MEMBER_EVENTS)
    await _until(lambda: broker.subscriber_count == 1, "the subscription registered")
    await _until(lambda: not (set(asyncio.all_tasks()) - tasks_before), "the start's task ended")  # live: no task

    await socket.send({"id": operation, "type": "complete"})
    await _until(lambda: broker.subscriber_count == 0 and broker.subscribed_members == 0, "the subscriber forgotten")
    assert not (set(asyncio.all_tasks()) - tasks_before)


async def test_a_waiting_subscription_keeps_no_loaders_and_no_buffer(server, app):
    api, broker = server.api, app.state.services.broker
    await enroll(api, "alice")
    socket = await server.socket(api.token(Role.MEMBER, "alice"))
    await socket.subscribe("subscription { memberEvents { kind member { points { balance } } } }")
    await _until(lambda: broker.subscriber_count == 1, "the subscription registered")

    def waiting_light() -> bool:
        [context] = _socket_contexts(app.state.services, "alice")
        [subscriber] = [s for group in broker._subscribers.values() for s in group]
        # Its one future is how the waiting reader is woken; no event buffer while nothing waits.
        return context._loaders is None and not any(isinstance(o, deque) for o in gc.get_referents(subscriber))

    assert waiting_light()  # after looking the member up
    await order(api, "A-1", "alice", "250", "2026-01-05T09:00:00+08:00")
    for _ in range(4):  # TASK_COMPLETED, TIER_CHANGED, BENEFIT_UNLOCKED, POINTS_CHANGED, each with fresh loaders
        event = (await socket.next_data(timeout=5))["memberEvents"]
    assert event["member"]["points"]["balance"] == 100 + 250 + 50
    await _until(waiting_light, "the events' loaders and buffer let go")


async def test_sockets_of_one_member_subscribed_alike_resolve_each_event_once(server, app, db):
    api, broker = server.api, app.state.services.broker
    await enroll(api, "alice")
    query = "subscription { memberEvents { message member { points { balance } } } }"
    sockets = [await server.socket(api.token(Role.MEMBER, "alice"))]
    await sockets[0].subscribe(query)
    await _until(lambda: broker.subscriber_count == 1, "the subscription registered")
    [(program_id, member_id)] = broker._subscribers

    async def statements_for_one_event(n: int) -> int:
        before = db.statements_total
        await broker.publish([Event(program_id, member_id, "POINTS_CHANGED", f"#{n}", datetime.now(timezone.utc))])
        for socket in sockets:
            assert (await socket.next_data())["memberEvents"] == {
                "message": f"#{n}", "member": {"points": {"balance": 100}}}
        return db.statements_total - before

    one_socket = await statements_for_one_event(1)
    for _ in range(9):
        sockets.append(await server.socket(api.token(Role.MEMBER, "alice")))
        await sockets[-1].subscribe(query)
    await _until(lambda: broker.subscriber_count == 10, "ten subscriptions registered")
    assert one_socket > 0 and await statements_for_one_event(2) == one_socket


async def test_subscriptions_arriving_together_are_looked_up_in_one_query(db, api):
    for name in ("alice", "bob", "carol"):
        await enroll(api, name)
    lookup = _ViewerLookup(db)
    wanted = [("classic", name) for name in ("alice", "bob", "carol", "nobody") for _ in range(25)]
    with count_statements() as statements:
        found = await asyncio.gather(*(lookup.find(code, sub) for code, sub in wanted))
    assert statements[0] == 1
    assert len({f for f in found[:25]}) == 1 and found[0] is not None
    assert len({f for f in found[:75]}) == 3
    assert found[75:] == [None] * 25
    await asyncio.sleep(0)
    assert lookup._worker is None and not lookup._waiting  # no task kept once nothing waits
