"""Live updates over WebSocket: the graphql-transport-ws protocol
(https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md), served lean.

Tens of thousands of sockets sit open at once, nearly all idle, so what one socket keeps decides
how many a process can hold. An open socket keeps its ASGI receive and send, its Context, a dict
of operations and at most one timer (the connection_init deadline, then the token's expiry).

A query or mutation runs in a task of its own through the schema (`execute`, as over HTTP). A
subscription runs in a task only while it starts: `subscribe` checks it as any operation (parse,
validation, limits, permissions) and its field, given a FeedClaim as root value, settles on a feed
instead of streaming (api.subscriptions). From then on the subscription is one entry in its
member's fan-out (LiveMember), the broker's one subscriber for all of that member's sockets on
this process. For each event the fan-out works out the answer once per distinct operation (feed,
document, variables): the field's value, then the document executed on it through the schema, so
the extensions (limits, error codes, masking) apply as they do over HTTP; and it posts that answer
to every socket subscribed to it. Ten sockets of one member cost one resolution per event, and a
waiting subscription keeps no task, stream or executor: an entry in two dicts.

No keep-alive messages: the protocol has none (its ping is the client's to send), and uvicorn
already pings every socket at the WebSocket level (ws_ping_interval, 20 s), which is what finds
peers that vanished.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections import deque
from collections.abc import Coroutine
from contextlib import aclosing, suppress
from copy import copy
from functools import lru_cache
from types import NoneType
from typing import TYPE_CHECKING, Any, NamedTuple

import strawberry
from graphql import GraphQLError, parse
from starlette.websockets import WebSocket
from strawberry.exceptions import ConnectionRejectionError
from strawberry.schema.exceptions import CannotGetOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UnsetType
from strawberry.utils.operation import get_operation_type

from ..events.broker import QUEUE_SIZE, Broker, Event, Overflow
from ..observability import SUBSCRIPTIONS
from .context import NOW_HEADER, Context
from .errors import BAD_USER_INPUT
from .subscriptions import Feed, FeedClaim

if TYPE_CHECKING:
    from ..app import TierupGraphQL

log = logging.getLogger("tierup.ws")

TOKEN_EXPIRED = "Token expired; reconnect with a fresh token"


def picks_graphql_transport_ws(scope: dict, protocols) -> bool:
    """Whether the handshake settles on graphql-transport-ws: the client's first offered subprotocol
    that the server speaks, as Strawberry picks for the protocols it still serves."""
    offered = (p for p in scope.get("subprotocols") or () if p in protocols)
    return next(offered, None) == GRAPHQL_TRANSPORT_WS_PROTOCOL


def serve_graphql_transport_ws(view: "TierupGraphQL", scope, receive, send) -> Coroutine[Any, Any, None]:
    """Accept the handshake and serve the socket until either side closes it: one coroutine, the only
    frame of ours a waiting socket keeps."""
    return TransportWSConnection(view, receive, send).serve(scope)


class TransportWSConnection:
    """One socket. `operations` maps each operation's id to what runs it: a task (a query, a mutation,
    a subscription starting) or, once a subscription is live, its LiveOperation."""

    __slots__ = ("view", "context", "receive", "send", "operations", "acknowledged", "closed", "timer",
                 "closer", "outbox", "flusher")

    def __init__(self, view: "TierupGraphQL", receive, send):
        self.view = view
        self.context: Context = None  # type: ignore[assignment]  # set once the handshake is accepted
        self.receive = receive
        self.send = send
        self.operations: dict[str, asyncio.Task | LiveOperation] = {}
        self.acknowledged = False
        self.closed = False
        # A timer, not a task: a task's frame would stay alive (cancelled) as long as the socket.
        self.timer: asyncio.TimerHandle | None = None
        self.closer: asyncio.Task | None = None  # a close started by a timer, referenced while it runs
        # Messages posted by the fan-out and not sent yet, and the task sending them; both exist only meanwhile.
        self.outbox: deque[str] | None = None
        self.flusher: asyncio.Task | None = None

    async def serve(self, scope) -> None:
        if not await self._accept(scope):
            return
        try:
            while not self.closed:
                message = await self.receive()
                if message["type"] != "websocket.receive":  # websocket.disconnect
                    break
                await self._on_message(message)
                message = None  # an idle socket keeps no copy of its last message
        except OSError:  # the peer went away while we answered (uvicorn's ClientDisconnected)
            pass
        finally:
            await self._end()

    async def _accept(self, scope) -> bool:
        websocket = WebSocket(scope, self.receive, self.send)  # for the handshake only
        if not self.view._check_websocket_origin(websocket):  # a page of another site: refused as Strawberry does
            await self.view.reject_websocket(websocket)
            return False
        await websocket.accept(subprotocol=GRAPHQL_TRANSPORT_WS_PROTOCOL)
        # The token comes with connection_init; a tester's clock may come with the handshake or with it.
        self.context = Context(self.view.services, authorization=None, now_header=websocket.headers.get(NOW_HEADER))
        self.timer = asyncio.get_running_loop().call_later(
            self.view.connection_init_wait_timeout.total_seconds(), self._close_soon, 4408,
            "Connection initialisation timeout")
        return True

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        with suppress(OSError, RuntimeError):  # the peer may be gone, or the server closing the socket itself
            await self.send({"type": "websocket.close", "code": code, "reason": reason})

    async def _send(self, message: dict) -> None:
        """Send after anything posted before; waits while the peer reads slowly, which slows down
        this socket's reading in turn."""
        text = _encode(message)
        if self.outbox is None:
            await self._write(text)
        else:
            self.outbox.append(text)

    def post(self, text: str) -> bool:
        """Send after anything posted before, without waiting: the fan-out serves many sockets at once.
        False when QUEUE_SIZE messages already wait for a peer that stopped reading."""
        if self.outbox is not None and len(self.outbox) >= QUEUE_SIZE:
            return False
        self._enqueue(text)
        return True

    def _enqueue(self, text: str) -> None:
        if self.closed:
            return
        if self.outbox is None:
            self.outbox = deque((text,))
            self.flusher = asyncio.get_running_loop().create_task(self._flush())
        else:
            self.outbox.append(text)

    async def _flush(self) -> None:
        try:
            while self.outbox:
                await self._write(self.outbox.popleft())
        except (OSError, RuntimeError):  # the peer went away, or the socket was closed meanwhile
            pass
        finally:
            self.outbox = self.flusher = None

    async def _write(self, text: str) -> None:
        if not self.closed:
            await self.send({"type": "websocket.send", "text": text})

    async def _on_message(self, message: dict) -> None:
        text = message.get("text")
        if text is None:
            return await self.close(4400, "WebSocket message type must be text")
        try:
            data = json.loads(text)
        except ValueError:
            return await self.close(4400, "WebSocket message must be valid JSON")
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "subscribe":
            await self._subscribe(data)
        elif kind == "complete":
            await self._complete(data)
        elif kind == "ping":
            await self._send({"type": "pong"})
        elif kind == "pong":
            pass
        elif kind == "connection_init":
            await self._connection_init(data)
        elif kind is None:
            await self.close(4400, "Failed to parse message")
        else:
            await self.close(4400, f"Unknown message type: {kind}")

    async def _connection_init(self, message: dict) -> None:
        if self.context.connection_params is not None:
            return await self.close(4429, "Too many initialisation requests")
        payload = message.get("payload")
        if payload is None:
            payload = {}
        if not isinstance(payload, dict):
            return await self.close(4400, "Invalid connection init payload")
        self._cancel_timer()
        self.context.connection_params = payload
        try:
            ack_payload = await self.view.on_ws_connect(self.context)
        except ConnectionRejectionError:
            return await self.close(4403, "Forbidden")
        self.acknowledged = True
        await self._send({"type": "connection_ack"} if isinstance(ack_payload, UnsetType)
                         else {"type": "connection_ack", "payload": ack_payload})
        # The socket lives no longer than its token: at exp it closes, ending its subscriptions.
        principal = self.context.principal
        if principal is not None and principal.expires_at != float("inf"):
            self.timer = asyncio.get_running_loop().call_later(
                max(0.0, principal.expires_at - time.time()), self._close_soon, 4403, TOKEN_EXPIRED)

    async def _subscribe(self, message: dict) -> None:
        if not self.acknowledged:
            return await self.close(4401, "Unauthorized")
        id, payload = message.get("id"), message.get("payload")
        if not isinstance(payload, dict):
            return await self.close(4400, "Invalid subscribe message")
        query, variables, operation_name = payload.get("query"), payload.get("variables"), payload.get("operationName")
        if not (isinstance(id, str) and isinstance(query, str) and query and isinstance(variables, (dict, NoneType))
                and isinstance(operation_name, (str, NoneType))):
            return await self.close(4400, "Invalid subscribe message")
        if id in self.operations:
            return await self.close(4409, f"Subscriber for {id} already exists")
        limit = self.view.max_subscriptions_per_connection
        if limit is not None and len(self.operations) >= limit:
            # Counts queries and mutations in flight too; the socket and its other operations go on.
            error = GraphQLError("Subscription limit reached", extensions={"code": "LIMIT_REACHED", "maximum": limit})
            return await self._send(_error(id, [error]))
        self.operations[id] = asyncio.get_running_loop().create_task(self._run(id, query, variables, operation_name))

    async def _complete(self, message: dict) -> None:
        id = message.get("id")
        if not isinstance(id, str):
            return await self.close(4400, "Invalid complete message")
        self._stop(id, self.operations.pop(id, None))

    def _stop(self, id: str, operation: asyncio.Task | LiveOperation | None) -> None:
        if isinstance(operation, asyncio.Task):
            operation.cancel()  # not awaited: its clean-up must not hold up this socket's other messages
        elif operation is not None:
            operation.leave(self, id)

    async def _run(self, id: str, query: str, variables: dict | None, operation_name: str | None) -> None:
        try:
            if operation_type(query, operation_name, self.view.schema.limits.max_tokens) is OperationType.SUBSCRIPTION:
                await self._start_live(id, query, variables, operation_name)
            else:  # a query or mutation, or a document the schema will say is wrong
                await self._execute(id, query, variables, operation_name)
        except OSError:  # the peer went away mid-send; the socket's own loop ends the rest
            pass
        except Exception:
            if not self.closed:  # once the server closes the socket, a send in flight may fail: no news
                log.exception("WebSocket operation %s failed", id)
                with suppress(Exception):
                    await self._finish(id, {"id": id, "type": "complete"})
        finally:
            self._forget(id)

    async def _execute(self, id: str, query: str, variables: dict | None, operation_name: str | None) -> None:
        """A query or mutation runs as over HTTP (schema.execute: the deadline, the response cache) and
        answers one `next`, or `error` when refused before execution (parse, validation, limits)."""
        try:
            result = await self.view.schema.execute(query, variables, self.context, None, operation_name)
        except CannotGetOperationTypeError as exc:  # over HTTP a 400 with this reason
            result = PreExecutionError(None, [GraphQLError(exc.as_http_error_reason(),
                                                           extensions={"code": BAD_USER_INPUT})])
        if isinstance(result, PreExecutionError):
            return await self._finish(id, _error(id, result.errors))
        await self._send({"id": id, "type": "next", "payload": _next_payload(result)})
        await self._finish(id, {"id": id, "type": "complete"})

    async def _start_live(self, id: str, query: str, variables: dict | None, operation_name: str | None) -> None:
        """A subscription is checked as Strawberry subscribes (an `error` when refused before execution,
        a `next` with the error when its field fails), then joins its member's fan-out."""
        claim = FeedClaim()
        stream = await self.view.schema.subscribe(query, variables, self.context, claim, operation_name)
        async with aclosing(stream):
            async for result in stream:  # a claimed subscription streams nothing: what comes is why it failed
                if isinstance(result, PreExecutionError):
                    return await self._finish(id, _error(id, result.errors))
                await self._send({"id": id, "type": "next", "payload": _next_payload(result)})
        if claim.feed is None:
            return await self._finish(id, {"id": id, "type": "complete"})
        if self.operations.get(id) is asyncio.current_task():  # not completed by the client meanwhile
            clock = self.context if self.context.clock_overridden else None  # a tester's clock is not shared
            key = LiveKey(claim.feed, query, operation_name, _variables_key(variables), clock)
            self.operations[id] = LiveMember.of(self.context.broker, claim.feed).join(
                key, self.view.schema, variables, self, id)

    def end_live(self, id: str, operation: "LiveOperation", payload: str) -> None:
        """The fan-out ended this subscription: its last `next` (an error), then `complete`."""
        if self.operations.get(id) is operation:
            del self.operations[id]
            self._enqueue(_next_text(id, payload))
            self._enqueue(_encode({"id": id, "type": "complete"}))

    def _forget(self, id: str) -> bool:
        """Let go of the operation running in this task; False when it was let go already (the client
        completed it, or the socket ended), in which case nothing more is sent for it."""
        if self.operations.get(id) is not asyncio.current_task():
            return False
        del self.operations[id]
        return True

    async def _finish(self, id: str, message: dict) -> None:
        # Forgotten before the last message goes out, so the client may reuse the id as soon as it reads it.
        if self._forget(id):
            await self._send(message)

    def _close_soon(self, code: int, reason: str) -> None:
        self.timer = None
        self.closer = asyncio.get_running_loop().create_task(self.close(code, reason))

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    async def _end(self) -> None:
        """The socket is closed: stop its timer and its operations, and wait until their clean-up has
        run, so nothing outlives the socket."""
        self.closed = True
        self._cancel_timer()
        self.closer = None
        operations = list(self.operations.items())
        self.operations.clear()
        for id, operation in operations:
            self._stop(id, operation)
        tasks = [operation for _, operation in operations if isinstance(operation, asyncio.Task)]
        if self.flusher is not None:
            self.flusher.cancel()
            tasks.append(self.flusher)
        if tasks:
            await asyncio.wait(tasks)


class LiveKey(NamedTuple):
    """What the answer to an event depends on; subscriptions with equal keys share one resolution."""

    feed: Feed  # whose events, which of them, and the field's value for one
    query: str
    operation_name: str | None
    variables: str  # as JSON with sorted keys
    clock: Context | None  # a tester's clock (X-Tierup-Now) is that socket's own


class LiveOperation:
    """One live subscription document with its variables, shared by the sockets subscribed to it
    (`subscribers`: socket and operation id); each event is resolved once and posted to them all."""

    __slots__ = ("member", "key", "schema", "variables", "context", "subscribers")

    def __init__(self, member: "LiveMember", key: LiveKey, schema, variables: dict | None, context: Context):
        self.member = member
        self.key = key
        self.schema = schema
        self.variables = variables
        self.context = context  # the first subscriber's, copied for each event
        self.subscribers: dict[tuple[TransportWSConnection, str], None] = {}

    async def deliver(self, event: Event) -> None:
        # A copy of the context: its own program and loaders, let go once the event is sent, while a query
        # running on the socket meanwhile keeps its own.
        context = copy(self.context)
        context.refresh()
        try:
            value = await self.key.feed.value(context, event)
        except Exception as exc:  # the subscription ends with the error, as a failing resolver's stream did
            return await self.end(exc, list(self.subscribers))
        if value is None:
            return
        payload = _encode(_next_payload(await self._execute(context, value)))
        # A socket whose peer stopped reading is dropped; the others are not held up by it.
        slow = [(socket, id) for socket, id in list(self.subscribers) if not socket.post(_next_text(id, payload))]
        if slow:
            await self.end(Overflow(), slow)

    async def end(self, error: Exception, subscribers: list[tuple[TransportWSConnection, str]]) -> None:
        """End these subscriptions with `error` as their last `next`."""
        for socket, id in subscribers:  # first, so that no event reaches them meanwhile
            self.leave(socket, id)
        payload = _encode(_next_payload(await self._execute(copy(self.context), _raising(error))))
        for socket, id in subscribers:
            socket.end_live(id, self, payload)

    async def _execute(self, context: Context, value) -> ExecutionResult:
        # Strawberry's execute itself: TierupSchema.execute is the HTTP path (no subscriptions, the request
        # deadline, the response cache). The subscription field resolves to its root value, here `value`.
        return await strawberry.Schema.execute(self.schema, self.key.query, self.variables, context, value,
                                               self.key.operation_name, (OperationType.SUBSCRIPTION,))

    def leave(self, socket: TransportWSConnection, id: str) -> None:
        if (socket, id) in self.subscribers:  # every removal comes here, end() included
            del self.subscribers[(socket, id)]
            SUBSCRIPTIONS.dec()
        if not self.subscribers:
            self.member.forget(self)


class LiveMember:
    """One member's live subscriptions on this process, and the broker's one subscriber for them all.
    Events wait here (at most QUEUE_SIZE) while one task resolves them in order, operation by operation;
    the member is kept while it has a live subscription here, its task and queue while events wait."""

    __slots__ = ("broker", "key", "operations", "pending", "worker", "overflowed")

    def __init__(self, broker: Broker, key: tuple[int, int]):
        self.broker = broker
        self.key = key
        self.operations: dict[LiveKey, LiveOperation] = {}
        self.pending: deque[Event] | None = None
        self.worker: asyncio.Task | None = None
        self.overflowed = False

    @classmethod
    def of(cls, broker: Broker, feed: Feed) -> "LiveMember":
        """The feed's member's fan-out on this broker, started when it has none."""
        members = _live_members.setdefault(broker, {})
        key = (feed.program_id, feed.member_id)
        member = members.get(key)
        if member is None:
            member = members[key] = cls(broker, key)
            broker.add(member)
        return member

    def join(self, key: LiveKey, schema, variables: dict | None, socket: TransportWSConnection, id: str
             ) -> LiveOperation:
        operation = self.operations.get(key)
        if operation is None:
            operation = self.operations[key] = LiveOperation(self, key, schema, variables, socket.context)
        operation.subscribers[(socket, id)] = None
        SUBSCRIPTIONS.inc()
        return operation

    def forget(self, operation: LiveOperation) -> None:
        if self.operations.get(operation.key) is operation:
            del self.operations[operation.key]
        if not self.operations:  # nobody listens here any more: leave the broker, drop what waits
            self._unregister()
            self.broker.remove(self)
            self.pending = None
            if self.worker is not None and self.worker is not asyncio.current_task():
                self.worker.cancel()

    def offer(self, event: Event) -> bool:
        if self.pending is None:
            self.pending = deque()
        elif len(self.pending) >= QUEUE_SIZE:
            return False
        self.pending.append(event)
        self._work_soon()
        return True

    def overflow(self) -> None:
        """Dropped by the broker for falling QUEUE_SIZE events behind: the subscriptions end with Overflow
        (a new one starts a new fan-out)."""
        self._unregister()
        self.pending = None
        self.overflowed = True
        self._work_soon()

    def _work_soon(self) -> None:
        if self.worker is None:
            self.worker = asyncio.get_running_loop().create_task(self._work())

    async def _work(self) -> None:
        try:
            while self.pending:
                event = self.pending.popleft()
                for operation in list(self.operations.values()):
                    if operation.subscribers:  # not left meanwhile
                        await self._deliver(operation, event)
            if self.overflowed:
                for operation in list(self.operations.values()):
                    await operation.end(Overflow(), list(operation.subscribers))
        finally:
            self.worker = None
            if not self.pending:
                self.pending = None  # an idle member keeps no queue

    @staticmethod
    async def _deliver(operation: LiveOperation, event: Event) -> None:
        try:
            await operation.deliver(event)
        except Exception:  # one operation's failure must not stop its member's others
            log.exception("delivering an event of member %s failed", event.member_id)

    def _unregister(self) -> None:
        members = _live_members.get(self.broker)
        if members is not None and members.get(self.key) is self:
            del members[self.key]

    @property
    def subscriptions(self) -> int:
        return sum(len(operation.subscribers) for operation in self.operations.values())


_live_members: "weakref.WeakKeyDictionary[Broker, dict[tuple[int, int], LiveMember]]" = weakref.WeakKeyDictionary()


@lru_cache(maxsize=1000)
def operation_type(query: str, operation_name: str | None, max_tokens: int) -> OperationType | None:
    """The type of the operation the schema will run (the named one, else the first); None when
    the document does not parse or has no such operation, which the schema then reports."""
    try:
        return get_operation_type(parse(query, max_tokens=max_tokens), operation_name)
    except (GraphQLError, RuntimeError):
        return None


def _encode(message: dict) -> str:
    return json.dumps(message, separators=(",", ":"))


def _next_text(id: str, payload: str) -> str:
    """A `next` message around a payload already encoded, once for all the sockets it goes to."""
    return f'{{"id":{json.dumps(id)},"type":"next","payload":{payload}}}'


def _variables_key(variables: dict | None) -> str:
    return json.dumps(variables, sort_keys=True, separators=(",", ":"))


async def _raising(error: Exception):
    """A field value that fails when the schema awaits it, so that the error is coded, logged and (in
    production) masked as any resolver's."""
    raise error


def _next_payload(result: ExecutionResult) -> dict[str, Any]:
    payload: dict[str, Any] = {"data": result.data}
    if result.errors:
        payload["errors"] = [e.formatted for e in result.errors]
    if result.extensions:
        payload["extensions"] = result.extensions
    return payload


def _error(id: str, errors: list[GraphQLError]) -> dict[str, Any]:
    return {"id": id, "type": "error", "payload": [e.formatted for e in errors]}
