"""Signed webhooks (Standard Webhooks): endpoints, the outbox, and delivering it.

- An operator registers an endpoint: a URL, the member events it wants, and a secret (whsec_…) shown once.
- A use case stages its events (`stage_webhooks`) inside its own write transaction: the deliveries commit,
  or roll back, with what they announce. A program that never had an endpoint pays no statement for it;
  one with endpoints pays one INSERT per transaction whose events they want.
- After commit the jobs runner (`run_deliveries` inside `tierup serve`; `deliver_due` from the jobs)
  claims what is due, signs and POSTs each, and records the attempt. A claim leases its rows by moving
  their due time ahead in one conditional UPDATE (their ids picked FOR UPDATE SKIP LOCKED on PostgreSQL;
  SQLite has one writer), so several processes never send one attempt twice, and rows of a process that
  died mid-send are tried again when the lease ends.
- A failed attempt is tried again with backoff (domain.webhooks) under the same webhook-id; an endpoint
  that has failed for a day is disabled, says why, and its waiting deliveries are cancelled.
- In production a delivery connects only to public addresses, unless TIERUP_WEBHOOK_PRIVATE_TARGETS says
  otherwise: the endpoint's name is resolved, and refused if any address it resolves to is private, when the
  connection is made (`delivery_client`), so that a name resolving elsewhere since a check cannot slip past.
- A finished delivery (delivered, failed or cancelled) is kept for operators to look at for
  TIERUP_WEBHOOK_RETENTION_DAYS, then the jobs remove it with its attempts (`prune_deliveries`): an outbox
  written with every event would otherwise grow for ever.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import secrets
import socket
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable
from weakref import WeakKeyDictionary

import httpcore
import httpx
from sqlalchemy import delete, event, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key
from standardwebhooks import Webhook

from ..domain.clock import local
from ..domain.errors import Checks, ErrorCode, Rejected
from ..domain.webhooks import (PRIVATE_TARGETS_ADVICE, next_attempt_at, private_address, should_disable,
                               url_problem)
from ..events import Event
from ..store.db import Database, execute_core
from ..store.models import Member, Program, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from ..store.types import UtcDateTime
from .programs import ActiveProgram

log = logging.getLogger("tierup.webhooks")

PENDING, DELIVERED, FAILED, CANCELLED = "PENDING", "DELIVERED", "FAILED", "CANCELLED"
MAX_ENDPOINTS = 20  # per program, disabled ones included
BATCH = 50  # deliveries claimed, and sent at once, per round
LEASE = timedelta(seconds=60)  # a claimed row is due again after this, should its sender die
TIMEOUT = httpx.Timeout(10.0, connect=5.0)  # seconds an endpoint has for each step of its answer
SEND_LIMIT = 20.0  # seconds for a whole attempt (an endpoint trickling bytes), well inside the lease
POLL_SECONDS = 5.0  # how often a runner looks for deliveries other processes wrote
DUE_AT_ONCE = datetime(1970, 1, 1, tzinfo=timezone.utc)  # a new delivery's due time, whatever the writer's clock
USER_AGENT = "tierup-webhooks/1"
_STAGED = "tierup_webhooks_staged"


@dataclass(frozen=True)
class NewWebhook:
    url: str
    events: tuple[str, ...]  # MemberEventKind names


@dataclass(frozen=True)
class CreatedWebhook:
    endpoint: WebhookEndpoint
    secret: str


def new_secret() -> str:
    """whsec_ and 32 random bytes in base64, the form standardwebhooks' Webhook(secret) reads."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def create_webhook(db: Database, program: ActiveProgram, request: NewWebhook, *, operator: str, now: datetime,
                         allow_http: bool, allow_private: bool) -> CreatedWebhook:
    events = tuple(dict.fromkeys(request.events))  # in the order given, once each
    checks = Checks()
    if (problem := url_problem(request.url, allow_http=allow_http, allow_private=allow_private)) is not None:
        checks.fail(ErrorCode.INVALID, problem, "input", "url")
    if not events:
        checks.fail(ErrorCode.INVALID, "name at least one event to deliver", "input", "events")
    checks.raise_any()
    secret = new_secret()
    async with db.write() as session:
        await _endpoints_changed(session, program.id)  # also the program's lock: two creations count in turn
        kept = (await session.execute(select(func.count()).select_from(WebhookEndpoint).where(
            WebhookEndpoint.program_id == program.id, WebhookEndpoint.deleted_at.is_(None)))).scalar_one()
        if kept >= MAX_ENDPOINTS:
            raise Rejected.one(ErrorCode.LIMIT_REACHED, f"a program has at most {MAX_ENDPOINTS} webhooks; "
                                                        "delete one first", "input", "url")
        endpoint = WebhookEndpoint(program_id=program.id, url=request.url, events=",".join(events), secret=secret,
                                   active=True, created_at=now, created_by=operator)
        session.add(endpoint)
    wake_runners()
    return CreatedWebhook(endpoint, secret)


async def delete_webhook(db: Database, program: ActiveProgram, endpoint_id: int, *, now: datetime) -> None:
    """The endpoint receives nothing more; what waited for it is cancelled. Its row stays (deleted_at), so
    deliveries staged by a transaction that read the endpoints just before still name it."""
    async with db.write() as session:
        await _endpoints_changed(session, program.id)
        endpoint = await _endpoint(session, program, endpoint_id)
        endpoint.deleted_at = now
        endpoint.active = False
        await _cancel_waiting(session, endpoint_id, now)


async def enable_webhook(db: Database, program: ActiveProgram, endpoint_id: int, *, now: datetime) -> WebhookEndpoint:
    """A disabled endpoint receives events again (those of transactions from now on), its failures forgotten."""
    async with db.write() as session:
        await _endpoints_changed(session, program.id)
        endpoint = await _endpoint(session, program, endpoint_id)
        endpoint.active = True
        endpoint.failing_since = endpoint.disabled_at = endpoint.disabled_reason = None
    wake_runners()
    return endpoint


async def _endpoint(session: AsyncSession, program: ActiveProgram, endpoint_id: int) -> WebhookEndpoint:
    endpoint = (await session.execute(select(WebhookEndpoint).where(
        WebhookEndpoint.id == endpoint_id, WebhookEndpoint.program_id == program.id,
        WebhookEndpoint.deleted_at.is_(None)).with_for_update())).scalar_one_or_none()
    if endpoint is None:
        raise Rejected.one(ErrorCode.NOT_FOUND, "webhookId names no webhook in this program", "input", "webhookId")
    return endpoint


async def _endpoints_changed(session: AsyncSession, program_id: int) -> None:
    """Every process reads the program's endpoints again at its next transaction (see stage_webhooks)."""
    await execute_core(session, update(Program).where(Program.id == program_id)
                       .values(webhooks_version=Program.webhooks_version + 1))


async def _cancel_waiting(session: AsyncSession, endpoint_id: int, now: datetime) -> None:
    await execute_core(session, update(WebhookDelivery).where(
        WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == PENDING)
        .values(status=CANCELLED, finished_at=now))


async def program_endpoints(db: Database, program: ActiveProgram) -> list[WebhookEndpoint]:
    """The program's endpoints (disabled ones too, not deleted ones), oldest first."""
    async with db.read() as session:
        return list((await session.execute(select(WebhookEndpoint).where(
            WebhookEndpoint.program_id == program.id, WebhookEndpoint.deleted_at.is_(None))
            .order_by(WebhookEndpoint.id))).scalars())


@dataclass(frozen=True)
class DeliveryPage:
    rows: list  # WebhookDelivery columns, newest first
    has_next: bool
    total: int
    attempts: dict[int, list[WebhookAttempt]]  # by delivery, oldest first


async def delivery_pages(db: Database, endpoint_ids: list[int], *, first: int, after: int | None,
                         status: str | None) -> dict[int, DeliveryPage]:
    """A page of deliveries of each endpoint, newest first, in three statements whatever their number."""
    d = WebhookDelivery
    mine = [d.endpoint_id.in_(endpoint_ids)] + ([d.status == status] if status is not None else [])
    ranked = (select(d, func.row_number().over(partition_by=d.endpoint_id, order_by=d.id.desc()).label("n"))
              .where(*mine, *([d.id < after] if after is not None else [])).subquery())
    async with db.read() as session:
        rows = (await session.execute(select(ranked).where(ranked.c.n <= first + 1)
                                      .order_by(ranked.c.endpoint_id, ranked.c.id.desc()))).all()
        totals = dict((await session.execute(select(d.endpoint_id, func.count()).where(*mine)
                                             .group_by(d.endpoint_id))).all())
        by_delivery = await _attempts_of(session, [row.id for row in rows])
    grouped: dict[int, list] = defaultdict(list)
    for row in rows:
        grouped[row.endpoint_id].append(row)
    return {i: DeliveryPage(grouped[i][:first], len(grouped[i]) > first, totals.get(i, 0),
                            {row.id: by_delivery[row.id] for row in grouped[i][:first]}) for i in endpoint_ids}


async def deliveries_by_id(db: Database, program: ActiveProgram, delivery_ids: list[int]
                           ) -> dict[int, tuple[WebhookDelivery, list[WebhookAttempt]]]:
    """Deliveries of the program's endpoints (deleted ones' excluded), with their attempts."""
    d, e = WebhookDelivery, WebhookEndpoint
    async with db.read() as session:
        rows = list((await session.execute(select(d).join(e, e.id == d.endpoint_id).where(
            d.id.in_(delivery_ids), e.program_id == program.id, e.deleted_at.is_(None)))).scalars())
        attempts = await _attempts_of(session, [row.id for row in rows])
    return {row.id: (row, attempts[row.id]) for row in rows}


async def _attempts_of(session: AsyncSession, delivery_ids: list[int]) -> dict[int, list[WebhookAttempt]]:
    """Each delivery's attempts, oldest first (an empty list for none)."""
    attempts: dict[int, list[WebhookAttempt]] = defaultdict(list)
    if delivery_ids:
        for attempt in (await session.execute(select(WebhookAttempt).where(
                WebhookAttempt.delivery_id.in_(delivery_ids)).order_by(WebhookAttempt.id))).scalars():
            attempts[attempt.delivery_id].append(attempt)
    return attempts


# ------------------------------------------------------------------------------------------------ staging

# Per engine, per program: (webhooks_version, the active endpoints as (id, event kinds)) as last read.
_subscriptions: "WeakKeyDictionary[object, dict[int, tuple[int, tuple[tuple[int, frozenset[str]], ...]]]]" = \
    WeakKeyDictionary()


async def stage_webhooks(session: AsyncSession, program: ActiveProgram, events: Iterable[Event], *,
                         now: datetime) -> int:
    """Put the events that endpoints subscribe to into the outbox, in the caller's write transaction;
    returns the deliveries written. Call it inside the `db.write()` block, once the events are known."""
    if program.webhooks_version == 0:  # the program never had an endpoint: not a statement spent
        return 0
    events = [e for e in events if e.program_id == program.id]
    subscriptions = await _subscribed(session, program) if events else ()
    wanted = [(e, endpoint_id) for e in events for endpoint_id, kinds in subscriptions if e.kind in kinds]
    if not wanted:
        return 0
    external_ids = await _external_ids(session, {e.member_id for e, _ in wanted})
    rows = [dict(endpoint_id=endpoint_id, message_id=f"msg_{uuid.uuid4().hex}", member_id=e.member_id, kind=e.kind,
                 payload=_payload(program, e, external_ids[e.member_id]), created_at=now, status=PENDING,
                 attempts=0, next_attempt_at=DUE_AT_ONCE) for e, endpoint_id in wanted]
    await session.flush()  # members written by the ORM exist before rows that name them
    await execute_core(session, insert(WebhookDelivery), rows)
    session.sync_session.info[_STAGED] = True  # wakes this process's runner once committed
    return len(rows)


async def _subscribed(session: AsyncSession, program: ActiveProgram) -> tuple[tuple[int, frozenset[str]], ...]:
    """The program's active endpoints and their events, read again only when webhooks_version moved."""
    connection = await session.connection()
    kept = _subscriptions.setdefault(connection.sync_engine, {})
    version = program.webhooks_version
    if version is not None and program.id in kept and kept[program.id][0] == version:
        return kept[program.id][1]
    rows = (await connection.execute(select(WebhookEndpoint.id, WebhookEndpoint.events).where(
        WebhookEndpoint.program_id == program.id, WebhookEndpoint.active))).all()
    found = tuple((endpoint_id, frozenset(events.split(","))) for endpoint_id, events in rows)
    if version is not None:
        kept[program.id] = (version, found)
    return found


async def _external_ids(session: AsyncSession, member_ids: set[int]) -> dict[int, str]:
    """Members' external ids: from the rows the transaction holds already, reading only the others."""
    found = {}
    for member_id in member_ids:
        member = session.sync_session.identity_map.get(identity_key(Member, member_id))
        # Through __dict__: an expired attribute would be a lazy load, which async code cannot do.
        if member is not None and "external_id" in member.__dict__:
            found[member_id] = member.external_id
    missing = member_ids - found.keys()
    if missing:
        found.update((await execute_core(session, select(Member.id, Member.external_id)
                                         .where(Member.id.in_(sorted(missing))))).all())
    return found


def _payload(program: ActiveProgram, e: Event, external_id: str) -> str:
    """The body, fixed when staged so that every attempt sends the same bytes. The Standard Webhooks
    shape: type, timestamp (the event's time, in the program's zone as the API gives times), data."""
    at = local(e.at, program.definition.zone).isoformat()
    return json.dumps({"type": e.kind, "timestamp": at, "data": {
        "program": program.code, "memberExternalId": external_id, "message": e.message}},
        ensure_ascii=False, separators=(",", ":"))


# ------------------------------------------------------------------------------------------------ delivering

@dataclass(frozen=True)
class Claimed:
    id: int
    endpoint_id: int
    message_id: str
    payload: str
    attempts: int  # made before this one
    first_attempted_at: datetime


@dataclass(frozen=True)
class Target:
    id: int
    program_id: int
    url: str
    secret: str
    active: bool
    failing_since: datetime | None


@dataclass(frozen=True)
class Attempt:
    status_code: int | None
    error: str | None  # None when the endpoint answered 2xx
    duration_ms: int


@dataclass
class DeliveryRun:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    cancelled: int = 0
    disabled: int = 0  # endpoints
    rounds: int = 0  # claims made

    def add(self, other: "DeliveryRun") -> None:
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)


async def deliver_due(db: Database, *, now: datetime, private_targets: bool, program_id: int | None = None,
                      client: httpx.AsyncClient | None = None) -> DeliveryRun:
    """Send every delivery due at `now` (of one program, or all), BATCH at a time, and record each attempt.
    `private_targets`: whether an endpoint may be at a private address (delivery_client)."""
    total = DeliveryRun()
    async with contextlib.AsyncExitStack() as stack:
        if client is None:
            client = await stack.enter_async_context(delivery_client(private_targets=private_targets))
        started = time.monotonic()
        while True:
            # Each round claims on a time moved on by the rounds before it: its leases must not be over already.
            at = now + timedelta(seconds=time.monotonic() - started) if total.rounds else now
            claimed, targets = await _claim(db, at, program_id)
            if not claimed:
                return total
            sendable = [c for c in claimed if targets[c.endpoint_id].active]
            attempts = await asyncio.gather(*(_send(client, targets[c.endpoint_id], c) for c in sendable))
            total.add(await _record(db, at, claimed, targets, dict(zip((c.id for c in sendable), attempts))))
            total.rounds += 1
            if len(claimed) < BATCH:
                return total


async def _claim(db: Database, now: datetime, program_id: int | None) -> tuple[list[Claimed], dict[int, Target]]:
    d, e = WebhookDelivery, WebhookEndpoint
    due = select(d.id).where(d.status == PENDING, d.next_attempt_at <= now)
    if program_id is not None:
        due = due.where(d.endpoint_id.in_(select(e.id).where(e.program_id == program_id)))
    due = due.order_by(d.next_attempt_at, d.id).limit(BATCH).with_for_update(skip_locked=True)
    # The conditions again outside the subquery: on PostgreSQL a row another claim took meanwhile is skipped.
    claim = (update(d).where(d.id.in_(due), d.status == PENDING, d.next_attempt_at <= now)
             .values(next_attempt_at=now + LEASE,
                     first_attempted_at=func.coalesce(d.first_attempted_at, literal(now, UtcDateTime())))
             .returning(d.id, d.endpoint_id, d.message_id, d.payload, d.attempts, d.first_attempted_at))
    async with db.write() as session:
        claimed = [Claimed(*row) for row in (await execute_core(session, claim)).all()]
        if not claimed:
            return [], {}
        rows = await execute_core(session, select(e.id, e.program_id, e.url, e.secret, e.active, e.failing_since)
                                  .where(e.id.in_({c.endpoint_id for c in claimed})))
        targets = {row.id: Target(*row) for row in rows}
    return sorted(claimed, key=lambda c: c.id), targets


def delivery_client(*, private_targets: bool) -> httpx.AsyncClient:
    """The client deliveries are sent with; unless `private_targets`, it connects to public addresses only."""
    if private_targets:
        return httpx.AsyncClient(timeout=TIMEOUT)
    transport = httpx.AsyncHTTPTransport()
    # httpx builds its connection pool with the default network backend and takes no other; the pool is
    # built again as httpx builds it, with its default limits (no proxy: this client connects only where it
    # has judged), and ours.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(), max_connections=100, max_keepalive_connections=20,
        keepalive_expiry=5.0, network_backend=_PublicAddresses())
    return httpx.AsyncClient(timeout=TIMEOUT, transport=transport)


class _PublicAddresses(httpcore.AsyncNetworkBackend):
    """Connects to a host's address once every address its name resolves to is public: the address connected
    to is the one judged (TLS still names, and checks, the host)."""

    def __init__(self) -> None:
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options=None) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"{host} did not resolve in time") from None
        except (OSError, UnicodeError) as exc:  # UnicodeError: a name no resolver takes (a label over 63)
            raise httpcore.ConnectError(f"{host} does not resolve: {exc}") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
        private = [address for address in addresses if private_address(address)]
        if private:
            raise httpcore.ConnectError(f"{host} resolves to a private address ({private[0]}); "
                                        f"{PRIVATE_TARGETS_ADVICE}")
        failure: Exception | None = None
        for address in addresses:  # as a connection by name tries them
            try:
                return await self._backend.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                       socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure or httpcore.ConnectError(f"{host} resolves to no address")

    async def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options=None):
        raise httpcore.ConnectError("webhooks are sent over TCP")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


async def _send(client: httpx.AsyncClient, target: Target, claimed: Claimed) -> Attempt:
    """One signed POST. The timestamp is the wall clock's, whatever clock schedules the attempts: receivers
    check it against theirs (standardwebhooks allows 5 minutes either way)."""
    sent_at = int(time.time())
    signature = Webhook(target.secret).sign(claimed.message_id, datetime.fromtimestamp(sent_at, timezone.utc),
                                            claimed.payload)
    headers = {"content-type": "application/json", "user-agent": USER_AGENT, "webhook-id": claimed.message_id,
               "webhook-timestamp": str(sent_at), "webhook-signature": signature}
    started = time.monotonic()
    status, error = None, None
    try:
        # Streamed, and the body never read: only the status matters, whatever an endpoint sends back.
        async with asyncio.timeout(SEND_LIMIT), client.stream("POST", target.url, content=claimed.payload.encode(),
                                                              headers=headers) as response:
            status = response.status_code
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except (httpx.TimeoutException, TimeoutError):
        error = "no answer in time"
    except Exception as exc:  # refused, unreachable, bad TLS, a URL httpx will not send to: the endpoint failed
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return Attempt(status, error and error[:300], round((time.monotonic() - started) * 1000))


async def _record(db: Database, now: datetime, claimed: list[Claimed], targets: dict[int, Target],
                  attempts: dict[int, Attempt]) -> DeliveryRun:
    """Each attempt, each delivery's next state, and what the attempts say about their endpoints."""
    run = DeliveryRun()
    d = WebhookDelivery
    finished: dict[str, list[int]] = defaultdict(list)  # final status → deliveries
    retries: dict[datetime, list[int]] = defaultdict(list)
    answered, failed = set(), set()  # endpoints
    for c in claimed:
        attempt = attempts.get(c.id)
        if attempt is None:  # its endpoint was deleted or disabled after the delivery was written
            finished[CANCELLED].append(c.id)
        elif attempt.error is None:
            finished[DELIVERED].append(c.id)
            answered.add(c.endpoint_id)
        else:
            failed.add(c.endpoint_id)
            then = next_attempt_at(c.first_attempted_at, c.attempts + 1, now)
            (retries[then] if then is not None else finished[FAILED]).append(c.id)
    # Only rows still PENDING (a deletion may have cancelled them while they were being sent) and still on
    # this claim's lease (had it run out, another process may have claimed and sent them again).
    ours = (d.status == PENDING, d.next_attempt_at == now + LEASE)
    async with db.write() as session:
        if attempts:
            await execute_core(session, insert(WebhookAttempt), [
                dict(delivery_id=i, attempted_at=now, status_code=a.status_code, error=a.error,
                     duration_ms=a.duration_ms) for i, a in attempts.items()])
        tried = d.attempts + 1
        for status, ids in finished.items():
            await execute_core(session, update(d).where(d.id.in_(ids), *ours).values(
                status=status, finished_at=now, attempts=tried if status != CANCELLED else d.attempts))
        for then, ids in retries.items():
            await execute_core(session, update(d).where(d.id.in_(ids), *ours).values(next_attempt_at=then,
                                                                                     attempts=tried))
        run.disabled = await _judge_endpoints(session, now, targets, answered, failed - answered, attempts, claimed)
    run.delivered, run.failed, run.cancelled = (len(finished[s]) for s in (DELIVERED, FAILED, CANCELLED))
    run.retrying = sum(len(ids) for ids in retries.values())
    return run


async def _judge_endpoints(session: AsyncSession, now: datetime, targets: dict[int, Target], answered: set[int],
                           failing: set[int], attempts: dict[int, Attempt], claimed: list[Claimed]) -> int:
    """An answer clears an endpoint's failures; a failure starts them; a day of them disables it. Returns
    the endpoints disabled."""
    e = WebhookEndpoint
    if answered:
        await execute_core(session, update(e).where(e.id.in_(answered), e.failing_since.is_not(None))
                           .values(failing_since=None))
    fresh = [i for i in failing if targets[i].failing_since is None]
    if fresh:
        await execute_core(session, update(e).where(e.id.in_(fresh), e.failing_since.is_(None))
                           .values(failing_since=now))
    disabled = 0
    for endpoint_id in sorted(failing):
        target = targets[endpoint_id]
        if not should_disable(target.failing_since, now):
            continue
        last = next(attempts[c.id].error for c in reversed(claimed) if c.id in attempts and c.endpoint_id == endpoint_id)
        reason = f"every delivery failed for 24 hours; the last attempt: {last}"[:500]
        changed = await execute_core(session, update(e).where(e.id == endpoint_id, e.active).values(
            active=False, disabled_at=now, disabled_reason=reason))
        if changed.rowcount:
            await _endpoints_changed(session, target.program_id)
            await _cancel_waiting(session, endpoint_id, now)
            log.warning("webhook %s (%s) disabled: %s", endpoint_id, target.url, reason)
            disabled += 1
    return disabled


# Finished deliveries removed per transaction: a short hold of the write lock each (SQLite's is the server's).
PRUNE_BATCH = 2000


async def prune_deliveries(db: Database, *, before: datetime, program_id: int | None = None) -> int:
    """Remove the deliveries (of the program's endpoints, or all) that finished before `before`, with their
    attempts, a batch a transaction; returns how many. Waiting ones stay, however old."""
    finished = select(WebhookDelivery.id).where(WebhookDelivery.finished_at < before)
    if program_id is not None:
        finished = finished.where(WebhookDelivery.endpoint_id.in_(
            select(WebhookEndpoint.id).where(WebhookEndpoint.program_id == program_id)))
    removed = 0
    while True:
        async with db.write() as session:
            ids = list((await session.execute(finished.order_by(WebhookDelivery.finished_at).limit(PRUNE_BATCH)
                                              )).scalars())
            if ids:
                await session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids)))
                # Counted as deleted: another server pruning at once may have taken some of them first.
                removed += (await session.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(ids)))
                            ).rowcount
        if len(ids) < PRUNE_BATCH:
            return removed


async def next_due(db: Database) -> datetime | None:
    """When the soonest waiting delivery is due (any process's), or None when nothing waits."""
    async with db.read() as session:
        return (await session.execute(select(func.min(WebhookDelivery.next_attempt_at))
                                      .where(WebhookDelivery.status == PENDING))).scalar_one()


async def any_endpoint(db: Database) -> bool:
    async with db.read() as session:
        return (await session.execute(select(WebhookEndpoint.id).limit(1))).first() is not None


# ------------------------------------------------------------------------------------------------ the runner

# The runners of this process (their loop and their wake-up), woken when a transaction that staged
# deliveries commits, or an endpoint is created or enabled.
_runners: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()


def wake_runners() -> None:
    for loop, wakeup in list(_runners):
        if not loop.is_closed():
            loop.call_soon_threadsafe(wakeup.set)


@event.listens_for(Session, "after_commit")
def _staged_committed(session: Session) -> None:
    if session.info.pop(_STAGED, False):
        wake_runners()


@event.listens_for(Session, "after_rollback")
def _staged_rolled_back(session: Session) -> None:
    session.info.pop(_STAGED, None)


async def run_deliveries(db: Database, clock: Callable[[], datetime], *, private_targets: bool,
                         poll: float = POLL_SECONDS) -> None:
    """Inside `tierup serve`: deliver what is due, then sleep until the next delivery is due, a transaction
    of this process staged one, or `poll` seconds passed (other processes' deliveries). A database that
    never had an endpoint is not polled at all: creating one, here or in another process that then stages
    deliveries, wakes the runner."""
    wakeup = asyncio.Event()
    me = (asyncio.get_running_loop(), wakeup)
    _runners.add(me)
    armed = False
    try:
        async with delivery_client(private_targets=private_targets) as client:
            while True:
                wait: float | None = poll
                try:
                    armed = armed or await any_endpoint(db)
                    if not armed:
                        wait = None
                    elif (due := await next_due(db)) is not None:
                        if due <= clock():
                            await deliver_due(db, now=clock(), private_targets=private_targets, client=client)
                            due = await next_due(db)
                        if due is not None:  # a floor: a row due but locked by another claim is not spun on
                            wait = min(poll, max(0.1, (due - clock()).total_seconds()))
                except Exception:  # the database is away, a bug: logged, tried again at the next poll
                    log.exception("webhook deliveries failed; trying again in %s s", poll)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wakeup.wait(), wait)
                wakeup.clear()
    finally:
        _runners.discard(me)
