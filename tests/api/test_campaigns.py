"""Campaigns: a coupon and/or points to an audience, once per member, whatever crashes or runs twice."""

import asyncio
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select

from helpers import enroll, member_view, order, row_counts
from test_jobs import member_id
from tierup.events import MemoryBroker
from tierup.services import campaigns
from tierup.services.campaigns import Launch, launch_campaign, resume_campaigns, run_campaign
from tierup.services.seed import SeedPlan, seed
from tierup.services.tags import Audience
from tierup.store.models import Coupon, Member, PointsEntry

LAUNCH = """mutation($input: LaunchCampaignInput!) { launchCampaign(input: $input) {
  campaign { externalId name status audience couponTemplate points audienceSize reached converted launchedAt convertsUntil }
  audienceSize duplicate userErrors { field code message } } }"""
CAMPAIGNS = """{ program { campaigns(first: 10) { totalCount
  edges { node { externalId status audienceSize reached converted } } } } }"""
GIFTS = """query($id: String!) { member(externalId: $id) { points { balance }
  coupons(first: 10) { edges { node { template { code } source } } } } }"""
KPIS = """query($from: Date!, $to: Date!) { program { kpis(from: $from, to: $to) {
  silentAtStart woken wakeUpRate { value } } } }"""
JOINED = "2026-01-05T10:00:00+08:00"
WAKE_UP = {"externalId": "WAKE-1", "name": "唤醒礼", "audience": {"silentForDays": 90},
           "couponTemplate": "REWARD_5_OFF_50", "points": 50}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def launch(api, **changes) -> dict:
    result = await api.as_operator(LAUNCH, {"input": {**WAKE_UP, **changes}})
    assert "errors" not in result, result
    return result["data"]["launchCampaign"]


async def gifts(api, name: str) -> tuple[int, list[tuple[str, str]]]:
    member = (await api.as_operator(GIFTS, {"id": name}))["data"]["member"]
    return member["points"]["balance"], sorted((e["node"]["template"]["code"], e["node"]["source"])
                                               for e in member["coupons"]["edges"])


async def campaign_list(api) -> list[dict]:
    return [e["node"] for e in (await api.as_operator(CAMPAIGNS))["data"]["program"]["campaigns"]["edges"]]


@pytest.fixture
async def silent_three(api, clock):
    """ann, bob and cy joined on 2026-01-05 and never ordered; dan joined then too and ordered on 04-01.
    It is now 2026-04-10: the three are 90 days silent, dan is not."""
    clock.now = at("2026-04-10T10:00:00+08:00")
    for name in ("ann", "bob", "cy", "dan"):
        await enroll(api, name, joinedAt=JOINED)
    await order(api, "D-1", "dan", "30", "2026-04-01T10:00:00+08:00")


async def test_a_dry_run_counts_and_a_launch_gives_once_even_when_launched_again(api, db, clock, silent_three):
    before = await row_counts(db)
    dry = await launch(api, dryRun=True)
    assert dry == {"campaign": None, "audienceSize": 3, "duplicate": False, "userErrors": []}
    assert await row_counts(db) == before

    first = await launch(api)
    assert first == {"campaign": {
        "externalId": "WAKE-1", "name": "唤醒礼", "status": "DONE", "audience": "silent for 90 days",
        "couponTemplate": "REWARD_5_OFF_50", "points": 50, "audienceSize": 3, "reached": 3, "converted": 0,
        "launchedAt": "2026-04-10T10:00:00+08:00", "convertsUntil": "2026-05-10T10:00:00+08:00"},
        "audienceSize": 3, "duplicate": False, "userErrors": []}
    for name in ("ann", "bob", "cy"):
        assert await gifts(api, name) == (150, [("REWARD_5_OFF_50", "CAMPAIGN"), ("WELCOME_10_OFF_50", "ENROLMENT")])
    assert (await gifts(api, "dan"))[1] == [("WELCOME_10_OFF_50", "ENROLMENT")]
    ledger = (await member_view(api, "ann"))["points"]["ledger"]["edges"]
    assert (ledger[0]["node"]["kind"], ledger[0]["node"]["amount"], ledger[0]["node"]["reason"]) == (
        "EARN", 50, "Campaign 唤醒礼")

    reached = await row_counts(db)
    again = await launch(api)
    assert (again["duplicate"], again["audienceSize"], again["campaign"]["reached"]) == (True, 3, 3)
    assert await row_counts(db) == reached
    other = await launch(api, points=60)
    assert [(e["field"], e["code"]) for e in other["userErrors"]] == [(["input", "externalId"], "DUPLICATE")]
    assert await row_counts(db) == reached

    # Conversions: ann orders within the 30 days, bob after them; dan ordered but was not reached.
    clock.now = at("2026-06-01T10:00:00+08:00")
    await order(api, "A-1", "ann", "60", "2026-04-12T10:00:00+08:00")
    await order(api, "B-1", "bob", "60", "2026-05-20T10:00:00+08:00")
    await order(api, "D-2", "dan", "60", "2026-04-12T10:00:00+08:00")
    assert await campaign_list(api) == [
        {"externalId": "WAKE-1", "status": "DONE", "audienceSize": 3, "reached": 3, "converted": 1}]
    # The wake-up KPI counts the silent members who ordered: ann, whom the campaign reached.
    kpis = (await api.as_operator(KPIS, {"from": "2026-04-10", "to": "2026-04-30"}))["data"]["program"]["kpis"]
    assert kpis == {"silentAtStart": 3, "woken": 1, "wakeUpRate": {"value": 0.3333}}


async def test_launched_again_later_it_reaches_only_members_not_reached(api, db, clock, silent_three):
    await launch(api)
    clock.now = at("2026-07-01T10:00:00+08:00")
    await order(api, "A-1", "ann", "60", "2026-06-20T10:00:00+08:00")
    # Now cy is still silent and dan (last order 04-01) has become so; ann ordered; bob was reached already.
    again = await launch(api)
    assert (again["duplicate"], again["audienceSize"]) == (True, 3)  # bob, cy and dan
    assert {k: again["campaign"][k] for k in ("status", "audienceSize", "reached")} == {
        "status": "DONE", "audienceSize": 4, "reached": 4}
    # dan: 100 on joining, 30 for the order and 50 for the FIRST_ORDER task, and now the campaign's 50.
    assert [(await gifts(api, name))[0] for name in ("bob", "cy", "dan")] == [150, 150, 230]
    async with db.read() as session:
        given = (await session.execute(select(Coupon.member_id, func.count()).where(
            Coupon.source.like("CAMPAIGN:%")).group_by(Coupon.member_id))).all()
    assert sorted(count for _, count in given) == [1, 1, 1, 1]


async def test_each_reached_member_hears_of_the_coupon_and_the_points(api, db, program, clock):
    clock.now = at("2026-03-10T10:00:00+08:00")  # within SPRING_QUEST: 200 points pass its first level
    await enroll(api, "ann", joinedAt=JOINED)
    broker = MemoryBroker()
    request = Launch("SPRING-GIFT", "春日礼", Audience(tier_code="REGULAR"), coupon_template="FREE_SHIPPING", points=200)
    async with broker.subscribe(program.id, await member_id(api, "ann")) as subscriber:
        launched = await launch_campaign(db, program, request, operator="ops", now=clock.now)
        await run_campaign(db, program, launched.campaign_id, now=clock.now, broker=broker)
        events = [subscriber.queue.get_nowait() for _ in range(subscriber.queue.qsize())]
    assert [(e.kind, e.message) for e in events] == [
        ("COUPON_RECEIVED", "Coupon 免邮券 received: 春日礼"),
        ("QUEST_LEVEL_PASSED", "春日积分闯关: level 1 (第一关) passed"),
        ("POINTS_CHANGED", "Points balance is now 300 (+200)")]
    assert (await member_view(api, "ann"))["growthValue"] == 20


async def test_a_run_that_crashes_halfway_resumes_without_giving_anyone_twice(api, db, program, clock, monkeypatch):
    clock.now = at("2026-04-10T10:00:00+08:00")
    names = [f"m{n}" for n in range(7)]
    for name in names:
        await enroll(api, name, joinedAt=JOINED)
    monkeypatch.setattr(campaigns, "BATCH", 3)
    give = campaigns._give
    calls = []

    async def crash_in_the_second_batch(*args):
        calls.append(1)
        if len(calls) == 2:  # after the first batch committed, in the middle of the second
            await give(*args)
            raise RuntimeError("the server was stopped")
        return await give(*args)

    monkeypatch.setattr(campaigns, "_give", crash_in_the_second_batch)
    launched = await launch_campaign(db, program, Launch("WAKE-1", "唤醒礼", Audience(silent_for_days=90),
                                                         coupon_template="REWARD_5_OFF_50", points=50),
                                     operator="ops", now=clock.now)
    with pytest.raises(RuntimeError):
        await run_campaign(db, program, launched.campaign_id, now=clock.now)
    assert await given(db) == ({"m0": 1, "m1": 1, "m2": 1}, {"m0": 1, "m1": 1, "m2": 1})
    assert await campaign_list(api) == [
        {"externalId": "WAKE-1", "status": "RUNNING", "audienceSize": 7, "reached": 3, "converted": 0}]

    monkeypatch.setattr(campaigns, "_give", give)
    broker = MemoryBroker()
    async with broker.subscribe(program.id, await member_id(api, "m0")) as first, \
            broker.subscribe(program.id, await member_id(api, "m6")) as last:
        assert await resume_campaigns(db, program, as_of=at("2026-04-10T11:00:00+08:00"), broker=broker) == 4
        assert (first.queue.qsize(), [e.kind for e in drain(last)]) == (0, ["COUPON_RECEIVED", "POINTS_CHANGED"])
    everyone = {name: 1 for name in names}
    assert await given(db) == (everyone, everyone)
    assert await campaign_list(api) == [
        {"externalId": "WAKE-1", "status": "DONE", "audienceSize": 7, "reached": 7, "converted": 0}]
    done = await row_counts(db)
    assert await resume_campaigns(db, program, as_of=at("2026-04-10T12:00:00+08:00")) == 0
    assert await row_counts(db) == done


def drain(subscriber) -> list:
    return [subscriber.queue.get_nowait() for _ in range(subscriber.queue.qsize())]


async def given(db) -> tuple[dict[str, int], dict[str, int]]:
    """Campaign coupons and campaign ledger entries, per member's external id."""
    async with db.read() as session:
        coupons = dict((await session.execute(select(Member.external_id, func.count()).join(
            Coupon, Coupon.member_id == Member.id).where(Coupon.source.like("CAMPAIGN:%"))
            .group_by(Member.external_id))).all())
        entries = dict((await session.execute(select(Member.external_id, func.count()).join(
            PointsEntry, PointsEntry.member_id == Member.id).where(PointsEntry.source == "CAMPAIGN")
            .group_by(Member.external_id))).all())
    return coupons, entries


async def test_two_runs_at_once_share_the_work(api, db, program, clock, monkeypatch):
    clock.now = at("2026-04-10T10:00:00+08:00")
    names = [f"m{n}" for n in range(6)]
    for name in names:
        await enroll(api, name, joinedAt=JOINED)
    monkeypatch.setattr(campaigns, "BATCH", 2)
    launched = await launch_campaign(db, program, Launch("ALL", "全员礼", Audience(tier_code="REGULAR"), points=10),
                                     operator="ops", now=clock.now)
    runs = await asyncio.gather(*[run_campaign(db, program, launched.campaign_id, now=clock.now) for _ in range(2)])
    assert sum(run.reached for run in runs) == 6
    assert (await given(db))[1] == {name: 1 for name in names}


async def test_a_large_audience_answers_after_the_first_batch_and_carries_on(api, db, clock, monkeypatch):
    clock.now = at("2026-04-10T10:00:00+08:00")
    for n in range(5):
        await enroll(api, f"m{n}", joinedAt=JOINED)
    monkeypatch.setattr(campaigns, "BATCH", 2)
    answered = await launch(api, points=None)
    assert {k: answered["campaign"][k] for k in ("status", "audienceSize", "reached")} == {
        "status": "RUNNING", "audienceSize": 5, "reached": 2}
    await campaigns.background_runs_done()
    assert await campaign_list(api) == [
        {"externalId": "WAKE-1", "status": "DONE", "audienceSize": 5, "reached": 5, "converted": 0}]


async def test_a_campaign_to_a_tag(api, clock):
    for name in ("ann", "bob", "cy"):
        await enroll(api, name)
    await api.as_operator("""mutation { defineTag(input: {code: "VIP", name: "重要客户"}) { userErrors { code } } }""")
    await api.as_operator("""mutation { tagMembers(input: {tag: "VIP", memberExternalIds: ["ann", "cy"]}) {
      changed } }""")
    answered = await launch(api, externalId="VIP-1", audience={"tag": "VIP"}, couponTemplate=None, points=88)
    assert (answered["audienceSize"], answered["campaign"]["audience"]) == (2, "tagged VIP")
    assert [(await gifts(api, name))[0] for name in ("ann", "bob", "cy")] == [188, 100, 188]


@pytest.mark.parametrize("changes, field, code", [
    ({"couponTemplate": None, "points": None}, ["input"], "INVALID"),
    ({"couponTemplate": "NO_SUCH"}, ["input", "couponTemplate"], "NOT_FOUND"),
    ({"points": 0}, ["input", "points"], "INVALID"),
    ({"points": 100_001}, ["input", "points"], "INVALID"),
    ({"conversionDays": 0}, ["input", "conversionDays"], "INVALID"),
    ({"conversionDays": 366}, ["input", "conversionDays"], "INVALID"),
    ({"audience": {}}, ["input", "audience"], "INVALID"),
    ({"audience": {"tier": "PLATINUM"}}, ["input", "audience", "tier"], "NOT_FOUND"),
    ({"audience": {"tag": "NOPE"}}, ["input", "audience", "tag"], "NOT_FOUND"),
    ({"audience": {"silentForDays": 3651}}, ["input", "audience", "silentForDays"], "INVALID"),
    ({"externalId": " W"}, ["input", "externalId"], "INVALID"),
    ({"name": ""}, ["input", "name"], "INVALID"),
])
async def test_a_bad_launch_changes_nothing(api, db, silent_three, changes, field, code):
    before = await row_counts(db)
    for dry_run in (True, False):
        refused = await launch(api, dryRun=dry_run, **changes)
        assert (refused["campaign"], refused["audienceSize"]) == (None, 0)
        assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [(field, code)]
    assert await row_counts(db) == before


async def test_only_operators_launch_and_read_campaigns(api, silent_three):
    for caller in (api.as_service, lambda d, v=None: api.as_member("ann", d, v)):
        assert [e["extensions"]["code"] for e in (await caller(LAUNCH, {"input": WAKE_UP}))["errors"]] == ["FORBIDDEN"]
        assert [e["extensions"]["code"] for e in (await caller(CAMPAIGNS))["errors"]] == ["FORBIDDEN"]


async def test_from_seeded_data_tag_the_silent_and_win_them_back(api, db, program, clock):
    """As a new user would: `tierup seed`, tag the 90-day silent members, dry-run and launch a wake-up
    coupon to them, then read the campaign and the wake-up KPI."""
    await seed(db, program, SeedPlan(members=60, orders=240), now=datetime(2026, 7, 1, tzinfo=timezone.utc),
               progress=lambda label: lambda done, total: None)
    clock.now = at("2026-07-01T10:00:00+08:00")
    defined = await api.as_operator("""mutation { defineTag(input: {code: "SILENT_90", name: "沉默90天",
      rule: {silentForDays: 90}}) { tag { memberCount } } }""")
    silent = defined["data"]["defineTag"]["tag"]["memberCount"]
    assert silent > 0
    dry = await launch(api, audience={"tag": "SILENT_90"}, dryRun=True)
    assert dry["audienceSize"] == silent
    launched = await launch(api, audience={"tag": "SILENT_90"})
    assert {k: launched["campaign"][k] for k in ("status", "audienceSize", "reached", "converted")} == {
        "status": "DONE", "audienceSize": silent, "reached": silent, "converted": 0}
    listed = (await api.as_operator("""{ members(first: 2, tag: "SILENT_90") { edges { node { externalId } } } }"""))
    woken = [e["node"]["externalId"] for e in listed["data"]["members"]["edges"]]
    clock.now = at("2026-07-20T10:00:00+08:00")
    for n, name in enumerate(woken):
        await order(api, f"W-{n}", name, "80", "2026-07-05T10:00:00+08:00")
    assert (await campaign_list(api))[0]["converted"] == 2
    kpis = (await api.as_operator(KPIS, {"from": "2026-07-01", "to": "2026-07-19"}))["data"]["program"]["kpis"]
    assert (kpis["silentAtStart"], kpis["woken"]) == (silent, 2)


async def test_a_campaigns_coupons_are_written_together_whatever_the_audience(db, program, clock):
    """A coupon a member is given is written with the batch's other rows: giving six costs what giving two
    does (one INSERT each, before)."""
    from tierup.services.members import EnrolmentInput, enroll_member
    from tierup.store.db import count_statements

    clock.now = at("2026-04-10T10:00:00+08:00")
    statements = []
    for size in (2, 6):
        for n in range(size):
            await enroll_member(db, program, EnrolmentInput(f"c{size}-{n}", joined_at=at(JOINED)), now=clock.now)
        request = Launch(f"GIFT-{size}", "礼", Audience(tier_code="REGULAR"), coupon_template="FREE_SHIPPING")
        launched = await launch_campaign(db, program, request, operator="ops", now=clock.now)
        with count_statements() as counted:
            await run_campaign(db, program, launched.campaign_id, now=clock.now)
        statements.append(counted[0])
        async with db.read() as session:
            given = (await session.execute(select(func.count()).select_from(Coupon).where(
                Coupon.source == f"CAMPAIGN:{launched.campaign_id}"))).scalar_one()
        assert given == {2: 2, 6: 8}[size]  # the second campaign reaches the first one's two members too
    assert statements[0] == statements[1]
