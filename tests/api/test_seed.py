"""tierup seed: deterministic, consistent with the live rules, and refused on a program with members."""

from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select, text

from documents import RECORD_ORDER
from helpers import member_view, row_counts
from tierup.services.seed import AlreadySeeded, SeedPlan, seed, synthetic_history
from conftest import POSTGRES_URL
from tierup.store.models import PointsEntry, Report, TaskCompletion

NOW = datetime(2026, 7, 1, tzinfo=timezone.utc)


def quiet(label):
    return lambda done, total: None


def test_the_same_seed_gives_the_same_history(program):
    plan = SeedPlan(members=30, orders=200, seed=11)
    first = synthetic_history(program, plan, 1, 1)
    again = synthetic_history(program, plan, 1, 1)
    other = synthetic_history(program, SeedPlan(members=30, orders=200, seed=12), 1, 1)
    fingerprint = lambda history: [(r.kind, r.member_id, r.occurred_at, r.amount_fen) for r in history[1]]
    assert fingerprint(first) == fingerprint(again) != fingerprint(other)


async def test_a_seeded_history_continues_under_the_live_rules(api, db, program, clock):
    summary = await seed(db, program, SeedPlan(members=40, orders=300), now=NOW, progress=quiet)
    assert (summary["members"], summary["orders"]) == (40, 300)
    async with db.read() as session:
        chain_ok = (await session.execute(select(func.count()).select_from(PointsEntry))).scalar_one()
        completions = (await session.execute(select(func.count()).where(
            TaskCompletion.task_code == "FIRST_ORDER"))).scalar_one()
        buyers = (await session.execute(select(func.count(func.distinct(PointsEntry.member_id))).where(
            PointsEntry.source == "ORDER"))).scalar_one()
    assert chain_ok == summary["ledger entries"] and completions == buyers
    view = await member_view(api, "seed-0000000")
    ledger = view["points"]["ledger"]["edges"]
    assert view["points"]["balance"] == sum(e["node"]["amount"] for e in ledger) == ledger[0]["node"]["balanceAfter"]

    clock.now = datetime(2026, 7, 2, tzinfo=timezone.utc)
    before_points = view["points"]["balance"]
    result = await api.as_service(RECORD_ORDER, {"input": {"externalId": "live-1", "memberExternalId": "seed-0000000",
                                                           "amount": "100", "paidAt": "2026-07-01T12:00:00+08:00"}})
    order = result["data"]["recordOrder"]
    multiplier = {"REGULAR": 1, "SILVER": 2, "GOLD": 3, "DIAMOND": 4}[view["tier"]["code"]]
    first_order_bonus = 0 if view["orders"]["totalCount"] else 50
    assert order["member"]["points"]["balance"] == before_points + 100 * multiplier + first_order_bonus


async def test_seeding_refuses_a_program_with_members(api, db, program):
    await seed(db, program, SeedPlan(members=3, orders=5), now=NOW, progress=quiet)
    before = await row_counts(db)
    with pytest.raises(AlreadySeeded):
        await seed(db, program, SeedPlan(members=3, orders=5), now=NOW, progress=quiet)
    assert await row_counts(db) == before


async def test_replaying_a_seeded_history_reproduces_it(api, db, program):
    from tierup.services.simulation import simulate

    await seed(db, program, SeedPlan(members=25, orders=150), now=NOW, progress=quiet)
    outcome = await simulate(db, program, program.definition, start=datetime(2024, 1, 1, tzinfo=timezone.utc),
                             end=NOW)
    async with db.read() as session:
        ledger = (await session.execute(select(func.sum(PointsEntry.amount)))).scalar_one()
    assert outcome.live.outstanding_points == ledger and outcome.changed == []


@pytest.mark.skipif(not POSTGRES_URL, reason="SQLite plans by its indexes alone")
async def test_a_seed_leaves_postgresql_its_tables_counted(db, program):
    """A server started right after a seed plans by the statistics of the tables it wrote, not of empty ones."""
    await seed(db, program, SeedPlan(members=30, orders=200), now=NOW, progress=quiet)
    async with db.read() as session:
        for model in (Report, PointsEntry):
            estimated = (await session.execute(text("SELECT reltuples::bigint FROM pg_class WHERE relname = :name"),
                                               {"name": model.__tablename__})).scalar_one()
            assert estimated == (await session.execute(select(func.count()).select_from(model))).scalar_one()
