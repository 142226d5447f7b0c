"""The broker: bounded queues, overflow drops only the slow subscriber, maps shrink back, idle subscribers are light."""

import asyncio
import gc
from collections import deque
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
        assert [alice.get_nowait().message for _ in range(2)] == ["#1", "#3"]
        assert bob.get_nowait().message == "#2"
        assert bob.empty()
        with pytest.raises(asyncio.QueueEmpty):
            bob.get_nowait()


async def test_a_reader_waits_for_the_next_event():
    broker = MemoryBroker()
    async with broker.subscribe(1, 10) as alice:
        reader = asyncio.create_task(anext(aiter(alice)))
        await asyncio.sleep(0)
        assert not reader.done()
        await broker.publish([event(10, 1)])
        assert (await reader).message == "#1"


async def test_a_slow_subscriber_is_dropped_and_the_rest_keep_up():
    broker = MemoryBroker()
    async with broker.subscribe(1, 10) as slow, broker.subscribe(1, 10) as fast:
        for n in range(QUEUE_SIZE + 1):
            await broker.publish([event(10, n)])
            if n < QUEUE_SIZE:
                fast.get_nowait()  # the fast one reads as it goes
        assert slow.overflowed and not fast.overflowed
        with pytest.raises(Overflow):
            async for _ in slow:
                pass
        assert fast.get_nowait().message == f"#{QUEUE_SIZE}"
        assert broker.subscriber_count == 1


async def test_a_waiting_reader_hears_of_its_overflow_at_once():
    broker = MemoryBroker()
    async with broker.subscribe(1, 10) as slow:
        reader = asyncio.create_task(anext(aiter(slow)))
        await asyncio.sleep(0)
        slow.overflow()
        with pytest.raises(Overflow, match="resubscribe and refetch"):
            await reader


async def test_maps_shrink_after_subscribers_leave():
    broker = MemoryBroker()
    for n in range(1000):
        async with broker.subscribe(1, n % 13):
            pass
    assert broker.subscriber_count == 0 and broker.subscribed_members == 0


async def test_an_idle_subscriber_holds_no_buffer():
    """Tens of thousands wait at once: the queue exists only while events wait, and goes once they are read."""
    broker = MemoryBroker()
    async with broker.subscribe(1, 10) as alice:
        assert not any(isinstance(o, deque) for o in gc.get_referents(alice))
        await broker.publish([event(10, 1), event(10, 2)])
        assert alice.qsize() == 2
        alice.get_nowait(), alice.get_nowait()
        assert not any(isinstance(o, deque) for o in gc.get_referents(alice))


async def test_a_cancelled_reader_leaves_nothing_behind():
    broker = MemoryBroker()

    async def listen():
        async with broker.subscribe(1, 10) as subscriber:
            async for _ in subscriber:
                pass

    listener = asyncio.create_task(listen())
    await asyncio.sleep(0)
    assert broker.subscriber_count == 1
    listener.cancel()
    with pytest.raises(asyncio.CancelledError):
        await listener
    assert broker.subscriber_count == 0 and broker.subscribed_members == 0
    await broker.publish([event(10, 1)])  # nobody to deliver to, nothing kept


async def test_the_queue_view_reads_like_an_asyncio_queue():
    broker = MemoryBroker()
    async with broker.subscribe(1, 10) as alice:
        await broker.publish([event(10, 1)])
        assert not alice.queue.empty()
        assert alice.queue.get_nowait().message == "#1"
        assert alice.queue.empty()


def test_events_survive_the_wire():
    original = Event(1, 2, "TASK_PROGRESS", "x", AT, task="FIRST_ORDER", previous_status="AVAILABLE")
    assert Event.from_json(original.to_json()) == original
