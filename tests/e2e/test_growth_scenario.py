"""The growth scenario: check-ins, a three-month streak, a referral, claims — with live events."""

import asyncio
from datetime import datetime

from helpers import enroll, member_view, order
from tierup.auth import Role

from test_live_progress import TASK_PROGRESS

CHECK_IN = """mutation { checkIn {
  pointsAwarded checkIn { checkedInToday streak nextReward } member { points { balance } }
  userErrors { code message } } }"""
CLAIM = """mutation($taskId: ID!) { claimTaskReward(input: {taskId: $taskId}) {
  progress { status claimedAt task { code } } member { points { balance } growthValue badges { code name } }
  userErrors { code message } } }"""
TASKS = "{ viewer { tasks { status current target task { id code } } } }"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_member_grows_through_check_ins_streaks_and_a_referral(server, clock):
    api = server.api
    clock.now = at("2026-01-01T09:00:00+08:00")
    alice = (await enroll(api, "alice"))["member"]
    assert alice["points"]["balance"] == 100
    live = await server.socket(api.token(Role.MEMBER, "alice"))
    await live.subscribe(TASK_PROGRESS)
    await asyncio.sleep(0.1)

    for day in range(1, 8):
        clock.now = at(f"2026-01-0{day}T09:00:00+08:00")
        result = (await api.as_member("alice", CHECK_IN))["data"]["checkIn"]
        assert result["userErrors"] == []
        assert result["pointsAwarded"] == (25 if day == 7 else 5)
        assert result["checkIn"]["streak"] == day
        assert result["checkIn"]["nextReward"] == (25 if day == 6 else 5)
    assert result["member"]["points"]["balance"] == 100 + 5 * 7 + 20
    again = (await api.as_member("alice", CHECK_IN))["data"]["checkIn"]
    assert again["userErrors"][0]["code"] == "ALREADY_DONE"

    clock.now = at("2026-01-10T13:00:00+08:00")
    january = await order(api, "A-1", "alice", "100", "2026-01-10T12:00:00+08:00")
    assert january["member"]["points"]["balance"] == 155 + 100 + 50  # FIRST_ORDER pays automatically
    clock.now = at("2026-02-10T13:00:00+08:00")
    await order(api, "A-2", "alice", "100", "2026-02-10T12:00:00+08:00")
    clock.now = at("2026-03-10T13:00:00+08:00")
    march = await order(api, "A-3", "alice", "100", "2026-03-10T12:00:00+08:00")
    assert march["member"]["points"]["balance"] == 505

    tasks = {t["task"]["code"]: t for t in (await api.as_member("alice", TASKS))["data"]["viewer"]["tasks"]}
    assert (tasks["THREE_MONTH_STREAK"]["status"], tasks["REFER_A_FRIEND"]["status"]) == ("COMPLETED", "AVAILABLE")
    claimed = (await api.as_member("alice", CLAIM, {"taskId": tasks["THREE_MONTH_STREAK"]["task"]["id"]}))
    claimed = claimed["data"]["claimTaskReward"]
    assert claimed["progress"]["status"] == "CLAIMED"
    assert claimed["member"]["points"]["balance"] == 805
    twice = (await api.as_member("alice", CLAIM, {"taskId": tasks["THREE_MONTH_STREAK"]["task"]["id"]}))
    assert twice["data"]["claimTaskReward"]["userErrors"][0]["code"] == "ALREADY_DONE"
    early = (await api.as_member("alice", CLAIM, {"taskId": tasks["REFER_A_FRIEND"]["task"]["id"]}))
    assert early["data"]["claimTaskReward"]["userErrors"][0]["code"] == "NOT_ELIGIBLE"

    clock.now = at("2026-03-15T10:00:00+08:00")
    bob = await enroll(api, "bob", referralCode=alice["referralCode"])
    assert bob["userErrors"] == []
    clock.now = at("2026-03-16T10:00:00+08:00")
    await order(api, "B-1", "bob", "50", "2026-03-16T09:00:00+08:00")
    referral = (await api.as_member("alice", CLAIM, {"taskId": tasks["REFER_A_FRIEND"]["task"]["id"]}))
    referral = referral["data"]["claimTaskReward"]
    assert referral["userErrors"] == []
    assert referral["member"]["points"]["balance"] == 1505  # 200 of them for bob's first order (推荐有礼)
    # The 200 referral points count toward the spring quest: its second level (and badge) falls too.
    assert referral["member"]["badges"] == [{"code": "TOP_REFERRER", "name": "推荐达人"},
                                            {"code": "SPRING_STAR", "name": "春日达人"}]
    # growth: FIRST_ORDER 10 + THREE_MONTH_STREAK 50 + SPRING_QUEST levels 1 and 2 20 + 50 + REFER_A_FRIEND 100
    assert referral["member"]["growthValue"] == 230

    changes = []
    for _ in range(15):
        event = (await live.next_data(timeout=2))["taskProgress"]
        changes.append((event["progress"]["task"]["code"], event["previousStatus"], event["progress"]["status"]))
    assert changes == [("DAILY_CHECK_IN", "AVAILABLE", "COMPLETED")] * 7 + [
        ("FIRST_ORDER", "AVAILABLE", "COMPLETED"),
        ("THREE_MONTH_STREAK", "LOCKED", "IN_PROGRESS"),
        ("THREE_MONTH_STREAK", "IN_PROGRESS", "IN_PROGRESS"),
        ("THREE_MONTH_STREAK", "IN_PROGRESS", "COMPLETED"),
        ("REFER_A_FRIEND", "LOCKED", "AVAILABLE"),
        ("THREE_MONTH_STREAK", "COMPLETED", "CLAIMED"),
        ("REFER_A_FRIEND", "AVAILABLE", "COMPLETED"),
        ("REFER_A_FRIEND", "COMPLETED", "CLAIMED"),
    ]
    assert await live.nothing_within(0.3)

    view = await member_view(api, "alice")
    assert view["points"]["balance"] == sum(e["node"]["amount"] for e in view["points"]["ledger"]["edges"])
    quests = (await api.as_member("alice", "{ viewer { quests { currentLevel progress target passedLevels quest { code } } } }"))
    assert quests["data"]["viewer"]["quests"] == [
        {"currentLevel": 3, "progress": 1100, "target": 3000, "passedLevels": [1, 2], "quest": {"code": "SPRING_QUEST"}}]
