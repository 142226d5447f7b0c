"""A real server: uvicorn on a free port, serving the test's app and database."""

import httpx
import pytest

from servers import serving
from wsclient import GraphQLSocket


class LiveServer:
    def __init__(self, port: int, api):
        self.port = port
        self.http = f"http://127.0.0.1:{port}"
        self.ws = f"ws://127.0.0.1:{port}/graphql"
        self.api = api
        self.sockets: list[GraphQLSocket] = []

    async def socket(self, token: str | None, now: str | None = None, ack: bool = True) -> GraphQLSocket:
        payload = {}
        if token is not None:
            payload["Authorization"] = f"Bearer {token}"
        if now is not None:
            payload["X-Tierup-Now"] = now
        client = await GraphQLSocket.open(self.ws, payload)
        self.sockets.append(client)
        if ack:
            await client.ack()
        return client


@pytest.fixture
async def server(app, api):
    async with serving(app) as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        api.client = client  # the same Api helper, now over real HTTP
        live = LiveServer(port, api)
        try:
            yield live
        finally:
            for socket in live.sockets:
                await socket.close()
