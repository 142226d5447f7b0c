"""Live updates over WebSocket: the graphql-transport-ws protocol
(https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md), served lean.

Tens of thousands of sockets sit open at once, nearly all idle, so what one socket keeps decides
how many a process can hold. An open socket keeps its ASGI receive and send, its Context, a dict
of running operations and at most one timer (the connection_init deadline, then the token's
expiry). A running operation keeps one task, and a subscription the schema's stream; both are
gone when it ends. Operations run through the schema (`execute` for queries and mutations,
`subscribe` for subscriptions), so its extensions (limits, error codes, masking) apply as they do
over HTTP.

No keep-alive messages: the protocol has none (its ping is the client's to send), and uvicorn
already pings every socket at the WebSocket level (ws_ping_interval, 20 s), which is what finds
peers that vanished.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from contextlib import aclosing, suppress
from functools import lru_cache
from types import NoneType
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError, parse
from starlette.websockets import WebSocket
from strawberry.exceptions import ConnectionRejectionError
from strawberry.schema.exceptions import CannotGetOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UnsetType
from strawberry.utils.operation import get_operation_type

from .context import NOW_HEADER, Context
from .errors import BAD_USER_INPUT

if TYPE_CHECKING:
    from ..app import TierupGraphQL

log = logging.getLogger("tierup.ws")

TOKEN_EXPIRED = "Token expired; reconnect with a fresh token"


def picks_graphql_transport_ws(scope: dict, protocols) -> bool:
    """Whether the handshake settles on graphql-transport-ws: the client's first offered subprotocol
    that the server speaks, as Strawberry picks for the protocols it still serves."""
    offered = (p for p in scope.get("subprotocols") or () if p in protocols)
    return next(offered, None) == GRAPHQL_TRANSPORT_WS_PROTOCOL


async def serve_graphql_transport_ws(view: "TierupGraphQL", scope, receive, send) -> None:
    """Accept the handshake and serve the socket until either side closes it."""
    websocket = WebSocket(scope, receive, send)  # for the handshake only; the socket keeps receive and send
    if not view._check_websocket_origin(websocket):  # a page of another site: refused as Strawberry does
        await view.reject_websocket(websocket)
        return
    await websocket.accept(subprotocol=GRAPHQL_TRANSPORT_WS_PROTOCOL)
    view.services.requests_total += 1
    # The token comes with connection_init; a tester's clock may come with the handshake or with it.
    context = Context(view.services, authorization=None, now_header=websocket.headers.get(NOW_HEADER))
    del websocket
    await TransportWSConnection(view, context, receive, send).serve()


class TransportWSConnection:
    """One socket. `operations` maps each running operation's id to the task running it."""

    __slots__ = ("view", "context", "receive", "send", "operations", "acknowledged", "closed", "timer",
                 "closer")

    def __init__(self, view: "TierupGraphQL", context: Context, receive, send):
        self.view = view
        self.context = context
        self.receive = receive
        self.send = send
        self.operations: dict[str, asyncio.Task] = {}
        self.acknowledged = False
        self.closed = False
        self.closer: asyncio.Task | None = None  # a close started by a timer, referenced while it runs
        # A timer, not a task: a task's frame would stay alive (cancelled) as long as the socket.
        self.timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            view.connection_init_wait_timeout.total_seconds(), self._close_soon, 4408,
            "Connection initialisation timeout")

    async def serve(self) -> None:
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

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        with suppress(OSError, RuntimeError):  # the peer may be gone, or the server closing the socket itself
            await self.send({"type": "websocket.close", "code": code, "reason": reason})

    async def _send(self, message: dict) -> None:
        if not self.closed:
            await self.send({"type": "websocket.send", "text": json.dumps(message, separators=(",", ":"))})

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
        task = self.operations.pop(id, None)
        if task is not None:
            task.cancel()  # not awaited: its clean-up must not hold up this socket's other messages

    async def _run(self, id: str, query: str, variables: dict | None, operation_name: str | None) -> None:
        """One operation. A query or mutation runs as over HTTP (schema.execute: the deadline, the
        response cache) and answers one `next`; a subscription answers one `next` per event. Errors
        found before execution (parse, validation, limits, permissions) answer `error` instead."""
        schema = self.view.schema
        try:
            if operation_type(query, operation_name, schema.limits.max_tokens) is OperationType.SUBSCRIPTION:
                stream = await schema.subscribe(query, variables, self.context, None, operation_name)
                async with aclosing(stream):
                    async for result in stream:
                        if isinstance(result, PreExecutionError):
                            return await self._finish(id, _error(id, result.errors))
                        await self._send({"id": id, "type": "next", "payload": _next_payload(result)})
            else:  # a query or mutation, or a document the schema will say is wrong
                try:
                    result = await schema.execute(query, variables, self.context, None, operation_name)
                except CannotGetOperationTypeError as exc:  # over HTTP a 400 with this reason
                    result = PreExecutionError(None, [GraphQLError(exc.as_http_error_reason(),
                                                                   extensions={"code": BAD_USER_INPUT})])
                if isinstance(result, PreExecutionError):
                    return await self._finish(id, _error(id, result.errors))
                await self._send({"id": id, "type": "next", "payload": _next_payload(result)})
            await self._finish(id, {"id": id, "type": "complete"})
        except OSError:  # the peer went away mid-send; the socket's own loop ends the rest
            pass
        except Exception:
            if not self.closed:  # once the server closes the socket, a send in flight may fail: no news
                log.exception("WebSocket operation %s failed", id)
                with suppress(Exception):
                    await self._finish(id, {"id": id, "type": "complete"})
        finally:
            self._forget(id)

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
        """The socket is closed: stop its timer and its operations, and wait until their clean-up
        (each subscription leaving the broker) has run, so nothing outlives the socket."""
        self.closed = True
        self._cancel_timer()
        self.closer = None
        tasks = list(self.operations.values())
        self.operations.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)


@lru_cache(maxsize=1000)
def operation_type(query: str, operation_name: str | None, max_tokens: int) -> OperationType | None:
    """The type of the operation the schema will run (the named one, else the first); None when
    the document does not parse or has no such operation, which the schema then reports."""
    try:
        return get_operation_type(parse(query, max_tokens=max_tokens), operation_name)
    except (GraphQLError, RuntimeError):
        return None


def _next_payload(result: ExecutionResult) -> dict[str, Any]:
    payload: dict[str, Any] = {"data": result.data}
    if result.errors:
        payload["errors"] = [e.formatted for e in result.errors]
    if result.extensions:
        payload["extensions"] = result.extensions
    return payload


def _error(id: str, errors: list[GraphQLError]) -> dict[str, Any]:
    return {"id": id, "type": "error", "payload": [e.formatted for e in errors]}
