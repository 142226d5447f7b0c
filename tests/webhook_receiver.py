"""A shop's webhook endpoint for tests: a real HTTP server on a free port that records what it receives
and answers with the statuses it was told to (then 200)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from servers import serving


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    def __init__(self) -> None:
        self.answers: list[int] = []  # statuses to answer, in turn; 200 once they are used up
        self.received: list[Received] = []
        self.url = ""
        self._arrived = asyncio.Condition()

    async def __call__(self, scope, receive, send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        status = self.answers.pop(0) if self.answers else 200
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok" if status < 300 else b"no"})
        async with self._arrived:
            self.received.append(Received(scope["path"], headers, body))
            self._arrived.notify_all()

    async def wait_for(self, count: int, timeout: float = 20) -> list[Received]:
        """Until `count` requests arrived (a real server delivers in the background)."""
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: len(self.received) >= count), timeout)
        return self.received


@contextlib.asynccontextmanager
async def receiving(path: str = "/hooks"):
    receiver = Receiver()
    async with serving(receiver, lifespan="off") as port:
        receiver.url = f"http://127.0.0.1:{port}{path}"
        yield receiver
