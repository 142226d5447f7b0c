"""Programs: publish a definition as a new version, and look up the one in force."""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import bindparam, func, select

from ..domain.program import ProgramDefinition
from ..programs import parse_program
from ..store.db import Database, execute_core
from ..store.models import Program, ProgramVersion


@dataclass(frozen=True)
class ActiveProgram:
    """A program and the definition version currently in force."""

    id: int
    code: str
    version: int
    definition: ProgramDefinition
    # programs.webhooks_version as read with the version; None when not read (webhooks then read the endpoints).
    webhooks_version: int | None = None


@dataclass(frozen=True)
class Publication:
    program: ActiveProgram
    created: bool  # the program did not exist before
    changed: bool  # a new version was written


def _document(definition: ProgramDefinition) -> str:
    return json.dumps(definition.source, ensure_ascii=False, sort_keys=True, default=str)


async def publish_program(db: Database, definition: ProgramDefinition, *, published_by: str, now: datetime) -> Publication:
    """Create the program, or add a version when the definition differs from the one in force."""
    document = _document(definition)
    async with db.write() as session:
        program = (await session.execute(
            select(Program).where(Program.code == definition.code).with_for_update())).scalar_one_or_none()
        created = program is None
        if created:
            program = Program(code=definition.code, name=definition.name, current_version=1, created_at=now)
            session.add(program)
            await session.flush()
        else:
            current = (await session.execute(select(ProgramVersion.definition).where(
                ProgramVersion.program_id == program.id,
                ProgramVersion.version == program.current_version))).scalar_one()
            if current == document:
                return Publication(ActiveProgram(program.id, program.code, program.current_version, definition,
                                                 program.webhooks_version), created=False, changed=False)
            program.current_version += 1
            program.name = definition.name
        session.add(ProgramVersion(program_id=program.id, version=program.current_version, definition=document,
                                   published_at=now, published_by=published_by))
    return Publication(ActiveProgram(program.id, program.code, program.current_version, definition,
                                     program.webhooks_version or 0), created=created, changed=True)


# Definitions by (program id, version), per database: a published version never changes, so a
# request reads the version number only, not the definition again.
_versions: "weakref.WeakKeyDictionary[Database, dict[tuple[int, int], ProgramDefinition]]" = \
    weakref.WeakKeyDictionary()


def known_program(db: Database, program_id: int, code: str, version: int) -> ActiveProgram | None:
    """The program at this version, when this process has read that version before."""
    definition = _versions.get(db, {}).get((program_id, version))
    return ActiveProgram(program_id, code, version, definition) if definition is not None else None


# Every request asks (a version published by another process is seen at once): built once, run plainly.
_CURRENT = select(Program.id, Program.current_version, Program.webhooks_version).where(
    Program.code == bindparam("code"))


async def active_program(db: Database, code: str) -> ActiveProgram | None:
    async with db.read() as session:
        row = (await execute_core(session, _CURRENT, {"code": code})).one_or_none()
        if row is None:
            return None
        program_id, version, webhooks_version = row
        known = known_program(db, program_id, code, version)
        if known is not None:
            return replace(known, webhooks_version=webhooks_version)
        document = (await session.execute(select(ProgramVersion.definition).where(
            ProgramVersion.program_id == program_id, ProgramVersion.version == version))).scalar_one()
    definition = parse_program(json.loads(document), f"program {code} v{version}")
    _versions.setdefault(db, {})[(program_id, version)] = definition
    return ActiveProgram(program_id, code, version, definition, webhooks_version)


async def program_count(db: Database) -> int:
    async with db.read() as session:
        return (await session.execute(select(func.count()).select_from(Program))).scalar_one()


async def program_codes(db: Database) -> list[str]:
    async with db.read() as session:
        return list((await session.execute(select(Program.code).order_by(Program.id))).scalars())


async def versions_of(db: Database, program_id: int) -> list[ProgramVersion]:
    """Every published version, newest first."""
    async with db.read() as session:
        return list((await session.execute(select(ProgramVersion).where(ProgramVersion.program_id == program_id)
                                           .order_by(ProgramVersion.version.desc()))).scalars())
