"""Automatic persisted queries: Apollo's APQ protocol, over POST and GET.

A client sends `extensions: {"persistedQuery": {"version": 1, "sha256Hash": "<hex>"}}` in place of
the query text, which saves a mini-program most of its request bytes:

- the hash alone, known here: the query it names runs;
- the hash alone, unknown: the answer is the error `PERSISTED_QUERY_NOT_FOUND`, with HTTP 200,
  since that code (or the message "PersistedQueryNotFound") is what Apollo's link retries on,
  sending the query with the hash;
- the hash with the query: the hash must be the query's SHA-256 (else HTTP 400), the pair is
  kept, and the query runs.

The store keeps the most recently used queries, up to `TIERUP_PERSISTED_QUERIES` (`0` answers
every hash with `PERSISTED_QUERY_NOT_SUPPORTED`, on which clients stop sending hashes). With the
Redis broker the store lives in Redis, so a query registered through one process runs by its hash
on every other; each process keeps its own copy of what it used in front of it. A hash names one
text forever, so a copy is never wrong, only possibly gone elsewhere: a client then gets
`PERSISTED_QUERY_NOT_FOUND` once and registers it again.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import OrderedDict

import redis.asyncio as redis
from cross_web import HTTPException
from redis.exceptions import RedisError

from ..events import Broker, RedisBroker

log = logging.getLogger("tierup.api")

PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
PERSISTED_QUERY_NOT_SUPPORTED = "PERSISTED_QUERY_NOT_SUPPORTED"
# A longer text still runs, it is only not kept: the store's memory stays bounded by size × this.
MAX_KEPT_QUERY_CHARS = 64 * 1024

_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


class PersistedQueryError(Exception):
    """The request names a query by a hash that cannot be used; answered as a GraphQL error, HTTP 200."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def requested_hash(extensions: dict | None) -> str | None:
    """The SHA-256 (lowercase hex) the request names its query by; None when it names none."""
    persisted = (extensions or {}).get("persistedQuery")
    if persisted is None:
        return None
    if not isinstance(persisted, dict) or persisted.get("version") != 1:
        raise HTTPException(400, 'Unsupported persisted query version: send extensions.persistedQuery as '
                                 '{"version": 1, "sha256Hash": "<the query\'s SHA-256 in hex>"}.')
    sha = persisted.get("sha256Hash")
    if not isinstance(sha, str) or not _SHA256_HEX.fullmatch(sha):
        raise HTTPException(400, "extensions.persistedQuery.sha256Hash must be the query's SHA-256 as 64 hex digits.")
    return sha.lower()


def query_hash(query: str) -> str:
    # surrogatepass: JSON may carry a lone surrogate, which must give a mismatch or a parse error, not a crash.
    return hashlib.sha256(query.encode("utf-8", "surrogatepass")).hexdigest()


class PersistedQueries:
    """Query texts by hash, in this process: the `size` most recently used."""

    def __init__(self, size: int):
        self.size = size
        self._kept: OrderedDict[str, str] = OrderedDict()

    async def query_for(self, query: str | None, extensions: dict | None) -> str | None:
        """The text to run for a request's `query` and `extensions`, keeping it when both name it."""
        sha = requested_hash(extensions)
        if sha is None:
            return query
        if self.size <= 0:
            raise PersistedQueryError(PERSISTED_QUERY_NOT_SUPPORTED, "PersistedQueryNotSupported")
        if query is None:
            found = await self.get(sha)
            if found is None:
                raise PersistedQueryError(PERSISTED_QUERY_NOT_FOUND, "PersistedQueryNotFound")
            return found
        if query_hash(query) != sha:
            raise HTTPException(400, "provided sha does not match query")
        if len(query) <= MAX_KEPT_QUERY_CHARS:
            await self.put(sha, query)
        return query

    async def get(self, sha: str) -> str | None:
        query = self._kept.get(sha)
        if query is not None:
            self._kept.move_to_end(sha)
        return query

    async def put(self, sha: str, query: str) -> None:
        self._kept[sha] = query
        self._kept.move_to_end(sha)
        while len(self._kept) > self.size:
            self._kept.popitem(last=False)

    def __len__(self) -> int:
        return len(self._kept)

    async def close(self) -> None:
        pass


class SharedPersistedQueries(PersistedQueries):
    """The store in Redis, shared by every process on the broker: a hash of texts by SHA-256 and a
    sorted set of their last use; registering beyond `size` drops the least recently used.

    When Redis cannot be reached, a hash not kept locally is answered as not found and a new one is
    kept locally only: clients fall back to sending their queries, nothing fails."""

    def __init__(self, size: int, url: str, prefix: str = "tierup:apq"):
        super().__init__(size)
        self._redis = redis.from_url(url, decode_responses=True, encoding_errors="surrogatepass")
        self._texts = f"{prefix}:queries"
        self._used = f"{prefix}:used"

    async def get(self, sha: str) -> str | None:
        query = await super().get(sha)
        if query is not None:
            return query
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hget(self._texts, sha)
                pipe.zadd(self._used, {sha: time.time()}, xx=True)
                query, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("reading a persisted query from Redis failed: %s", exc)
            return None
        if query is not None:
            await super().put(sha, query)
        return query

    async def put(self, sha: str, query: str) -> None:
        await super().put(sha, query)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(self._texts, sha, query)
                pipe.zadd(self._used, {sha: time.time()})
                pipe.zcard(self._used)
                *_, count = await pipe.execute()
            if count > self.size:
                await self._drop_least_recently_used(count - self.size)
        except (RedisError, OSError) as exc:
            log.warning("keeping a persisted query in Redis failed: %s", exc)

    async def _drop_least_recently_used(self, count: int) -> None:
        # ZPOPMIN is atomic: processes trimming at once each drop different queries.
        dropped = [sha for sha, _ in await self._redis.zpopmin(self._used, count)]
        if dropped:
            await self._redis.hdel(self._texts, *dropped)

    async def close(self) -> None:
        await self._redis.aclose()


def create_persisted_queries(size: int, broker: Broker) -> PersistedQueries:
    """Shared through Redis when the broker is Redis (several processes), else this process's own."""
    if size > 0 and isinstance(broker, RedisBroker):
        return SharedPersistedQueries(size, broker.url)
    return PersistedQueries(size)
