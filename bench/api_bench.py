"""API bench: one real server, one run, figures as ratios.

    python bench/api_bench.py [--members 200] [--seconds 10] [--concurrency 32] [--no-cache] [--postgres SERVER_URL]
                              [--workers 1 2]

Starts `tierup serve` on a free port over a fresh database (SQLite in a temp dir, or with
--postgres postgresql+asyncpg://postgres@127.0.0.1:5432 a new database there, dropped after), enrols members and records orders through the API, then reports:
  - requests/s of `{ __typename }` and of the member home screen (DASHBOARD), and their ratio: each
    member opens it once first, then the members keep re-opening it (answers kept by the response
    cache; --no-cache runs every one);
  - recordOrder mutations per second (16 clients), their ratio to `{ __typename }` and SQL statements
    per order; orders per second sent in recordOrders batches of 100 by 4 clients;
  - SQL statements per dashboard query (from /metrics).
With --workers 1 2 the whole bench runs once per worker count (`tierup serve --workers N`, each over a
fresh database) and the table has a column for each; statement counts come from one worker's /metrics,
so they are shown for one worker only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

import httpx

from tierup.auth import Role, mint_token

SECRET = "bench-secret-long-enough-for-hs256-signing"
# The member home screen an app opens first (README "Dashboard"): every figure a member sees at a glance.
DASHBOARD = """
query Dashboard { viewer {
    displayName tier { code name } tierValidUntil growthValue
    nextTier { tier { name } conditions { description current target met } }
    points { balance expiringSoon nextExpiryAt
             ledger(first: 10) { edges { node { kind amount reason occurredAt } } } }
    orders(first: 5) { totalCount edges { node { externalId amount { amount } pointsEarned paidAt } } }
    tasks { task { code title kind } status current target }
    quests { quest { code title endsAt } currentLevel progress target }
    benefits { benefit { code name } remaining canClaim reason }
    checkIn { checkedInToday streak nextReward }
    lifecycleStage rfm { segment }
} }"""
ENROLL = "mutation($i: EnrollMemberInput!) { enrollMember(input: $i) { userErrors { code } } }"
ORDER = "mutation($i: RecordOrderInput!) { recordOrder(input: $i) { order { pointsEarned } userErrors { code message } } }"
ORDERS = """mutation($orders: [RecordOrderInput!]!) { recordOrders(input: {orders: $orders}) {
  recorded rejected results { pointsEarned userErrors { code message } } } }"""
BATCH = 100


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(database_url: str, port: int, workdir: str, *, cache: bool = True, workers: int = 1) -> subprocess.Popen:
    env = {**os.environ, "TIERUP_DATABASE_URL": database_url, "TIERUP_JWT_SECRET": SECRET,
           "TIERUP_LOG_LEVEL": "warning", **({} if cache else {"TIERUP_RESPONSE_CACHE_MEMBERS": "0"}),
           # Batches queue on SQLite's one writer: a client may wait for the others' batches first.
           "TIERUP_EXECUTION_DEADLINE": "120"}
    tierup = str(Path(sys.executable).parent / "tierup")
    return launch([tierup, "serve", "--port", str(port), "--workers", str(workers)], env, port, workdir)


def launch(command: list[str], env: dict[str, str], port: int, workdir: str) -> subprocess.Popen:
    """Start a server process and wait until it answers /readyz."""
    # The server's output goes to a file: a pipe nobody drains would block it once full.
    log = open(Path(workdir) / "server.log", "wb")
    server = subprocess.Popen(command, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit(f"server did not start: {(Path(workdir) / 'server.log').read_text()[-2000:]}")


async def load(client: httpx.AsyncClient, payloads, seconds: float, concurrency: int, headers) -> tuple[int, float]:
    """Send payloads round-robin from `concurrency` workers for `seconds`; return (requests, elapsed)."""
    done = 0
    stop = time.monotonic() + seconds

    async def worker(offset: int) -> None:
        nonlocal done
        i = offset
        while time.monotonic() < stop:
            body, who = payloads(i)
            response = await client.post("/graphql", json=body, headers=headers(who))
            assert response.status_code == 200 and "errors" not in response.json(), response.text[:300]
            assert '"userErrors":[{' not in response.text, response.text[:300]  # a refused report is no figure
            done += 1
            i += concurrency

    started = time.monotonic()
    await asyncio.gather(*[worker(k) for k in range(concurrency)])
    return done, time.monotonic() - started


async def statements(client: httpx.AsyncClient) -> int:
    text = (await client.get("/metrics")).text
    return int(next(l.split()[1] for l in text.splitlines() if l.startswith("tierup_sql_statements_total")))


async def postgres_database(server_url: str, name: str, *, drop: bool = False) -> str:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(f"{server_url.rstrip('/')}/postgres", isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        if not drop:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()
    return f"{server_url.rstrip('/')}/{name}"


async def run(args) -> None:
    figures = {}
    for workers in args.workers:
        port = free_port()
        workdir = tempfile.mkdtemp(prefix="tierup-bench-")
        pg_name = f"tierup_bench_{os.getpid()}_{workers}"
        if args.postgres:
            database_url = await postgres_database(args.postgres, pg_name)
        else:
            database_url = f"sqlite+aiosqlite:///{workdir}/bench.db"
        try:
            figures[workers] = await measure(args, database_url, port, workdir, workers)
        finally:
            if args.postgres:
                await postgres_database(args.postgres, pg_name, drop=True)
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(f"tierup API bench — {backend}, {args.members} members, {args.concurrency} connections, "
          f"{args.seconds:.0f} s per figure, response cache {'off' if args.no_cache else 'on'}")
    print("| figure | " + " | ".join(f"{n} worker{'s' if n > 1 else ''}" for n in figures) + " |")
    print("|---|" + "---|" * len(figures))
    for name in next(iter(figures.values())):
        print(f"| {name} | " + " | ".join(row[name] for row in figures.values()) + " |")


async def measure(args, database_url: str, port: int, workdir: str, workers: int) -> dict[str, str]:
    server = start_server(database_url, port, workdir, cache=not args.no_cache, workers=workers)
    service = {"Authorization": f"Bearer {mint_token(SECRET, sub='bench', program='classic', role=Role.SERVICE)}"}
    tokens = {}

    def member_headers(external_id: str) -> dict:
        if external_id not in tokens:
            tokens[external_id] = {"Authorization": "Bearer " + mint_token(
                SECRET, sub=external_id, program="classic", role=Role.MEMBER)}
        return tokens[external_id]

    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30) as client:
            members = [f"bench-{i:05}" for i in range(args.members)]
            for external_id in members:
                await client.post("/graphql", headers=service, json={"query": ENROLL, "variables": {"i": {"externalId": external_id}}})

            def order_input(i: int) -> dict:
                return {"externalId": f"bench-order-{i}", "memberExternalId": members[i % len(members)],
                        "amount": str(50 + (i * 37) % 400), "paidAt": "2026-01-15T12:00:00+08:00"}

            before = await statements(client)
            orders, order_time = await load(client, lambda i: ({"query": ORDER, "variables": {"i": order_input(i)}},
                                                               None), args.seconds, 16, lambda _: service)
            per_order = (await statements(client) - before) / orders
            first_batched = 10_000_000  # keys apart from the single orders'
            batches, batch_time = await load(client, lambda i: ({"query": ORDERS, "variables": {"orders": [
                order_input(first_batched + i * BATCH + k) for k in range(BATCH)]}}, None), args.seconds, 4,
                lambda _: service)
            typename, typename_time = await load(client, lambda i: ({"query": "{ __typename }"}, None), args.seconds,
                                                 args.concurrency, lambda _: {})
            # Every member opens the app once (the answer is then kept), then keeps coming back.
            for external_id in members:
                await client.post("/graphql", json={"query": DASHBOARD}, headers=member_headers(external_id))
            before = await statements(client)
            dashboards, dashboard_time = await load(
                client, lambda i: ({"query": DASHBOARD}, members[i % len(members)]), args.seconds,
                args.concurrency, member_headers)
            per_dashboard = (await statements(client) - before) / dashboards
    finally:
        server.terminate()
        server.wait(timeout=30)

    typename_rps = typename / typename_time
    dashboard_rps = dashboards / dashboard_time
    counted = (lambda figure: f"{figure:.1f}") if workers == 1 else (lambda figure: "(one worker only)")
    return {
        "`{ __typename }` requests/s": f"{typename_rps:,.0f}",
        "member dashboard requests/s": f"{dashboard_rps:,.0f}",
        "dashboard ÷ `__typename`": f"{dashboard_rps / typename_rps:.2f}",
        "recordOrder mutations/s (16 clients)": f"{orders / order_time:,.0f}",
        "recordOrder ÷ `__typename`": f"{orders / order_time / typename_rps:.2f}",
        "SQL statements per recordOrder": counted(per_order),
        f"orders/s in recordOrders batches of {BATCH} (4 clients)": f"{batches * BATCH / batch_time:,.0f}",
        "batched orders/s ÷ `__typename`": f"{batches * BATCH / batch_time / typename_rps:.1f}",
        "SQL statements per dashboard query": counted(per_dashboard),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--no-cache", action="store_true",
                        help="turn the response cache off: every dashboard runs (TIERUP_RESPONSE_CACHE_MEMBERS=0)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1],
                        help="worker processes of the server; several values run the bench once for each")
    parser.add_argument("--postgres", metavar="SERVER_URL",
                        help="e.g. postgresql+asyncpg://postgres@127.0.0.1:5432 (a fresh database is made there)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
