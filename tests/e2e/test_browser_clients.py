"""A browser page on the shop's origin against a real server: CORS preflight, a gzipped answer, a
WebSocket from its origin, and an unlisted origin's socket refused at the handshake (HTTP 403)."""

from dataclasses import replace

import pytest
import websockets

from tierup.app import create_app
from wsclient import PROTOCOL

SHOP = "https://shop.example.com"


@pytest.fixture
def app(settings, db, clock, program):  # the e2e server fixture serves this app
    return create_app(replace(settings, cors_origins=(SHOP,)), db=db, clock=clock)


async def test_a_page_on_the_shops_origin_calls_the_api(server):
    client = server.api.client
    preflight = await client.options("/graphql", headers={
        "Origin": SHOP, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == SHOP
    schema = await client.post("/graphql", json={"query": "{ __schema { types { name description } } }"},
                               headers={"Origin": SHOP, "Accept-Encoding": "gzip"})
    assert schema.headers["content-encoding"] == "gzip"
    assert schema.headers["access-control-allow-origin"] == SHOP
    assert schema.json()["data"]["__schema"]["types"]


async def test_sockets_from_the_shops_origin_open_and_others_are_refused(server):
    async with websockets.connect(server.ws, subprotocols=[PROTOCOL], origin=SHOP) as socket:
        assert socket.subprotocol == PROTOCOL
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(server.ws, subprotocols=[PROTOCOL], origin="https://evil.example.net")
    assert refused.value.response.status_code == 403
