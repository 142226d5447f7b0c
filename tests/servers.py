"""Real `tierup serve` processes for tests that need more than one."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

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
