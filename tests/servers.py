"""Real `tierup serve` processes for tests that need more than one."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import contextlib
from typing import AsyncIterator

import httpx
import uvicorn

from helpers import SECRET


def start_server(database_url: str, port: int, workdir: Path, *, workers: int = 1, **env: str) -> subprocess.Popen:
    settings = {**os.environ, "TIERUP_DATABASE_URL": database_url, "TIERUP_JWT_SECRET": SECRET,
                "TIERUP_LOG_LEVEL": "warning", "TIERUP_ASSET_CACHE_DIR": str(workdir), **env}
    log = open(workdir / f"server-{port}.log", "wb")  # a file, not a pipe: nothing blocks the server
    return subprocess.Popen([str(Path(sys.executable).parent / "tierup"), "serve", "--port", str(port),
                             "--workers", str(workers)],
                            env=settings, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)


async def wait_ready(port: int, process: subprocess.Popen, workdir: Path) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            assert process.poll() is None, (workdir / f"server-{port}.log").read_text()[-3000:]
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("server did not become ready")


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=30)


@contextlib.asynccontextmanager
async def serving(app, *, lifespan: str = "on") -> AsyncIterator[int]:
    """An ASGI app served by uvicorn in this event loop on a free port, stopped on leaving; yields the port."""
    from wsclient import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # it could not start: its error
        await asyncio.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        await task
