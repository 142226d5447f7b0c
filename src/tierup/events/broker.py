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
- An idle subscriber costs next to nothing (tens of thousands sit on one process): its queue is
  a deque created when an event arrives and released when it is read empty.
- Broker lag (tierup_broker_lag_seconds): each event is timed once per process on arrival, from the
  moment it was published; over Redis the publication time travels in the message (wall clocks, so
  servers on several hosts need synchronised clocks). One observation per event and process, never
  per subscriber.
- A subscriber is anything with `key` (program id, member id), `offer(event) -> bool` (take it
  without waiting; False when full), `overflow()` (dropped for falling behind) and `subscriptions`
  (how many it serves): a `Subscriber` mailbox read by one consumer, or the WebSocket handler's one
  fan-out per member, which resolves each event once for all of that member's sockets
  (api.websocket.LiveMember).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from dataclasses import asdict, dataclass, fields
from datetime import datetime

from ..observability import BROKER_LAG

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

    def to_json(self, published: float | None = None) -> str:
        """The event as a broker message; `published` (epoch seconds) rides along for the lag metric."""
        data = {**asdict(self), "at": self.at.isoformat()}
        if published is not None:
            data["published"] = published
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> "Event":
        return cls.from_message(json.loads(text))

    @classmethod
    def from_message(cls, data: dict) -> "Event":
        """The event in a decoded message; keys it does not know (such as `published`) are left out, so
        a message from a newer process still reads."""
        return cls(**{name: data[name] for name in _FIELDS if name in data}, at=datetime.fromisoformat(data["at"]))


_FIELDS = tuple(field.name for field in fields(Event) if field.name != "at")


class Overflow(Exception):
    """The subscriber fell QUEUE_SIZE events behind and was dropped; resubscribe and refetch."""

    def __init__(self) -> None:
        super().__init__(f"more than {QUEUE_SIZE} events were waiting for this subscription; "
                         "resubscribe and refetch the member")


class Subscriber:
    """One subscription's mailbox: at most QUEUE_SIZE events waiting, read by one consumer.

    Tens of thousands of these sit idle at once, so an idle one holds nothing but its key: the
    deque exists only while events wait, and the future only while its reader waits. Use it as
    `async with broker.subscribe(program_id, member_id) as subscriber: async for event in subscriber`.
    """

    __slots__ = ("key", "overflowed", "_broker", "_waiting", "_waiter")
    subscriptions = 1

    def __init__(self, broker: "Broker", key: tuple[int, int]):
        self.key = key
        self.overflowed = False
        self._broker = broker
        self._waiting: deque[Event] | None = None
        self._waiter: asyncio.Future | None = None

    async def __aenter__(self) -> "Subscriber":
        self._broker.add(self)
        return self

    async def __aexit__(self, *exc_info) -> None:
        self._broker.remove(self)

    def offer(self, event: Event) -> bool:
        """Take an event without waiting; False when QUEUE_SIZE events are already waiting."""
        if self._waiting is None:
            self._waiting = deque()
        elif len(self._waiting) >= QUEUE_SIZE:
            return False
        self._waiting.append(event)
        self._wake()
        return True

    def overflow(self) -> None:
        """End the stream: the events still waiting are not delivered, the reader gets Overflow."""
        self.overflowed = True
        self._waiting = None
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> "Subscriber":
        return self

    async def __anext__(self) -> Event:
        while not self._waiting and not self.overflowed:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self.get_nowait()

    # Reading without waiting, as on an asyncio.Queue (`subscriber.queue.get_nowait()` in tests and tools).
    @property
    def queue(self) -> "Subscriber":
        return self

    def get_nowait(self) -> Event:
        if self.overflowed:
            raise Overflow()
        if not self._waiting:
            raise asyncio.QueueEmpty
        event = self._waiting.popleft()
        if not self._waiting:
            self._waiting = None  # an idle subscriber keeps no buffer
        return event

    def qsize(self) -> int:
        return len(self._waiting) if self._waiting else 0

    def empty(self) -> bool:
        return not self._waiting


class Broker:
    """Local fan-out; subclasses decide how an event reaches `deliver` in every process."""

    def __init__(self) -> None:
        self._subscribers: dict[tuple[int, int], set] = {}

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def publish(self, events: list[Event]) -> None:
        raise NotImplementedError

    def subscribe(self, program_id: int, member_id: int) -> Subscriber:
        """A subscriber of one member's events, registered from `async with` until its end."""
        return Subscriber(self, (program_id, member_id))

    def add(self, subscriber) -> None:
        """Deliver the events of `subscriber.key` to it from now on, until `remove`."""
        self._subscribers.setdefault(subscriber.key, set()).add(subscriber)

    def remove(self, subscriber) -> None:
        group = self._subscribers.get(subscriber.key)
        if group is not None:
            group.discard(subscriber)
            if not group:
                del self._subscribers[subscriber.key]

    def deliver(self, event: Event, published: float | None = None) -> None:
        """Hand an event to this process's subscribers of its member, never waiting. `published`: when it
        was published (time.time()), for the lag metric; None for a message that did not say."""
        if published is not None:
            BROKER_LAG.observe(max(0.0, time.time() - published))  # clocks of two hosts may disagree
        for subscriber in list(self._subscribers.get((event.program_id, event.member_id), ())):
            if not subscriber.offer(event):
                self._drop(subscriber)

    def _drop(self, subscriber) -> None:
        self.remove(subscriber)
        subscriber.overflow()
        log.warning("dropped a slow subscriber of member %s", subscriber.key[1])

    @property
    def subscriber_count(self) -> int:
        """Subscriptions served on this process."""
        return sum(subscriber.subscriptions for group in self._subscribers.values() for subscriber in group)

    @property
    def subscribed_members(self) -> int:
        return len(self._subscribers)


class MemoryBroker(Broker):
    """One process: publishing is delivering."""

    async def publish(self, events: list[Event]) -> None:
        published = time.time()
        for event in events:
            self.deliver(event, published)


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
                    data = json.loads(message["data"])
                    event, published = Event.from_message(data), data.get("published")
                    if not isinstance(published, (int, float)) or isinstance(published, bool):
                        published = None  # a process from before the lag metric, or a stray message
                except (ValueError, TypeError, KeyError, AttributeError):
                    log.warning("ignored a malformed event on %s", self.channel)
                else:
                    try:
                        self.deliver(event, published)
                    except Exception:  # one bad subscriber must not stop this process's events
                        log.exception("delivering an event from %s failed", self.channel)

    async def publish(self, events: list[Event]) -> None:
        if not events:
            return
        published = time.time()
        async with self._redis.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.publish(self.channel, event.to_json(published))
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
