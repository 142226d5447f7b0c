"""Two `tierup serve` processes over one database: what one process keeps of a member's home screen
never outlives a write made through the other. The stamp read from the database says so, so this holds
with the Redis broker (TIERUP_TEST_REDIS_URL) and without any broker at all."""

import asyncio
import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from helpers import SECRET
from servers import start_server, stop, wait_ready
from tierup.auth import Role, mint_token
from wsclient import free_port

sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))
from api_bench import DASHBOARD  # noqa: E402  the home screen members open first

REDIS_URL = os.environ.get("TIERUP_TEST_REDIS_URL")

ENROLL = "mutation($id: String!) { enrollMember(input: {externalId: $id}) { userErrors { code } } }"
ORDER = """mutation($input: RecordOrderInput!) { recordOrder(input: $input) {
  order { pointsEarned } userErrors { code message } } }"""
REFUND = """mutation($input: RefundOrderInput!) { refundOrder(input: $input) { userErrors { code message } } }"""


@pytest.fixture(params=["redis", "no broker"])
async def two_servers(request, database_url, program, tmp_path):
    if request.param == "redis" and not REDIS_URL:
        pytest.skip("set TIERUP_TEST_REDIS_URL to run the Redis tests")
    broker = {"TIERUP_BROKER_URL": REDIS_URL} if request.param == "redis" else {}
    ports = [free_port(), free_port()]
    processes = [start_server(database_url, port, tmp_path, **broker) for port in ports]
    try:
        for port, process in zip(ports, processes):
            await wait_ready(port, process, tmp_path)
        yield [f"http://127.0.0.1:{port}" for port in ports]
    finally:
        stop(processes)


class Process:
    def __init__(self, client: httpx.AsyncClient, url: str):
        self.client, self.url = client, url

    async def post(self, query: str, variables: dict | None, role: Role, sub: str) -> dict:
        token = mint_token(SECRET, sub=sub, program="classic", role=role)
        response = await self.client.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}},
                                          headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        result = response.json()
        assert "errors" not in result, result
        return result["data"]

    async def statements(self) -> int:
        text = (await self.client.get(f"{self.url}/metrics")).text
        return int(next(line.split()[1] for line in text.splitlines()
                        if line.startswith("tierup_sql_statements_total")))

    async def home(self, member: str) -> tuple[dict, int]:
        """The member's home screen, and the SQL statements this process sent for it (1: the kept answer,
        after reading the stamp)."""
        before = await self.statements()
        view = (await self.post(DASHBOARD, None, Role.MEMBER, member))["viewer"]
        return view, await self.statements() - before


async def wait_past_program_midnight() -> None:
    """The servers run on the real clock: a kept answer ends at the program's midnight (16:00 UTC in
    Shanghai), so a run that would straddle it starts just after it instead."""
    now = datetime.now(timezone.utc)
    midnight = now.replace(hour=16, minute=0, second=0, microsecond=0)
    if timedelta(0) <= midnight - now < timedelta(minutes=2):
        await asyncio.sleep((midnight - now).total_seconds() + 1)


async def test_an_order_through_one_process_shows_at_once_on_the_other(two_servers):
    await wait_past_program_midnight()
    now = datetime.now(timezone.utc)
    async with httpx.AsyncClient(timeout=30) as client:
        a, b = (Process(client, url) for url in two_servers)
        assert (await a.post(ENROLL, {"id": "alice"}, Role.SERVICE, "shop"))["enrollMember"]["userErrors"] == []

        first, _ = await b.home("alice")
        assert (first["points"]["balance"], first["orders"]["totalCount"]) == (100, 0)
        kept, statements = await b.home("alice")
        assert kept == first and statements == 1  # served from what B kept: the stamp alone was read

        paid_at = (now - timedelta(minutes=1)).isoformat()
        placed = await a.post(ORDER, {"input": {"externalId": "A-1", "memberExternalId": "alice", "amount": "150",
                                                "paidAt": paid_at}}, Role.SERVICE, "shop")
        assert placed["recordOrder"] == {"order": {"pointsEarned": 150}, "userErrors": []}

        after, statements = await b.home("alice")
        assert statements > 1  # run again
        assert after["orders"]["totalCount"] == 1
        assert after["orders"]["edges"][0]["node"]["externalId"] == "A-1"
        assert after["points"]["balance"] == 100 + 150 + 50  # the order, and FIRST_ORDER's reward
        again, statements = await b.home("alice")
        assert again == after and statements == 1

        refunded = await a.post(REFUND, {"input": {"externalId": "RF-1", "orderExternalId": "A-1", "amount": "150",
                                                   "refundedAt": now.isoformat()}}, Role.SERVICE, "shop")
        assert refunded["refundOrder"]["userErrors"] == []
        last, statements = await b.home("alice")
        assert statements > 1 and last["points"]["balance"] == 300 - 150
