"""The tier qualification period (DOMAIN.md): cumulative figures count from enrolment or the latest
evaluation, for upgrades on orders, re-evaluation, reminders, the next-tier view and the replay alike."""

from datetime import datetime, timezone

import pytest
from sqlalchemy import select, text

from documents import EVALUATE_TIERS
from helpers import enroll, member_view, order, publish_classic, publish_classic_ladder_only
from tierup.auth import Role
from tierup.events import MemoryBroker
from tierup.services.tiers import remind_tier_expiring
from tierup.store.models import Member


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


@pytest.fixture
async def program(db, clock):
    """The ladder's rules alone: no task rewards mixed into the figures."""
    return await publish_classic_ladder_only(db, clock())


async def evaluate(api, clock, as_of: str) -> dict:
    clock.now = at(as_of)
    result = await api.as_operator(EVALUATE_TIERS, {"input": {"asOf": as_of}})
    return result["data"]["evaluateTiers"]


def gold_conditions(view: dict) -> list[tuple[str, str, bool]]:
    assert view["nextTier"]["tier"]["code"] == "GOLD"
    return [(c["description"], c["current"], c["met"]) for c in view["nextTier"]["conditions"]]


async def member_ids(db) -> dict[str, int]:
    async with db.read() as session:
        return dict((await session.execute(select(Member.external_id, Member.id))).all())


async def issue_history(api, clock) -> None:
    """Alice buys ¥5,000 once, keeps Diamond at the first evaluation, spends only ¥300 in the next period;
    Bob spends ¥900 once a year. Evaluations run exactly when validity ends, as the replay assumes."""
    clock.now = at("2025-01-10T12:00:00+08:00")
    for name in ("alice", "bob"):
        await enroll(api, name, joinedAt="2025-01-01T10:00:00+08:00")
    await order(api, "A-1", "alice", "5000", "2025-01-10T10:00:00+08:00")
    await order(api, "B-1", "bob", "900", "2025-01-10T10:00:00+08:00")
    await evaluate(api, clock, "2026-01-10T10:00:00+08:00")
    clock.now = at("2026-06-02T00:00:00+08:00")
    await order(api, "B-2", "bob", "900", "2026-01-20T10:00:00+08:00")
    await order(api, "A-2", "alice", "300", "2026-06-01T10:00:00+08:00")
    await evaluate(api, clock, "2027-01-10T10:00:00+08:00")
    clock.now = at("2027-03-01T00:00:00+08:00")
    await order(api, "A-3", "alice", "1", "2027-01-11T10:00:00+08:00")
    await order(api, "B-3", "bob", "900", "2027-01-25T10:00:00+08:00")
    await order(api, "A-4", "alice", "3000", "2027-02-01T10:00:00+08:00")


async def test_a_downgraded_member_climbs_back_only_by_qualifying_again(api, clock):
    clock.now = at("2025-01-10T12:00:00+08:00")
    await enroll(api, "alice", joinedAt="2025-01-01T10:00:00+08:00")
    bought = await order(api, "A-1", "alice", "5000", "2025-01-10T10:00:00+08:00")
    assert (bought["member"]["tier"]["code"], bought["member"]["tierValidUntil"]) == (
        "DIAMOND", "2026-01-10T10:00:00+08:00")

    # The first period runs from enrolment to this evaluation and holds the ¥5,000: Diamond is kept,
    # and a new period starts.
    assert await evaluate(api, clock, "2026-01-10T10:00:00+08:00") == {
        "evaluated": 1, "upgraded": 0, "downgraded": 0, "userErrors": []}
    assert (await member_view(api, "alice"))["tierValidUntil"] == "2027-01-10T10:00:00+08:00"

    clock.now = at("2026-06-02T00:00:00+08:00")
    kept = await order(api, "A-2", "alice", "300", "2026-06-01T10:00:00+08:00")
    assert kept["member"]["tier"]["code"] == "DIAMOND" and kept["order"]["pointsEarned"] == 1200

    # The second period holds ¥300 only: down to Silver (one order ≥ ¥200), whatever she spent before.
    assert await evaluate(api, clock, "2027-01-10T10:00:00+08:00") == {
        "evaluated": 1, "upgraded": 0, "downgraded": 1, "userErrors": []}
    after = await member_view(api, "alice")
    assert (after["tier"]["code"], after["tierValidUntil"]) == ("SILVER", "2028-01-10T10:00:00+08:00")
    # Right after the downgrade the view shows what the rules counted: a new, empty period, and the past
    # 12 months ending now.
    assert gold_conditions(after) == [("cumulative spend ≥ ¥2,000", "0.00", False),
                                      ("≥ ¥1,000 spent in the past 12 months", "300.00", False)]

    clock.now = at("2027-01-11T12:00:00+08:00")
    one_yuan = await order(api, "A-3", "alice", "1", "2027-01-11T10:00:00+08:00")
    assert one_yuan["member"]["tier"]["code"] == "SILVER"  # not Diamond on top of last years' ¥5,300
    assert one_yuan["order"]["pointsEarned"] == 2
    assert gold_conditions(one_yuan["member"]) == [("cumulative spend ≥ ¥2,000", "1.00", False),
                                                   ("≥ ¥1,000 spent in the past 12 months", "301.00", False)]

    clock.now = at("2027-02-01T12:00:00+08:00")
    again = await order(api, "A-4", "alice", "3000", "2027-02-01T10:00:00+08:00")
    assert (again["member"]["tier"]["code"], again["member"]["tierValidUntil"]) == (
        "DIAMOND", "2028-02-01T10:00:00+08:00")
    assert again["order"]["pointsEarned"] == 6000  # at Silver's 2×, the tier held before the order


async def test_an_upgrade_keeps_the_period_and_a_kept_tier_restarts_it(api, clock):
    clock.now = at("2025-01-10T12:00:00+08:00")
    await enroll(api, "bob", joinedAt="2025-01-01T10:00:00+08:00")
    silver = await order(api, "B-1", "bob", "900", "2025-01-10T10:00:00+08:00")
    # Reaching Silver did not restart anything: the ¥900 counts toward Gold.
    assert silver["member"]["tier"]["code"] == "SILVER"
    assert gold_conditions(silver["member"]) == [("cumulative spend ≥ ¥2,000", "900.00", False),
                                                 ("≥ ¥1,000 spent in the past 12 months", "900.00", False)]

    assert (await evaluate(api, clock, "2026-01-10T10:00:00+08:00"))["downgraded"] == 0
    assert gold_conditions(await member_view(api, "bob")) == [
        ("cumulative spend ≥ ¥2,000", "0.00", False), ("≥ ¥1,000 spent in the past 12 months", "0.00", False)]

    clock.now = at("2026-01-20T12:00:00+08:00")
    await order(api, "B-2", "bob", "900", "2026-01-20T10:00:00+08:00")
    assert (await evaluate(api, clock, "2027-01-10T10:00:00+08:00"))["downgraded"] == 0  # ¥900 keeps Silver

    clock.now = at("2027-01-25T12:00:00+08:00")
    third = await order(api, "B-3", "bob", "900", "2027-01-25T10:00:00+08:00")
    # ¥2,700 over his membership, but this period holds ¥900 and so do the past 12 months: still Silver.
    assert third["member"]["tier"]["code"] == "SILVER"
    assert gold_conditions(third["member"]) == [("cumulative spend ≥ ¥2,000", "900.00", False),
                                                ("≥ ¥1,000 spent in the past 12 months", "900.00", False)]


async def test_the_tier_reminder_counts_the_current_period(api, db, program, clock):
    clock.now = at("2025-01-10T12:00:00+08:00")
    await enroll(api, "alice", joinedAt="2025-01-01T10:00:00+08:00")
    await order(api, "A-1", "alice", "5000", "2025-01-10T10:00:00+08:00")
    broker = MemoryBroker()
    async with broker.subscribe(program.id, (await member_ids(db))["alice"]) as subscriber:
        assert await remind_tier_expiring(db, program, as_of=at("2025-12-15T00:00:00+08:00"), broker=broker) == 1
        assert subscriber.queue.get_nowait().message == (
            "钻石会员 lasts until 2026-01-10; to keep it: cumulative spend ≥ ¥5,000 (now ¥5,000) or "
            "≥ ¥3,000 spent in the past 12 months (now ¥5,000)")
        await evaluate(api, clock, "2026-01-10T10:00:00+08:00")
        clock.now = at("2026-06-02T00:00:00+08:00")
        await order(api, "A-2", "alice", "300", "2026-06-01T10:00:00+08:00")
        assert await remind_tier_expiring(db, program, as_of=at("2026-12-15T00:00:00+08:00"), broker=broker) == 1
        assert subscriber.queue.get_nowait().message == (
            "钻石会员 lasts until 2027-01-10; to keep it: cumulative spend ≥ ¥5,000 (now ¥300) or "
            "≥ ¥3,000 spent in the past 12 months (now ¥300)")


async def test_replaying_the_history_gives_the_live_tiers_and_balances(api, db, program, clock):
    from sqlalchemy import func

    from tierup.services.simulation import simulate
    from tierup.store.models import PointsEntry

    await issue_history(api, clock)
    live = {name: (await member_view(api, name))["tier"]["code"] for name in ("alice", "bob")}
    assert live == {"alice": "DIAMOND", "bob": "SILVER"}
    outcome = await simulate(db, program, program.definition, start=at("2025-01-01T00:00:00+08:00"),
                             end=at("2027-03-01T00:00:00+08:00"))
    async with db.read() as session:
        ledger = (await session.execute(select(func.sum(PointsEntry.amount)))).scalar_one()
    assert outcome.live.tiers == live and outcome.changed == []
    assert (outcome.live.upgrades, outcome.live.downgrades) == (3, 1)  # Diamond, Silver, Diamond again; Silver
    assert outcome.live.outstanding_points == ledger == 200 + 5000 + 900 + 1200 + 1800 + 2 + 1800 + 6000


async def test_a_permanent_ladder_counts_the_whole_membership(api, db, clock):
    def permanent(document):
        document.pop("tasks")
        document.pop("quests")
        document["ladder"]["validity_months"] = "permanent"

    await publish_classic(db, clock(), permanent, "classic (permanent tiers)")
    clock.now = at("2025-01-10T12:00:00+08:00")
    await enroll(api, "bob", joinedAt="2025-01-01T10:00:00+08:00")
    first = await order(api, "B-1", "bob", "900", "2025-01-10T10:00:00+08:00")
    assert (first["member"]["tier"]["code"], first["member"]["tierValidUntil"]) == ("SILVER", None)
    assert await evaluate(api, clock, "2026-01-20T00:00:00+08:00") == {
        "evaluated": 0, "upgraded": 0, "downgraded": 0, "userErrors": []}
    clock.now = at("2027-01-25T12:00:00+08:00")
    await order(api, "B-2", "bob", "900", "2026-01-20T10:00:00+08:00")
    third = await order(api, "B-3", "bob", "900", "2027-01-25T10:00:00+08:00")
    assert third["member"]["tier"]["code"] == "GOLD"  # ¥2,700 since enrolment; no 12 months held ¥1,000
    # A stored period start (say, from evaluations before the program turned permanent) is ignored.
    async with db.write() as session:
        member = (await session.execute(select(Member).where(Member.external_id == "bob"))).scalar_one()
        member.qualification_started_at = at("2027-01-01T00:00:00+08:00")
    diamond = (await member_view(api, "bob"))["nextTier"]["conditions"][0]
    assert (diamond["description"], diamond["current"]) == ("cumulative spend ≥ ¥5,000", "2700.00")


async def test_seeded_members_carry_the_period_their_replay_gave_them(db, program):
    """The SQL the live path measures with and the replay's own counting agree on every seeded member."""
    from tierup.services.seed import SeedPlan, seed, synthetic_history
    from tierup.services.simulation import _Replay
    from tierup.services.tiers import member_metrics

    plan = SeedPlan(members=40, orders=400, seed=3)
    now = datetime(2026, 7, 1, tzinfo=timezone.utc)
    await seed(db, program, plan, now=now, progress=lambda label: lambda done, total: None)
    async with db.read() as session:
        rows = list((await session.execute(select(Member).order_by(Member.id))).scalars())
        first_report = (await session.execute(text("SELECT min(id) FROM reports"))).scalar_one()
        end = at("2026-07-01T00:00:00+08:00")
        live = await member_metrics(session, program.definition, rows, as_of=end)
    members, reports = synthetic_history(program, plan, rows[0].id, first_report)
    by_id = {m.id: m for m in members}
    replay = _Replay(program.definition, at("2024-01-01T00:00:00+08:00"))
    for report in reports:
        replay.apply(report, by_id[report.member_id])
    evaluated = 0
    for row in rows:
        state = replay.members[row.id]
        replay.evaluate_lapsed(state, end)
        assert row.qualification_started_at == state.qualification_started_at
        assert live[row.id] == replay.metrics(state, end), row.external_id
        evaluated += row.qualification_started_at is not None
    assert evaluated >= 5  # the history reaches past validity ends, so periods did restart


async def test_a_growth_value_target_reads_as_a_plain_number(api, db, clock):
    from tierup.programs import bundled_program_path, load_program_file
    from tierup.services.programs import publish_program

    await publish_program(db, load_program_file(bundled_program_path("nine-levels")), published_by="test",
                          now=clock())
    service = api.token(Role.SERVICE, "shop", program="nine-levels")
    enrolled = await api.post('mutation { enrollMember(input: {externalId: "vera"}) { userErrors { code } } }',
                              token=service)
    assert enrolled["data"]["enrollMember"]["userErrors"] == []
    recorded = await api.post("""mutation { recordOrder(input: {externalId: "V-1", memberExternalId: "vera",
        amount: "250", paidAt: "2026-01-05T09:00:00+08:00"}) {
        member { tier { code } nextTier { tier { code } conditions { description current target met } } } } }""",
                              token=service)
    member = recorded["data"]["recordOrder"]["member"]
    assert member["tier"]["code"] == "V2"
    assert member["nextTier"] == {"tier": {"code": "V3"}, "conditions": [
        {"description": "cumulative spend ≥ ¥1,000", "current": "250.00", "target": "1000.00", "met": False},
        {"description": "growth value ≥ 300", "current": "30", "target": "300", "met": False}]}  # FIRST_ORDER's


def test_the_migration_backfills_the_latest_evaluation(tmp_path):
    """Members evaluated before get the time of their latest evaluation; the others start from enrolment (NULL)."""
    import sqlite3

    from tierup.store.migrate import upgrade

    path = tmp_path / "old.db"
    upgrade(f"sqlite+aiosqlite:///{path}", "0001")
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO programs VALUES (1, 'classic', 'c', 1, '2025-01-01 00:00:00')")
        for n, name in enumerate(("kept", "lowered", "ordered", "regular"), 1):
            conn.execute("INSERT INTO members (id, program_id, external_id, referral_code, joined_at, tier_code, "
                         "tier_since, growth_value) VALUES (?, 1, ?, ?, '2024-01-01 02:00:00', 'SILVER', "
                         "'2024-01-01 02:00:00', 0)", (n, name, f"R{n}"))
        conn.executemany(
            "INSERT INTO tier_changes (member_id, from_tier, to_tier, changed_at, reason) VALUES (?, ?, ?, ?, ?)", [
                (1, "REGULAR", "SILVER", "2024-02-01 02:00:00", "ORDER"),
                (1, "SILVER", "SILVER", "2025-02-01 02:00:00", "RENEWAL"),
                (1, "SILVER", "SILVER", "2026-02-01 02:00:00", "RENEWAL"),
                (2, "REGULAR", "GOLD", "2024-03-01 02:00:00", "ORDER"),
                (2, "GOLD", "SILVER", "2025-03-01 02:00:00", "EVALUATION"),
                (3, "REGULAR", "SILVER", "2025-05-01 02:00:00", "ORDER"),
                (4, None, "REGULAR", "2024-01-01 02:00:00", "ENROLMENT")])
    upgrade(f"sqlite+aiosqlite:///{path}")
    with sqlite3.connect(path) as conn:
        started = dict(conn.execute("SELECT external_id, qualification_started_at FROM members").fetchall())
    assert started == {"kept": "2026-02-01 02:00:00", "lowered": "2025-03-01 02:00:00", "ordered": None,
                       "regular": None}


async def test_the_nine_levels_growth_tree_can_reach_v3_by_growth_value(api, db, clock):
    """Growth value alone reaches V3 (300): three orders a month for three months (FIRST_ORDER 30, then
    MONTHLY_THREE_ORDERS 100 a month), at amounts too small for any spend condition."""
    from tierup.programs import bundled_program_path, load_program_file
    from tierup.services.programs import publish_program

    await publish_program(db, load_program_file(bundled_program_path("nine-levels")), published_by="test",
                          now=clock())
    clock.now = datetime(2026, 4, 1, tzinfo=timezone.utc)
    service = api.token(Role.SERVICE, "shop", program="nine-levels")
    await api.post('mutation { enrollMember(input: {externalId: "gia", joinedAt: "2025-12-01T10:00:00+08:00"}) '
                   '{ userErrors { code } } }', token=service)
    for month in (1, 2, 3):
        for n in range(3):
            await api.post(f'mutation {{ recordOrder(input: {{externalId: "G-{month}-{n}", memberExternalId: "gia", '
                           f'amount: "1", paidAt: "2026-0{month}-1{n}T10:00:00+08:00"}}) {{ userErrors {{ code }} }} }}',
                           token=service)
    view = await api.post('{ member(externalId: "gia") { growthValue tier { code } } }',
                          token=api.token(Role.OPERATOR, "ops", program="nine-levels"))
    assert view["data"]["member"] == {"growthValue": 330, "tier": {"code": "V3"}}
