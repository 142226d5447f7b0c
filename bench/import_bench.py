"""Import bench: `tierup import members` then `tierup import orders` of a generated history, as a
new user would run them, on a fresh database; prints rows per second of each and, as the machine's
yardstick, the requests/s `tierup serve` answers `{ __typename }` with in the same run (32 clients,
as bench/api_bench.py measures it), with the orders' ratio to it.

    python bench/import_bench.py [--members 10000] [--orders 100000] [--days 100] [--refunds 0]
                              [--postgres SERVER_URL] [--seconds 10]
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


def timed_import(kind: str, path: Path, env: dict, *options: str) -> float:
    tierup = str(Path(sys.executable).parent / "tierup")
    started = time.monotonic()
    subprocess.run([tierup, "import", kind, str(path), *options], env=env, check=True, stdout=subprocess.DEVNULL)
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
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tierup-import-"))
    name = f"tierup_import_{os.getpid()}"
    url = asyncio.run(postgres_database(args.postgres, name)) if args.postgres else f"sqlite+aiosqlite:///{folder}/import.db"
    env = {**os.environ, "TIERUP_DATABASE_URL": url}
    try:
        members_csv, orders_csv, refunds_csv = write_history(folder, args.members, args.orders, args.days, args.refunds)
        subprocess.run([str(Path(sys.executable).parent / "tierup"), "db", "upgrade"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        member_time = timed_import("members", members_csv, env)
        order_time = timed_import("orders", orders_csv, env, *(["--refunds", str(refunds_csv)] if refunds_csv else []))
    finally:
        if args.postgres:
            asyncio.run(postgres_database(args.postgres, name, drop=True))
    typename = asyncio.run(typename_rate(args.seconds))
    backend = "PostgreSQL" if args.postgres else "SQLite"
    orders = "orders.csv with refunds.csv" if refunds_csv else "orders.csv"
    rate = (args.orders + args.refunds) / order_time
    print(f"tierup import bench — {backend}, {args.members:,} members, {args.orders:,} orders over {args.days} days"
          + (f", {args.refunds:,} refunds" if args.refunds else ""))
    print("| file | rows/s |\n|---|---|")
    print(f"| members.csv | {args.members / member_time:,.0f} |")
    print(f"| {orders} | {rate:,.0f} |")
    print(f"| `{{ __typename }}` requests/s (the yardstick) | {typename:,.0f} |")
    print(f"| {orders} ÷ `{{ __typename }}` | {rate / typename:.1f} |")


if __name__ == "__main__":
    main()
