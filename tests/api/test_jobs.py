"""Jobs: tier events, reminders with what keeps the tier, runs that never double."""

import asyncio
from datetime import datetime

from sqlalchemy import func, select

from helpers import enroll, member_view, order, row_counts
from tierup.cli import main
from tierup.events import MemoryBroker
from tierup.services.expiry import expire_points
from tierup.services.tiers import evaluate_tiers, remind_tier_expiring
from tierup.store.models import PointsEntry


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def member_id(api, name: str) -> int:
    from strawberry.relay import GlobalID

    return int(GlobalID.from_id((await member_view(api, name))["id"]).node_id)


async def test_tier_reminder_says_what_keeps_the_tier_once(api, db, program, clock):
    clock.now = at("2026-02-01T10:00:00+08:00")
    await enroll(api, "alice", joinedAt="2026-01-01T10:00:00+08:00")
    await order(api, "A-1", "alice", "250", "2026-01-20T12:00:00+08:00")  # SILVER until 2027-01-20 12:00
    broker = MemoryBroker()
    async with broker.subscribe(program.id, await member_id(api, "alice")) as subscriber:
        assert await remind_tier_expiring(db, program, as_of=at("2026-12-01T00:00:00+08:00"), broker=broker) == 0
        assert await remind_tier_expiring(db, program, as_of=at("2026-12-25T00:00:00+08:00"), broker=broker) == 1
        assert await remind_tier_expiring(db, program, as_of=at("2026-12-26T00:00:00+08:00"), broker=broker) == 0
        event = subscriber.queue.get_nowait()
    assert event.kind == "TIER_EXPIRING"
    # The ¥250 order lies in alice's first qualification period (enrolment to her first evaluation): it counts.
    assert event.message == ("银卡会员 lasts until 2027-01-20; to keep it: cumulative spend ≥ ¥500 (now ¥250) or "
                             "one order ≥ ¥200 (now ¥250)")


async def test_a_downgrade_is_announced(api, db, program, clock):
    clock.now = at("2027-02-01T10:00:00+08:00")
    await enroll(api, "alice", joinedAt="2026-01-01T10:00:00+08:00")
    await order(api, "A-1", "alice", "250", "2026-01-20T12:00:00+08:00")
    broker = MemoryBroker()
    async with broker.subscribe(program.id, await member_id(api, "alice")) as subscriber:
        kept = await evaluate_tiers(db, program, as_of=at("2027-02-01T00:00:00+08:00"), broker=broker)
        assert (kept.evaluated, kept.downgraded) == (1, 0)  # the ¥250 keeps Silver; a new period starts
        result = await evaluate_tiers(db, program, as_of=at("2028-02-01T00:00:00+08:00"), broker=broker)
        assert (result.evaluated, result.downgraded) == (1, 1)  # a year without orders
        assert subscriber.queue.get_nowait().message == "Tier is now 普通会员"


async def test_expiry_runs_at_once_do_not_double(api, db, program, clock):
    clock.now = at("2026-03-01T10:00:00+08:00")
    for name in ("alice", "bob", "carol"):
        await enroll(api, name, joinedAt="2026-01-05T10:00:00+08:00")
    as_of = at("2027-02-01T00:00:00+08:00")
    runs = await asyncio.gather(*[expire_points(db, program, as_of=as_of) for _ in range(3)])
    assert sum(r.points_expired for r in runs) == 300 and sum(r.members_affected for r in runs) == 3
    async with db.read() as session:
        assert (await session.execute(select(func.count()).where(PointsEntry.kind == "EXPIRE"))).scalar_one() == 3


async def test_the_cli_runs_the_jobs_for_cron(api, db, clock, capsys, monkeypatch, database_url):
    clock.now = at("2026-03-01T10:00:00+08:00")
    await enroll(api, "alice", joinedAt="2026-01-05T10:00:00+08:00", birthday="1990-02-01")
    monkeypatch.setenv("TIERUP_DATABASE_URL", database_url)
    argv = ["jobs", "--as-of", "2027-02-01T00:00:00+08:00"]
    assert await asyncio.to_thread(main, argv) == 0
    before = await row_counts(db)
    assert await asyncio.to_thread(main, ["expire-points", "--as-of", "2027-02-01T00:00:00+08:00"]) == 0
    assert await row_counts(db) == before
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "classic: expired 100 points of 1 member, 0 reminders sent; evaluated 0, kept 0, upgraded 0, downgraded 0; "
        "RFM scored for 1 member; 0 membership reminders, 1 birthday gift, campaigns resumed reached 0 members; "
        "webhooks: 0 delivered, 0 to retry, 0 failed, 0 cancelled, 0 finished over 30 days ago removed",
        "classic: expired 0 points of 0 members, 0 reminders sent",
    ]
