"""Fan-out of member events to subscribers, in one process (memory) or across processes (Redis).

Design, after what other GraphQL servers learned the hard way:
- Local fan-out lives in dicts of sets keyed by (program, member) and shrinks as subscribers
  leave: no map grows with subscribe/unsubscribe cycles.
- Redis: ONE pub/sub connection per process on ONE channel; every process receives every event
  and delivers to its own local subscribers. No per-subscription Redis connection, no channel
  left open after the last subscriber leaves.
- Each subscriber has a bounded queue. Publishing never waits: when a subscriber's queue is full,
  that subscriber is dropped — its stream ends with an Overflow error telling the client to
  resubscribe and refetch — and every other subscriber is unaffected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import AsyncIterator

log = logging.getLogger("tierup.events")

QUEUE_SIZE = 100
CHANNEL = "tierup:events"


@dataclass(frozen=True)
class Event:
    """Something that happened to one member, after it was committed.

    kind: a MemberEventKind (POINTS_CHANGED, TIER_CHANGED, …) or TASK_PROGRESS.
    For TASK_PROGRESS, `task` and `previous_status` say which task moved from where.
    """

    program_id: int
    member_id: int
    kind: str
    message: str
    at: datetime
    task: str | None = None
    previous_status: str | None = None

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "at": self.at.isoformat()})

    @classmethod
    def from_json(cls, text: str) -> "Event":
        data = json.loads(text)
        return cls(**{**data, "at": datetime.fromisoformat(data["at"])})


class Overflow(Exception):
    """The subscriber fell QUEUE_SIZE events behind and was dropped; resubscribe and refetch."""


@dataclass(eq=False)
class Subscriber:
    key: tuple[int, int]
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    overflowed: bool = False

    async def events(self) -> AsyncIterator[Event]:
        while True:
            event = await self.queue.get()
            if event is None:
                raise Overflow(f"more than {QUEUE_SIZE} events were waiting for this subscription; "
                               "resubscribe and refetch the member")
            yield event


class Broker:
    """Local fan-out; subclasses decide how an event reaches `deliver` in every process."""

    def __init__(self) -> None:
        self._subscribers: dict[tuple[int, int], set[Subscriber]] = {}

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def publish(self, events: list[Event]) -> None:
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def subscribe(self, program_id: int, member_id: int) -> AsyncIterator[Subscriber]:
        subscriber = Subscriber((program_id, member_id))
        self._subscribers.setdefault(subscriber.key, set()).add(subscriber)
        try:
            yield subscriber
        finally:
            self._forget(subscriber)

    def _forget(self, subscriber: Subscriber) -> None:
        group = self._subscribers.get(subscriber.key)
        if group is not None:
            group.discard(subscriber)
            if not group:
                del self._subscribers[subscriber.key]

    def deliver(self, event: Event) -> None:
        """Hand an event to this process's subscribers of its member, never waiting."""
        for subscriber in list(self._subscribers.get((event.program_id, event.member_id), ())):
            try:
                subscriber.queue.put_nowait(event)
            except asyncio.QueueFull:
                self._drop(subscriber)

    def _drop(self, subscriber: Subscriber) -> None:
        subscriber.overflowed = True
        self._forget(subscriber)
        # Make room for the end-of-stream marker: the events behind it are not delivered anyway.
        while not subscriber.queue.empty():
            subscriber.queue.get_nowait()
        subscriber.queue.put_nowait(None)
        log.warning("dropped a slow subscriber of member %s", subscriber.key[1])

    @property
    def subscriber_count(self) -> int:
        return sum(len(group) for group in self._subscribers.values())

    @property
    def subscribed_members(self) -> int:
        return len(self._subscribers)


class MemoryBroker(Broker):
    """One process: publishing is delivering."""

    async def publish(self, events: list[Event]) -> None:
        for event in events:
            self.deliver(event)


class RedisBroker(Broker):
    """Several processes: publish to one Redis channel; each process's reader delivers locally."""

    def __init__(self, url: str, channel: str = CHANNEL):
        super().__init__()
        import redis.asyncio as redis

        self.url = url
        self.channel = channel
        self._redis = redis.from_url(url)
        self._pubsub = None
        self._reader: asyncio.Task | None = None

    async def start(self) -> None:
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(self.channel)
        self._reader = asyncio.create_task(self._read(), name="tierup-redis-events")

    async def _read(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:  # a dropped connection: log, back off, and let redis-py reconnect
                log.exception("reading events from Redis failed; retrying")
                await asyncio.sleep(1)
                continue
            if message is not None and message.get("type") == "message":
                try:
                    self.deliver(Event.from_json(message["data"]))
                except (ValueError, TypeError, KeyError):
                    log.warning("ignored a malformed event on %s", self.channel)

    async def publish(self, events: list[Event]) -> None:
        if not events:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.publish(self.channel, event.to_json())
            await pipe.execute()

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._pubsub is not None:
            await self._pubsub.aclose()
        await self._redis.aclose()


def create_broker(url: str) -> Broker:
    if url.startswith("memory:"):
        return MemoryBroker()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisBroker(url)
    raise ValueError(f"TIERUP_BROKER_URL must be memory:// or redis://…, got {url!r}")
