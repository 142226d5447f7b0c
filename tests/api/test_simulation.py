"""Replaying history against a draft: side by side with the live program, and nothing persists."""

import hashlib
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from helpers import load_sample_history, member_view, row_counts
from tierup.store.models import PointsEntry

PROGRAMS = Path(__file__).resolve().parents[2] / "fixtures" / "programs"
CLASSIC = (PROGRAMS / "classic.toml").read_text(encoding="utf-8")
SIMULATE = """mutation($input: SimulateProgramInput!) { simulateProgram(input: $input) {
  result { reportsReplayed
    live { membersPerTier { tier members } upgrades downgrades pointsIssued outstandingPoints liability { amount }
           taskCompletions { task completions } }
    draft { membersPerTier { tier members } upgrades downgrades pointsIssued outstandingPoints }
    changedMembers(first: 10) { totalCount edges { node { memberExternalId liveTier draftTier } } } }
  userErrors { field code message } } }"""


async def ledger_checksum(db) -> str:
    async with db.read() as session:
        rows = (await session.execute(select(PointsEntry).order_by(PointsEntry.id))).scalars().all()
    text = "|".join(f"{e.id},{e.member_id},{e.kind},{e.amount},{e.balance_after},{e.expires_at}" for e in rows)
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
async def history(api, db, program, clock):
    clock.now = datetime.fromisoformat("2026-07-01T00:00:00+08:00")
    await load_sample_history(db, program)
    evaluated = await api.as_operator(
        'mutation { evaluateTiers(input: {asOf: "2026-07-01T00:00:00+08:00"}) { evaluated downgraded } }')
    # dan's Silver lapsed on 2025-12-01; his ¥300 order lies in his first qualification period and keeps it.
    assert evaluated["data"]["evaluateTiers"] == {"evaluated": 1, "downgraded": 0}


async def simulate(api, definition: str, start: str = "2026-01-01", end: str = "2026-06-30") -> dict:
    result = await api.as_operator(SIMULATE, {"input": {"definition": definition, "from": start, "to": end}})
    return result["data"]["simulateProgram"]


async def test_replaying_the_live_definition_reproduces_the_live_state(api, db, history):
    outcome = (await simulate(api, CLASSIC, start="2024-01-01"))["result"]
    assert outcome["reportsReplayed"] == 6 + 10  # six enrolments, ten orders
    assert outcome["draft"] == {k: outcome["live"][k] for k in outcome["draft"]}
    assert outcome["changedMembers"]["totalCount"] == 0
    tiers = {m: (await member_view(api, m))["tier"]["code"] for m in ("ana", "ben", "cai", "dan", "eve", "fay")}
    assert {row["tier"]: row["members"] for row in outcome["live"]["membersPerTier"]} == {
        "REGULAR": list(tiers.values()).count("REGULAR"), "SILVER": list(tiers.values()).count("SILVER"),
        "GOLD": list(tiers.values()).count("GOLD"), "DIAMOND": list(tiers.values()).count("DIAMOND")}
    async with db.read() as session:
        from sqlalchemy import func

        ledger = (await session.execute(select(func.sum(PointsEntry.amount)))).scalar_one()
    assert outcome["live"]["outstandingPoints"] == ledger == 15050
    assert outcome["live"]["liability"] == {"amount": "150.50"}
    assert outcome["live"]["taskCompletions"] == [{"task": "FIRST_ORDER", "completions": 5},
                                                  {"task": "THREE_MONTH_STREAK", "completions": 1}]


async def test_a_draft_shows_who_would_move_and_nothing_persists(api, db, history):
    before, checksum = await row_counts(db), await ledger_checksum(db)
    easier = CLASSIC.replace('{ metric = "single_order_amount", at_least = "200" }',
                             '{ metric = "single_order_amount", at_least = "100" }')
    outcome = (await simulate(api, easier))["result"]
    assert outcome["changedMembers"]["edges"] == [
        {"node": {"memberExternalId": "ben", "liveTier": "REGULAR", "draftTier": "SILVER"}}]
    assert outcome["draft"]["upgrades"] == outcome["live"]["upgrades"] + 1
    nine = await simulate(api, (PROGRAMS / "nine-levels.toml").read_text(encoding="utf-8"))
    assert nine["userErrors"] == []
    assert [row["tier"] for row in nine["result"]["draft"]["membersPerTier"]] == [f"V{n}" for n in range(1, 10)]
    assert nine["result"]["changedMembers"]["totalCount"] == 6
    assert await row_counts(db) == before
    assert await ledger_checksum(db) == checksum


async def test_a_broken_draft_is_user_errors(api, history):
    result = await simulate(api, CLASSIC.replace('code = "SILVER"', 'code = "silver"'))
    assert result["result"] is None
    assert result["userErrors"][0]["field"] == ["input", "definition", "ladder", "tiers", "1", "code"]


async def test_the_replay_knows_paid_memberships_and_points_paid_with(api, db, clock):
    """Live: ann buys PLUS (+1 on orders), orders ¥100 at 2× paying 40 points, refunds half. A draft whose
    PLUS gives +3 earns her 2 more points per yuan on that order; the live replay matches the ledger."""
    from helpers import enroll, order
    from test_memberships import buy

    clock.now = datetime.fromisoformat("2026-01-20T10:00:00+08:00")
    await enroll(api, "ann", joinedAt="2026-01-01T10:00:00+08:00")
    await buy(api, "P-1", "PLUS_MONTH", "15")  # 2026-01-04, a month
    await order(api, "A-1", "ann", "100", "2026-01-10T10:00:00+08:00", pointsUsed=40)
    await api.as_service("""mutation { refundOrder(input: {externalId: "R-1", orderExternalId: "A-1", amount: "50",
                            refundedAt: "2026-01-11T10:00:00+08:00"}) { userErrors { code } } }""")
    balance = (await member_view(api, "ann"))["points"]["balance"]
    richer = CLASSIC.replace('points_multiplier_bonus = "1"', 'points_multiplier_bonus = "3"')
    outcome = (await simulate(api, richer, start="2026-01-01", end="2026-01-31"))["result"]
    assert outcome["live"]["outstandingPoints"] == balance  # 100 welcome + 50 task − 40 + 200 + 20 back − 100
    assert outcome["draft"]["outstandingPoints"] == balance + 200 - 100  # 400 earned, half taken back


async def test_the_replay_pays_rewards_when_members_claimed_them(api, db, clock):
    """Three months in a row complete THREE_MONTH_STREAK, whose 300 points wait for alice's claim. Replaying
    the live definition pays them when she claimed: its figure is the real ledger's."""
    from helpers import enroll, order
    from sqlalchemy import func

    clock.now = datetime.fromisoformat("2026-03-20T10:00:00+08:00")
    await enroll(api, "alice", joinedAt="2026-01-01T10:00:00+08:00")
    for month in (1, 2, 3):
        await order(api, f"A-{month}", "alice", "50", f"2026-0{month}-03T10:00:00+08:00")
    tasks = (await api.as_member("alice", "{ viewer { tasks { task { id code } status } } }"))["data"]["viewer"]["tasks"]
    streak = next(t for t in tasks if t["task"]["code"] == "THREE_MONTH_STREAK")
    assert streak["status"] == "COMPLETED"
    claimed = await api.as_member("alice", 'mutation($id: ID!) { claimTaskReward(input: {taskId: $id}) { userErrors { code } } }',
                                  {"id": streak["task"]["id"]})
    assert claimed["data"]["claimTaskReward"]["userErrors"] == []
    outcome = (await simulate(api, CLASSIC, start="2026-01-01", end="2026-03-31"))["result"]
    async with db.read() as session:
        ledger = (await session.execute(select(func.sum(PointsEntry.amount)))).scalar_one()
    assert outcome["live"]["outstandingPoints"] == outcome["draft"]["outstandingPoints"] == ledger


async def test_the_replay_pays_a_referral_once_as_the_live_path_does(api, db):
    """The referrer's points come with the referred member's first order, also when it was refunded in full and
    another order followed: the live definition's replay ends with the live ledger's points."""
    from helpers import enroll, order, refund

    joined = "2026-01-01T10:00:00+08:00"
    alice = await enroll(api, "alice", joinedAt=joined)
    await enroll(api, "bob", referralCode=alice["member"]["referralCode"], joinedAt=joined)
    await order(api, "B-1", "bob", "30", "2026-01-02T10:00:00+08:00")
    await refund(api, "RF-1", "B-1", "30", "2026-01-03T10:00:00+08:00")
    await order(api, "B-2", "bob", "40", "2026-01-04T10:00:00+08:00")
    outcome = (await simulate(api, CLASSIC, start="2025-12-01", end="2026-01-05"))["result"]
    async with db.read() as session:
        from sqlalchemy import func

        ledger = (await session.execute(select(func.sum(PointsEntry.amount)))).scalar_one()
    assert outcome["live"]["outstandingPoints"] == ledger
    assert (await member_view(api, "alice"))["points"]["balance"] == 100 + 200  # welcome, one referral
