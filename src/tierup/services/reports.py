"""Reports from the shop, stored once: the UNIQUE key, not a prior SELECT, makes a repeat a no-op."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Awaitable, Callable, TypeVar

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.errors import ErrorCode, Rejected
from ..domain.program import DEFAULT_CHANNEL
from ..store.db import Written, defer_insert, execute_core, insert_once_statement, journal, reserve_id
from ..store.models import Report
from .programs import ActiveProgram


_CANONICAL = json.JSONEncoder(sort_keys=True, default=str, ensure_ascii=False, separators=(",", ":"))


def payload_hash(payload: dict[str, Any]) -> str:
    """A fingerprint of what was reported, to tell a true repeat from a reused id."""
    return hashlib.sha256(_CANONICAL.encode(payload).encode()).hexdigest()


def with_channel(payload: dict[str, Any], channel: str, store_code: str | None) -> dict[str, Any]:
    """The report's fingerprint names its channel only when it is not the default (ONLINE, no store),
    so a report sent again as it was before channels existed is still a duplicate, not a clash."""
    if channel == DEFAULT_CHANNEL and store_code is None:
        return payload
    return {**payload, "channel": channel, "storeCode": store_code}


T = TypeVar("T")
_REPORT_KEY = ("program_id", "kind", "external_id")  # a repeat, not a clash with another unique key


@dataclass(frozen=True)
class Stored:
    report_id: int
    duplicate: bool
    values: dict[str, Any] | None = None  # the columns written (not for a repeat)

    @property
    def row(self) -> Report | None:
        """The report as written, for answering without reading it back; built only when asked for."""
        return Report(id=self.report_id, **self.values) if self.values is not None else None


@dataclass
class Known:
    """A batch's reports of one kind by external id, (id, fingerprint): those stored before it, read at once
    under the members' locks, and those it stores itself. With them a batch tells a repeat without a
    statement and defers its new rows (store.db.defer_insert)."""

    reports: dict[str, tuple[int, str]] = field(default_factory=dict)
    remaining: int = 0  # reports the batch may still store: ids are reserved that many at once

    def forget(self, external_id: str) -> None:
        """A report of the batch was rolled back (its savepoint): the externalId is free again."""
        if self.reports.pop(external_id, None) is not None:
            self.remaining += 1


async def batch_known_first(run: Callable[..., Awaitable[T]]) -> T:
    """A batch run with `deferred=True`: the reports it names read at once (Known), its new rows written
    together. Another transaction may store one of its externalIds after it looked (on PostgreSQL; SQLite
    holds its write lock throughout): its rows then break a UNIQUE key when written, and the batch runs
    again with `deferred=False`, each report checked as it is stored."""
    try:
        return await run(deferred=True)
    except IntegrityError:
        return await run(deferred=False)


_KNOWN = select(Report.external_id, Report.id, Report.payload_hash).where(
    Report.program_id == bindparam("program_id"), Report.kind == bindparam("kind"),
    Report.external_id.in_(bindparam("external_ids", expanding=True)))


async def known_reports(session: AsyncSession, program: ActiveProgram, kind: str, external_ids: set[str]) -> Known:
    rows = await execute_core(session, _KNOWN, {"program_id": program.id, "kind": kind,
                                                "external_ids": sorted(external_ids)})
    found = {external_id: (report_id, fingerprint) for external_id, report_id, fingerprint in rows}
    return Known(found, remaining=len(external_ids - found.keys()))


async def store_report(session: AsyncSession, program: ActiveProgram, kind: str, external_id: str,
                       payload: dict[str, Any], *, occurred_at: datetime, now: datetime, known: Known | None = None,
                       **columns: Any) -> Stored:
    """Insert the report, or recognise it as a repeat.

    A repeat with the same content is `duplicate` (the caller changes nothing); the same id with
    different content is a DUPLICATE rejection. With `known` (a batch), the repeat is told from it
    and a new row is deferred.
    """
    fingerprint = payload_hash(payload)
    values = dict(program_id=program.id, program_version=program.version, kind=kind, external_id=external_id,
                  occurred_at=occurred_at, received_at=now, payload_hash=fingerprint, **columns)
    if known is not None:
        existing = known.reports.get(external_id)
        if existing is None:
            report_id = await reserve_id(session, Report.__table__, known.remaining)
            known.remaining -= 1
            defer_insert(session, Report.__table__, {"id": report_id, **values})
            known.reports[external_id] = (report_id, fingerprint)
    else:
        statement = insert_once_statement(session.get_bind().dialect.name, Report, _REPORT_KEY)
        report_id = (await execute_core(session, statement, values)).scalar_one_or_none()
        existing = None if report_id is not None else (await session.execute(select(Report.id, Report.payload_hash).where(
            Report.program_id == program.id, Report.kind == kind, Report.external_id == external_id))).one()
    if existing is not None:
        if existing[1] != fingerprint:
            raise Rejected.one(ErrorCode.DUPLICATE,
                               f"externalId {external_id!r} was already used for a different {kind.lower()} report",
                               "input", "externalId")
        return Stored(existing[0], duplicate=True)
    if columns.get("member_id") is not None:
        journal(session).append(Written("REPORT", columns["member_id"], kind, occurred_at,
                                        columns.get("amount_fen") or 0, with_photos=bool(columns.get("with_photos")),
                                        report_id=report_id, reference=columns.get("reference")))
    return Stored(report_id, duplicate=False, values=values)
