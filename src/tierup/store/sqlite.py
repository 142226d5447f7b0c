"""SQLite through aiosqlite, one trip to its thread per statement.

aiosqlite runs each SQLite connection in a thread of its own and every call is a trip there and
back through a queue and the event loop (about 50 µs here). SQLAlchemy's stock cursor makes four
trips per statement (open a cursor, execute, fetch the rows, close it) for work SQLite does in a
few microseconds, so a statement cost about 250 µs. This cursor runs all four in one trip; the
connection, transactions, pool and dialect are SQLAlchemy's own. A statement can also be sent
without waiting for it (send: store.db.write_ahead), its rows as one parameter (insert_many).

store.db.Database's engine uses it for its SQLite URLs (`sqlite+aiosqlite:///…`); migrations keep the stock
driver. It relies on aiosqlite's and SQLAlchemy's adapter internals, hence the pinned versions and
tests/unit/test_sqlite_driver.py.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import json
import sqlite3
from typing import Any

from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import (AsyncAdapt_aiosqlite_connection, AsyncAdapt_aiosqlite_cursor,
                                                  AsyncAdapt_aiosqlite_dbapi, SQLiteDialect_aiosqlite)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

DRIVER = "sqlite+tierup_aiosqlite"


def _execute(connection: sqlite3.Connection, operation: str, parameters: Any, many: bool):
    """In aiosqlite's thread: run, read every row, close; the cursor's figures come back with the rows."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def insert_many(table: str, columns: tuple[str, ...], records: list[tuple]) -> tuple[str, tuple] | None:
    """An INSERT of any number of rows (`records`: tuples of the columns' values, as the driver takes them) with
    the rows as one parameter, a JSON array, and its parameters; None when a text of the rows holds the NUL
    character, where SQLite's JSON functions would end it. executemany binds each row's values while holding
    Python's lock, so the connection's thread could write an import's rows only in the moments the event
    loop's thread let go of it; here SQLite reads the rows itself and Python's lock is free for the whole
    statement. A column with the same value in every row (a program's id, a column left empty) is bound once
    instead: SQLite parses a row's JSON again for each value it takes from it (5,000 reports took 76 ms with
    every value from the JSON, 39 ms so)."""
    by_column = list(zip(*records))
    alike = [values.count(values[0]) == len(values) for values in by_column]
    alike[0] = alike[0] and not all(alike)  # the rows' array names every row, so it keeps one column at least
    rows = json.dumps(list(zip(*(values for values, same in zip(by_column, alike) if not same))),
                      ensure_ascii=False, allow_nan=False)
    if "\\u0000" in rows:
        return None
    constants = tuple(values[0] for values, same in zip(by_column, alike) if same)
    return _insert_many(table, columns, tuple(alike)), (*constants, rows)


@functools.lru_cache(maxsize=256)
def _insert_many(table: str, columns: tuple[str, ...], alike: tuple[bool, ...]) -> str:
    values, index = [], 0
    for same in alike:
        if same:
            values.append("?")
        else:
            values.append(f"json_extract(value, '$[{index}]')")
            index += 1
    return f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values)} FROM json_each(?)"


def send(adapt_connection: AsyncAdapt_aiosqlite_connection, operation: str, parameters: Any, *,
         many: bool = False) -> asyncio.Future:
    """Queue a statement on the connection's thread and return at once: the future holds None once it ran,
    or its error (as a value: nobody may be waiting for it to raise). Statements sent after it run after it,
    in turn, as the thread takes them; it runs only inside the transaction it was sent in."""
    connection = adapt_connection._connection
    if not connection._running or not connection._connection:
        raise ValueError("Connection closed")
    future = asyncio.get_running_loop().create_future()
    connection._tx.put_nowait((future, functools.partial(_sent, connection._conn, operation, parameters, many)))
    return future


def _sent(connection: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> Exception | None:
    if not connection.in_transaction:
        # An error before it ended the transaction (a full disk does): on its own, it would be committed.
        return sqlite3.OperationalError("the transaction ended before this statement ran")
    try:
        _execute(connection, operation, parameters, many)
    except Exception as error:
        return error
    return None


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ("_description", "_rowcount", "_lastrowid")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection):
        # No aiosqlite cursor is opened here (that is a trip of its own): each statement opens its own.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description = None
        self._rowcount = -1
        self._lastrowid = None

    @property
    def description(self):
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self):
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return 1

    def execute(self, operation: Any, parameters: Any = None) -> None:
        self._run(operation, parameters, many=False)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> None:
        self._run(operation, seq_of_parameters, many=True)

    def _run(self, operation: Any, parameters: Any, *, many: bool) -> None:
        self._description, self._rowcount, self._lastrowid = None, -1, None  # nothing of the last statement
        self._rows.clear()
        try:
            self._description, rows, self._rowcount, self._lastrowid = await_(self._trip(operation, parameters, many))
        except Exception as error:
            self._adapt_connection._handle_exception(error)  # raises it as the DBAPI's error
        else:
            self._rows = collections.deque(rows)

    async def _trip(self, operation: Any, parameters: Any, many: bool):
        async with self._adapt_connection._execute_mutex:
            connection = self._connection
            return await connection._execute(_execute, connection._conn, operation, parameters, many)

    async def _async_soft_close(self) -> None:
        return None  # nothing stays open between trips

    def close(self) -> None:
        self._rows.clear()


class _Connection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneTripCursor


class _DBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> _Connection:
        return _Connection(self, super().connect(*arg, **kw)._connection)


class OneTripDialect(SQLiteDialect_aiosqlite):
    supports_statement_cache = True  # SQLAlchemy asks every dialect class to say so itself

    @classmethod
    def import_dbapi(cls) -> _DBAPI:
        return _DBAPI(__import__("aiosqlite"), __import__("sqlite3"))


registry.register(DRIVER.replace("+", "."), __name__, "OneTripDialect")
