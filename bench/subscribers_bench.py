"""Subscriber bench: many live WebSockets on one server process — memory per socket and latency.

    python bench/subscribers_bench.py [--subscribers 1000 10000] [--per-member 1] [--events 200]
                                      [--deflate on|off] [--ws auto|websockets|websockets-sansio|wsproto]

Starts the server in its own process (SQLite in a temp dir, in-memory broker), puts
sockets ÷ per-member members straight into the store, opens `--subscribers` WebSockets
(graphql-transport-ws), `--per-member` of them for each member, each subscribed to
`memberEvents`, then records orders for members picked at random (each member at most once)
and measures, for every socket of that member, the time from sending the order report to the
socket receiving its first event ("report → delivery": the commit happens inside that span,
so it bounds commit → delivery from above). It prints:

- server memory per socket: (server RSS with every socket open and subscribed − server RSS
  before the first socket) ÷ sockets. "Before" is taken after a few warm-up sockets have
  connected, subscribed and closed, so one-off costs (the first parse, the program cache) do
  not count against the crowd;
- the server's RSS again after every socket closed (what is not given back to the OS stays
  in the process's allocator; a leak would show as growth from run to run, not here);
- p50/p99 report → delivery over all sockets, the recordOrder response p50, deliveries;
- CPU seconds of the server and of this load generator in the connect and the event phases, so
  that a saturated load generator shows (one core is 1.0 s per wall second).

By default the server is `tierup serve`, with `TIERUP_WS_DEFLATE` set when `--deflate` is given.
`--ws IMPL` runs `uvicorn --factory tierup.app:create_app_from_env` instead, with that WebSocket
implementation and `--ws-per-message-deflate` as `--deflate` says (default off), to compare the
implementations uvicorn offers. The load generator offers permessage-deflate, as browsers do;
it sends no WebSocket pings of its own (browsers do not) and answers the protocol's pings.
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
from api_bench import SECRET, free_port, launch  # noqa: E402

SUBSCRIBE = "subscription { memberEvents { kind } }"
WARM_UP_SOCKETS = 20
WARM_UP_EVENTS = 5
WAVE = 200
ORDER = "mutation($i: RecordOrderInput!) { recordOrder(input: $i) { userErrors { code } } }"
TICKS = os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def server_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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


def start_server(database_url: str, port: int, workdir: str, ws: str | None, deflate: str | None
                 ) -> subprocess.Popen:
    env = {**os.environ, "TIERUP_DATABASE_URL": database_url, "TIERUP_JWT_SECRET": SECRET,
           "TIERUP_LOG_LEVEL": "warning"}
    bin_dir = Path(sys.executable).parent
    if ws is None:
        if deflate is not None:
            env["TIERUP_WS_DEFLATE"] = "1" if deflate == "on" else "0"
        command = [str(bin_dir / "tierup"), "serve", "--port", str(port)]
    else:
        command = [sys.executable, "-m", "uvicorn", "tierup.app:create_app_from_env", "--factory",
                   "--port", str(port), "--log-level", "warning", "--ws", ws,
                   "--ws-per-message-deflate", "true" if deflate == "on" else "false",
                   "--ws-max-size", str(1024 * 1024)]
    return launch(command, env, port, workdir)


class Client:
    """One WebSocket with one `memberEvents` subscription. `armed` is when the bench reported an order
    for this socket's member; `hit` when the first event after that arrived."""

    __slots__ = ("member", "armed", "hit", "events", "closed")

    def __init__(self, member: str):
        self.member = member
        self.armed: float | None = None
        self.hit: float | None = None
        self.events = 0
        self.closed: str | None = None

    async def run(self, url: str, subscribed: asyncio.Future, stop: asyncio.Event) -> None:
        token = mint_token(SECRET, sub=self.member, program="classic", role=Role.MEMBER)
        try:
            async with websockets.connect(url, subprotocols=["graphql-transport-ws"], max_queue=64,
                                          open_timeout=300, ping_interval=None) as ws:
                await ws.send(json.dumps({"type": "connection_init",
                                          "payload": {"Authorization": f"Bearer {token}"}}))
                assert json.loads(await ws.recv())["type"] == "connection_ack"
                await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}}))
                subscribed.set_result(None)
                reader = asyncio.ensure_future(self._read(ws))
                stopping = asyncio.ensure_future(stop.wait())
                await asyncio.wait([reader, stopping], return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                if reader.done():
                    reader.result()
                else:
                    reader.cancel()
        except Exception as exc:  # noqa: BLE001 — counted and reported, not fatal for the bench
            self.closed = f"{type(exc).__name__}: {exc}"
            if not subscribed.done():
                subscribed.set_exception(exc)

    async def _read(self, ws) -> None:
        async for raw in ws:
            message = json.loads(raw)
            if message["type"] == "next":
                if message["payload"].get("errors"):  # e.g. the subscription failed to start
                    self.closed = json.dumps(message["payload"]["errors"])[:300]
                self.events += 1
                if self.armed is not None and self.hit is None:
                    self.hit = time.perf_counter()
            elif message["type"] == "ping":
                await ws.send(json.dumps({"type": "pong"}))
            elif message["type"] in ("error", "complete"):
                self.closed = json.dumps(message)[:300]
                return


async def open_clients(url: str, clients: list[Client], stop: asyncio.Event) -> list[asyncio.Task]:
    """In waves, each acknowledged and subscribed before the next, as a real crowd arrives."""
    loop = asyncio.get_running_loop()
    tasks = []
    for start in range(0, len(clients), WAVE):
        wave = [(client, loop.create_future()) for client in clients[start:start + WAVE]]
        tasks += [asyncio.create_task(client.run(url, future, stop)) for client, future in wave]
        await asyncio.wait_for(asyncio.gather(*(future for _, future in wave)), timeout=300)
    return tasks


async def close_clients(stop: asyncio.Event, tasks: list[asyncio.Task]) -> None:
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)


async def settle(pid: int, seconds: float = 1.0) -> float:
    """The server's RSS once it is idle: a socket counts as subscribed when its subscribe message is
    sent, but the server registers it after a database read or two, so wait until the server stops
    working (under 10% of a core for two seconds in a row; its keep-alive pings cost less than that)."""
    await asyncio.sleep(seconds)
    deadline = time.monotonic() + 300
    quiet = 0
    while quiet < 2 and time.monotonic() < deadline:
        before = server_cpu(pid)
        await asyncio.sleep(1.0)
        quiet = quiet + 1 if server_cpu(pid) - before < 0.1 else 0
    return rss_mib(pid)


async def run_once(count: int, per_member: int, events: int, ws: str | None, deflate: str | None) -> dict:
    members_count = max(1, count // per_member)
    workdir = tempfile.mkdtemp(prefix="tierup-subs-")
    database_url = f"sqlite+aiosqlite:///{workdir}/bench.db"
    port = free_port()
    tierup = str(Path(sys.executable).parent / "tierup")
    env = {**os.environ, "TIERUP_DATABASE_URL": database_url}
    subprocess.run([tierup, "db", "upgrade"], env=env, check=True, capture_output=True)
    subprocess.run([tierup, "program", "load", str(Path(__file__).parents[1] / "fixtures/programs/classic.toml")],
                   env=env, check=True, capture_output=True)
    seed_members(database_url, members_count)
    server = start_server(database_url, port, workdir, ws, deflate)
    url = f"ws://127.0.0.1:{port}/graphql"
    members = [f"sub-{i:05}" for i in range(members_count)]
    try:
        # Warm-up: a few sockets connect, subscribe and leave, so one-off costs are paid before "before".
        stop = asyncio.Event()
        warm = [Client(members[i % members_count]) for i in range(WARM_UP_SOCKETS)]
        await close_clients(stop, await open_clients(url, warm, stop))
        rss_before = await settle(server.pid, 2.0)

        clients = [Client(member) for member in members for _ in range(per_member)]
        by_member: dict[str, list[Client]] = {}
        for client in clients:
            by_member.setdefault(client.member, []).append(client)
        stop = asyncio.Event()
        cpu = (server_cpu(server.pid), own_cpu())
        started = time.perf_counter()
        tasks = await open_clients(url, clients, stop)
        connect_seconds = time.perf_counter() - started
        connect_cpu = (server_cpu(server.pid) - cpu[0], own_cpu() - cpu[1])
        rss_loaded = await settle(server.pid, 2.0)

        service = {"Authorization": "Bearer " + mint_token(SECRET, sub="bench", program="classic", role=Role.SERVICE)}
        latencies, responses = [], []
        sample = random.Random(7).sample(members, min(events + WARM_UP_EVENTS, members_count))
        cpu = (server_cpu(server.pid), own_cpu())
        events_started = time.perf_counter()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            for n, member in enumerate(sample):
                sent = time.perf_counter()
                for client in by_member[member]:
                    client.armed, client.hit = sent, None
                response = await http.post("/graphql", headers=service, json={"query": ORDER, "variables": {"i": {
                    "externalId": f"o-{n}", "memberExternalId": member, "amount": "120",
                    "paidAt": "2026-01-15T12:00:00+08:00"}}})
                answered = time.perf_counter() - sent
                assert response.json()["data"]["recordOrder"]["userErrors"] == [], response.text[:300]
                deadline = time.perf_counter() + 5
                while (any(c.hit is None for c in by_member[member]) and time.perf_counter() < deadline):
                    await asyncio.sleep(0.0005)
                if n >= WARM_UP_EVENTS:  # the first few warm the server's caches
                    responses.append(answered)
                    latencies += [(c.hit - sent) if c.hit is not None else float("inf") for c in by_member[member]]
                for client in by_member[member]:
                    client.armed = None
        events_seconds = time.perf_counter() - events_started
        events_cpu = (server_cpu(server.pid) - cpu[0], own_cpu() - cpu[1])
        failed = [c.closed for c in clients if c.closed]

        await close_clients(stop, tasks)
        rss_closed = await settle(server.pid, 3.0)
    finally:
        server.terminate()
        server.wait(timeout=60)
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return {"sockets": count, "members": members_count, "per_member": per_member,
            "connect_s": connect_seconds, "connect_cpu": connect_cpu,
            "events_s": events_seconds, "events_cpu": events_cpu,
            "rss_before": rss_before, "rss_after": rss_loaded, "rss_closed": rss_closed,
            "kib_per_socket": (rss_loaded - rss_before) * 1024 / count,
            "p50_ms": statistics.median(latencies) * 1000, "p99_ms": quantiles[98] * 1000,
            "response_p50_ms": statistics.median(responses) * 1000,
            "delivered": sum(1 for x in latencies if x != float("inf")), "deliveries": len(latencies),
            "failed": failed}


def raise_fd_limit(sockets: int) -> None:
    """This process holds one fd per socket, and so does the server (it inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = sockets + 1024
    if wanted > hard:
        raise SystemExit(f"{sockets} sockets need {wanted} file descriptors; the hard limit is {hard} "
                         "(raise it with `ulimit -Hn` as root)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))


async def main_async(args) -> None:
    raise_fd_limit(max(args.subscribers))
    rows = [await run_once(count, args.per_member, args.events, args.ws, args.deflate)
            for count in args.subscribers]
    server = ("tierup serve" + (f", TIERUP_WS_DEFLATE={args.deflate}" if args.deflate else "")
              if args.ws is None else f"uvicorn --ws {args.ws}, deflate {args.deflate or 'off'}")
    shape = "one WebSocket per member" if args.per_member == 1 else f"{args.per_member} WebSockets per member"
    print(f"tierup subscriber bench — one server process ({server}), in-memory broker, {shape}")
    print("| sockets | members | connect all | server RSS before → after | per socket | "
          "report → delivery p50 | p99 | recordOrder response p50 | delivered | RSS after closing |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['sockets']:,} | {r['members']:,} | {r['connect_s']:.1f} s | "
              f"{r['rss_before']:.0f} → {r['rss_after']:.0f} MiB | {r['kib_per_socket']:.1f} KiB | "
              f"{r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms | {r['response_p50_ms']:.1f} ms | "
              f"{r['delivered']}/{r['deliveries']} | {r['rss_closed']:.0f} MiB |")
    print()
    print("CPU seconds (server / load generator) — one core is 1.0 s per wall second")
    print("| sockets | connect: wall | server | load generator | events: wall | server | load generator |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['sockets']:,} | {r['connect_s']:.1f} s | {r['connect_cpu'][0]:.1f} s | "
              f"{r['connect_cpu'][1]:.1f} s | {r['events_s']:.1f} s | {r['events_cpu'][0]:.1f} s | "
              f"{r['events_cpu'][1]:.1f} s |")
    for r in rows:
        if r["failed"]:
            print(f"\n{len(r['failed'])} of {r['sockets']:,} sockets ended early; first: {r['failed'][0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, nargs="+", default=[1000, 10000],
                        help="sockets to open, one run per figure")
    parser.add_argument("--per-member", type=int, default=1, help="sockets per member (default 1)")
    parser.add_argument("--events", type=int, default=200, help="orders to report (each member at most once)")
    parser.add_argument("--deflate", choices=["on", "off"], help="permessage-deflate on the server")
    parser.add_argument("--ws", choices=["auto", "websockets", "websockets-sansio", "wsproto"],
                        help="run uvicorn directly with this WebSocket implementation")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
