"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import functools
from datetime import datetime, timezone

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator):
    """Stores instants as naive UTC (SQLite has no zones) and hands back aware UTC datetimes."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        return None if value is None else _naive_utc(value)

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)

    # SQLite keeps datetimes as text. SQLAlchemy's DATETIME reads it with a regular expression and this type
    # then adds the zone, a step each for every datetime of every row; a member's state has hundreds. On
    # SQLite both directions are one step instead, in the same text format ('2026-01-15 04:00:00.000000').

    def bind_processor(self, dialect):
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def to_text(value: datetime | None) -> str | None:
            return None if value is None else _sqlite_text(value, value.fold)
        return to_text

    def result_processor(self, dialect, coltype):
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        return _sqlite_utc


# The rows of one report name the same instants (its time on the report, its ledger entries and tier change,
# the end of a month for its lots' expiry): each is written out once. `fold` is part of the key because two
# wall times of a zone's repeated hour compare equal (and hash alike) while being different instants.
@functools.lru_cache(maxsize=4096)
def _sqlite_text(value: datetime, fold: int) -> str:
    return _naive_utc(value).isoformat(" ", "microseconds")


def _naive_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("refusing to store a datetime without a UTC offset")
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def _sqlite_utc(value: str | None) -> datetime | None:
    # Read with its zone, the same instant in the same zone object as .replace(tzinfo=timezone.utc) gives, at an
    # eighth of the cost: replace() alone costs ten times the parse.
    return None if value is None else datetime.fromisoformat(value + "+00:00")
