"""The database handle: one engine, write and read transactions, and statement counting.

SQLite: WAL, a busy timeout, foreign keys on, and `BEGIN IMMEDIATE` for write transactions so
two writers queue on the lock up front instead of failing on upgrade. PostgreSQL: balance-changing
use cases lock the member row (`SELECT … FOR UPDATE`, which SQLite ignores), so both back ends
serialise per member on one code path.
"""

from __future__ import annotations

import contextvars
from contextlib import asynccontextmanager, contextmanager
from typing import AsyncIterator, Iterator

from sqlalchemy import event, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from .models import Member

_counters: contextvars.ContextVar[tuple[list[int], ...]] = contextvars.ContextVar("tierup_sql_counters", default=())

SQLITE_BUSY_TIMEOUT_MS = 30_000

# The members a write transaction changes. Their `version` goes up by one in the same transaction,
# so an answer derived from a member (the response cache's) knows it is outdated, in every process.
_CHANGED_MEMBERS = "tierup_changed_members"


def member_changed(session: AsyncSession | Session, member_id: int) -> None:
    """Record that this transaction changes the member (its version goes up at commit)."""
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    sync.info.setdefault(_CHANGED_MEMBERS, set()).add(member_id)


@event.listens_for(Session, "after_flush")
def _rows_changed(session: Session, flush_context) -> None:
    """Every ORM row written that belongs to a member marks that member changed, so a use case
    cannot forget to; statements outside the ORM mark theirs with `member_changed`."""
    for row in (*session.new, *session.dirty, *session.deleted):
        member_id = getattr(row, "member_id", None)
        if member_id is None and isinstance(row, Member):
            member_id = row.id
        if member_id is not None:
            member_changed(session, member_id)


class Database:
    def __init__(self, url: str, *, pool_size: int = 10):
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        options: dict = {}
        if self.is_sqlite:
            options["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        else:
            # Overflow connections close when returned: a pool as large as the usual concurrency avoids
            # reconnecting on every burst; 20 a process leaves room for several workers under max_connections.
            options.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        self.engine = create_async_engine(self.url, **options)
        self.statements_total = 0
        event.listen(self.engine.sync_engine, "before_cursor_execute", self._count)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_connect)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    def _count(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.startswith("BEGIN"):  # SQLite's explicit BEGIN: transaction control, not a query
            return
        self.statements_total += 1
        for counter in _counters.get():
            counter[0] += 1

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """One write transaction: commits on success, rolls back on any exception; the members it
        changed get a new version in it."""
        async with self.engine.connect() as conn:
            await conn.execution_options(tierup_write=True)
            async with AsyncSession(bind=conn, expire_on_commit=False, autoflush=False) as session:
                async with session.begin():
                    yield session
                    await session.flush()  # rows still pending mark their members too
                    changed = session.sync_session.info.pop(_CHANGED_MEMBERS, None)
                    if changed:
                        await session.execute(update(Member).where(Member.id.in_(sorted(changed)))
                                              .values(version=Member.version + 1)
                                              .execution_options(synchronize_session=False))

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with AsyncSession(self.engine, expire_on_commit=False, autoflush=False) as session:
            yield session

    async def ping(self) -> bool:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True

    async def dispose(self) -> None:
        await self.engine.dispose()


@contextmanager
def count_statements() -> Iterator[list[int]]:
    """Counts SQL statements run in this context (and tasks started from it): `with count_statements() as n: …; n[0]`."""
    counter = [0]
    token = _counters.set(_counters.get() + (counter,))
    try:
        yield counter
    finally:
        _counters.reset(token)


def _sqlite_connect(dbapi_connection, connection_record) -> None:
    # Let SQLAlchemy's "begin" event emit BEGIN itself, so writes can ask for IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("tierup_write") else "BEGIN")
