"""Shared fixtures: a fresh database per test (SQLite file, or PostgreSQL when
TIERUP_TEST_DATABASE_URL is set), the app over ASGI, an injectable clock and tokens."""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from helpers import ASSET_CACHE, SECRET
from tierup.app import create_app
from tierup.auth import Role, mint_token
from tierup.config import Settings
from tierup.programs import bundled_program_path, load_program_file
from tierup.services.programs import publish_program
from tierup.store.db import Database
from tierup.store.migrate import upgrade
from tierup.store.models import Base

POSTGRES_URL = os.environ.get("TIERUP_TEST_DATABASE_URL")

START = datetime(2026, 1, 5, 2, 0, tzinfo=timezone.utc)  # 2026-01-05 10:00 in Shanghai


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory) -> str:
    """Migrations run once per session: into a template SQLite file, or into the PostgreSQL database."""
    if POSTGRES_URL:
        import asyncio

        async def reset() -> None:
            engine = create_async_engine(POSTGRES_URL)
            async with engine.begin() as conn:
                await conn.execute(text("DROP SCHEMA public CASCADE"))
                await conn.execute(text("CREATE SCHEMA public"))
            await engine.dispose()

        asyncio.run(reset())
        upgrade(POSTGRES_URL)
        return POSTGRES_URL
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return str(path)


@pytest.fixture
async def database_url(migrated_template, tmp_path) -> str:
    if POSTGRES_URL:
        engine = create_async_engine(POSTGRES_URL)
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        await engine.dispose()
        return POSTGRES_URL
    path = tmp_path / "tierup.db"
    shutil.copyfile(migrated_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
async def db(database_url):
    database = Database(database_url)
    yield database
    await database.dispose()


class Clock:
    """The test's 'now'; requests may also pass X-Tierup-Now."""

    def __init__(self, now: datetime = START):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def settings(database_url) -> Settings:
    return Settings(database_url=database_url, jwt_secret=SECRET, asset_cache_dir=str(ASSET_CACHE))


@pytest.fixture
async def program(db, clock):
    return (await publish_program(db, load_program_file(bundled_program_path("classic")),
                                  published_by="test", now=clock())).program


@pytest.fixture
async def app(settings, db, clock, program):
    return create_app(settings, db=db, clock=clock)


class Api:
    """Speaks GraphQL to the app the way a client would."""

    def __init__(self, client: httpx.AsyncClient, program_code: str = "classic"):
        self.client = client
        self.program_code = program_code

    def token(self, role: Role, sub: str, program: str | None = None, ttl: int = 3600, now: float | None = None) -> str:
        return mint_token(SECRET, sub=sub, program=program or self.program_code, role=role, ttl_seconds=ttl, now=now)

    async def post(self, query: str, variables: dict | None = None, *, token: str | None = None,
                   now: datetime | str | None = None, headers: dict | None = None) -> dict:
        sent = dict(headers or {})
        if token:
            sent["Authorization"] = f"Bearer {token}"
        if now is not None:
            sent["X-Tierup-Now"] = now if isinstance(now, str) else now.isoformat()
        response = await self.client.post("/graphql", json={"query": query, "variables": variables or {}},
                                          headers=sent)
        return response.json()

    async def as_service(self, query: str, variables: dict | None = None, **kw) -> dict:
        return await self.post(query, variables, token=self.token(Role.SERVICE, "shop"), **kw)

    async def as_operator(self, query: str, variables: dict | None = None, **kw) -> dict:
        return await self.post(query, variables, token=self.token(Role.OPERATOR, "ops"), **kw)

    async def as_member(self, external_id: str, query: str, variables: dict | None = None, **kw) -> dict:
        return await self.post(query, variables, token=self.token(Role.MEMBER, external_id), **kw)


@pytest.fixture
async def api(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tierup.test") as client:
        yield Api(client)
