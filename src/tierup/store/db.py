"""The database handle: one engine, write and read transactions, and statement counting.

SQLite: WAL, a busy timeout, foreign keys on, and `BEGIN IMMEDIATE` for write transactions so
two writers queue on the lock up front instead of failing on upgrade. SQLite has one writer at a
time anyway, so a process groups its concurrent write transactions into one (group commit): each
use case runs in a savepoint of its own, in turn, and returns only once the group has committed.
PostgreSQL: balance-changing use cases lock the member row (`SELECT … FOR UPDATE`, which SQLite
ignores), so both back ends serialise per member on one code path.

Within a transaction: rows nothing reads back are deferred and written together before the next
statement (defer_insert), or on SQLite by the connection's thread while a long batch goes on
(write_ahead); what a use case changed is journaled (journal) and its members counted
(member_changed), so their versions rise at commit; and a value worked out from a member's rows can
be kept for the next use case while that version holds (keep_value, kept_value).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import functools
import itertools
from collections import deque
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, AsyncIterator, Callable, Iterable, Iterator

from sqlalchemy import MetaData, Table, bindparam, event, exc, func, insert, inspect, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.util.concurrency import await_

from ..observability import SQL_STATEMENTS
from .models import Base, Member
from .postgres import COPY_FROM, copy_rows
from .sqlite import DRIVER as ONE_TRIP_DRIVER, insert_many, send

_counters: contextvars.ContextVar[tuple[list[int], ...]] = contextvars.ContextVar("tierup_sql_counters", default=())

SQLITE_BUSY_TIMEOUT_MS = 30_000
# WAL pages after which a commit copies them back into the database file (SQLite's default: 1,000, about 4 MB).
# A batch of an import writes more than that, so every commit stopped to copy and sync, and the same index pages,
# rewritten by every batch, were copied again each time: at 10,000 (about 40 MB of WAL) a copy serves several
# batches and an import's commits cost a third less, while a server's small commits are as before.
SQLITE_CHECKPOINT_PAGES = 10_000
SQLITE_POOL_SIZE = 64
# Write transactions sharing one SQLite commit at most: bounds how long the first waits for the last.
MAX_GROUP = 64
KEPT_MEMBERS = 10_000

# The members a use case changes, and how many of a transaction's use cases changed each. A member's
# `version` goes up by that number in the same transaction, so a value derived from a member (the
# response cache's answers, KeptByMember's states) knows it is outdated, in every process.
_CHANGED_MEMBERS = "tierup_changed_members"
_CHANGES = "tierup_member_changes"
_KEPT = "tierup_kept"  # member → (version when locked, use cases that had changed it, key, value): keep_value


@dataclass(frozen=True)
class Written:
    """A row a transaction wrote that changes what a member has done: a report or a ledger entry."""

    what: str  # REPORT or ENTRY
    member_id: int
    kind: str
    at: datetime
    amount: int  # fen for a report, points for an entry
    source: str | None = None
    with_photos: bool = False
    report_id: int | None = None
    reference: str | None = None  # an ACTIVITY report's kind
    entry_id: int | None = None  # an entry's id, when known before it is written (numbering)
    expires_at: datetime | None = None  # a lot's expiry


def journal(session: AsyncSession | Session) -> list[Written]:
    """What this transaction wrote about members, in order (store_report and append_entry keep it),
    so a use case can know a member's state after it without reading it again."""
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    return sync.info.setdefault("tierup_journal", [])


async def execute_core(session: AsyncSession, statement, parameters: dict | list[dict] | None = None):
    """Run a statement of plain columns on the session's connection, in its transaction: the ORM's
    execution layer (entities, identity map) costs more than such a statement takes to run."""
    info = session.sync_session.info
    if _DEFERRED in info or _AHEAD in info:
        await session.run_sync(write_deferred)
    return await (await session.connection()).execute(statement, parameters or {})


# Rows a use case inserts without needing anything back from the database, written together: one
# statement per table (executemany) with the next statement the transaction runs, whatever it is, or
# at its end. Every statement sees them as if they had been written at once, so deferring changes
# nothing but the number of statements. On SQLite they can also be written ahead (write_ahead).
_DEFERRED = "tierup_deferred"
_RESERVED = "tierup_reserved_ids"
_AHEAD = "tierup_written_ahead"
_NUMBERED = "tierup_numbered"  # tables whose rows all take reserved ids, with the rows expected (numbering)


def defer_insert(session: AsyncSession | Session, table: Table, row: dict) -> None:
    """Defer a row; one that belongs to a member marks the member changed, as an ORM row would."""
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    sync.info.setdefault(_DEFERRED, {}).setdefault(table, []).append(row)
    if row.get("member_id") is not None:
        member_changed(sync, row["member_id"])


def write_deferred(session: Session) -> None:
    """Write the deferred rows, tables in the order of their foreign keys (a report before the ledger
    entries naming it), rows in the order deferred; first wait for those written ahead."""
    written_ahead = _join_ahead(session)
    pending = session.info.pop(_DEFERRED, None)
    if not pending and not written_ahead:
        return
    if session.get_bind().dialect.name == "sqlite":  # its next ids follow the rows now written (see reserve_id)
        pools, numbered_tables = session.info.get(_RESERVED, {}), session.info.get(_NUMBERED, ())
        for name in [name for name in pools if name not in numbered_tables]:
            del pools[name]
    if pending:
        _write(session, pending)


# The reports of a batch after which its rows so far are written ahead: an import's batch of 5,000 orders (and
# the refunds among them) then writes while it works; fewer a time cost more statements, more leave more to write
# at its end (250 and 1,000 were slower). Batches of enrolments write at their end: importing members written
# ahead was slower (the rows of an enrolment are many for the little Python it runs).
WRITE_AHEAD = 500


async def batch_step(session: AsyncSession, done: int) -> None:
    """Before a batch's next use case, `done` done: every WRITE_AHEAD, its rows so far are written ahead."""
    if done and done % WRITE_AHEAD == 0:
        await session.run_sync(write_ahead)


def write_ahead(session: Session) -> None:
    """SQLite: hand the rows deferred so far to the connection's thread, which writes them while the use case
    goes on; the next statement (write_deferred), or the end of the transaction, waits for them and raises
    what they raised. A long batch's rows are written while it works out the next ones, instead of after
    them, on the other core. The ids reserved stay reserved: before anything else writes into their tables,
    write_deferred runs, which counts them again (or, inside `numbering`, counts on). Elsewhere, the rows stay
    deferred."""
    if session.get_bind().dialect.name == "sqlite" and _DEFERRED in session.info:
        _write(session, session.info.pop(_DEFERRED), ahead=session.info.setdefault(_AHEAD, []))


def _write(session: Session, pending: dict[Table, list[dict]], ahead: list | None = None) -> None:
    connection = session.connection()
    for table in sorted(pending, key=_dependency_order(Base.metadata).__getitem__):
        rows = pending[table]
        for _, alike in itertools.groupby(rows, key=lambda row: row.keys()):  # one statement names one set
            _insert_rows(connection, table, list(alike), ahead)


def _join_ahead(session: Session) -> bool:
    """Wait for the rows written ahead, and tell whether any were written since the last wait (some go at once:
    those leaving a column to its default); the first error comes out as the SQLAlchemy error its INSERT
    raises."""
    ahead = session.info.pop(_AHEAD, None)
    for statement, future in ahead or ():
        error = await_(future)
        if error is not None:
            adapted = session.connection().connection.dbapi_connection
            try:
                adapted._handle_exception(error)  # raises it as the adapter's DBAPI error
            except adapted.dbapi.Error as dbapi_error:
                raise exc.DBAPIError.instance(statement, None, dbapi_error, adapted.dbapi.Error,
                                              dialect=session.get_bind().dialect) from error
    return ahead is not None


def _insert_rows(connection: Connection, table: Table, rows: list[dict], ahead: list | None = None) -> None:
    """One INSERT of rows naming the same columns: executemany, or COPY for many rows on PostgreSQL
    (store.postgres); rows written ahead (`ahead`, SQLite) are sent without waiting, as one JSON parameter
    (store.sqlite.insert_many), and the statement's future is appended. SQLAlchemy would build a dictionary
    of parameters for every row before turning it into the driver's tuple, most of what writing an import's
    deferred rows cost in Python; here each row becomes its tuple at once, by the same compiled statement and
    the columns' types. Rows that leave a column to its Python-side default take the usual way, which fills
    it in."""
    direct = _direct_insert(connection.dialect, table, tuple(rows[0]))
    if direct is None:
        connection.execute(insert(table), rows)
        return
    statement, columns = direct
    as_sequence = connection.dialect.execute_sequence_format
    records = [as_sequence([row[key] if process is None else process(row[key]) for key, process in columns])
               for row in rows]
    if connection.dialect.name == "postgresql" and len(rows) >= COPY_FROM:
        copy_rows(connection, table, [key for key, _ in columns], records)
    elif ahead is not None:  # SQLite
        one_parameter = insert_many(table.name, tuple(table.c[key].name for key, _ in columns), records)
        many = one_parameter is None  # then bound row by row, as executemany would
        statement, parameters = (statement, records) if many else one_parameter
        connection.dispatch.before_cursor_execute(connection, None, statement, parameters, None, many)
        ahead.append((statement, send(connection.connection.dbapi_connection, statement, parameters, many=many)))
    else:
        connection.exec_driver_sql(statement, records)


@functools.lru_cache(maxsize=128)
def _direct_insert(dialect: Dialect, table: Table, keys: tuple[str, ...]
                   ) -> tuple[str, list[tuple[str, Callable | None]]] | None:
    """The INSERT's text and its parameters in order, each with its type's processing; None when the rows
    cannot go straight to the driver as tuples (a default to fill in, parameters by name)."""
    compiled = insert(table).compile(dialect=dialect, column_keys=list(keys))
    if compiled.insert_prefetch or not compiled.positional or sorted(compiled.positiontup) != sorted(keys):
        return None
    return compiled.string, [(key, compiled._bind_processors.get(key)) for key in compiled.positiontup]


@functools.cache
def _dependency_order(metadata: MetaData) -> dict[Table, int]:
    return {table: number for number, table in enumerate(metadata.sorted_tables)}


@functools.lru_cache(maxsize=32)
def insert_once_statement(dialect: str, model, index_elements: tuple[str, ...] | None = None,
                          returning: tuple[str, ...] = ("id",)):
    """INSERT … ON CONFLICT DO NOTHING RETURNING id (or the columns `returning` names) for `model`, built once per
    dialect: the values come as parameters, so the compiled statement is found in SQLAlchemy's cache instead
    of being keyed on them row by row. `index_elements`: the one unique key whose conflict means "stored
    before" (any, if None). Run with many rows, SQLAlchemy sends them as multi-row INSERTs, and the rows
    returned are those that were new."""
    insert_into = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert_into(model).on_conflict_do_nothing(index_elements=index_elements).returning(
        *(model.__table__.c[name] for name in returning))


def _drop_deferred(session: AsyncSession) -> None:
    """Rolled back: the rows deferred are forgotten, and so are those written ahead, whatever became of them."""
    for key in (_DEFERRED, _RESERVED, _AHEAD):
        session.sync_session.info.pop(key, None)


async def flush(session: AsyncSession) -> None:
    """Write everything pending: deferred rows, then the ORM's."""
    await session.run_sync(_flush)


def _flush(session: Session) -> None:
    write_deferred(session)
    session.flush()


@event.listens_for(Session, "before_flush")
def _deferred_before_flush(session: Session, flush_context, instances) -> None:
    write_deferred(session)  # an ORM row may name a deferred one (a tier change its report)


@event.listens_for(Session, "do_orm_execute")
def _deferred_before_query(state) -> None:
    write_deferred(state.session)


async def write_members(session: AsyncSession, members: Iterable[Member], columns: tuple[str, ...]) -> None:
    """Write the changed ones among a batch's `members` with one UPDATE of `columns`, changed or not, and have
    the ORM forget them. Its flush would write them too, one statement for each set of columns changed, at about
    twenty microseconds of Python a member (an import's batch has thousands). A member with a change outside
    `columns` is left to the flush. The transaction reads a member forgotten again when it next needs it."""
    await session.run_sync(_write_members, members, columns)


def _write_members(session: Session, members: Iterable[Member], columns: tuple[str, ...]) -> None:
    named = set(columns)
    written = [member for member in members if _changed_within(member, named)]
    if not written:
        return
    table = Member.__table__
    session.connection().execute(update(table).where(table.c.id == bindparam("member_id")),
                                 [{"member_id": member.id, **{column: getattr(member, column) for column in columns}}
                                  for member in written])
    for member in written:
        member_changed(session, member.id)  # as the flush marks the rows it writes (_rows_changed)
        session.expunge(member)


def _changed_within(member: Member, columns: set[str]) -> bool:
    state = inspect(member)
    return state.modified and state.committed_state.keys() <= columns


@asynccontextmanager
async def numbering(session: AsyncSession, tables: dict[Table, int]) -> AsyncIterator[None]:
    """Inside, every row a use case writes into `tables` takes an id reserved for it (reserve_id), which it then
    knows before the row is written. `tables` name the rows the use case expects to write into each, which
    PostgreSQL reserves at once (ids of a sequence reserved and not used are lost); numbered() tells them.

    On SQLite a table's rows take reserved ids all, or none: a row SQLite numbers takes the highest id plus one,
    which may be one reserved for a row not written yet. So the ids of a numbered table are counted on from one
    reservation to the next rather than counted again after every write, and only inside: the rest of a
    transaction that use cases share (group commit) goes on as before, its rows numbered by SQLite."""
    info = session.sync_session.info
    names = {table.name: expected for table, expected in tables.items()}
    info[_NUMBERED] = names
    try:
        yield
    finally:
        info.pop(_NUMBERED, None)
        for name in names:  # counted again by the next to reserve, after the rows given ids are written
            info.get(_RESERVED, {}).pop(name, None)


def numbered(session: AsyncSession, table: Table) -> int:
    """The rows of `table` the use case expects to write inside `numbering`; 0 outside it."""
    return session.sync_session.info.get(_NUMBERED, {}).get(table.name, 0)


async def reserve_id(session: AsyncSession, table: Table, wanted: int) -> int:
    """An id for a deferred row of `table` (whose key is its `id`); `wanted`: how many the caller expects to
    ask for, reserved in one statement. PostgreSQL hands them out from the table's sequence. SQLite gives
    a new row the highest id plus one, so ids are counted on from the highest and reserved only until the
    deferred rows are written, when the next ones are counted again; inside `numbering`, the ids of its tables
    are counted on instead."""
    pools = session.sync_session.info.setdefault(_RESERVED, {})
    found = next(pools.get(table.name, iter(())), None)
    if found is not None:
        return found
    if session.get_bind().dialect.name == "postgresql":
        statement = select(func.nextval(func.pg_get_serial_sequence(table.name, "id"))).select_from(
            func.generate_series(1, max(wanted, 1)))
        ids = iter((await (await session.connection()).execute(statement)).scalars().all())
    elif numbered(session, table):  # no row of it is deferred yet (all take ids from here): none to write first
        highest = (await (await session.connection()).execute(select(func.max(table.c.id)))).scalar_one() or 0
        ids = itertools.count(highest + 1)
    else:  # after the deferred rows are written (execute_core), which hold ids handed out before
        highest = (await execute_core(session, select(func.max(table.c.id)))).scalar_one() or 0
        ids = iter(range(highest + 1, highest + 1 + max(wanted, 1)))
    pools[table.name] = ids
    return next(ids)


@asynccontextmanager
async def savepoint(session: AsyncSession) -> AsyncIterator[None]:
    """A savepoint whose rollback also takes back what it told the transaction: its journal entries (a
    report id SQLite gives out again must not find a rolled-back report there), the members it changed and
    the values it kept for them."""
    info = session.sync_session.info
    await flush(session)  # what came before is not the savepoint's to roll back
    written = len(journal(session))
    changed = set(info.get(_CHANGED_MEMBERS, ()))
    kept = dict(info.get(_KEPT, {}))
    try:
        async with session.begin_nested():
            yield
            await flush(session)  # its deferred rows are written inside it
    except BaseException:
        _drop_deferred(session)
        del journal(session)[written:]
        info[_CHANGED_MEMBERS] = changed
        # Only the values nobody took inside it come back: a value taken was handed over to be changed in place.
        now_kept = info.get(_KEPT, {})
        info[_KEPT] = {member_id: value for member_id, value in kept.items() if now_kept.get(member_id) is value}
        raise


def member_changed(session: AsyncSession | Session, member_id: int) -> None:
    """Record that this use case changes the member (its version goes up at commit)."""
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    sync.info.setdefault(_CHANGED_MEMBERS, set()).add(member_id)


def _changes(info: dict, member_id: int) -> int:
    """How many of the transaction's use cases have changed the member so far, the current one included."""
    return info.get(_CHANGES, {}).get(member_id, 0) + (member_id in info.get(_CHANGED_MEMBERS, ()))


def keep_value(session: AsyncSession, member: Member, key: Any, value: Any) -> None:
    """Keep a value worked out from the member's rows as this use case leaves them (`key`: the caller's, such
    as the program version). It holds for the rest of the transaction while no other use case changes the
    member, and once the transaction committed, in the process's KeptByMember, while the member's version is
    the one the commit gave it. (`member.version` is the one the transaction read: versions rise at its end,
    by a statement that leaves loaded members as they are.)"""
    info = session.sync_session.info
    info.setdefault(_KEPT, {})[member.id] = (member.version, _changes(info, member.id), key, value)


def kept_value(db: Database, session: AsyncSession, member: Member, key: Any) -> Any | None:
    """The value kept for the member (keep_value) if it still holds, handed over: the taker may change it."""
    info = session.sync_session.info
    changes = _changes(info, member.id)
    pending = info.get(_KEPT, {}).pop(member.id, None)
    if pending is not None:
        return pending[3] if pending[:3] == (member.version, changes, key) else None
    return db.kept.take(member.id, member.version, key) if not changes else None


def _use_case_done(session: AsyncSession) -> None:
    """Count the use case's members as changed once more in the transaction."""
    info = session.sync_session.info
    info.setdefault(_CHANGES, collections.Counter()).update(info.pop(_CHANGED_MEMBERS, ()))


class KeptByMember:
    """Values worked out from a member's rows, each kept with the member version (and a key of the
    caller's, such as the program version) it holds for. A member's version rises with every use case
    that changes the member, in any process, so a value whose version is still the member's is still
    right. Taking a value removes it: its taker may change it, and keeps it again, with the version it
    then holds for, once its transaction committed. The least recently kept go first."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._values: collections.OrderedDict[int, tuple[tuple[int, Any], Any]] = collections.OrderedDict()

    def take(self, member_id: int, version: int, key: Any) -> Any | None:
        kept = self._values.pop(member_id, None)
        return kept[1] if kept is not None and kept[0] == (version, key) else None

    def keep(self, member_id: int, version: int, key: Any, value: Any) -> None:
        self._values[member_id] = ((version, key), value)
        self._values.move_to_end(member_id)
        while len(self._values) > self.capacity:
            self._values.popitem(last=False)


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
    def __init__(self, url: str, *, pool_size: int = 10, page_cache_mib: int | None = None):
        """`page_cache_mib`: each SQLite connection's page cache (SQLite's default is 2 MiB), for a bulk
        command's few connections; a server's many keep the default."""
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        # Overflow connections close when returned: a pool as large as the usual concurrency avoids
        # reconnecting on every burst. On SQLite a connection is one of aiosqlite's threads, opened with
        # its pragmas, and costs the server nothing else, so the pool keeps many; on PostgreSQL 20 a
        # process leaves room for several workers under max_connections.
        if self.is_sqlite:
            options: dict = {"pool_size": SQLITE_POOL_SIZE, "max_overflow": SQLITE_POOL_SIZE,
                             "connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}}
        else:
            options = {"pool_size": pool_size, "max_overflow": pool_size, "pool_pre_ping": True}
        # SQLite statements go to aiosqlite's thread in one trip each (store.sqlite), not four.
        self.engine = create_async_engine(self.url.set(drivername=ONE_TRIP_DRIVER) if self.is_sqlite else self.url,
                                          **options)
        self.statements_total = 0
        # Members' states as this process's batches left them (services.growth.batch_states).
        self.kept = KeptByMember(KEPT_MEMBERS)
        self._turns: deque[_Turn] = deque()  # write transactions waiting for the group (SQLite)
        self._committer: asyncio.Task | None = None
        event.listen(self.engine.sync_engine, "before_cursor_execute", self._count)
        if self.is_sqlite:
            def connect(dbapi_connection, connection_record) -> None:
                _sqlite_connect(dbapi_connection, page_cache_mib)
            event.listen(self.engine.sync_engine, "connect", connect)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    def _count(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.startswith("BEGIN"):  # SQLite's explicit BEGIN: transaction control, not a query
            return
        self.statements_total += 1
        SQL_STATEMENTS.inc()
        for counter in _counters.get():
            counter[0] += 1

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """One write transaction: commits on success, rolls back on any exception; the members it
        changed get a new version in it. On SQLite it is a savepoint of a group's transaction: the
        caller's code runs in its own task, and the block exits only after the group committed."""
        if not self.is_sqlite:
            async with self._transaction() as session:  # one use case a transaction: it counts them at its end
                yield session
            return
        turn = _Turn()
        self._turns.append(turn)
        if self._committer is None:
            # A context of its own: the group's BEGIN and COMMIT are nobody's statements to count.
            self._committer = asyncio.create_task(self._commit_groups(), context=contextvars.Context())
        session, first = await turn.session
        try:
            # The group's first needs no savepoint: if it fails, the whole transaction is rolled back.
            async with contextlib.nullcontext() if first else savepoint(session):
                yield session
                await flush(session)  # errors of this use case surface in its own savepoint
            _use_case_done(session)
        except BaseException:
            turn.done.set_result(False)
            raise
        turn.done.set_result(True)
        await turn.committed

    async def _commit_groups(self) -> None:
        """Run waiting write transactions one after another in one transaction, commit, tell each."""
        group: list[_Turn] = []
        try:
            while self._turns:
                group = []
                try:
                    async with self._transaction() as session:
                        while self._turns and len(group) < MAX_GROUP:
                            turn = self._turns.popleft()
                            if turn.session.cancelled():  # its caller gave up while waiting
                                continue
                            turn.session.set_result((session, not group))
                            if await turn.done:
                                group.append(turn)
                            elif not group:  # the first failed without a savepoint: start afresh
                                raise _Discarded
                except Exception as exc:  # the commit failed (or nothing was kept): none of the group's writes happened
                    for turn in group:
                        _settle(turn.committed, exc)
                    continue
                for turn in group:
                    _settle(turn.committed, None)
        finally:
            self._committer = None
            # Cancelled (the loop is closing): whoever still waits learns that nothing was written.
            closing = RuntimeError("the database's write queue stopped before this transaction committed")
            for turn in (*group, *self._turns):
                _settle(turn.session, closing)
                _settle(turn.committed, closing)
            self._turns.clear()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncSession]:
        async with self.engine.connect() as conn:
            await conn.execution_options(tierup_write=True)
            async with AsyncSession(bind=conn, expire_on_commit=False, autoflush=False) as session:
                info = session.sync_session.info
                async with session.begin():
                    yield session
                    await flush(session)  # rows still pending mark their members too
                    _use_case_done(session)
                    changes = info.pop(_CHANGES, {})
                    for times in sorted(set(changes.values())):
                        await session.execute(update(Member).where(Member.id.in_(sorted(
                            member for member, count in changes.items() if count == times)))
                            .values(version=Member.version + times).execution_options(synchronize_session=False))
                # Committed: a value kept by the last use case that changed its member holds for the new version.
                for member_id, (version, count, key, value) in info.pop(_KEPT, {}).items():
                    if changes.get(member_id, 0) == count:
                        self.kept.keep(member_id, version + count, key, value)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with AsyncSession(self.engine, expire_on_commit=False, autoflush=False) as session:
            yield session

    async def refresh_statistics(self, tables: Iterable[str]) -> None:
        """Have PostgreSQL count the tables again (ANALYZE). Its plans rest on statistics that autovacuum
        refreshes about once a minute, after a tenth of a table changed; a bulk load grows tables faster. A
        plan made while a table held none of a kind of row looks the batch's keys up by scanning every row of
        that kind, and each batch then costs more than the one before. SQLite plans by its indexes alone."""
        if self.is_sqlite:
            return
        async with self.engine.connect() as conn:
            await conn.execute(text(f"ANALYZE {', '.join(tables)}"))
            await conn.commit()

    async def ping(self) -> bool:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True

    async def dispose(self) -> None:
        await self.engine.dispose()


class _Discarded(Exception):
    """Rolls back a group's transaction whose only write transaction so far failed."""


class _Turn:
    """One write transaction's place in a group: the session it is handed, whether its savepoint
    held, and the group's commit."""

    __slots__ = ("session", "done", "committed")

    def __init__(self):
        loop = asyncio.get_running_loop()
        self.session: asyncio.Future[tuple[AsyncSession, bool]] = loop.create_future()  # and: first of its group?
        self.done: asyncio.Future[bool] = loop.create_future()
        self.committed: asyncio.Future[None] = loop.create_future()


def _settle(future: asyncio.Future, error: BaseException | None) -> None:
    if future.done():  # its caller was cancelled while waiting for the commit
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


@contextmanager
def count_statements() -> Iterator[list[int]]:
    """Counts SQL statements run in this context (and tasks started from it): `with count_statements() as n: …; n[0]`."""
    counter = [0]
    token = _counters.set(_counters.get() + (counter,))
    try:
        yield counter
    finally:
        _counters.reset(token)


def _sqlite_connect(dbapi_connection, page_cache_mib: int | None) -> None:
    # Let SQLAlchemy's "begin" event emit BEGIN itself, so writes can ask for IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_CHECKPOINT_PAGES}")
    if page_cache_mib is not None:
        cursor.execute(f"PRAGMA cache_size=-{page_cache_mib * 1024}")  # negative: in KiB
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("tierup_write") else "BEGIN")
