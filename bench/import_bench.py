"""Import bench: `tierup import members` then `tierup import orders` of a generated history, as a
new user would run them, on a fresh database; prints rows per second of each and the orders' ratio to
two yardsticks measured in the same run: the requests/s `tierup serve` answers `{ __typename }` with
(32 clients, as bench/api_bench.py measures it), and the orders/s `tierup seed` writes a history of as
many members and orders with (the replay the goal of 10,000 orders/s was set against: ~3,100/s then).
It also times `tierup expire-points` on the imported database at the next month's midnight (past the first
year's, for a shorter history), the job a shop runs once the history is in.

    python bench/import_bench.py [--members 10000] [--orders 100000] [--days 100] [--refunds 0]
                              [--postgres SERVER_URL] [--seconds 10] [--no-seed]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

from api_bench import free_port, load, postgres_database, start_server

START = datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=8)))


def write_history(folder: Path, members: int, orders: int, days: int = 100, refunds: int = 0,
                  seed: int = 7) -> tuple[Path, Path, Path | None]:
    """members.csv and orders.csv (the orders spread evenly over `days` from 2025-01-31), and with `refunds`
    refunds.csv: that many orders refunded in part, one to ten days after they were paid."""
    rng = random.Random(seed)
    members_csv, orders_csv = folder / "members.csv", folder / "orders.csv"
    with members_csv.open("w", encoding="utf-8") as out:
        out.write("externalId,displayName,joinedAt\n")
        for i in range(members):
            out.write(f"m{i:07},Member {i},{(START + timedelta(minutes=i)).isoformat()}\n")
    paid = []
    with orders_csv.open("w", encoding="utf-8") as out:
        out.write("externalId,memberExternalId,amount,paidAt\n")
        for i in range(orders):
            at = START + timedelta(days=30, seconds=int(i * days * 86400 / max(orders, 1)))
            member, fen = rng.randrange(members), rng.randint(1000, 80000)
            out.write(f"o{i:09},m{member:07},{fen / 100:.2f},{at.isoformat()}\n")
            paid.append((at, fen))
    if not refunds:
        return members_csv, orders_csv, None
    refunds_csv = folder / "refunds.csv"
    with refunds_csv.open("w", encoding="utf-8") as out:
        out.write("externalId,orderExternalId,amount,refundedAt\n")
        for n, i in enumerate(sorted(rng.sample(range(orders), refunds))):
            at, fen = paid[i]
            out.write(f"r{n:09},o{i:09},{rng.randint(1, fen) / 100:.2f},"
                      f"{(at + timedelta(days=rng.randint(1, 10))).isoformat()}\n")
    return members_csv, orders_csv, refunds_csv


def next_month(moment: datetime) -> datetime:
    """The first midnight of the month after `moment` (its offset's): lots expire at a month's end."""
    return (moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0) + timedelta(days=32)).replace(day=1)


def timed(env: dict, *command: str) -> float:
    """Seconds `tierup COMMAND…` took."""
    started = time.monotonic()
    subprocess.run([str(Path(sys.executable).parent / "tierup"), *command], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - started


async def typename_rate(seconds: float) -> float:
    """`{ __typename }` requests/s of a server over a fresh SQLite database, 32 clients."""
    import httpx

    port, workdir = free_port(), tempfile.mkdtemp(prefix="tierup-yardstick-")
    server = start_server(f"sqlite+aiosqlite:///{workdir}/yardstick.db", port, workdir)
    try:
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30) as client:
            done, elapsed = await load(client, lambda i: ({"query": "{ __typename }"}, None), seconds, 32, lambda _: {})
    finally:
        server.terminate()
        server.wait(timeout=30)
    return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=100,
                        help="the days the orders span (from 2025-01-31): past a year, lots expire and tiers lapse in it")
    parser.add_argument("--refunds", type=int, default=0, help="refunds of that many orders, imported with them")
    parser.add_argument("--postgres", metavar="SERVER_URL")
    parser.add_argument("--seconds", type=float, default=10, help="how long to measure the yardstick")
    parser.add_argument("--no-seed", action="store_true", help="leave out the seed yardstick")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tierup-import-"))
    members_csv, orders_csv, refunds_csv = write_history(folder, args.members, args.orders, args.days, args.refunds)
    with database(args.postgres, folder, "import") as env:
        timed(env, "db", "upgrade")
        member_time = timed(env, "import", "members", str(members_csv))
        order_time = timed(env, "import", "orders", str(orders_csv),
                           *(["--refunds", str(refunds_csv)] if refunds_csv else []))
        # At the next month's midnight, or past the first year's (the classic program's lots last a year to the
        # month's end) for a shorter history: some lots have expired by then.
        expiry_at = next_month(START + timedelta(days=max(30 + args.days, 365)))
        expiry_time = timed(env, "expire-points", "--as-of", expiry_at.isoformat())
    seed_time = None
    if not args.no_seed:
        with database(args.postgres, folder, "seed") as env:
            seed_time = timed(env, "seed", "--members", str(args.members), "--orders", str(args.orders))
    typename = asyncio.run(typename_rate(args.seconds))
    backend = "PostgreSQL" if args.postgres else "SQLite"
    orders = "orders.csv with refunds.csv" if refunds_csv else "orders.csv"
    rate = (args.orders + args.refunds) / order_time
    print(f"tierup import bench — {backend}, {args.members:,} members, {args.orders:,} orders over {args.days} days"
          + (f", {args.refunds:,} refunds" if args.refunds else ""))
    print("| file | rows/s |\n|---|---|")
    print(f"| members.csv | {args.members / member_time:,.0f} |")
    print(f"| {orders} | {rate:,.0f} |")
    print(f"| `tierup expire-points --as-of {expiry_at.date()}` after it (a command's start included): "
          f"seconds | {expiry_time:.2f} |")
    print(f"| `{{ __typename }}` requests/s (a yardstick) | {typename:,.0f} |")
    print(f"| {orders} ÷ `{{ __typename }}` | {rate / typename:.1f} |")
    if seed_time is not None:
        seeded = args.orders / seed_time
        print(f"| `tierup seed`, {args.members:,} members and {args.orders:,} orders: orders/s (a yardstick) | "
              f"{seeded:,.0f} |")
        print(f"| {orders} ÷ `tierup seed` | {rate / seeded:.2f} |")


@contextlib.contextmanager
def database(postgres: str | None, folder: Path, name: str) -> Iterator[dict]:
    """The environment of `tierup` commands on a fresh database: SQLite in `folder`, or a PostgreSQL database
    on the server, dropped afterwards."""
    if postgres is None:
        yield {**os.environ, "TIERUP_DATABASE_URL": f"sqlite+aiosqlite:///{folder}/{name}.db"}
        return
    pg_name = f"tierup_{name}_{os.getpid()}"
    url = asyncio.run(postgres_database(postgres, pg_name))
    try:
        yield {**os.environ, "TIERUP_DATABASE_URL": url}
    finally:
        asyncio.run(postgres_database(postgres, pg_name, drop=True))


if __name__ == "__main__":
    main()
