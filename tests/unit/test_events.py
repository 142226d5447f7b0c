"""The broker: bounded queues, overflow drops only the slow subscriber, maps shrink back."""

from datetime import datetime, timezone

import pytest

from tierup.events import Event, MemoryBroker, Overflow
from tierup.events.broker import QUEUE_SIZE

AT = datetime(2026, 1, 1, tzinfo=timezone.utc)


def event(member: int, n: int = 0) -> Event:
    return Event(program_id=1, member_id=member, kind="POINTS_CHANGED", message=f"#{n}", at=AT)


async def test_events_reach_only_their_member():
    broker = MemoryBroker()
    async with broker.subscribe(1, 10) as alice, broker.subscribe(1, 20) as bob:
        await broker.publish([event(10, 1), event(20, 2), event(10, 3)])
        assert [alice.queue.get_nowait().message for _ in range(2)] == ["#1", "#3"]
        assert bob.queue.get_nowait().message == "#2"
        assert bob.queue.empty()


async def test_a_slow_subscriber_is_dropped_and_the_rest_keep_up():
    broker = MemoryBroker()
    async with broker.subscribe(1, 10) as slow, broker.subscribe(1, 10) as fast:
        for n in range(QUEUE_SIZE + 1):
            await broker.publish([event(10, n)])
            if n < QUEUE_SIZE:
                fast.queue.get_nowait()  # the fast one reads as it goes
        assert slow.overflowed and not fast.overflowed
        with pytest.raises(Overflow):
            async for _ in slow.events():
                pass
        assert fast.queue.get_nowait().message == f"#{QUEUE_SIZE}"
        assert broker.subscriber_count == 1


async def test_maps_shrink_after_subscribers_leave():
    broker = MemoryBroker()
    for n in range(1000):
        async with broker.subscribe(1, n % 13):
            pass
    assert broker.subscriber_count == 0 and broker.subscribed_members == 0


def test_events_survive_the_wire():
    original = Event(1, 2, "TASK_PROGRESS", "x", AT, task="FIRST_ORDER", previous_status="AVAILABLE")
    assert Event.from_json(original.to_json()) == original
