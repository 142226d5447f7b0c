"""Growth rules through the API: reviews, check-in days in program time, quests, referrals."""

from datetime import datetime

from sqlalchemy import select

from helpers import enroll, member_view, order, row_counts
from tierup.store.models import Member

REVIEW = """mutation($input: RecordReviewInput!) { recordReview(input: $input) {
  duplicate member { points { balance } tasks(kind: BASIC) { status task { code } } } userErrors { field code message } } }"""
CHECK_IN = "mutation { checkIn { pointsAwarded checkIn { streak checkedInToday } userErrors { code } } }"
QUESTS = "{ viewer { growthValue quests { currentLevel progress passedLevels } } }"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def review(external_id: str, photos: bool, **extra) -> dict:
    return {"input": {"externalId": external_id, "memberExternalId": "alice", "withPhotos": photos,
                      "postedAt": "2026-01-05T09:00:00+08:00", **extra}}


async def test_only_a_review_with_photos_completes_the_photo_task(api, db, clock):
    clock.now = at("2026-01-06T00:00:00+08:00")
    await enroll(api, "alice")
    text = (await api.as_service(REVIEW, review("R-1", False)))["data"]["recordReview"]
    tasks = {t["task"]["code"]: t["status"] for t in text["member"]["tasks"]}
    assert tasks["FIRST_PHOTO_REVIEW"] == "AVAILABLE"
    photo = (await api.as_service(REVIEW, review("R-2", True)))["data"]["recordReview"]
    tasks = {t["task"]["code"]: t["status"] for t in photo["member"]["tasks"]}
    assert tasks["FIRST_PHOTO_REVIEW"] == "COMPLETED"
    assert photo["member"]["points"]["balance"] == 100 + 30
    before = await row_counts(db)
    again = (await api.as_service(REVIEW, review("R-2", True)))["data"]["recordReview"]
    assert again["duplicate"] is True and again["member"]["points"]["balance"] == 130
    assert await row_counts(db) == before


async def test_a_review_names_one_of_the_members_orders(api, db, clock):
    clock.now = at("2026-01-06T00:00:00+08:00")
    await enroll(api, "alice")
    await enroll(api, "bob")
    await order(api, "B-1", "bob", "100", "2026-01-04T09:00:00+08:00")
    before = await row_counts(db)
    result = (await api.as_service(REVIEW, review("R-1", True, orderExternalId="B-1")))["data"]["recordReview"]
    assert result["userErrors"] == [{"field": ["input", "orderExternalId"], "code": "NOT_FOUND",
                                     "message": "the member has no order 'B-1'"}]
    assert await row_counts(db) == before


async def test_check_in_days_are_program_days(api, clock):
    """23:30 and 00:10 in Shanghai are two days, though both are the same UTC date."""
    clock.now = at("2026-01-01T23:30:00+08:00")
    await enroll(api, "alice")
    first = (await api.as_member("alice", CHECK_IN))["data"]["checkIn"]
    clock.now = at("2026-01-02T00:10:00+08:00")
    second = (await api.as_member("alice", CHECK_IN))["data"]["checkIn"]
    assert (first["pointsAwarded"], second["pointsAwarded"]) == (5, 5)
    assert second["checkIn"] == {"streak": 2, "checkedInToday": True}


async def test_the_tester_clock_walks_check_ins(api, clock):
    await enroll(api, "alice")
    for day in ("2026-02-01", "2026-02-02", "2026-02-04"):
        result = await api.as_member("alice", CHECK_IN, now=f"{day}T08:00:00+08:00")
    assert result["data"]["checkIn"]["checkIn"]["streak"] == 1  # the 3rd was skipped


async def test_quest_rewards_never_count_toward_the_quest(api, db, clock):
    from helpers import publish_variant

    await publish_variant(db, clock(), quest_level_points=900)  # level 1 now also pays 900 points
    clock.now = at("2026-03-20T12:00:00+08:00")
    await enroll(api, "alice", joinedAt="2026-02-01T10:00:00+08:00")  # welcome points before the quest
    await order(api, "A-1", "alice", "250", "2026-03-20T10:00:00+08:00")  # 250 + FIRST_ORDER 50 = 300 earned
    quests = (await api.as_member("alice", QUESTS))["data"]["viewer"]
    # Level 1 passed (300 ≥ 200) and paid 900 points, which do not push the quest to level 2 (1,000).
    assert quests["quests"] == [{"currentLevel": 2, "progress": 300, "passedLevels": [1]}]
    assert (await member_view(api, "alice"))["points"]["balance"] == 100 + 250 + 50 + 900


async def test_a_referral_code_of_another_program_is_unknown(api, db, clock):
    alice = (await enroll(api, "alice"))["member"]
    result = await api.as_service(
        "mutation($i: EnrollMemberInput!) { enrollMember(input: $i) { userErrors { code field } } }",
        {"i": {"externalId": "bob", "referralCode": alice["referralCode"].lower()}})
    assert result["data"]["enrollMember"]["userErrors"] == []  # codes are case-insensitive
    unknown = await api.as_service(
        "mutation($i: EnrollMemberInput!) { enrollMember(input: $i) { userErrors { code field } } }",
        {"i": {"externalId": "carol", "referralCode": "ZZZZZZZZ"}})
    assert unknown["data"]["enrollMember"]["userErrors"] == [{"code": "NOT_FOUND", "field": ["input", "referralCode"]}]


async def test_the_growth_tree_is_served_in_dependency_order(api):
    result = await api.as_member("nobody", "{ program { growthTree { tasks { code kind prerequisites { code } "
                                           "reward { points growthValue badge { name } } } } } }")
    tasks = result["data"]["program"]["growthTree"]["tasks"]
    assert [t["code"] for t in tasks] == ["FIRST_ORDER", "FIRST_PHOTO_REVIEW", "ECO_WEEK", "DAILY_CHECK_IN",
                                          "THREE_MONTH_STREAK", "REFER_A_FRIEND"]
    refer = tasks[-1]
    assert refer["prerequisites"] == [{"code": "THREE_MONTH_STREAK"}]
    assert refer["reward"] == {"points": 500, "growthValue": 100, "badge": {"name": "推荐达人"}}


async def test_quests_are_listed_while_they_run(api, clock):
    query = "{ program { quests { code startsAt endsAt levels { target } } all: quests(activeOnly: false) { code } } }"
    clock.now = at("2026-02-28T23:59:00+08:00")
    before = (await api.as_member("x", query))["data"]["program"]
    assert before["quests"] == [] and before["all"] == [{"code": "SPRING_QUEST"}]
    clock.now = at("2026-03-01T00:00:00+08:00")
    running = (await api.as_member("x", query))["data"]["program"]["quests"]
    assert running == [{"code": "SPRING_QUEST", "startsAt": "2026-03-01T00:00:00+08:00",
                        "endsAt": "2026-07-01T00:00:00+08:00", "levels": [{"target": 200}, {"target": 1000},
                                                                           {"target": 3000}]}]


async def test_an_orders_rewards_measure_its_tiers_again_only_where_growth_value_counts(db, clock, monkeypatch):
    """A first order completes a task whose reward is growth value. The classic ladder reaches no tier by growth
    value, so the member's tiers are measured once, for the order; the nine-level ladder's V3 is reached by it, so
    they are measured again after the reward (reaching V3 so is test_qualification_period's). A referrer rewarded
    with growth value by a friend's first order was not measured for that order, and is measured after it."""
    from decimal import Decimal

    from helpers import publish_classic
    from tierup.programs import bundled_program_path, load_program_file
    from tierup.services import tiers
    from tierup.services.members import EnrolmentInput, enroll_member
    from tierup.services.orders import OrderInput, record_order
    from tierup.services.programs import publish_program

    measured = []
    measure = tiers._metrics_of

    async def counted(session, definition, member, orders, at):
        measured.append(member.external_id)
        return await measure(session, definition, member, orders, at)

    monkeypatch.setattr(tiers, "_metrics_of", counted)
    when = clock()

    async def first_order(program, name: str, referral_code: str | None = None) -> None:
        await enroll_member(db, program, EnrolmentInput(external_id=name, referral_code=referral_code), now=when)
        measured.clear()
        await record_order(db, program, OrderInput(f"{name}-1", name, Decimal("20.00"), when), now=when)

    async def growth_value(name: str) -> int:
        async with db.read() as session:
            return await session.scalar(select(Member.growth_value).where(Member.external_id == name))

    for code, times, growth in (("classic", 1, 10), ("nine-levels", 2, 30)):  # growth: each FIRST_ORDER's reward
        program = (await publish_program(db, load_program_file(bundled_program_path(code)), published_by="test",
                                         now=when)).program
        await first_order(program, code)
        assert (measured, await growth_value(code)) == ([code] * times, growth)

    def refer_at_once(document):
        task = next(task for task in document["tasks"] if task["code"] == "REFER_A_FRIEND")
        task["claim"], task["prerequisites"] = "automatic", []

    program = await publish_classic(db, when, refer_at_once, "classic, the first referral rewarded at once")
    await enroll_member(db, program, EnrolmentInput(external_id="referrer"), now=when)
    async with db.read() as session:
        code = await session.scalar(select(Member.referral_code).where(Member.external_id == "referrer"))
    await first_order(program, "friend", code)
    assert (await growth_value("friend"), await growth_value("referrer")) == (10, 100)
    assert measured == ["friend", "referrer"]
