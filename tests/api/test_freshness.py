"""The member's kept home screen (api.cache): every write through the API, every job and publication,
and time alone change what the next read shows at once; failed writes, other members' writes and
other callers' reads leave the kept answer standing.

Each read under test is a member's plain read at the server's clock (`clock.now`): the tester's clock
(X-Tierup-Now) bypasses the cache, so it serves here only as the oracle — the same document answered
afresh at the same moment, which the kept answer must equal.
"""

import asyncio
import sys
from datetime import datetime
from pathlib import Path

from documents import ADJUST_POINTS, EVALUATE_TIERS, RECORD_ORDER
from helpers import enroll, order, refund
from tierup.auth import Role
from tierup.cli import main

sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))
from api_bench import DASHBOARD  # noqa: E402  the home screen members open first

CLASSIC = (Path(__file__).resolve().parents[2] / "fixtures" / "programs" / "classic.toml").read_text(encoding="utf-8")
REVIEW = """mutation($input: RecordReviewInput!) { recordReview(input: $input) { duplicate userErrors { code } } }"""
CHECK_IN = "mutation { checkIn { pointsAwarded checkIn { checkedInToday streak } userErrors { code } } }"
CLAIM_TASK = "mutation($id: ID!) { claimTaskReward(input: {taskId: $id}) { progress { status } userErrors { code } } }"
CLAIM_BENEFIT = "mutation($id: ID!) { claimBenefit(input: {benefitId: $id}) { userErrors { code } } }"
REDEEM = "mutation($id: ID!) { redeemReward(input: {rewardId: $id}) { userErrors { code message } } }"
EXPIRE = """mutation($asOf: DateTime) { expirePoints(input: {asOf: $asOf}) {
  membersAffected pointsExpired userErrors { code } } }"""
PUBLISH = """mutation($input: PublishProgramInput!) { publishProgram(input: $input) {
  changed version { version } userErrors { code message } } }"""
TASK_IDS = "{ program { growthTree { tasks { id code } } } }"
BENEFIT_IDS = "{ program { benefits { id code } } }"
REWARD_IDS = "{ program { rewards(first: 10) { edges { node { id code } } } } }"
COUPONS = "{ viewer { coupons(first: 5) { edges { node { status validUntil template { code } } } } } }"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


class Home:
    """One member's home screen, read the way the app reads it."""

    def __init__(self, api, app, clock, member: str = "alice", document: str = DASHBOARD):
        self.api, self.clock, self.member, self.document = api, clock, member, document
        self.cache = app.state.services.response_cache

    async def read(self) -> tuple[dict, bool]:
        """(the member's view, whether the kept answer served it); the view must be what a fresh read
        at the same moment answers."""
        hits = self.cache.hits
        result = await self.api.as_member(self.member, self.document)
        served = self.cache.hits - hits
        assert "errors" not in result, result
        assert served in (0, 1)
        fresh = await self.api.as_member(self.member, self.document, now=self.clock.now)
        assert result == fresh, (f"the answer read at {self.clock.now.isoformat()} is not what holds then: "
                                 f"{differences(result, fresh)}")
        return result["data"]["viewer"], served == 1

    async def kept(self) -> dict:
        """Read twice with nothing between: the second read is the kept answer, and equal."""
        first, _ = await self.read()
        second, served = await self.read()
        assert served, "nothing changed, yet the second read ran again"
        assert second == first
        return first

    async def changed(self) -> dict:
        """The next read after a change: it runs (never the kept answer)."""
        view, served = await self.read()
        assert not served, "the kept answer was served after a change"
        return view


def differences(served, fresh, path: str = "") -> list[str]:
    """Where two answers differ, as `path: served != fresh`."""
    if isinstance(served, dict) and isinstance(fresh, dict) and served.keys() == fresh.keys():
        return [d for key in served for d in differences(served[key], fresh[key], f"{path}.{key}")]
    if isinstance(served, list) and isinstance(fresh, list) and len(served) == len(fresh):
        return [d for i, (a, b) in enumerate(zip(served, fresh)) for d in differences(a, b, f"{path}[{i}]")]
    return [] if served == fresh else [f"{path}: {served!r} != {fresh!r}"]


def tasks(view: dict) -> dict[str, tuple[str, int]]:
    return {t["task"]["code"]: (t["status"], t["current"]) for t in view["tasks"]}


def benefits(view: dict) -> dict[str, tuple]:
    return {b["benefit"]["code"]: (b["remaining"], b["canClaim"], b["reason"]) for b in view["benefits"]}


def points(view: dict) -> tuple[int, int, str | None]:
    return view["points"]["balance"], view["points"]["expiringSoon"], view["points"]["nextExpiryAt"]


def conditions(view: dict) -> list[tuple[str, str]]:
    return [(c["description"], c["current"]) for c in view["nextTier"]["conditions"]]


async def ids(api, query: str, path: str) -> dict[str, str]:
    found = (await api.as_operator(query))["data"]["program"]
    if path == "rewards":
        return {e["node"]["code"]: e["node"]["id"] for e in found["rewards"]["edges"]}
    if path == "tasks":
        return {t["code"]: t["id"] for t in found["growthTree"]["tasks"]}
    return {b["code"]: b["id"] for b in found[path]}


def ok(result: dict, name: str) -> dict:
    assert "errors" not in result, result
    payload = result["data"][name]
    assert payload["userErrors"] == [], payload
    return payload


# ---------------------------------------------------------------------------------------------
# Writes: each one shows on the very next read.

async def test_an_order_shows_at_once(api, app, clock):
    await enroll(api, "alice")  # 2026-01-05 10:00 Shanghai: 100 welcome points
    home = Home(api, app, clock)
    before = await home.kept()
    assert (before["points"]["balance"], before["orders"]["totalCount"], before["growthValue"]) == (100, 0, 0)
    assert tasks(before)["FIRST_ORDER"] == ("AVAILABLE", 0)

    await order(api, "A-1", "alice", "150", "2026-01-05T09:00:00+08:00")

    after = await home.changed()
    assert after["orders"]["totalCount"] == 1
    assert after["orders"]["edges"][0]["node"] == {"externalId": "A-1", "amount": {"amount": "150.00"},
                                                   "pointsEarned": 150, "paidAt": "2026-01-05T09:00:00+08:00"}
    assert after["points"]["balance"] == 100 + 150 + 50  # the order at 1×, FIRST_ORDER's reward
    assert (after["growthValue"], tasks(after)["FIRST_ORDER"]) == (10, ("COMPLETED", 1))
    assert conditions(after) == [("cumulative spend ≥ ¥500", "150.00"), ("one order ≥ ¥200", "150.00")]
    assert await home.kept() == after


async def test_an_order_that_upgrades_shows_the_new_tier(api, app, clock):
    await enroll(api, "alice")
    home = Home(api, app, clock)
    assert (await home.kept())["tier"] == {"code": "REGULAR", "name": "普通会员"}
    await order(api, "A-1", "alice", "250", "2026-01-05T09:00:00+08:00")
    after = await home.changed()
    assert after["tier"] == {"code": "SILVER", "name": "银卡会员"}
    assert after["tierValidUntil"] == "2027-01-05T09:00:00+08:00"
    assert after["nextTier"]["tier"] == {"name": "金卡会员"}
    assert after["points"]["balance"] == 100 + 250 + 50


async def test_a_refund_shows_at_once(api, app, clock):
    await enroll(api, "alice")
    await order(api, "A-1", "alice", "150", "2026-01-05T09:00:00+08:00")
    home = Home(api, app, clock)
    before = await home.kept()
    assert before["points"]["balance"] == 300

    await refund(api, "RF-1", "A-1", "50", "2026-01-05T09:30:00+08:00")

    after = await home.changed()
    assert after["points"]["balance"] == 300 - 50  # a third of the order's 150 points
    assert after["points"]["ledger"]["edges"][0]["node"]["amount"] == -50
    assert after["orders"]["edges"][0]["node"]["pointsEarned"] == 150  # what the order earned, refund aside
    assert conditions(after) == [("cumulative spend ≥ ¥500", "100.00"), ("one order ≥ ¥200", "100.00")]


async def test_a_review_shows_at_once(api, app, clock):
    await enroll(api, "alice")
    home = Home(api, app, clock)
    before = await home.kept()
    assert tasks(before)["FIRST_PHOTO_REVIEW"] == ("AVAILABLE", 0)

    review = {"externalId": "R-1", "memberExternalId": "alice", "withPhotos": True,
              "postedAt": "2026-01-05T09:00:00+08:00"}
    ok(await api.as_service(REVIEW, {"input": review}), "recordReview")

    after = await home.changed()
    assert tasks(after)["FIRST_PHOTO_REVIEW"] == ("COMPLETED", 1)
    assert (after["points"]["balance"], after["growthValue"]) == (100 + 30, 5)


async def test_a_check_in_shows_at_once(api, app, clock):
    await enroll(api, "alice")
    home = Home(api, app, clock)
    before = await home.kept()
    assert before["checkIn"] == {"checkedInToday": False, "streak": 0, "nextReward": 5}

    ok(await api.as_member("alice", CHECK_IN), "checkIn")

    after = await home.changed()
    assert after["checkIn"] == {"checkedInToday": True, "streak": 1, "nextReward": 5}
    assert tasks(after)["DAILY_CHECK_IN"] == ("COMPLETED", 1)
    assert after["points"]["balance"] == 100 + 5


async def test_claiming_a_task_reward_shows_at_once(api, app, clock):
    clock.now = at("2026-01-10T10:00:00+08:00")
    await enroll(api, "alice", joinedAt="2026-01-05T10:00:00+08:00")
    for month in ("01", "02", "03"):  # three months in a row: THREE_MONTH_STREAK, claimed by the member
        clock.now = at(f"2026-{month}-10T10:00:00+08:00")
        await order(api, f"A-{month}", "alice", "50", f"2026-{month}-10T09:00:00+08:00")
    home = Home(api, app, clock)
    before = await home.kept()
    assert tasks(before)["THREE_MONTH_STREAK"] == ("COMPLETED", 3)
    balance, growth = before["points"]["balance"], before["growthValue"]

    task = (await ids(api, TASK_IDS, "tasks"))["THREE_MONTH_STREAK"]
    ok(await api.as_member("alice", CLAIM_TASK, {"id": task}), "claimTaskReward")

    after = await home.changed()
    assert tasks(after)["THREE_MONTH_STREAK"] == ("CLAIMED", 3)
    assert after["points"]["balance"] == balance + 300
    # The 300 points are earned in SPRING_QUEST's window too: its first level (200) passes, worth 20 growth.
    assert [(q["currentLevel"], q["progress"]) for q in before["quests"]] == [(1, 50)]
    assert [(q["currentLevel"], q["progress"]) for q in after["quests"]] == [(2, 350)]
    assert after["growthValue"] == growth + 50 + 20


async def test_a_referred_friends_first_order_shows_on_the_referrers_screen(api, app, clock):
    """Another member's write that changes this member's standing (REFER_A_FRIEND) is a change too."""
    clock.now = at("2026-01-10T10:00:00+08:00")
    alice = (await enroll(api, "alice", joinedAt="2026-01-05T10:00:00+08:00"))["member"]
    for month in ("01", "02", "03"):
        clock.now = at(f"2026-{month}-10T10:00:00+08:00")
        await order(api, f"A-{month}", "alice", "50", f"2026-{month}-10T09:00:00+08:00")
    await enroll(api, "bob", referralCode=alice["referralCode"])
    home = Home(api, app, clock)
    assert tasks(await home.kept())["REFER_A_FRIEND"] == ("AVAILABLE", 0)

    await order(api, "B-1", "bob", "50", "2026-03-10T09:30:00+08:00")

    assert tasks(await home.changed())["REFER_A_FRIEND"] == ("COMPLETED", 1)


async def test_claiming_a_benefit_shows_at_once(api, app, clock):
    clock.now = at("2026-01-02T10:00:00+08:00")
    await enroll(api, "alice", joinedAt="2026-01-01T10:00:00+08:00")
    await order(api, "A-1", "alice", "250", "2026-01-02T09:00:00+08:00")  # SILVER
    clock.now = at("2026-02-10T10:00:00+08:00")
    home = Home(api, app, clock)
    before = await home.kept()
    assert benefits(before)["MONTHLY_COUPON_SILVER"] == (1, True, None)

    benefit = (await ids(api, BENEFIT_IDS, "benefits"))["MONTHLY_COUPON_SILVER"]
    ok(await api.as_member("alice", CLAIM_BENEFIT, {"id": benefit}), "claimBenefit")

    after = await home.changed()
    assert benefits(after)["MONTHLY_COUPON_SILVER"] == (0, False, "银卡月度9折券 was already claimed 1× this month")
    assert {code: b for code, b in benefits(after).items() if code != "MONTHLY_COUPON_SILVER"} == \
        {code: b for code, b in benefits(before).items() if code != "MONTHLY_COUPON_SILVER"}


async def test_a_mall_redemption_shows_at_once(api, app, clock):
    await enroll(api, "alice")
    home = Home(api, app, clock)
    assert (await home.kept())["points"]["balance"] == 100

    reward = (await ids(api, REWARD_IDS, "rewards"))["REWARD_COUPON_5"]
    ok(await api.as_member("alice", REDEEM, {"id": reward}), "redeemReward")

    after = await home.changed()
    assert after["points"]["balance"] == 0
    assert after["points"]["ledger"]["edges"][0]["node"]["amount"] == -100
    assert after["points"]["expiringSoon"] == 0 and after["points"]["nextExpiryAt"] is None


async def test_an_operators_points_adjustment_shows_at_once(api, app, clock):
    alice = (await enroll(api, "alice"))["member"]
    home = Home(api, app, clock)
    assert (await home.kept())["points"]["balance"] == 100

    adjustment = {"memberId": alice["id"], "amount": 500, "reason": "apology for a late parcel", "externalId": "ADJ-1"}
    ok(await api.as_operator(ADJUST_POINTS, {"input": adjustment}), "adjustPoints")

    after = await home.changed()
    assert after["points"]["balance"] == 600
    node = after["points"]["ledger"]["edges"][0]["node"]
    assert (node["amount"], node["reason"]) == (500, "Adjustment by ops: apology for a late parcel")


async def test_a_tier_evaluation_shows_at_once(api, app, clock):
    clock.now = at("2026-01-20T13:00:00+08:00")
    await enroll(api, "alice", joinedAt="2026-01-05T10:00:00+08:00")
    await order(api, "A-1", "alice", "250", "2026-01-20T12:00:00+08:00")  # SILVER until 2027-01-20 12:00
    await refund(api, "RF-1", "A-1", "250", "2026-01-20T12:30:00+08:00")  # nothing left to keep it
    clock.now = at("2027-01-20T13:00:00+08:00")
    home = Home(api, app, clock)
    before = await home.kept()
    assert (before["tier"]["code"], before["tierValidUntil"]) == ("SILVER", "2027-01-20T12:00:00+08:00")

    run = ok(await api.as_operator(EVALUATE_TIERS, {"input": {"asOf": "2027-01-20T12:00:00+08:00"}}), "evaluateTiers")
    assert (run["evaluated"], run["downgraded"]) == (1, 1)

    after = await home.changed()
    assert (after["tier"], after["tierValidUntil"]) == ({"code": "REGULAR", "name": "普通会员"}, None)
    assert after["nextTier"]["tier"] == {"name": "银卡会员"}


async def test_a_points_expiry_run_shows_at_once(api, app, clock):
    await enroll(api, "alice")  # 100 points earned in January 2026: due at the end of January 2027
    clock.now = at("2027-02-01T10:00:00+08:00")
    home = Home(api, app, clock)
    before = await home.kept()
    assert (before["points"]["balance"], before["points"]["nextExpiryAt"]) == (100, None)

    run = ok(await api.as_operator(EXPIRE, {"asOf": "2027-02-01T00:00:00+08:00"}), "expirePoints")
    assert (run["membersAffected"], run["pointsExpired"]) == (1, 100)

    after = await home.changed()
    assert after["points"]["balance"] == 0
    assert [e["node"]["kind"] for e in after["points"]["ledger"]["edges"]] == ["EXPIRE", "EARN"]


async def test_the_jobs_of_another_process_show_at_once(api, app, clock, monkeypatch, database_url):
    """`tierup jobs` (cron) writes through its own connection pool: the stamp, not this process, notices."""
    await enroll(api, "alice")
    clock.now = at("2027-02-01T10:00:00+08:00")
    home = Home(api, app, clock)
    assert (await home.kept())["points"]["balance"] == 100
    monkeypatch.setenv("TIERUP_DATABASE_URL", database_url)
    assert await asyncio.to_thread(main, ["jobs", "--as-of", "2027-02-01T00:00:00+08:00"]) == 0
    assert (await home.changed())["points"]["balance"] == 0


async def test_a_publication_shows_the_new_program_at_once(api, app, clock):
    await enroll(api, "alice")
    home = Home(api, app, clock)
    before = await home.kept()
    assert before["tier"] == {"code": "REGULAR", "name": "普通会员"}

    same = ok(await api.as_operator(PUBLISH, {"input": {"definition": CLASSIC}}), "publishProgram")
    assert same["changed"] is False
    assert (await home.read()) == (before, True)  # nothing was published: the kept answer holds

    renamed = CLASSIC.replace('name = "普通会员"', 'name = "大众会员"').replace('title = "完成首单"', 'title = "首单礼"')
    published = ok(await api.as_operator(PUBLISH, {"input": {"definition": renamed}}), "publishProgram")
    assert (published["changed"], published["version"]) == (True, {"version": 2})

    after = await home.changed()
    assert after["tier"] == {"code": "REGULAR", "name": "大众会员"}
    assert after["tasks"][0]["task"] == {"code": "FIRST_ORDER", "title": "首单礼", "kind": "BASIC"}


# ---------------------------------------------------------------------------------------------
# What leaves the kept answer standing.

async def test_failed_writes_leave_the_kept_answer_standing(api, app, clock):
    await enroll(api, "alice")
    await order(api, "A-1", "alice", "150", "2026-01-05T09:00:00+08:00")
    ok(await api.as_member("alice", CHECK_IN), "checkIn")
    home = Home(api, app, clock)
    kept = await home.kept()

    unknown = await api.as_service(RECORD_ORDER, {"input": {"externalId": "X-1", "memberExternalId": "nobody",
                                                            "amount": "10", "paidAt": "2026-01-05T09:00:00+08:00"}})
    assert [e["code"] for e in unknown["data"]["recordOrder"]["userErrors"]] == ["NOT_FOUND"]
    assert await home.read() == (kept, True)

    clash = await api.as_service(RECORD_ORDER, {"input": {"externalId": "A-1", "memberExternalId": "alice",
                                                          "amount": "999", "paidAt": "2026-01-05T09:00:00+08:00"}})
    assert [e["code"] for e in clash["data"]["recordOrder"]["userErrors"]] == ["DUPLICATE"]
    assert await home.read() == (kept, True)

    again = await api.as_member("alice", CHECK_IN)
    assert again["data"]["checkIn"]["userErrors"] == [{"code": "ALREADY_DONE"}]
    assert await home.read() == (kept, True)

    benefit = (await ids(api, BENEFIT_IDS, "benefits"))["MONTHLY_COUPON_SILVER"]  # alice is REGULAR
    refused = await api.as_member("alice", CLAIM_BENEFIT, {"id": benefit})
    assert [e["code"] for e in refused["data"]["claimBenefit"]["userErrors"]] == ["NOT_ELIGIBLE"]
    assert await home.read() == (kept, True)

    reward = (await ids(api, REWARD_IDS, "rewards"))["TOTE_BAG"]  # 500 points; alice has 305
    poor = await api.as_member("alice", REDEEM, {"id": reward})
    assert [e["code"] for e in poor["data"]["redeemReward"]["userErrors"]] == ["INSUFFICIENT_POINTS"]
    assert await home.read() == (kept, True)


async def test_other_members_writes_leave_the_kept_answer_standing(api, app, clock):
    await enroll(api, "alice")
    await enroll(api, "bob")
    home = Home(api, app, clock)
    kept = await home.kept()
    await order(api, "B-1", "bob", "300", "2026-01-05T09:00:00+08:00")
    ok(await api.as_member("bob", CHECK_IN), "checkIn")
    assert await home.read() == (kept, True)


async def test_operators_and_services_reads_are_never_kept(api, app, clock):
    await enroll(api, "alice")
    cache = app.state.services.response_cache
    member = "query($id: String!) { member(externalId: $id) { points { balance } orders(first: 5) { totalCount } } }"
    for role in (Role.OPERATOR, Role.SERVICE):
        token = api.token(role, "staff")
        for document, variables in ((member, {"id": "alice"}), (DASHBOARD, None), ("{ viewer { id } }", None)):
            hits = cache.hits
            answers = [await api.post(document, variables, token=token) for _ in range(3)]
            assert "errors" not in answers[0], answers[0]
            assert answers[0] == answers[1] == answers[2] and cache.hits == hits
    assert len(cache) == 0


async def test_only_queries_of_viewer_alone_are_kept(api, app, clock):
    await enroll(api, "alice")
    cache = app.state.services.response_cache
    with_program = DASHBOARD.replace("query Dashboard {", "query Dashboard { program { name }", 1)
    for document in (with_program, "{ viewer { id } identity { role } }", "{ program { name } }"):
        hits = cache.hits
        answers = [await api.as_member("alice", document) for _ in range(3)]
        assert "errors" not in answers[0], answers[0]
        assert answers[0] == answers[1] == answers[2] and cache.hits == hits, document
    # A document of several operations: the one chosen decides.
    both = "query Home { viewer { points { balance } } } query Name { program { name } }"
    headers = {"Authorization": f"Bearer {api.token(Role.MEMBER, 'alice')}"}
    hits = cache.hits
    for _ in range(3):
        response = await api.client.post("/graphql", json={"query": both, "operationName": "Name"}, headers=headers)
        assert "errors" not in response.json()
    assert cache.hits == hits
    for _ in range(2):
        response = await api.client.post("/graphql", json={"query": both, "operationName": "Home"}, headers=headers)
        assert response.json() == {"data": {"viewer": {"points": {"balance": 100}}}}
    assert cache.hits == hits + 1


async def test_mutations_are_never_kept(api, app, clock):
    await enroll(api, "alice")
    cache = app.state.services.response_cache
    hits = cache.hits
    first = await api.as_member("alice", CHECK_IN)
    second = await api.as_member("alice", CHECK_IN)
    assert first["data"]["checkIn"]["userErrors"] == [] and first["data"]["checkIn"]["pointsAwarded"] == 5
    assert second["data"]["checkIn"]["userErrors"] == [{"code": "ALREADY_DONE"}]
    assert cache.hits == hits and len(cache) == 0


async def test_the_testers_clock_is_never_served_from_the_cache(api, app, clock):
    await enroll(api, "alice")
    home = Home(api, app, clock)
    today = await home.kept()
    cache = app.state.services.response_cache
    hits, kept = cache.hits, len(cache)
    tomorrow = "2026-01-06T10:00:00+08:00"
    answers = [(await api.as_member("alice", DASHBOARD, now=clock.now))["data"]["viewer"] for _ in range(2)]
    assert answers == [today, today] and cache.hits == hits  # the same moment, yet run both times
    later = await api.as_member("alice", DASHBOARD, now=tomorrow)
    assert "errors" not in later and cache.hits == hits and len(cache) == kept
    assert await home.read() == (today, True)  # and what it answered was not kept in its place


# ---------------------------------------------------------------------------------------------
# Time alone: the kept answer lasts until the first moment the answer changes, not a moment longer.

async def test_a_new_program_day_ends_todays_check_in(api, app, clock):
    await enroll(api, "alice")
    ok(await api.as_member("alice", CHECK_IN), "checkIn")  # 2026-01-05 10:00 Shanghai
    home = Home(api, app, clock)
    clock.now = at("2026-01-05T23:59:59+08:00")  # 15:59:59 UTC: still the 5th in Shanghai
    evening = await home.kept()
    assert evening["checkIn"] == {"checkedInToday": True, "streak": 1, "nextReward": 5}
    assert tasks(evening)["DAILY_CHECK_IN"] == ("COMPLETED", 1)

    clock.now = at("2026-01-06T00:00:00+08:00")
    midnight = await home.changed()
    assert midnight["checkIn"] == {"checkedInToday": False, "streak": 1, "nextReward": 5}
    assert tasks(midnight)["DAILY_CHECK_IN"] == ("AVAILABLE", 0)
    assert await home.kept() == midnight

    clock.now = at("2026-01-07T00:00:00+08:00")  # a day missed: the streak is gone
    assert (await home.changed())["checkIn"] == {"checkedInToday": False, "streak": 0, "nextReward": 5}


async def test_points_come_within_the_reminder_horizon_and_expire(api, app, clock):
    await enroll(api, "alice")  # 100 points, due 2027-02-01 00:00 Shanghai
    clock.now = at("2026-03-10T10:00:00+08:00")
    await order(api, "A-1", "alice", "150", "2026-03-10T09:00:00+08:00")  # 200 points, due 2027-04-01
    home = Home(api, app, clock)

    clock.now = at("2027-01-01T23:59:59+08:00")
    assert points(await home.kept()) == (300, 0, "2027-02-01T00:00:00+08:00")
    clock.now = at("2027-01-02T00:00:00+08:00")  # 30 days before the January lots expire
    assert points(await home.changed()) == (300, 100, "2027-02-01T00:00:00+08:00")

    clock.now = at("2027-01-31T23:59:59+08:00")
    assert (await home.kept())["points"]["expiringSoon"] == 100
    clock.now = at("2027-02-01T00:00:00+08:00")  # due: gone from the figures before the job runs
    assert points(await home.changed()) == (300, 0, "2027-04-01T00:00:00+08:00")

    clock.now = at("2027-03-01T23:59:59+08:00")
    assert (await home.kept())["points"]["expiringSoon"] == 0
    clock.now = at("2027-03-02T00:00:00+08:00")  # 30 days before the March lots expire
    assert (await home.changed())["points"]["expiringSoon"] == 200


async def test_the_kept_answer_ends_with_the_tiers_validity_and_its_orders_window(api, app, clock):
    """The tier lasts until its evaluation job runs; the upgrading order's ¥250 leaves the 12-month window then."""
    clock.now = at("2026-01-20T13:00:00+08:00")
    await enroll(api, "alice", joinedAt="2026-01-05T10:00:00+08:00")
    await order(api, "A-1", "alice", "250", "2026-01-20T12:00:00+08:00")  # SILVER until 2027-01-20 12:00
    home = Home(api, app, clock)
    clock.now = at("2027-01-20T11:59:59+08:00")
    before = await home.kept()
    assert (before["tier"]["code"], before["tierValidUntil"]) == ("SILVER", "2027-01-20T12:00:00+08:00")
    assert conditions(before)[1] == ("≥ ¥1,000 spent in the past 12 months", "250.00")

    clock.now = at("2027-01-20T12:00:00+08:00")  # validity ends, and the order leaves the 12 months
    after = await home.changed()
    assert (after["tier"]["code"], after["tierValidUntil"]) == ("SILVER", "2027-01-20T12:00:00+08:00")
    assert conditions(after)[1] == ("≥ ¥1,000 spent in the past 12 months", "0.00")


async def test_an_order_leaving_the_rolling_window_changes_the_next_tier_figures(api, app, clock):
    """A moment in the middle of a program day: only the window's own end can say when."""
    clock.now = at("2026-01-10T13:00:00+08:00")
    await enroll(api, "alice", joinedAt="2026-01-05T10:00:00+08:00")
    await order(api, "A-1", "alice", "100", "2026-01-10T12:34:56+08:00")
    clock.now = at("2026-02-10T13:00:00+08:00")
    await order(api, "A-2", "alice", "300", "2026-02-10T12:00:00+08:00")  # SILVER; next: GOLD
    home = Home(api, app, clock)

    clock.now = at("2027-01-10T12:34:55+08:00")
    assert conditions(await home.kept()) == [("cumulative spend ≥ ¥2,000", "400.00"),
                                             ("≥ ¥1,000 spent in the past 12 months", "400.00")]
    clock.now = at("2027-01-10T12:34:56+08:00")
    assert conditions(await home.changed()) == [("cumulative spend ≥ ¥2,000", "400.00"),
                                                ("≥ ¥1,000 spent in the past 12 months", "300.00")]


async def test_a_lifecycle_threshold_passing_changes_the_stage(api, app, clock):
    await enroll(api, "alice")  # joined 2026-01-05 10:00 Shanghai: NEW for 30 days
    home = Home(api, app, clock)
    clock.now = at("2026-02-04T09:59:59+08:00")
    assert (await home.kept())["lifecycleStage"] == "NEW"
    clock.now = at("2026-02-04T10:00:00+08:00")
    assert (await home.changed())["lifecycleStage"] == "GROWING"
    clock.now = at("2026-04-05T09:59:59+08:00")
    assert (await home.kept())["lifecycleStage"] == "GROWING"
    clock.now = at("2026-04-05T10:00:00+08:00")  # 90 days without an order
    assert (await home.changed())["lifecycleStage"] == "DECLINING"


async def test_a_quest_window_opens_and_closes(api, app, clock):
    await enroll(api, "alice")
    home = Home(api, app, clock)
    clock.now = at("2026-02-28T23:59:59+08:00")
    assert (await home.kept())["quests"] == []
    clock.now = at("2026-03-01T00:00:00+08:00")
    assert (await home.changed())["quests"] == [{"quest": {"code": "SPRING_QUEST", "title": "春日积分闯关",
                                                           "endsAt": "2026-07-01T00:00:00+08:00"},
                                                 "currentLevel": 1, "progress": 0, "target": 200}]
    clock.now = at("2026-06-30T23:59:59+08:00")
    assert [q["quest"]["code"] for q in (await home.kept())["quests"]] == ["SPRING_QUEST"]
    clock.now = at("2026-07-01T00:00:00+08:00")
    assert (await home.changed())["quests"] == []


async def test_a_benefit_window_opens_and_closes(api, app, clock):
    await enroll(api, "alice")
    home = Home(api, app, clock)
    clock.now = at("2026-05-31T23:59:59+08:00")
    assert benefits(await home.kept())["COUPON_618"] == (1, False, "618 满199减30 opens at 2026-06-01T00:00:00+08:00")
    clock.now = at("2026-06-01T00:00:00+08:00")
    assert benefits(await home.changed())["COUPON_618"] == (1, True, None)
    clock.now = at("2026-06-18T23:59:59+08:00")
    assert benefits(await home.kept())["COUPON_618"] == (1, True, None)
    clock.now = at("2026-06-19T00:00:00+08:00")
    assert benefits(await home.changed())["COUPON_618"] == (1, False, "618 满199减30 ended at 2026-06-19T00:00:00+08:00")


async def test_a_coupon_running_out_changes_its_status(api, app, clock):
    await enroll(api, "alice")  # the welcome coupon: valid 7 days, to 2026-01-12 23:59:59 Shanghai
    home = Home(api, app, clock, document=COUPONS)
    clock.now = at("2026-01-12T23:59:58+08:00")
    coupon = (await home.kept())["coupons"]["edges"][0]["node"]
    assert coupon == {"status": "ISSUED", "validUntil": "2026-01-12T23:59:59+08:00",
                      "template": {"code": "WELCOME_10_OFF_50"}}
    clock.now = at("2026-01-12T23:59:59.500000+08:00")
    assert (await home.changed())["coupons"]["edges"][0]["node"]["status"] == "EXPIRED"


async def test_an_order_paid_minutes_ahead_counts_when_its_time_comes(api, app, clock):
    """The shop's clock may run up to five minutes ahead (CLOCK_SKEW): such an order is stored at once, and the
    next-tier figures, which count orders paid by now, take it in when its paidAt comes — time alone."""
    await enroll(api, "alice")
    home = Home(api, app, clock)
    await order(api, "A-1", "alice", "150", "2026-01-05T10:03:00+08:00")  # the server's clock says 10:00
    now = await home.changed()
    assert now["orders"]["totalCount"] == 1 and now["points"]["balance"] == 300
    assert conditions(now) == [("cumulative spend ≥ ¥500", "0.00"), ("one order ≥ ¥200", "0.00")]
    assert tasks(now)["THREE_MONTH_STREAK"] == ("AVAILABLE", 0)
    clock.now = at("2026-01-05T10:02:59+08:00")
    assert await home.read() == (now, True)
    clock.now = at("2026-01-05T10:03:00+08:00")
    paid = await home.changed()
    assert conditions(paid) == [("cumulative spend ≥ ¥500", "150.00"), ("one order ≥ ¥200", "150.00")]
    assert tasks(paid)["THREE_MONTH_STREAK"] == ("IN_PROGRESS", 1)


# ---------------------------------------------------------------------------------------------
# Reads that take time: the wall clock moves on while the answer is built.

class Straddling:
    """The server's clock when a read begins just before a moment and the rest of it runs just after."""

    def __init__(self, begins: datetime, then: datetime):
        self.begins, self.then = [begins], then

    def __call__(self) -> datetime:
        return self.begins.pop() if self.begins else self.then


async def test_a_read_straddling_program_midnight_is_not_kept_past_the_next_one(api, app, clock, monkeypatch):
    """A read that begins at 23:59:59.999 and is answered at 00:00:00.001 answers for the new day, so it may
    be kept until the end of the new day at the latest."""
    await enroll(api, "alice")
    ok(await api.as_member("alice", CHECK_IN), "checkIn")  # the 5th
    services = app.state.services
    monkeypatch.setattr(services, "clock", Straddling(at("2026-01-05T23:59:59.999+08:00"),
                                                      at("2026-01-06T00:00:00.001+08:00")))
    sixth = (await api.as_member("alice", DASHBOARD))["data"]["viewer"]
    assert sixth["checkIn"] == {"checkedInToday": False, "streak": 1, "nextReward": 5}  # answered for the 6th
    monkeypatch.setattr(services, "clock", clock)
    home = Home(api, app, clock)
    clock.now = at("2026-01-06T10:00:00+08:00")
    assert (await home.read())[0] == sixth
    clock.now = at("2026-01-07T00:00:00+08:00")  # the 6th passed without a check-in: the streak is gone
    assert (await home.changed())["checkIn"] == {"checkedInToday": False, "streak": 0, "nextReward": 5}


async def test_a_read_straddling_program_midnight_is_answered(api, app, clock, monkeypatch):
    """Nothing in this answer changes with time but the day itself: the read must still be answered."""
    await enroll(api, "alice")
    document = "{ viewer { checkIn { checkedInToday streak } } }"
    monkeypatch.setattr(app.state.services, "clock", Straddling(at("2026-01-05T23:59:59.999+08:00"),
                                                                at("2026-01-06T00:00:00.001+08:00")))
    result = await api.as_member("alice", document)
    assert result == {"data": {"viewer": {"checkIn": {"checkedInToday": False, "streak": 0}}}}
