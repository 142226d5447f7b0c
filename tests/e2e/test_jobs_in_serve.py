"""Two servers running the scheduled jobs at once on one database expire each lot once."""

import asyncio
from datetime import datetime

from sqlalchemy import func, select

from helpers import enroll
from servers import start_server, stop, wait_ready
from tierup.store.models import PointsEntry
from wsclient import free_port


async def test_jobs_in_two_servers_do_not_double(api, db, clock, database_url, program, tmp_path):
    # Points earned in September 2025 expired at the end of September 2026: before today, whenever today is.
    clock.now = datetime.fromisoformat("2025-10-01T10:00:00+08:00")
    for name in ("alice", "bob"):
        await enroll(api, name, joinedAt="2025-09-05T10:00:00+08:00")
    ports = [free_port(), free_port()]
    processes = [start_server(database_url, port, tmp_path, TIERUP_JOBS_INTERVAL="1") for port in ports]
    try:
        for port, process in zip(ports, processes):
            await wait_ready(port, process, tmp_path)
        for _ in range(100):
            async with db.read() as session:
                expired = (await session.execute(select(func.count()).where(PointsEntry.kind == "EXPIRE"))).scalar_one()
            if expired == 2:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(2.5)  # both servers have run again meanwhile
    finally:
        stop(processes)
    async with db.read() as session:
        rows = (await session.execute(select(PointsEntry.member_id, func.sum(PointsEntry.amount), func.count())
                                      .where(PointsEntry.kind == "EXPIRE").group_by(PointsEntry.member_id))).all()
    assert sorted((total, count) for _, total, count in rows) == [(-100, 1), (-100, 1)]
