"""A small graphql-transport-ws client over a real WebSocket, as a mobile app would speak it."""

from __future__ import annotations

import asyncio
import json
import socket
from contextlib import closing

import websockets

PROTOCOL = "graphql-transport-ws"


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GraphQLSocket:
    def __init__(self, connection):
        self.connection = connection
        self._next_id = 0

    @classmethod
    async def open(cls, url: str, payload: dict | None) -> "GraphQLSocket":
        connection = await websockets.connect(url, subprotocols=[PROTOCOL])
        client = cls(connection)
        await client.send({"type": "connection_init", "payload": payload or {}})
        return client

    async def ack(self, timeout: float = 5) -> dict:
        message = await self.receive(timeout)
        assert message["type"] == "connection_ack", message
        return message

    async def send(self, message: dict) -> None:
        await self.connection.send(json.dumps(message))

    async def receive(self, timeout: float = 5) -> dict:
        return json.loads(await asyncio.wait_for(self.connection.recv(), timeout))

    async def subscribe(self, query: str, variables: dict | None = None) -> str:
        self._next_id += 1
        operation = str(self._next_id)
        await self.send({"id": operation, "type": "subscribe", "payload": {"query": query, "variables": variables or {}}})
        return operation

    async def next_data(self, timeout: float = 5) -> dict:
        """The next `next` payload's data, skipping pings."""
        while True:
            message = await self.receive(timeout)
            if message["type"] == "ping":
                await self.send({"type": "pong"})
                continue
            assert message["type"] == "next", message
            assert "errors" not in message["payload"], message
            return message["payload"]["data"]

    async def nothing_within(self, seconds: float) -> bool:
        try:
            message = await self.receive(seconds)
        except asyncio.TimeoutError:
            return True
        return message["type"] in ("ping", "pong") and await self.nothing_within(seconds)

    async def close(self) -> None:
        await self.connection.close()
