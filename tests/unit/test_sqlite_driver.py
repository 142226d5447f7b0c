"""The SQLite driver's cursor (store.sqlite): one trip to aiosqlite's thread per statement, and the same
answers and errors as SQLAlchemy's own."""

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from tierup.store.db import Database


@pytest.fixture
async def database(tmp_path):
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}")
    async with db.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, code TEXT UNIQUE, n INTEGER)"))
    yield db
    await db.dispose()


async def test_rows_counts_returning_and_many(database):
    async with database.engine.begin() as conn:
        await conn.execute(text("INSERT INTO t (code, n) VALUES (:code, :n)"),
                           [{"code": f"c{i}", "n": i} for i in range(5)])
        returned = (await conn.execute(text("INSERT INTO t (code, n) VALUES ('x', 9) RETURNING id, n"))).one()
        changed = await conn.execute(text("UPDATE t SET n = n + 1 WHERE n < 3"))
        rows = (await conn.execute(text("SELECT code, n FROM t ORDER BY id"))).all()
    assert tuple(returned) == (6, 9)
    assert changed.rowcount == 3
    assert rows == [("c0", 1), ("c1", 2), ("c2", 3), ("c3", 3), ("c4", 4), ("x", 9)]


async def test_errors_are_sqlalchemys_and_the_connection_goes_on(database):
    async with database.engine.connect() as conn:
        await conn.execute(text("INSERT INTO t (code, n) VALUES ('a', 1)"))
        with pytest.raises(IntegrityError):
            await conn.execute(text("INSERT INTO t (code, n) VALUES ('a', 2)"))
        await conn.rollback()
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 0


async def test_a_statement_is_one_trip_to_the_thread(database, monkeypatch):
    trips = []
    real = aiosqlite.Connection._execute

    async def counted(self, fn, *args, **kwargs):
        trips.append(getattr(fn, "__name__", repr(fn)))
        return await real(self, fn, *args, **kwargs)

    async with database.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))  # the connection's BEGIN is behind it
        monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
        assert (await conn.execute(text("SELECT n FROM t WHERE code = 'none'"))).all() == []
        assert len(trips) == 1, trips


async def test_a_statement_sent_ahead_runs_only_inside_its_transaction(database):
    """store.sqlite.send: rows sent without waiting go in with the transaction they were sent in; once an error
    ended that transaction (a full disk does), they are refused, not committed on their own."""
    import sqlite3

    from tierup.store.sqlite import _sent

    connection = sqlite3.connect(database.url.database, isolation_level=None)
    try:
        error = _sent(connection, "INSERT INTO t (code, n) VALUES (?, ?)", ("alone", 1), False)
        connection.execute("BEGIN")
        assert _sent(connection, "INSERT INTO t (code, n) VALUES (?, ?)", [("a", 1), ("b", 2)], True) is None
        connection.execute("COMMIT")
        rows = connection.execute("SELECT code FROM t ORDER BY id").fetchall()
    finally:
        connection.close()
    assert isinstance(error, sqlite3.OperationalError)
    assert rows == [("a",), ("b",)]
