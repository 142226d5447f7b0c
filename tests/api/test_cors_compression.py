"""Browser clients: CORS for the origins in TIERUP_CORS_ORIGINS (and the same list for WebSockets);
gzip for large answers; JSON as UTF-8."""

import json
from dataclasses import replace

import httpx
import pytest

from helpers import enroll
from tierup.app import create_app
from tierup.auth import Role

SHOP = "https://shop.example.com"
ELSEWHERE = "https://evil.example.net"
TIER_NAMES = "{ program { ladder { tiers { name } } } }"


@pytest.fixture
def cors_app(settings, db, clock, program):
    return create_app(replace(settings, cors_origins=(SHOP,)), db=db, clock=clock)


@pytest.fixture
async def browser(cors_app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=cors_app), base_url="http://tierup.test") as client:
        yield client


def preflight(origin: str) -> dict:
    """What a browser sends before POSTing JSON with a token from a page on `origin`."""
    return {"Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"}


def cors_headers(response: httpx.Response) -> set[str]:
    return {name for name in response.headers if name.startswith("access-control-allow-")}


def test_the_origins_setting_is_read_as_browsers_write_origins():
    from tierup.config import ConfigError, Settings

    read = Settings.from_env({"TIERUP_CORS_ORIGINS": " https://Shop.Example.com:443, http://localhost:5173 ,"})
    assert read.cors_origins == ("http://localhost:5173", SHOP)
    assert Settings.from_env({}).cors_origins == ()
    with pytest.raises(ConfigError, match="TIERUP_CORS_ORIGINS must list origins"):
        Settings.from_env({"TIERUP_CORS_ORIGINS": "shop.example.com/h5"})


async def test_a_preflight_from_a_listed_origin_is_allowed(browser):
    response = await browser.options("/graphql", headers=preflight(SHOP))
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == SHOP
    assert set(response.headers["access-control-allow-methods"].split(", ")) == {"GET", "POST"}
    allowed = {h.lower() for h in response.headers["access-control-allow-headers"].split(", ")}
    assert {"authorization", "content-type", "x-tierup-now"} <= allowed
    assert "access-control-allow-credentials" not in response.headers  # tokens, not cookies


async def test_a_listed_origins_request_may_read_the_answer(browser, api):
    response = await browser.post("/graphql", json={"query": "{ program { code } }"},
                                  headers={"Origin": SHOP, "Authorization": f"Bearer {api.token(Role.OPERATOR, 'ops')}"})
    assert response.json() == {"data": {"program": {"code": "classic"}}}
    assert response.headers["access-control-allow-origin"] == SHOP
    assert "Origin" in response.headers["vary"]


async def test_another_origin_gets_no_cors_headers(browser):
    refused = await browser.options("/graphql", headers=preflight(ELSEWHERE))
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
    answered = await browser.post("/graphql", json={"query": "{ __typename }"}, headers={"Origin": ELSEWHERE})
    assert "access-control-allow-origin" not in answered.headers


async def test_without_the_setting_no_origin_is_allowed(api):
    refused = await api.client.options("/graphql", headers=preflight(SHOP))
    assert refused.status_code == 405 and not cors_headers(refused)
    answered = await api.client.post("/graphql", json={"query": "{ __typename }"}, headers={"Origin": SHOP})
    assert not cors_headers(answered)


# WebSockets: browsers apply no CORS to them, so the handshake's Origin is checked against the same list.

async def handshake(app, headers: dict[str, str]) -> str:
    """Open a WebSocket on the app as a client sending `headers`: "accepted", or "refused" before accepting."""
    messages = iter([{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}])
    answers: list[dict] = []

    async def receive() -> dict:
        return next(messages)

    async def send(message: dict) -> None:
        answers.append(message)

    scope = {"type": "websocket", "asgi": {"version": "3.0"}, "scheme": "ws", "path": "/graphql",
             "raw_path": b"/graphql", "query_string": b"", "root_path": "", "server": ("tierup.test", 80),
             "client": ("127.0.0.1", 50000), "subprotocols": ["graphql-transport-ws"],
             "headers": [(b"host", b"tierup.test"), *((k.lower().encode(), v.encode()) for k, v in headers.items())]}
    await app(scope, receive, send)
    return {"websocket.accept": "accepted", "websocket.close": "refused"}[answers[0]["type"]]


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_a_socket_from_a_listed_origin_is_accepted_and_others_refused(settings, db, clock, program, protocol):
    app = create_app(replace(settings, cors_origins=(SHOP,), legacy_graphql_ws=True), db=db, clock=clock)
    offered = {"Sec-WebSocket-Protocol": protocol}
    assert await handshake(app, {"Origin": SHOP, **offered}) == "accepted"
    assert await handshake(app, {"Origin": ELSEWHERE, **offered}) == "refused"
    assert await handshake(app, offered) == "accepted"  # no Origin: not a browser (a mobile app, Node's ws)
    assert await handshake(app, {"Origin": "http://tierup.test", **offered}) == "accepted"  # the server's own page


async def test_without_the_setting_only_the_servers_own_pages_open_sockets(app):
    assert await handshake(app, {"Origin": SHOP}) == "refused"
    assert await handshake(app, {"Origin": "http://tierup.test"}) == "accepted"
    assert await handshake(app, {}) == "accepted"


# Compression and UTF-8 --------------------------------------------------------------------------

INTROSPECTION = "{ __schema { types { name kind description fields { name description type { name kind } } } } }"


async def test_large_answers_are_gzipped_and_small_ones_are_not(api):
    big = await api.client.post("/graphql", json={"query": INTROSPECTION}, headers={"Accept-Encoding": "gzip"})
    assert big.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in big.headers["vary"]
    assert big.num_bytes_downloaded * 3 < len(big.content)
    assert big.json()["data"]["__schema"]["types"]
    small = await api.client.post("/graphql", json={"query": "{ __typename }"}, headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers
    plain = await api.client.post("/graphql", json={"query": INTROSPECTION}, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.json() == big.json()


async def test_a_gzipped_get_answer_varies_on_the_token_and_the_encoding(api):
    response = await api.client.get("/graphql", params={"query": INTROSPECTION},
                                    headers={"Accept-Encoding": "gzip", "Accept": "application/json"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["vary"] == "Authorization, Accept-Encoding"


async def test_answers_are_utf8_not_escapes(api):
    response = await api.as_operator(TIER_NAMES)
    assert [t["name"] for t in response["data"]["program"]["ladder"]["tiers"]][1] == "银卡会员"
    raw = await api.client.post("/graphql", json={"query": TIER_NAMES},
                                headers={"Authorization": f"Bearer {api.token(Role.OPERATOR, 'ops')}"})
    assert "银卡会员".encode() in raw.content and len("银卡会员".encode()) == 12
    assert b"\\u" not in raw.content
    assert raw.headers["content-type"] == "application/json"


async def test_kept_answers_are_utf8_too(api, app):
    await enroll(api, "alice")
    query = "{ viewer { tier { name } } }"
    token = {"Authorization": f"Bearer {api.token(Role.MEMBER, 'alice')}"}
    cache = app.state.services.response_cache
    answers = [await api.client.post("/graphql", json={"query": query}, headers=token) for _ in range(2)]
    assert cache.hits == 1
    assert answers[0].content == answers[1].content == '{"data":{"viewer":{"tier":{"name":"普通会员"}}}}'.encode()


async def test_a_lone_surrogate_echoed_in_an_error_travels_as_an_escape(api):
    """JSON may carry an unpaired surrogate, which UTF-8 cannot: the answer escapes it rather than failing."""
    body = '{"query": "query Home { __typename }", "operationName": "\\ud800"}'
    response = await api.client.post("/graphql", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert json.loads(response.content)["errors"] == [{"message": 'Unknown operation named "\ud800".',
                                                       "extensions": {"code": "BAD_REQUEST"}}]
