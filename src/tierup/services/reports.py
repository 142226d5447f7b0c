"""Reports from the shop, stored once: the UNIQUE key, not a prior SELECT, makes a repeat a no-op."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.errors import ErrorCode, Rejected
from ..domain.program import DEFAULT_CHANNEL
from ..store.db import Written, execute_core, journal
from ..store.models import Report
from .programs import ActiveProgram


def payload_hash(payload: dict[str, Any]) -> str:
    """A fingerprint of what was reported, to tell a true repeat from a reused id."""
    canonical = json.dumps(payload, sort_keys=True, default=str, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def with_channel(payload: dict[str, Any], channel: str, store_code: str | None) -> dict[str, Any]:
    """The report's fingerprint names its channel only when it is not the default (ONLINE, no store),
    so a report sent again as it was before channels existed is still a duplicate, not a clash."""
    if channel == DEFAULT_CHANNEL and store_code is None:
        return payload
    return {**payload, "channel": channel, "storeCode": store_code}


@functools.lru_cache(maxsize=4)
def _insert_once(dialect: str):
    """INSERT … ON CONFLICT DO NOTHING RETURNING id, built once per dialect (the values come as parameters)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (insert(Report).on_conflict_do_nothing(index_elements=["program_id", "kind", "external_id"])
            .returning(Report.id))


@dataclass(frozen=True)
class Stored:
    report_id: int
    duplicate: bool
    values: dict[str, Any] | None = None  # the columns written (not for a repeat)

    @property
    def row(self) -> Report | None:
        """The report as written, for answering without reading it back; built only when asked for."""
        return Report(id=self.report_id, **self.values) if self.values is not None else None


async def store_report(session: AsyncSession, program: ActiveProgram, kind: str, external_id: str,
                       payload: dict[str, Any], *, occurred_at: datetime, now: datetime, **columns: Any) -> Stored:
    """Insert the report, or recognise it as a repeat.

    A repeat with the same content is `duplicate` (the caller changes nothing); the same id with
    different content is a DUPLICATE rejection.
    """
    fingerprint = payload_hash(payload)
    values = dict(program_id=program.id, program_version=program.version, kind=kind, external_id=external_id,
                  occurred_at=occurred_at, received_at=now, payload_hash=fingerprint, **columns)
    statement = _insert_once(session.get_bind().dialect.name)
    report_id = (await execute_core(session, statement, values)).scalar_one_or_none()
    if report_id is not None:
        if columns.get("member_id") is not None:
            journal(session).append(Written("REPORT", columns["member_id"], kind, occurred_at,
                                            columns.get("amount_fen") or 0, with_photos=bool(columns.get("with_photos")),
                                            report_id=report_id, reference=columns.get("reference")))
        return Stored(report_id, duplicate=False, values=values)
    existing = (await session.execute(select(Report.id, Report.payload_hash).where(
        Report.program_id == program.id, Report.kind == kind, Report.external_id == external_id))).one()
    if existing.payload_hash != fingerprint:
        raise Rejected.one(ErrorCode.DUPLICATE,
                           f"externalId {external_id!r} was already used for a different {kind.lower()} report",
                           "input", "externalId")
    return Stored(existing.id, duplicate=True)
