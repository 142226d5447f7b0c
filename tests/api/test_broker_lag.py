"""Broker lag as an operator reads it: tierup_broker_lag_seconds times each live event once per process,
from its publication to its arrival in that process's fan-out, however many sockets subscribe to the
member; through Redis the publication time travels in the message (TIERUP_TEST_REDIS_URL)."""

import asyncio
import json
import os
import time
from datetime import datetime, timezone

import pytest
from prometheus_client import REGISTRY

from helpers import enroll, order
from test_jobs import member_id
from test_metrics import grew, scrape
from tierup.events import Event, RedisBroker

REDIS_URL = os.environ.get("TIERUP_TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="set TIERUP_TEST_REDIS_URL to run the Redis tests")

LAG = "tierup_broker_lag_seconds"
AT = datetime(2026, 1, 5, 1, 0, tzinfo=timezone.utc)


def lag(sample: str = "count", le: str | None = None) -> float:
    return REGISTRY.get_sample_value(f"{LAG}_{sample}", {"le": le} if le else None) or 0.0


def drain(subscriber) -> list[Event]:
    events = []
    while not subscriber.empty():
        events.append(subscriber.get_nowait())
    return events


async def test_an_orders_events_are_timed_once_each_however_many_subscribe(app, api, program):
    await enroll(api, "alice")
    alice = await member_id(api, "alice")
    broker = app.state.services.broker
    before = await scrape(api.client)
    async with broker.subscribe(program.id, alice) as phone, broker.subscribe(program.id, alice) as tablet:
        await order(api, "A-1", "alice", "120", "2026-01-05T09:00:00+08:00")
        events = drain(phone)
        assert len(drain(tablet)) == len(events) >= 2  # points changed, first order completed, …
    after = await scrape(api.client)
    assert grew(before, after, (f"{LAG}_count",)) == len(events)
    assert len([key for key in after if key[0] == f"{LAG}_bucket"]) > 10  # a histogram, on /metrics


@pytest.fixture
async def two_processes():
    """Two Redis brokers on a channel of their own, as two server processes would hold them."""
    import redis.asyncio as redis

    channel = f"tierup:test-lag:{os.getpid()}"
    brokers = [RedisBroker(REDIS_URL, channel=channel), RedisBroker(REDIS_URL, channel=channel)]
    probe = redis.from_url(REDIS_URL)
    try:
        for broker in brokers:
            await broker.start()
        while (await probe.pubsub_numsub(channel))[0][1] < 2:  # both readers subscribed
            await asyncio.sleep(0.01)
        yield brokers, probe, channel
    finally:
        for broker in brokers:
            await broker.close()
        await probe.aclose()


async def next_events(subscriber, count: int) -> list[Event]:
    return [await asyncio.wait_for(anext(subscriber), 10) for _ in range(count)]


def event(member: int, message: str) -> Event:
    return Event(program_id=1, member_id=member, kind="POINTS_CHANGED", message=message, at=AT)


@needs_redis
async def test_each_process_times_each_event_it_receives_once(two_processes):
    (first, second), _, _ = two_processes
    before = lag()
    async with first.subscribe(1, 7) as here, second.subscribe(1, 7) as there, second.subscribe(1, 7) as also_there:
        await first.publish([event(7, "#1"), event(7, "#2"), event(8, "someone else's")])
        for subscriber in (here, there, also_there):
            assert [e.message for e in await next_events(subscriber, 2)] == ["#1", "#2"]
        await second.publish([event(7, "#3")])  # after the two above on the one channel: all three arrived
        for subscriber in (here, there, also_there):
            assert [e.message for e in await next_events(subscriber, 1)] == ["#3"]
    assert lag() - before == 2 * 4  # four events, two processes; not once per subscriber


@needs_redis
async def test_the_publication_time_travels_in_the_message(two_processes):
    brokers, probe, channel = two_processes
    sum_before, fast_before, count_before = lag("sum"), lag("bucket", "2.5"), lag()
    late = {**json.loads(event(7, "late").to_json()), "published": time.time() - 5}
    older = json.loads(event(7, "from a process before the metric").to_json())  # no publication time
    newer = {**json.loads(event(7, "with a field this process does not know").to_json(time.time())), "priority": "high"}
    async with brokers[0].subscribe(1, 7) as here, brokers[1].subscribe(1, 7) as there:
        for message in (late, older, newer):
            await probe.publish(channel, json.dumps(message))
        for subscriber in (here, there):
            assert [e.message for e in await next_events(subscriber, 3)] == [
                "late", "from a process before the metric", "with a field this process does not know"]
    assert lag() - count_before == 2 * 2  # the late one and the newer one, in each of the two processes
    assert lag("sum") - sum_before >= 2 * 5
    assert lag("bucket", "2.5") - fast_before <= 2  # never the late ones, published 5 s before
