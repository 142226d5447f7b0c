"""Analytics bench: seeding, RFM refresh, KPIs, the silent-member list and a simulation, at scale.

    python bench/analytics_bench.py [--members 10000] [--orders 100000] [--postgres SERVER_URL] [--skip-simulation]

Builds a fresh database (SQLite in a temp dir, or a new PostgreSQL database dropped after),
seeds a deterministic classic-program history, and times each step in this one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from datetime import date, datetime, timezone
from pathlib import Path

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).parent))
from api_bench import postgres_database  # noqa: E402

from tierup.domain.activity import midnight  # noqa: E402
from tierup.programs import bundled_program_path, load_program_file  # noqa: E402
from tierup.services.analytics import member_selection, refresh_rfm  # noqa: E402
from tierup.services.kpis import program_kpis  # noqa: E402
from tierup.services.programs import publish_program  # noqa: E402
from tierup.services.seed import SeedPlan, seed  # noqa: E402
from tierup.services.simulation import simulate  # noqa: E402
from tierup.store.db import Database  # noqa: E402
from tierup.store.migrate import upgrade  # noqa: E402
from tierup.store.models import Member  # noqa: E402

AS_OF = datetime(2026, 7, 1, tzinfo=timezone.utc)


async def timed(label: str, rows: list, coroutine):
    started = time.perf_counter()
    result = await coroutine
    rows.append((label, time.perf_counter() - started))
    return result


async def measure(database_url: str, members: int, orders: int, with_simulation: bool = True) -> list:
    await asyncio.to_thread(upgrade, database_url)
    db = Database(database_url)
    rows: list = []
    try:
        program = (await publish_program(db, load_program_file(bundled_program_path("classic")),
                                          published_by="bench", now=AS_OF)).program
        quiet = lambda label: (lambda done, total: None)  # noqa: E731
        await timed(f"seed {members:,} members / {orders:,} orders", rows,
                    seed(db, program, SeedPlan(members, orders), now=AS_OF, progress=quiet))
        await timed("RFM refresh (whole program, SQL)", rows, refresh_rfm(db, program, as_of=AS_OF))
        tz = program.definition.zone
        await timed("KPIs for Q2 2026", rows, program_kpis(db, program, midnight(date(2026, 4, 1), tz),
                                                           midnight(date(2026, 7, 1), tz)))

        async def silent_total():
            joins, filters = member_selection(program, AS_OF, silent_for_days=90)
            query = select(func.count()).select_from(Member)
            for target, on in joins:
                query = query.outerjoin(target, on)
            async with db.read() as session:
                return (await session.execute(query.where(*filters))).scalar_one()

        await timed("silent-member list total (90 days)", rows, silent_total())
        if not with_simulation:
            return rows
        draft = load_program_file(bundled_program_path("nine-levels"))
        result = await timed("simulate nine-levels vs live (whole history)", rows,
                             simulate(db, program, draft, start=midnight(date(2024, 1, 1), tz), end=AS_OF))
        rows.append(("  reports replayed", result.reports))
    finally:
        await db.dispose()
    return rows


async def main_async(args) -> None:
    workdir = tempfile.mkdtemp(prefix="tierup-analytics-")
    name = f"tierup_analytics_{os.getpid()}"
    database_url = await postgres_database(args.postgres, name) if args.postgres else \
        f"sqlite+aiosqlite:///{workdir}/bench.db"
    try:
        rows = await measure(database_url, args.members, args.orders, not args.skip_simulation)
    finally:
        if args.postgres:
            await postgres_database(args.postgres, name, drop=True)
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(f"tierup analytics bench — {backend}, one process")
    print("| step | time |\n|---|---|")
    for label, value in rows:
        print(f"| {label} | {value:,} |" if isinstance(value, int) else f"| {label} | {value:.2f} s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--postgres", metavar="SERVER_URL")
    parser.add_argument("--skip-simulation", action="store_true", help="measure seeding, RFM and KPIs only")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
