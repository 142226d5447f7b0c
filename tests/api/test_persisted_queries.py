"""Automatic persisted queries, as Apollo's persisted-query link speaks them: the hash first, the
query with the hash when the server does not know it, then the hash alone — over POST and GET."""

import hashlib
import json
import os
import uuid
from dataclasses import replace

import httpx
import pytest

from helpers import enroll, row_counts
from tierup.app import create_app
from tierup.auth import Role

HOME = "query Home { viewer { externalId tier { name } points { balance } } }"
TIERS = "{ program { ladder { tiers { code } } } }"
ENROLL = 'mutation { enrollMember(input: {externalId: "via-get"}) { duplicate } }'


def sha256(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


def persisted(query: str, sha: str | None = None) -> dict:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha or sha256(query)}}


def bearer(api, role: Role = Role.OPERATOR, sub: str = "ops") -> dict:
    return {"Authorization": f"Bearer {api.token(role, sub)}"}


async def post(client, body: dict, headers: dict) -> httpx.Response:
    return await client.post("/graphql", json=body, headers=headers)


async def get(client, params: dict, headers: dict) -> httpx.Response:
    """A GET as Apollo's HttpLink builds it: variables and extensions as JSON in the query string."""
    sent = {key: json.dumps(value) if isinstance(value, dict) else value for key, value in params.items()}
    return await client.get("/graphql", params=sent, headers=headers)


def codes(response: httpx.Response) -> list[str]:
    return [error["extensions"]["code"] for error in response.json().get("errors", [])]


async def test_apollos_round_trip_over_post(api):
    headers = bearer(api)
    first = await post(api.client, {"extensions": persisted(TIERS)}, headers)
    assert first.status_code == 200  # Apollo's link retries on the code only when the answer is not a failure
    assert first.json() == {"errors": [{"message": "PersistedQueryNotFound",
                                        "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}]}
    registered = await post(api.client, {"query": TIERS, "extensions": persisted(TIERS)}, headers)
    hashed = await post(api.client, {"extensions": persisted(TIERS)}, headers)
    assert registered.status_code == hashed.status_code == 200
    assert hashed.json() == registered.json()
    assert [t["code"] for t in hashed.json()["data"]["program"]["ladder"]["tiers"]] == [
        "REGULAR", "SILVER", "GOLD", "DIAMOND"]


async def test_a_hashed_get_runs_with_variables_and_may_be_kept_only_by_the_browser(api):
    await enroll(api, "alice")
    headers = bearer(api, Role.MEMBER, "alice")
    query = "query Home($first: Int) { viewer { points { ledger(first: $first) { edges { node { amount } } } } } }"
    params = {"operationName": "Home", "variables": {"first": 1}, "extensions": persisted(query)}
    unknown = await get(api.client, params, headers)
    assert unknown.status_code == 200 and codes(unknown) == ["PERSISTED_QUERY_NOT_FOUND"]
    await get(api.client, {**params, "query": query}, headers)
    answer = await get(api.client, params, headers)
    assert answer.status_code == 200
    assert answer.json() == {"data": {"viewer": {"points": {"ledger": {"edges": [{"node": {"amount": 100}}]}}}}}
    # One member's answer: never in a shared cache, and asked for again before reuse (points change).
    assert answer.headers["cache-control"] == "private, no-cache"
    assert answer.headers["vary"] == "Authorization"
    assert unknown.headers["cache-control"] == "private, no-cache"
    posted = await post(api.client, {"query": query, "variables": {"first": 1}}, headers)
    assert "cache-control" not in posted.headers


async def test_a_hashed_get_accepting_anything_gets_the_answer_not_graphiql(api):
    """Apollo Client 3 sends `Accept: */*`, which alone would open GraphiQL on a GET without `query`."""
    await post(api.client, {"query": TIERS, "extensions": persisted(TIERS)}, bearer(api))
    answer = await get(api.client, {"extensions": persisted(TIERS)}, {**bearer(api), "Accept": "*/*"})
    assert answer.headers["content-type"] == "application/json"
    assert "data" in answer.json()


async def test_a_hash_that_is_not_the_querys_is_refused_and_not_kept(api):
    headers = bearer(api)
    other = sha256("{ program { code } }")
    refused = await post(api.client, {"query": TIERS, "extensions": persisted(TIERS, other)}, headers)
    assert refused.status_code == 400
    assert refused.json()["errors"] == [{"message": "provided sha does not match query",
                                         "extensions": {"code": "BAD_REQUEST"}}]
    assert codes(await post(api.client, {"extensions": persisted(TIERS, other)}, headers)) == [
        "PERSISTED_QUERY_NOT_FOUND"]


@pytest.mark.parametrize("extensions, says", [
    ({"persistedQuery": {"version": 2, "sha256Hash": "0" * 64}}, "Unsupported persisted query version"),
    ({"persistedQuery": "abc"}, "Unsupported persisted query version"),
    ({"persistedQuery": {"version": 1, "sha256Hash": "not-a-hash"}}, "64 hex digits"),
    ({"persistedQuery": {"version": 1}}, "64 hex digits"),
])
async def test_a_malformed_persisted_query_is_a_coded_400(api, extensions, says):
    response = await post(api.client, {"extensions": extensions}, bearer(api))
    assert response.status_code == 400 and codes(response) == ["BAD_REQUEST"]
    assert says in response.json()["errors"][0]["message"]


async def test_a_mutation_named_by_hash_is_still_refused_over_get(api, db):
    headers = bearer(api, Role.SERVICE, "shop")
    await post(api.client, {"query": ENROLL, "extensions": persisted(ENROLL)}, headers)  # enrols once, by POST
    before = await row_counts(db)
    refused = await get(api.client, {"extensions": persisted(ENROLL)}, headers)
    assert refused.status_code == 400 and codes(refused) == ["BAD_REQUEST"]
    assert "mutation" in refused.json()["errors"][0]["message"].lower()
    assert await row_counts(db) == before


async def test_a_members_hashed_home_screen_is_answered_from_the_response_cache(api, app):
    await enroll(api, "alice")
    headers = bearer(api, Role.MEMBER, "alice")
    cache = app.state.services.response_cache
    first = await post(api.client, {"query": HOME, "extensions": persisted(HOME)}, headers)
    hits = cache.hits
    again = await post(api.client, {"extensions": persisted(HOME)}, headers)
    assert again.json() == first.json()
    assert cache.hits == hits + 1


@pytest.fixture
def small_store_app(settings, db, clock, program):
    return create_app(replace(settings, persisted_queries=2), db=db, clock=clock)


async def test_the_store_keeps_the_most_recently_used_queries(small_store_app, api):
    headers = bearer(api)
    queries = {name: "{ program { code } } # " + name for name in ("a", "b", "c")}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=small_store_app), base_url="http://t") as client:
        async def known(name: str) -> bool:
            return codes(await post(client, {"extensions": persisted(queries[name])}, headers)) == []

        for name in ("a", "b"):
            await post(client, {"query": queries[name], "extensions": persisted(queries[name])}, headers)
        assert await known("a")  # a is now used after b
        await post(client, {"query": queries["c"], "extensions": persisted(queries["c"])}, headers)
        assert len(small_store_app.state.services.persisted_queries) == 2
        assert [await known(name) for name in ("a", "b", "c")] == [True, False, True]


async def test_with_the_store_off_clients_are_told_to_stop_hashing(settings, db, clock, program, api):
    app = create_app(replace(settings, persisted_queries=0), db=db, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        hashed = await post(client, {"extensions": persisted(TIERS)}, bearer(api))
        assert hashed.status_code == 200
        assert hashed.json()["errors"] == [{"message": "PersistedQueryNotSupported",
                                            "extensions": {"code": "PERSISTED_QUERY_NOT_SUPPORTED"}}]
        plain = await post(client, {"query": TIERS}, bearer(api))
        assert "data" in plain.json()


async def test_when_redis_is_unreachable_hashed_queries_fall_back_to_sending_the_text(caplog):
    from tierup.api.persisted import SharedPersistedQueries

    store = SharedPersistedQueries(10, "redis://127.0.0.1:1/0")
    try:
        assert await store.get(sha256(TIERS)) is None
        assert await store.query_for(TIERS, persisted(TIERS)) == TIERS  # runs, and is kept in this process
        assert await store.query_for(None, persisted(TIERS)) == TIERS
    finally:
        await store.close()
    assert "Redis failed" in caplog.text


# Shared through Redis ---------------------------------------------------------------------------

REDIS_URL = os.environ.get("TIERUP_TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="set TIERUP_TEST_REDIS_URL to run the Redis tests")


@needs_redis
async def test_a_query_registered_through_one_process_runs_by_hash_on_another(settings, db, clock, program, api):
    shared = replace(settings, broker_url=REDIS_URL)
    first, second = create_app(shared, db=db, clock=clock), create_app(shared, db=db, clock=clock)
    query = TIERS + " # " + uuid.uuid4().hex  # a text no other run registered
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url="http://t") as one, \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://t") as other:
            assert codes(await post(other, {"extensions": persisted(query)}, bearer(api))) == [
                "PERSISTED_QUERY_NOT_FOUND"]
            await post(one, {"query": query, "extensions": persisted(query)}, bearer(api))
            answer = await post(other, {"extensions": persisted(query)}, bearer(api))
        assert "data" in answer.json(), answer.json()
    finally:
        import redis.asyncio as redis

        probe = redis.from_url(REDIS_URL)  # leave the shared store as it was (the keys the README names)
        await probe.hdel("tierup:apq:queries", sha256(query))
        await probe.zrem("tierup:apq:used", sha256(query))
        await probe.aclose()
        for app in (first, second):
            await app.state.services.persisted_queries.close()
            await app.state.services.broker.close()


@needs_redis
async def test_the_shared_store_keeps_the_most_recently_used_queries_across_processes():
    import redis.asyncio as redis

    from tierup.api.persisted import SharedPersistedQueries

    prefix = f"tierup:test:apq:{uuid.uuid4().hex}"
    one, other = SharedPersistedQueries(3, REDIS_URL, prefix), SharedPersistedQueries(3, REDIS_URL, prefix)
    probe = redis.from_url(REDIS_URL)
    texts = [f"{{ program {{ code }} }} # {n}" for n in range(5)]
    try:
        for text in texts[:3]:
            await one.query_for(text, persisted(text))
        assert await other.get(sha256(texts[0])) == texts[0]  # read through Redis: now the most recently used
        for text in texts[3:]:
            await other.query_for(text, persisted(text))
        assert await probe.hlen(f"{prefix}:queries") == 3 and await probe.zcard(f"{prefix}:used") == 3
        fresh = SharedPersistedQueries(3, REDIS_URL, prefix)  # a process started now sees only Redis
        try:
            assert [await fresh.get(sha256(text)) is not None for text in texts] == [True, False, False, True, True]
        finally:
            await fresh.close()
    finally:
        await probe.delete(f"{prefix}:queries", f"{prefix}:used")
        for store in (one, other):
            await store.close()
        await probe.aclose()
