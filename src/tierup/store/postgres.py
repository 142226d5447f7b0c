"""PostgreSQL: many rows into one table by COPY, inside the transaction.

An INSERT sent with executemany is, for PostgreSQL, a statement per row: each row is parsed, planned
and answered on its own, and an import's batch of 5,000 orders spent a third of a second of every batch
writing its reports and ledger entries so. COPY streams the rows as one command and PostgreSQL writes them
as one (store.db.write_deferred uses it for a table's deferred rows from COPY_FROM on). Constraints and
foreign keys hold as for an INSERT.

The rows go through asyncpg's own connection under SQLAlchemy's adapter of it, in the adapter's
transaction (begun first if the transaction has run nothing yet) and under its lock, as the adapter's
own cursor does; an error comes out as the SQLAlchemy error an INSERT would raise (IntegrityError for a
broken key). It relies on the adapter's internals, hence the pinned SQLAlchemy version and the tests that
write through it on PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import Table, exc
from sqlalchemy.engine import Connection
from sqlalchemy.util.concurrency import await_

# The fewest rows a table's deferred rows go in by COPY: fewer go as one INSERT each (a single order's).
COPY_FROM = 20


def copy_rows(connection: Connection, table: Table, columns: list[str], records: list[tuple]) -> None:
    """Write `records` (tuples of `columns`' values, as the driver takes them) into `table` by COPY; counted as
    one statement, as the INSERT it replaces was."""
    names = [table.c[key].name for key in columns]
    statement = f"COPY {table.name} ({', '.join(names)}) FROM STDIN"
    connection.dispatch.before_cursor_execute(connection, None, statement, None, None, True)
    adapted = connection.connection.dbapi_connection
    try:
        await_(_copy(adapted, table.name, names, records))
    except adapted.dbapi.Error as error:
        raise exc.DBAPIError.instance(statement, None, error, adapted.dbapi.Error, dialect=connection.dialect
                                      ) from error


async def _copy(adapted, table: str, columns: list[str], records: list[tuple]) -> None:
    async with adapted._execute_mutex:
        if adapted._transaction is None:
            await adapted._start_transaction()
        try:
            await adapted._connection.copy_records_to_table(table, records=records, columns=columns)
        except Exception as error:
            adapted._handle_exception(error)  # raises it as the adapter's DBAPI error
