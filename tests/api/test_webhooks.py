"""Signed webhooks: a shop's endpoint receives the member events it chose, signed per Standard Webhooks,
written with the event's transaction, retried under the same webhook-id, disabled after a day of failures."""

import asyncio
import json
from dataclasses import replace
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select
from standardwebhooks import Webhook
from strawberry.relay import GlobalID

from documents import ADJUST_POINTS
from helpers import enroll, member_view, order, row_counts
from tierup.app import create_app
from tierup.auth import Role
from tierup.services import orders as order_service
from tierup.services.points import AdjustmentInput, adjust_points
from tierup.services.programs import active_program
from tierup.services.tiers import evaluate_tiers
from tierup.services.jobs import run_jobs
from tierup.services.webhooks import deliver_due, next_due, prune_deliveries
from tierup.store.db import Database, count_statements
from tierup.store.models import Program, WebhookAttempt, WebhookDelivery
from webhook_receiver import receiving

CREATE = """
mutation($url: String!, $events: [MemberEventKind!]!) {
  createWebhook(input: {url: $url, events: $events}) {
    webhook { id url events active }
    secret
    userErrors { field message code }
  }
}"""

DELETE = """
mutation($id: ID!) { deleteWebhook(input: {webhookId: $id}) { deleted userErrors { field message code } } }"""

ENABLE = """
mutation($id: ID!) { enableWebhook(input: {webhookId: $id}) { webhook { active failingSince disabledReason }
                                                              userErrors { field message code } } }"""

WEBHOOKS = """
{ program { webhooks {
    id url events active failingSince disabledAt disabledReason
    deliveries(first: 10) { totalCount edges { node {
      id messageId kind status nextAttemptAt payload attempts { at statusCode error }
    } } }
} } }"""


@pytest.fixture
async def receiver():
    async with receiving() as receiver:
        yield receiver


async def create_webhook(api, url: str, *events: str) -> dict:
    result = await api.as_operator(CREATE, {"url": url, "events": list(events)})
    assert "errors" not in result, result
    created = result["data"]["createWebhook"]
    assert created["userErrors"] == [], created
    return created


async def webhooks(api) -> list[dict]:
    result = await api.as_operator(WEBHOOKS)
    assert "errors" not in result, result
    return result["data"]["program"]["webhooks"]


async def adjust(api, member: str, amount: int, key: str) -> dict:
    member_id = (await member_view(api, member))["id"]
    result = await api.as_operator(ADJUST_POINTS, {"input": {"memberId": member_id, "amount": amount,
                                                             "reason": "goodwill", "externalId": key}})
    assert "errors" not in result, result
    return result["data"]["adjustPoints"]


async def deliveries(db) -> list[WebhookDelivery]:
    async with db.read() as session:
        return list((await session.execute(select(WebhookDelivery).order_by(WebhookDelivery.id))).scalars())


async def test_a_receiver_that_fails_once_gets_the_retry_with_the_same_id_and_a_valid_signature(
        api, db, clock, receiver):
    created = await create_webhook(api, receiver.url, "POINTS_CHANGED")
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert created["webhook"]["events"] == ["POINTS_CHANGED"] and created["webhook"]["active"] is True

    await enroll(api, "alice")  # the welcome bonus: POINTS_CHANGED, written in the enrolment's transaction
    receiver.answers = [500]
    first = await deliver_due(db, private_targets=True, now=clock())
    assert (first.delivered, first.retrying) == (0, 1)
    assert (await deliver_due(db, private_targets=True, now=clock() + timedelta(seconds=4))).retrying == 0  # not due yet

    clock.now += timedelta(seconds=5)  # the first retry comes 5 seconds later
    second = await deliver_due(db, private_targets=True, now=clock())
    assert (second.delivered, second.retrying) == (1, 0)

    failed, retried = receiver.received
    assert failed.headers["webhook-id"] == retried.headers["webhook-id"]
    assert failed.headers["webhook-id"].startswith("msg_")
    assert failed.body == retried.body
    for request in (failed, retried):
        assert request.path == "/hooks" and request.headers["content-type"] == "application/json"
        payload = Webhook(secret).verify(request.body, request.headers)  # raises unless the signature holds
        assert payload == {"type": "POINTS_CHANGED", "timestamp": "2026-01-05T10:00:00+08:00", "data": {
            "program": "classic", "memberExternalId": "alice", "message": "Points balance is now 100 (+100)"}}
    with pytest.raises(Exception):
        Webhook("whsec_" + "A" * 44).verify(retried.body, retried.headers)  # another secret does not verify

    [endpoint] = await webhooks(api)
    assert "secret" not in endpoint  # shown once, at creation
    assert endpoint["failingSince"] is None  # the success cleared the failure
    [edge] = endpoint["deliveries"]["edges"]
    delivery = edge["node"]
    assert (delivery["messageId"], delivery["kind"], delivery["status"]) == (
        failed.headers["webhook-id"], "POINTS_CHANGED", "DELIVERED")
    assert json.loads(delivery["payload"]) == json.loads(retried.body)
    assert [(a["at"], a["statusCode"], a["error"]) for a in delivery["attempts"]] == [
        ("2026-01-05T10:00:00+08:00", 500, "HTTP 500"), ("2026-01-05T10:00:05+08:00", 200, None)]
    node = await api.as_operator("query($id: ID!) { node(id: $id) { ... on WebhookDelivery { status } } }",
                                 {"id": delivery["id"]})
    assert node["data"]["node"] == {"status": "DELIVERED"}


async def test_finished_deliveries_are_removed_with_their_attempts_once_the_retention_period_is_over(
        api, db, clock, receiver, monkeypatch):
    """Kept TIERUP_WEBHOOK_RETENTION_DAYS for operators to look at, then the jobs remove a finished delivery and
    its attempts (a batch a transaction, here one each); one still waiting stays however old."""
    from tierup.services import webhooks as webhook_service

    monkeypatch.setattr(webhook_service, "PRUNE_BATCH", 1)
    await create_webhook(api, receiver.url, "POINTS_CHANGED")
    await enroll(api, "alice")  # the welcome bonus's delivery, delivered at once
    await enroll(api, "bob")
    delivered_at = clock()
    assert (await deliver_due(db, private_targets=True, now=delivered_at)).delivered == 2
    clock.now += timedelta(days=10)
    await adjust(api, "alice", 10, "ADJ-1")
    receiver.answers = [500]
    assert (await deliver_due(db, private_targets=True, now=clock())).retrying == 1  # waits for its retry

    program = await active_program(db, "classic")
    assert await prune_deliveries(db, before=delivered_at, program_id=program.id) == 0  # finished at it: kept
    assert await prune_deliveries(db, before=delivered_at + timedelta(days=365), program_id=program.id + 1) == 0
    assert [row.status for row in await deliveries(db)] == ["DELIVERED", "DELIVERED", "PENDING"]

    # 30 days after the first two were delivered, the jobs send the waiting one and remove those two.
    [run] = await run_jobs(db, as_of=delivered_at + timedelta(days=30, seconds=1), deliveries_kept_days=30,
                           private_targets=True)
    assert (run.webhooks.delivered, run.deliveries_removed) == (1, 2)
    [kept] = await deliveries(db)
    assert kept.status == "DELIVERED" and kept.kind == "POINTS_CHANGED"
    async with db.read() as session:
        assert list((await session.execute(select(WebhookAttempt.delivery_id, WebhookAttempt.status_code)
                                           .order_by(WebhookAttempt.id))).all()) == [(kept.id, 500), (kept.id, 200)]
    [endpoint] = await webhooks(api)
    assert endpoint["deliveries"]["totalCount"] == 1


async def test_a_tier_change_at_evaluation_reaches_the_endpoint(api, db, clock, receiver):
    clock.now = datetime.fromisoformat("2026-02-01T10:00:00+08:00")
    await enroll(api, "alice", joinedAt="2026-01-01T10:00:00+08:00")
    await order(api, "A-1", "alice", "250", "2026-01-20T12:00:00+08:00")  # SILVER until 2027-01-20
    created = await create_webhook(api, receiver.url, "TIER_CHANGED")
    program = await active_program(db, "classic")
    as_of = datetime.fromisoformat("2028-02-01T00:00:00+08:00")
    await evaluate_tiers(db, program, as_of=as_of)  # kept, then a year without orders
    result = await evaluate_tiers(db, program, as_of=as_of + timedelta(days=366))
    assert result.downgraded == 1
    assert (await deliver_due(db, private_targets=True, now=clock())).delivered == 1
    [request] = receiver.received
    assert Webhook(created["secret"]).verify(request.body, request.headers) == {
        "type": "TIER_CHANGED", "timestamp": "2029-02-01T00:00:00+08:00",
        "data": {"program": "classic", "memberExternalId": "alice", "message": "Tier is now 普通会员"}}


async def test_an_order_that_upgrades_sends_tier_changed(api, db, clock, receiver):
    created = await create_webhook(api, receiver.url, "TIER_CHANGED")
    await enroll(api, "alice")
    await order(api, "A-1", "alice", "250", "2026-01-05T09:00:00+08:00")
    assert (await deliver_due(db, private_targets=True, now=clock())).delivered == 1
    [request] = receiver.received
    assert Webhook(created["secret"]).verify(request.body, request.headers)["data"]["message"] == \
        "Tier is now 银卡会员"


async def test_a_batch_writes_only_its_recorded_orders_and_a_refund_its_own(api, db, clock, receiver):
    await create_webhook(api, receiver.url, "TIER_CHANGED", "POINTS_CHANGED")
    await enroll(api, "alice")
    program = await active_program(db, "classic")
    paid = datetime.fromisoformat("2026-01-05T09:00:00+08:00")
    results = await order_service.record_orders(db, program, [
        order_service.OrderInput("A-1", "alice", "250", paid),
        order_service.OrderInput("A-2", "nobody", "80", paid),  # refused: only this one rolls back
    ], now=clock())
    assert [type(r).__name__ for r in results] == ["OrderResult", "Rejected"]
    await order_service.refund_order(db, program, order_service.RefundInput("R-1", "A-1", "100", paid), now=clock())
    messages = [json.loads(row.payload)["data"]["message"] for row in await deliveries(db)]
    assert messages == [
        "Points balance is now 100 (+100)",  # the enrolment
        "Tier is now 银卡会员", "Points balance is now 400 (+300)",  # 250 points and the first-order task's 50
        "Points balance is now 300 (-100)",  # R-1 takes back 100 of A-1's 250; the task's reward stays
    ]


async def test_deliveries_are_written_with_their_events_or_not_at_all(api, db, receiver):
    await create_webhook(api, receiver.url, "POINTS_CHANGED")
    await enroll(api, "alice")
    assert len(await deliveries(db)) == 1
    refused = await adjust(api, "alice", -500, "ADJ-1")  # beyond the balance: the transaction rolls back
    assert refused["userErrors"][0]["code"] == "INSUFFICIENT_POINTS"
    await adjust(api, "alice", 50, "ADJ-2")
    await adjust(api, "alice", 50, "ADJ-2")  # the same report again changes nothing, and announces nothing
    rows = await deliveries(db)
    assert [json.loads(row.payload)["data"]["message"] for row in rows] == [
        "Points balance is now 100 (+100)", "Points balance is now 150 (+50)"]
    assert len({row.message_id for row in rows}) == 2


async def test_only_subscribed_events_of_active_endpoints_are_written(api, db, receiver):
    await create_webhook(api, receiver.url, "TIER_CHANGED", "BADGE_EARNED")
    await enroll(api, "alice")  # POINTS_CHANGED and task progress only
    assert await deliveries(db) == []


async def test_a_program_without_webhooks_spends_no_statement_on_them(api, db, clock, receiver):
    await enroll(api, "alice")
    member_id = int(GlobalID.from_id((await member_view(api, "alice"))["id"]).node_id)
    keys = iter(range(100))

    async def statements() -> int:
        program = await active_program(db, "classic")  # as a request reads it
        with count_statements() as counted:
            await adjust_points(db, program, AdjustmentInput(member_id, 10, "goodwill", f"ADJ-{next(keys)}"),
                                operator="ops", now=clock())
        return counted[0]

    without = await statements()
    assert await statements() == without
    await create_webhook(api, receiver.url, "TIER_CHANGED")  # other events only
    assert await statements() == without + 1  # the endpoints read once per change of them
    assert await statements() == without
    await create_webhook(api, receiver.url, "POINTS_CHANGED")
    await statements()
    assert await statements() == without + 1  # the outbox rows, one INSERT


async def test_only_operators_manage_webhooks(api, db, receiver):
    variables = {"url": receiver.url, "events": ["TIER_CHANGED"]}
    for call in (api.as_service, lambda q, v: api.as_member("alice", q, v)):
        assert (await call(CREATE, variables))["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await api.post(CREATE, variables))["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert (await api.as_service(WEBHOOKS))["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    created = await create_webhook(api, receiver.url, "TIER_CHANGED")
    webhook_id = created["webhook"]["id"]
    assert (await api.as_service(DELETE, {"id": webhook_id}))["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    node = await api.as_service("query($id: ID!) { node(id: $id) { id } }", {"id": webhook_id})
    assert node["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert len(await webhooks(api)) == 1


@pytest.mark.parametrize("url, message", [
    ("ftp://shop.example.com/hooks", "url must start with https:// or http://"),
    ("shop.example.com/hooks", "url must start with https:// or http://"),
    ("https://", "url names no host"),
    ("https://ops:pw@shop.example.com/hooks", "url must not carry a user name or password"),
    ("https://shop.example.com/hooks#x", "url must not have a #fragment"),
    ("https://shop.example.com:99999/hooks", "url is not a valid URL"),
    ("https://shop.example.com/ hooks", "url contains spaces or control characters"),
    ("https://shop.example.com/" + "x" * 2000, "url is longer than 2000 characters"),
])
async def test_a_bad_url_is_refused_and_nothing_is_written(api, db, url, message):
    before = await row_counts(db)
    result = await api.as_operator(CREATE, {"url": url, "events": ["TIER_CHANGED"]})
    payload = result["data"]["createWebhook"]
    assert payload["webhook"] is None and payload["secret"] is None
    [error] = payload["userErrors"]
    assert (error["code"], error["field"]) == ("INVALID", ["input", "url"])
    assert error["message"].startswith(message)
    assert await row_counts(db) == before
    async with db.read() as session:
        assert (await session.execute(select(func.max(Program.webhooks_version)))).scalar_one() == 0


async def test_no_events_is_refused(api, db, receiver):
    result = await api.as_operator(CREATE, {"url": receiver.url, "events": []})
    [error] = result["data"]["createWebhook"]["userErrors"]
    assert (error["code"], error["field"]) == ("INVALID", ["input", "events"])
    assert await webhooks(api) == []


async def test_production_takes_https_only(settings, db, clock, program, api):
    app = create_app(replace(settings, env="production"), db=db, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tierup.test") as client:
        headers = {"Authorization": f"Bearer {api.token(Role.OPERATOR, 'ops')}"}

        async def create(url: str) -> dict:
            response = await client.post("/graphql", headers=headers, json={
                "query": CREATE, "variables": {"url": url, "events": ["TIER_CHANGED"]}})
            return response.json()["data"]["createWebhook"]

        refused = await create("http://shop.example.com/hooks")
        assert [(e["code"], e["message"]) for e in refused["userErrors"]] == [
            ("INVALID", "url must use https:// in production")]
        refused = await create("https://169.254.169.254/latest/meta-data")
        assert [(e["code"], e["message"]) for e in refused["userErrors"]] == [
            ("INVALID", "url points to a private address (169.254.169.254); set TIERUP_WEBHOOK_PRIVATE_TARGETS=1 "
                        "to deliver to your own network")]
        assert (await create("https://shop.example.com/hooks"))["webhook"]["url"] == "https://shop.example.com/hooks"


async def test_production_told_to_takes_private_addresses(settings, db, clock, program, api):
    app = create_app(replace(settings, env="production", webhook_private_targets=True), db=db, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tierup.test") as client:
        response = await client.post("/graphql", headers={"Authorization": f"Bearer {api.token(Role.OPERATOR, 'ops')}"},
                                     json={"query": CREATE, "variables": {"url": "https://10.0.0.5/hooks",
                                                                          "events": ["TIER_CHANGED"]}})
        assert response.json()["data"]["createWebhook"]["webhook"]["url"] == "https://10.0.0.5/hooks"


async def test_a_delivery_kept_from_private_addresses_never_connects_to_one(api, db, clock, receiver, monkeypatch):
    """Production's deliveries connect only to public addresses: an endpoint whose host is (or whose name resolves
    to) this machine fails its attempt, saying why, and nothing reaches it. The address judged is the one
    connected to: let it pass, and the same delivery arrives."""
    from tierup.services import webhooks as webhook_service

    await create_webhook(api, receiver.url, "POINTS_CHANGED")  # created in development, which takes it
    await enroll(api, "alice")
    run = await deliver_due(db, private_targets=False, now=clock())
    assert (run.delivered, run.retrying) == (0, 1)
    assert receiver.received == []
    [endpoint] = await webhooks(api)
    [attempt] = endpoint["deliveries"]["edges"][0]["node"]["attempts"]
    assert (attempt["statusCode"], attempt["error"]) == (
        None, "ConnectError: 127.0.0.1 resolves to a private address (127.0.0.1); set "
              "TIERUP_WEBHOOK_PRIVATE_TARGETS=1 to deliver to your own network")

    monkeypatch.setattr(webhook_service, "private_address", lambda address: False)
    clock.now += timedelta(seconds=5)
    assert (await deliver_due(db, private_targets=False, now=clock())).delivered == 1
    assert len(receiver.received) == 1


async def test_deleting_a_webhook_stops_deliveries_and_cancels_what_waits(api, db, clock, receiver):
    created = await create_webhook(api, receiver.url, "POINTS_CHANGED")
    webhook_id = created["webhook"]["id"]
    await enroll(api, "alice")
    stale = await active_program(db, "classic")  # a request that read the endpoints before the deletion
    deleted = await api.as_operator(DELETE, {"id": webhook_id})
    assert deleted["data"]["deleteWebhook"] == {"deleted": True, "userErrors": []}
    assert await webhooks(api) == []
    member_id = int(GlobalID.from_id((await member_view(api, "alice"))["id"]).node_id)
    await adjust_points(db, stale, AdjustmentInput(member_id, 10, "goodwill", "ADJ-1"), operator="ops", now=clock())
    run = await deliver_due(db, private_targets=True, now=clock())
    assert (run.delivered, run.cancelled) == (0, 1)  # staged for the deleted endpoint: cancelled, not sent
    assert receiver.received == []
    assert [row.status for row in await deliveries(db)] == ["CANCELLED", "CANCELLED"]

    again = await api.as_operator(DELETE, {"id": webhook_id})
    assert again["data"]["deleteWebhook"]["deleted"] is False
    assert [e["code"] for e in again["data"]["deleteWebhook"]["userErrors"]] == ["NOT_FOUND"]
    member_global_id = (await member_view(api, "alice"))["id"]
    wrong = await api.as_operator(DELETE, {"id": member_global_id})
    assert [e["code"] for e in wrong["data"]["deleteWebhook"]["userErrors"]] == ["NOT_FOUND"]


async def test_an_endpoint_failing_for_a_day_is_disabled_and_says_so(api, db, clock, receiver):
    created = await create_webhook(api, receiver.url, "POINTS_CHANGED")
    receiver.answers = [500] * 9
    start = clock()
    await enroll(api, "alice")
    tried_at = []
    while (due := await next_due(db)) is not None:
        clock.now = max(due, clock())
        tried_at.append(clock() - start)
        await deliver_due(db, private_targets=True, now=clock())
    assert tried_at == [timedelta(0), timedelta(seconds=5), timedelta(seconds=65), timedelta(minutes=6, seconds=5),
                        timedelta(minutes=36, seconds=5), timedelta(hours=2, minutes=36, seconds=5),
                        timedelta(hours=7, minutes=36, seconds=5), timedelta(hours=17, minutes=36, seconds=5),
                        timedelta(hours=24)]
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1 and len(receiver.received) == 9

    [endpoint] = await webhooks(api)
    assert endpoint["active"] is False
    assert endpoint["failingSince"] == "2026-01-05T10:00:00+08:00"
    assert endpoint["disabledAt"] == "2026-01-06T10:00:00+08:00"
    assert endpoint["disabledReason"] == "every delivery failed for 24 hours; the last attempt: HTTP 500"
    [edge] = endpoint["deliveries"]["edges"]
    assert edge["node"]["status"] == "FAILED" and len(edge["node"]["attempts"]) == 9

    await adjust(api, "alice", 10, "ADJ-1")  # a disabled endpoint is sent nothing
    assert len(await deliveries(db)) == 1

    enabled = await api.as_operator(ENABLE, {"id": created["webhook"]["id"]})
    assert enabled["data"]["enableWebhook"] == {
        "webhook": {"active": True, "failingSince": None, "disabledReason": None}, "userErrors": []}
    await adjust(api, "alice", 10, "ADJ-2")
    assert (await deliver_due(db, private_targets=True, now=clock())).delivered == 1
    assert json.loads(receiver.received[-1].body)["data"]["message"] == "Points balance is now 120 (+10)"


async def test_an_endpoint_that_answers_again_is_not_disabled(api, db, clock, receiver):
    await create_webhook(api, receiver.url, "POINTS_CHANGED")
    receiver.answers = [500]
    await enroll(api, "alice")
    await deliver_due(db, private_targets=True, now=clock())
    assert (await webhooks(api))[0]["failingSince"] == "2026-01-05T10:00:00+08:00"
    clock.now += timedelta(seconds=5)
    await deliver_due(db, private_targets=True, now=clock())
    clock.now += timedelta(days=2)
    await adjust(api, "alice", 10, "ADJ-1")
    assert (await deliver_due(db, private_targets=True, now=clock())).delivered == 1
    [endpoint] = await webhooks(api)
    assert endpoint["active"] is True and endpoint["failingSince"] is None


async def test_an_endpoint_that_cannot_be_reached_fails_with_the_reason(api, db, clock):
    async with receiving() as gone:
        url = gone.url
    await create_webhook(api, url, "POINTS_CHANGED")  # nothing listens there any more
    await enroll(api, "alice")
    assert (await deliver_due(db, private_targets=True, now=clock())).retrying == 1
    [endpoint] = await webhooks(api)
    [attempt] = endpoint["deliveries"]["edges"][0]["node"]["attempts"]
    assert attempt["statusCode"] is None and attempt["error"].startswith("ConnectError")
    assert endpoint["deliveries"]["edges"][0]["node"]["nextAttemptAt"] == "2026-01-05T10:00:05+08:00"


async def test_two_runners_at_once_send_each_delivery_once(api, db, clock, database_url, receiver):
    await create_webhook(api, receiver.url, "POINTS_CHANGED")
    for name in ("alice", "bob", "carol", "dave", "erin"):
        await enroll(api, name)
    other = Database(database_url)  # another process's connections
    try:
        runs = await asyncio.gather(deliver_due(db, private_targets=True, now=clock()), deliver_due(other, private_targets=True, now=clock()))
    finally:
        await other.dispose()
    assert sum(run.delivered for run in runs) == 5
    ids = [request.headers["webhook-id"] for request in receiver.received]
    assert len(ids) == len(set(ids)) == 5
