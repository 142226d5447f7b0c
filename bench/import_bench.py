"""Import bench: `tierup import members` then `tierup import orders` of a generated history, as a
new user would run them, on a fresh database; prints rows per second of each and, as the machine's
yardstick, the requests/s `tierup serve` answers `{ __typename }` with in the same run (32 clients,
as bench/api_bench.py measures it), with the orders' ratio to it.

    python bench/import_bench.py [--members 10000] [--orders 100000] [--days 100] [--postgres SERVER_URL]
                              [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from api_bench import free_port, load, postgres_database, start_server

START = datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=8)))


def write_history(folder: Path, members: int, orders: int, days: int = 100, seed: int = 7) -> tuple[Path, Path]:
    rng = random.Random(seed)
    members_csv, orders_csv = folder / "members.csv", folder / "orders.csv"
    with members_csv.open("w", encoding="utf-8") as out:
        out.write("externalId,displayName,joinedAt\n")
        for i in range(members):
            out.write(f"m{i:07},Member {i},{(START + timedelta(minutes=i)).isoformat()}\n")
    with orders_csv.open("w", encoding="utf-8") as out:
        out.write("externalId,memberExternalId,amount,paidAt\n")
        for i in range(orders):
            paid = START + timedelta(days=30, seconds=int(i * days * 86400 / max(orders, 1)))
            out.write(f"o{i:09},m{rng.randrange(members):07},{rng.randint(1000, 80000) / 100:.2f},{paid.isoformat()}\n")
    return members_csv, orders_csv


def timed_import(kind: str, path: Path, env: dict) -> float:
    tierup = str(Path(sys.executable).parent / "tierup")
    started = time.monotonic()
    subprocess.run([tierup, "import", kind, str(path)], env=env, check=True, stdout=subprocess.DEVNULL)
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
    parser.add_argument("--postgres", metavar="SERVER_URL")
    parser.add_argument("--seconds", type=float, default=10, help="how long to measure the yardstick")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tierup-import-"))
    name = f"tierup_import_{os.getpid()}"
    url = asyncio.run(postgres_database(args.postgres, name)) if args.postgres else f"sqlite+aiosqlite:///{folder}/import.db"
    env = {**os.environ, "TIERUP_DATABASE_URL": url}
    try:
        members_csv, orders_csv = write_history(folder, args.members, args.orders, args.days)
        subprocess.run([str(Path(sys.executable).parent / "tierup"), "db", "upgrade"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        member_time = timed_import("members", members_csv, env)
        order_time = timed_import("orders", orders_csv, env)
    finally:
        if args.postgres:
            asyncio.run(postgres_database(args.postgres, name, drop=True))
    typename = asyncio.run(typename_rate(args.seconds))
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(f"tierup import bench — {backend}, {args.members:,} members, {args.orders:,} orders over {args.days} days")
    print("| file | rows/s |\n|---|---|")
    print(f"| members.csv | {args.members / member_time:,.0f} |")
    print(f"| orders.csv | {args.orders / order_time:,.0f} |")
    print(f"| `{{ __typename }}` requests/s (the yardstick) | {typename:,.0f} |")
    print(f"| orders.csv ÷ `{{ __typename }}` | {args.orders / order_time / typename:.1f} |")


if __name__ == "__main__":
    main()
