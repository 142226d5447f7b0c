"""Import bench: `tierup import members` then `tierup import orders` of a generated history, as a
new user would run them, on a fresh database; prints rows per second of each.

    python bench/import_bench.py [--members 10000] [--orders 100000] [--postgres SERVER_URL]
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

from api_bench import postgres_database

START = datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=8)))


def write_history(folder: Path, members: int, orders: int, seed: int = 7) -> tuple[Path, Path]:
    rng = random.Random(seed)
    members_csv, orders_csv = folder / "members.csv", folder / "orders.csv"
    with members_csv.open("w", encoding="utf-8") as out:
        out.write("externalId,displayName,joinedAt\n")
        for i in range(members):
            out.write(f"m{i:07},Member {i},{(START + timedelta(minutes=i)).isoformat()}\n")
    with orders_csv.open("w", encoding="utf-8") as out:
        out.write("externalId,memberExternalId,amount,paidAt\n")
        for i in range(orders):
            paid = START + timedelta(days=30, seconds=int(i * 600 * 24 * 600 / max(orders, 1)))
            out.write(f"o{i:09},m{rng.randrange(members):07},{rng.randint(1000, 80000) / 100:.2f},{paid.isoformat()}\n")
    return members_csv, orders_csv


def timed_import(kind: str, path: Path, env: dict) -> float:
    tierup = str(Path(sys.executable).parent / "tierup")
    started = time.monotonic()
    subprocess.run([tierup, "import", kind, str(path)], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--postgres", metavar="SERVER_URL")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tierup-import-"))
    name = f"tierup_import_{os.getpid()}"
    url = asyncio.run(postgres_database(args.postgres, name)) if args.postgres else f"sqlite+aiosqlite:///{folder}/import.db"
    env = {**os.environ, "TIERUP_DATABASE_URL": url}
    try:
        members_csv, orders_csv = write_history(folder, args.members, args.orders)
        subprocess.run([str(Path(sys.executable).parent / "tierup"), "db", "upgrade"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        member_time = timed_import("members", members_csv, env)
        order_time = timed_import("orders", orders_csv, env)
    finally:
        if args.postgres:
            asyncio.run(postgres_database(args.postgres, name, drop=True))
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(f"tierup import bench — {backend}, {args.members:,} members, {args.orders:,} orders")
    print("| file | rows/s |\n|---|---|")
    print(f"| members.csv | {args.members / member_time:,.0f} |")
    print(f"| orders.csv | {args.orders / order_time:,.0f} |")


if __name__ == "__main__":
    main()
