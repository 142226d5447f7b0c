"""`tierup serve --workers 2`: whichever worker answers /metrics, the figures are every worker's
summed (prometheus_client's multiprocess mode), and a worker that is gone stops counting its sockets."""

import asyncio
import importlib.util
import os
from pathlib import Path

import httpx
import websockets
from prometheus_client.parser import text_string_to_metric_families

from servers import start_server, stop, wait_ready
from wsclient import PROTOCOL, free_port

REQUESTS = 12


def bench_statements():
    """bench/api_bench.py's own reading of the statement count, to check it still reads ours."""
    path = Path(__file__).parents[2] / "bench" / "api_bench.py"
    spec = importlib.util.spec_from_file_location("api_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.statements


async def sample(url: str, name: str, **labels: str) -> float:
    async with httpx.AsyncClient() as client:  # a connection of its own: any worker may answer
        text = (await client.get(f"{url}/metrics")).text
    return next((s.value for family in text_string_to_metric_families(text) for s in family.samples
                 if s.name == name and s.labels == labels), 0.0)


async def until(url: str, name: str, value: float) -> None:
    for _ in range(200):
        if await sample(url, name) == value:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} never reached {value}")


async def test_every_worker_counts_in_every_scrape(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(f"sqlite+aiosqlite:///{tmp_path / 'workers.db'}", port, tmp_path, workers=2)
    try:
        await wait_ready(port, server, tmp_path)
        for _ in range(REQUESTS):
            async with httpx.AsyncClient() as client:  # new connections spread over both workers
                answered = await client.post(f"{url}/graphql", json={"query": "query Spread { __typename }"})
                assert answered.status_code == 200
        for _ in range(4):
            assert await sample(url, "tierup_graphql_request_duration_seconds_count", operation="Spread",
                                type="query") == REQUESTS
        async with httpx.AsyncClient(base_url=url) as client:
            assert await bench_statements()(client) > 0
        async with websockets.connect(f"ws://127.0.0.1:{port}/graphql", subprotocols=[PROTOCOL]):
            await until(url, "tierup_websocket_connections", 1)
        await until(url, "tierup_websocket_connections", 0)
    finally:
        stop([server])
    assert "Traceback" not in (tmp_path / f"server-{port}.log").read_text()


def test_the_sockets_of_a_worker_that_is_gone_stop_counting(tmp_path):
    from tierup.observability import _alive, _forget_dead_workers

    gone = next(pid for pid in range(4_000_000, 4_100_000) if not _alive(pid))
    for pid in (gone, os.getpid()):
        (tmp_path / f"gauge_livesum_{pid}.db").write_bytes(b"")
    (tmp_path / f"counter_{gone}.db").write_bytes(b"")  # counters keep counting what the worker did
    _forget_dead_workers(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"counter_{gone}.db",
                                                                f"gauge_livesum_{os.getpid()}.db"])

