"""The client examples in examples/ run with node against a real `tierup serve`, as a developer who
copied them would run them: Apollo Client and urql dashboards (persisted queries over HTTP, live
updates over graphql-ws) and the WeChat mini-program page (graphql-ws over wx.connectSocket, which
examples/mini-program/node shims with the `ws` package).

A member opens the dashboard, the shop records an order, and the dashboard shows the new balance
from the live event. With an expired or a forged token the socket is closed with 4403 and the client
gives up on that one attempt instead of retrying it for ~40 s as graphql-ws does by default.

The examples' pinned packages (examples/package.json) are installed once into tests/.node-cache
(git-ignored, kept between runs, installed again when the pins change); without node, or when npm
cannot install them (offline), the tests are skipped."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers import SECRET
from servers import start_server, stop, wait_ready
from tierup.auth import Role, mint_token
from wsclient import free_port

EXAMPLES = Path(__file__).parents[2] / "examples"
NODE_CACHE = Path(os.environ.get("TIERUP_TEST_NODE_CACHE", Path(__file__).parents[1] / ".node-cache"))
GRAPHQL_WS_UMD = Path("node_modules/graphql-ws/umd/graphql-ws.min.js")
MINI_PROGRAM_VENDOR = Path("mini-program/vendor/graphql-ws.js")
SCRIPTS = {"apollo": "apollo/dashboard.mjs", "urql": "urql/dashboard.mjs", "mini-program": "mini-program/node/run.mjs"}
GUARD = 60  # seconds: only so that a broken example fails instead of hanging; nothing asserts on time

ENROLL = "mutation($id: String!) { enrollMember(input: {externalId: $id, displayName: $id}) { userErrors { code } } }"
ORDER = """mutation($id: String!, $member: String!) {
  recordOrder(input: {externalId: $id, memberExternalId: $member, amount: "120", paidAt: "2026-01-05T09:00:00+08:00"}) {
    userErrors { code }
  }
}"""


@pytest.fixture(scope="session")
def examples() -> Path:
    """A copy of examples/ beside its installed packages, with graphql-ws's UMD build put where
    examples/README.md tells mini-program developers to put it."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed to run the client examples")
    directory = NODE_CACHE / "client-examples"
    manifest = (EXAMPLES / "package.json").read_text()
    installed = directory / "package.json"
    if not (installed.exists() and installed.read_text() == manifest and (directory / GRAPHQL_WS_UMD).exists()):
        directory.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", ".npmrc"):
            shutil.copyfile(EXAMPLES / name, directory / name)
        result = subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=directory,
                                capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            installed.unlink(missing_ok=True)  # try again next time
            pytest.skip(f"npm could not install the examples' packages: {result.stderr.strip()[-500:]}")
    shutil.copytree(EXAMPLES, directory, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("node_modules", "package-lock.json"))
    shutil.copyfile(directory / GRAPHQL_WS_UMD, directory / MINI_PROGRAM_VENDOR)
    return directory


@dataclass
class Server:
    url: str
    service: dict = field(default_factory=lambda: {
        "Authorization": "Bearer " + mint_token(SECRET, sub="shop", program="classic", role=Role.SERVICE)})

    async def post(self, query: str, **variables) -> dict:
        async with httpx.AsyncClient() as client:
            response = await client.post(self.url, headers=self.service, json={"query": query, "variables": variables})
        return response.json()

    async def subscriptions(self) -> float:
        async with httpx.AsyncClient() as client:
            text = (await client.get(self.url.replace("/graphql", "/metrics"))).text
        return next(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
                    if sample.name == "tierup_subscriptions_active")

    async def until_subscriptions(self, count: int) -> None:
        """Polls /metrics: a graphql-ws subscription has no acknowledgement a client could print."""
        deadline = time.monotonic() + GUARD
        while await self.subscriptions() != count:
            assert time.monotonic() < deadline, f"never {count} subscriptions live"
            await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Server:
    workdir = tmp_path_factory.mktemp("client-examples")
    port = free_port()
    process = start_server(f"sqlite+aiosqlite:///{workdir / 'examples.db'}", port, workdir)
    try:
        asyncio.run(wait_ready(port, process, workdir))
        yield Server(f"http://127.0.0.1:{port}/graphql")
    finally:
        stop([process])


@dataclass
class Run:
    """What one run of an example printed, read the same way for every example."""

    mini_program: bool  # JSON lines of the page's setData, not the Node examples' text
    lines: list[str] = field(default_factory=list)
    status: int | None = None

    def dashboards(self) -> list[tuple[str, int]]:
        """Each drawing of the dashboard: (tier code, points balance)."""
        if self.mini_program:
            return [(patch["member"]["tier"]["code"], patch["member"]["points"]["balance"])
                    for patch in self._patches() if "member" in patch]
        return [(tier, int(points)) for line in self.lines
                if (match := re.fullmatch(r"dashboard: .+ \((\w+)\), (\d+) points(; .*)?", line))
                for tier, points in [match.groups()[:2]]]

    def events(self) -> list[str]:
        if self.mini_program:
            return [event["kind"] for patch in self._patches() if patch.get("events") for event in patch["events"][:1]]
        return [line.split()[1] for line in self.lines if line.startswith("event: ")]

    def connects(self) -> int:
        if self.mini_program:
            return sum(1 for line in self.lines if "wx.connectSocket" in json.loads(line))
        return self.lines.count("socket: connecting") + self.lines.count("socket: connecting again")

    def close_codes(self) -> list[int]:
        if self.mini_program:
            return [patch["closeCode"] for patch in self._patches() if "closeCode" in patch]
        return [int(line.split()[2]) for line in self.lines if line.startswith("socket: closed ")]

    def gave_up(self) -> bool:
        """The example said that live updates stopped and why: a refused token."""
        if self.mini_program:
            return any(patch.get("live") == "refused" for patch in self._patches())
        return any(line.startswith("live updates stopped:") and "4403" in line for line in self.lines)

    def _patches(self) -> list[dict]:
        return [json.loads(line)["setData"] for line in self.lines if '"setData"' in line]


class Example:
    def __init__(self, directory: Path, script: str, url: str, token: str, events: int = 1):
        self.command = ["node", str(directory / script)]
        self.errors = directory / f"{Path(script).parent.name}-{os.getpid()}.stderr"  # a file: no pipe to fill
        self.env = {**os.environ, "TIERUP_URL": url, "TIERUP_TOKEN": token, "TIERUP_EVENTS": str(events)}
        self.run = Run(mini_program=script == SCRIPTS["mini-program"])
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> "Example":
        with open(self.errors, "wb") as errors:
            self.process = await asyncio.create_subprocess_exec(*self.command, env=self.env,
                                                                stdout=asyncio.subprocess.PIPE, stderr=errors)
        return self

    async def __aexit__(self, *exc_info) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    async def read_until(self, done) -> Run:
        """Reads what the example prints until done(run) holds or it exits."""
        deadline = time.monotonic() + GUARD
        while not done(self.run):
            line = await asyncio.wait_for(self.process.stdout.readline(), max(0.1, deadline - time.monotonic()))
            if not line:
                break
            self.run.lines.append(line.decode().rstrip("\n"))
        return self.run

    async def finish(self) -> Run:
        await self.read_until(lambda run: False)
        self.run.status = await asyncio.wait_for(self.process.wait(), GUARD)
        assert self.run.status in (0, 1), self.errors.read_text()[-3000:]
        assert self.errors.read_text() == "", self.errors.read_text()[-3000:]  # no warning either
        return self.run


def member_token(member: str, **claims) -> str:
    return mint_token(SECRET, sub=member, program="classic", role=Role.MEMBER, **claims)


@pytest.mark.parametrize("client", SCRIPTS)
async def test_the_dashboard_shows_an_order_live(examples, server, client):
    member = f"mei-{client}"
    assert (await server.post(ENROLL, id=member))["data"]["enrollMember"]["userErrors"] == []
    await server.until_subscriptions(0)  # the previous example's socket is gone

    async with Example(examples, SCRIPTS[client], server.url, member_token(member)) as example:
        opened = await example.read_until(lambda run: run.dashboards())
        assert opened.dashboards() == [("REGULAR", 100)]  # the welcome points
        await server.until_subscriptions(1)
        recorded = await server.post(ORDER, id=f"order-{client}", member=member)
        assert recorded["data"]["recordOrder"]["userErrors"] == []
        run = await example.finish()

    assert run.status == 0, run.lines
    # The order's two events (its first-order task, its points) may arrive in one read, before the example
    # counts the first and closes: it may show both, each drawing the same dashboard.
    assert run.events() and set(run.events()) <= {"TASK_COMPLETED", "POINTS_CHANGED"}, run.lines
    # ¥120 earns 120 points and the first order's task 50 more; the event brought them to the screen.
    assert list(dict.fromkeys(run.dashboards())) == [("REGULAR", 100), ("REGULAR", 270)]
    assert run.connects() == 1


@pytest.mark.parametrize("token", ["expired", "forged"])
@pytest.mark.parametrize("client", SCRIPTS)
async def test_a_refused_token_is_not_tried_again(examples, server, client, token):
    member = f"kai-{client}-{token}"
    await server.post(ENROLL, id=member)
    refused = (member_token(member, ttl_seconds=3600, now=time.time() - 7200) if token == "expired"
               else mint_token("a-secret-that-is-not-the-servers-0123", sub=member, program="classic", role=Role.MEMBER))

    async with Example(examples, SCRIPTS[client], server.url, refused) as example:
        run = await example.finish()

    assert run.status == 1, run.lines
    assert run.close_codes() == [4403]
    assert run.connects() == 1  # graphql-ws's default would have connected six times
    assert run.gave_up()
    assert run.dashboards() == [] and run.events() == []

