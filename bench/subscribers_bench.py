"""Subscriber bench: N live subscribers on one server process.

    python bench/subscribers_bench.py [--subscribers 1000 10000] [--events 200]

Starts `tierup serve` (SQLite in a temp dir, in-memory broker), enrols N members straight into
the store, opens one WebSocket per member (graphql-transport-ws) each subscribed to
`memberEvents`, then records orders for members picked at random and measures, per event,
the time from sending the order report to the subscriber receiving the event ("report →
delivery": the commit happens inside that span, so it bounds commit → delivery from above).
Reports p50/p99 of that, the recordOrder response time for comparison, and the server's
resident memory before and after the subscribers connected.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import websockets

from tierup.auth import Role, mint_token

sys.path.insert(0, str(Path(__file__).parent))
from api_bench import SECRET, free_port, start_server  # noqa: E402

SUBSCRIBE = "subscription { memberEvents { kind } }"
WARM_UP = 5
ORDER = "mutation($i: RecordOrderInput!) { recordOrder(input: $i) { userErrors { code } } }"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def seed_members(database_url: str, count: int) -> None:
    """Members straight into the store (one executemany), so the bench measures subscriptions, not enrolment."""
    import sqlite3
    from datetime import datetime, timezone

    path = database_url.split("///", 1)[1]
    now = datetime.now(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
    with sqlite3.connect(path) as conn:
        program_id = conn.execute("SELECT id FROM programs WHERE code = 'classic'").fetchone()[0]
        conn.executemany(
            "INSERT INTO members (program_id, external_id, referral_code, joined_at, tier_code, tier_since, growth_value)"
            " VALUES (?, ?, ?, ?, 'REGULAR', ?, 0)",
            [(program_id, f"sub-{i:05}", f"B{i:07}", now, now) for i in range(count)])


async def open_subscriber(url: str, member: str, received: dict, subscribed: asyncio.Future) -> None:
    token = mint_token(SECRET, sub=member, program="classic", role=Role.MEMBER)
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"], max_queue=64, open_timeout=120) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}}))
        subscribed.set_result(None)
        async for raw in ws:
            message = json.loads(raw)
            if message["type"] == "next":
                received.setdefault(member, time.perf_counter())
            elif message["type"] == "ping":
                await ws.send(json.dumps({"type": "pong"}))


async def run_once(count: int, events: int) -> dict:
    workdir = tempfile.mkdtemp(prefix="tierup-subs-")
    database_url = f"sqlite+aiosqlite:///{workdir}/bench.db"
    port = free_port()
    tierup = str(Path(sys.executable).parent / "tierup")
    env = {**os.environ, "TIERUP_DATABASE_URL": database_url}
    subprocess.run([tierup, "db", "upgrade"], env=env, check=True, capture_output=True)
    subprocess.run([tierup, "program", "load", str(Path(__file__).parents[1] / "fixtures/programs/classic.toml")],
                   env=env, check=True, capture_output=True)
    seed_members(database_url, count)
    server = start_server(database_url, port, workdir)
    try:
        base_rss = rss_mib(server.pid)
        received: dict[str, float] = {}
        url = f"ws://127.0.0.1:{port}/graphql"
        members = [f"sub-{i:05}" for i in range(count)]
        started = time.perf_counter()
        tasks = []
        for start in range(0, count, 200):  # in waves, each acknowledged before the next, as a real crowd arrives
            wave = [asyncio.get_running_loop().create_future() for _ in members[start:start + 200]]
            tasks += [asyncio.create_task(open_subscriber(url, m, received, f))
                      for m, f in zip(members[start:start + 200], wave)]
            await asyncio.wait_for(asyncio.gather(*wave), timeout=300)
        connect_seconds = time.perf_counter() - started
        await asyncio.sleep(1)
        loaded_rss = rss_mib(server.pid)

        service = {"Authorization": "Bearer " + mint_token(SECRET, sub="bench", program="classic", role=Role.SERVICE)}
        latencies, responses, responses_measured = [], [], []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            sample = random.Random(7).sample(members, min(events + WARM_UP, count))
            for n, member in enumerate(sample):
                sent = time.perf_counter()
                response = await client.post("/graphql", headers=service, json={"query": ORDER, "variables": {"i": {
                    "externalId": f"o-{n}", "memberExternalId": member, "amount": "120",
                    "paidAt": "2026-01-15T12:00:00+08:00"}}})
                responses.append(time.perf_counter() - sent)
                assert response.json()["data"]["recordOrder"]["userErrors"] == []
                deadline = time.perf_counter() + 5
                while member not in received and time.perf_counter() < deadline:
                    await asyncio.sleep(0.0005)
                if n >= WARM_UP:  # the first few warm the server's caches
                    latencies.append(received.get(member, float("inf")) - sent)
                    responses_measured.append(responses[-1])
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        server.terminate()
        server.wait(timeout=60)
    quantiles = statistics.quantiles(latencies, n=100)
    return {"subscribers": count, "connect_s": connect_seconds, "rss_before": base_rss, "rss_after": loaded_rss,
            "p50_ms": statistics.median(latencies) * 1000, "p99_ms": quantiles[98] * 1000,
            "response_p50_ms": statistics.median(responses_measured) * 1000,
            "delivered": sum(1 for x in latencies if x != float("inf")), "events": len(latencies)}


async def main_async(args) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * max(args.subscribers) + 1024)), hard))
    rows = [await run_once(count, args.events) for count in args.subscribers]
    print("tierup subscriber bench — one server process, in-memory broker, one WebSocket per member")
    print("| subscribers | connect all | report → delivery p50 | p99 | recordOrder response p50 | delivered | "
          "server RSS before → after |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['subscribers']:,} | {r['connect_s']:.1f} s | {r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms | "
              f"{r['response_p50_ms']:.1f} ms | {r['delivered']}/{r['events']} | "
              f"{r['rss_before']:.0f} → {r['rss_after']:.0f} MiB |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--events", type=int, default=200)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
