"""A deterministic synthetic history for demos and benchmarks (`tierup seed`).

Members join over two and a half years; orders fall on members with a long tail (a few buy
often, most rarely) at amounts spread like real baskets. The history is replayed with the
program's own rules (the simulation engine, recording) and written in bulk, so the seeded
ledger, tiers, completions and quest passes are what the live path would have produced for
those reports. Refunds, reviews and check-ins are not generated.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from types import SimpleNamespace
from typing import Callable

from sqlalchemy import func, insert, select, text

from ..domain.codes import ALPHABET, digits
from ..domain.points import lot_expiry
from ..store.db import Database
from ..store.models import Member, PointsEntry, QuestPass, Report, TaskCompletion, TierChange
from .importing import HISTORY_TABLES
from .programs import ActiveProgram
from .reports import payload_hash
from .simulation import Recording, _Replay

CHUNK = 5000


@dataclass(frozen=True)
class SeedPlan:
    members: int
    orders: int
    seed: int = 7
    start: date = date(2024, 1, 1)
    end: date = date(2026, 6, 30)


class AlreadySeeded(Exception):
    pass


def no_progress(label: str) -> Callable[[int, int], None]:
    """Progress for callers that show none (the CLI passes its bars)."""
    return lambda done, total: None


def _referral_code(member_id: int) -> str:
    return "S" + "".join(ALPHABET[digit] for digit in digits(member_id, 7))


def synthetic_history(program: ActiveProgram, plan: SeedPlan, first_member: int, first_report: int):
    """Members and their reports, in time order, with the ids they will have in the store."""
    rng = random.Random(plan.seed)
    tz = program.definition.zone
    span = (plan.end - plan.start).days
    members = []
    for n in range(plan.members):
        day = plan.start + timedelta(days=int(rng.random() ** 1.3 * (span - 1)))
        joined = datetime.combine(day, time(rng.randrange(8, 23), rng.randrange(60)), tzinfo=tz)
        members.append(SimpleNamespace(id=first_member + n, external_id=f"seed-{n:07d}", joined_at=joined,
                                       referred_by_id=None))
    # A long tail, capped: the keenest buyers order about 25 times as often as most, as in real shops.
    weights = [min(rng.paretovariate(1.5), 25.0) for _ in members]
    buyers = rng.choices(members, weights=weights, k=plan.orders)
    reports = [SimpleNamespace(kind="ENROLMENT", member_id=m.id, occurred_at=m.joined_at, external_id=m.external_id,
                               amount_fen=None) for m in members]
    end = datetime.combine(plan.end, time(23, 0), tzinfo=tz)
    for n, member in enumerate(buyers):
        window = (end - member.joined_at).total_seconds()
        paid = member.joined_at + timedelta(seconds=60 + rng.random() * max(window - 60, 1))
        amount = min(int(rng.lognormvariate(4.6, 0.9) * 100), 2_000_000)
        reports.append(SimpleNamespace(kind="ORDER", member_id=member.id, occurred_at=paid,
                                       external_id=f"seed-order-{n:08d}", amount_fen=max(amount, 100)))
    reports.sort(key=lambda r: (r.occurred_at, r.kind != "ENROLMENT"))
    for n, report in enumerate(reports):
        report.id = first_report + n
        report.order_id = report.points = report.with_photos = None
    return members, reports


async def seed(db: Database, program: ActiveProgram, plan: SeedPlan, *, now: datetime,
               progress: Callable[[str], Callable[[int, int], None]] = no_progress) -> dict[str, int]:
    definition = program.definition
    async with db.write() as session:
        if (await session.execute(select(func.count()).select_from(Member).where(
                Member.program_id == program.id))).scalar_one():
            raise AlreadySeeded(f"program {program.code!r} already has members; seed an empty program")
        first_member = ((await session.execute(select(func.max(Member.id)))).scalar_one() or 0) + 1
        first_report = ((await session.execute(select(func.max(Report.id)))).scalar_one() or 0) + 1
        members, reports = synthetic_history(program, plan, first_member, first_report)
        by_id = {m.id: m for m in members}

        recording = Recording()
        replay = _Replay(definition, datetime.combine(plan.start, time(0), tzinfo=definition.zone), recording)
        show = progress("replaying rules")
        for n, report in enumerate(reports, 1):
            replay.apply(report, by_id[report.member_id])
            if n % CHUNK == 0 or n == len(reports):
                show(n, len(reports))
        end = datetime.combine(plan.end + timedelta(days=1), time(0), tzinfo=definition.zone)
        states = {state.key: state for state in replay.members.values()}
        for state in states.values():
            replay.evaluate_lapsed(state, min(end, now))

        await _write(session, progress("members"), Member, [dict(
            id=m.id, program_id=program.id, external_id=m.external_id, display_name=None, birthday=None, phone=None,
            referral_code=_referral_code(m.id), referred_by_id=None, joined_at=m.joined_at,
            tier_code=states[m.id].tier, tier_since=m.joined_at, tier_valid_until=states[m.id].valid_until,
            qualification_started_at=states[m.id].qualification_started_at,
            growth_value=states[m.id].growth) for m in members])
        await _write(session, progress("reports"), Report, [dict(
            id=r.id, program_id=program.id, program_version=program.version, kind=r.kind, external_id=r.external_id,
            member_id=r.member_id, amount_fen=r.amount_fen, occurred_at=r.occurred_at, received_at=now,
            payload_hash=payload_hash(_payload(r, by_id))) for r in reports])
        balances: dict[int, int] = {}
        entries = []
        for member_id, kind, source, amount, at, report_id in recording.entries:
            balances[member_id] = balances.get(member_id, 0) + amount
            entries.append(dict(program_id=program.id, member_id=member_id, kind=kind, source=source, amount=amount,
                                balance_after=balances[member_id], reason=_reason(source, report_id, by_id),
                                occurred_at=at, expires_at=lot_expiry(at, definition.points_expiry_months,
                                                                      definition.zone),
                                report_id=report_id if source in ("ORDER", "WELCOME") else None, shortfall=0))
        await _write(session, progress("points ledger"), PointsEntry, entries)
        await _write(session, progress("tier changes"), TierChange, [dict(
            member_id=key, from_tier=old, to_tier=new, changed_at=at, valid_until=until, reason="SEED")
            for key, old, new, at, until in recording.tier_changes])
        await _write(session, progress("task completions"), TaskCompletion, [dict(
            program_id=program.id, member_id=key, task_code=task, period_key=period, completed_at=at,
            claimed_at=claimed, points=points, growth_value=growth)
            for key, task, period, at, claimed, points, growth in recording.completions])
        await _write(session, progress("quest passes"), QuestPass, [dict(
            program_id=program.id, member_id=key, quest_code=quest, level=level, passed_at=at, points=points,
            growth_value=growth) for key, quest, level, at, points, growth in recording.passes])
        if session.get_bind().dialect.name == "postgresql":
            # Rows were written with their ids; move the sequences past them for the live path.
            for table in ("members", "reports"):
                await session.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))
    # A server started right after a seed plans by these tables' statistics (PostgreSQL), which autovacuum would
    # take about a minute to count: until then it would plan for the empty tables (see importing._grown).
    await db.refresh_statistics(HISTORY_TABLES)
    return {"members": len(members), "orders": plan.orders, "ledger entries": len(entries),
            "tier changes": len(recording.tier_changes), "task completions": len(recording.completions)}


def _payload(report, by_id) -> dict:
    """The fingerprint the live path gives the same report, so a resent one is a duplicate."""
    if report.kind == "ENROLMENT":
        return {"displayName": None, "birthday": None, "phone": None, "referralCode": None,
                "joinedAt": report.occurred_at}
    return {"member": by_id[report.member_id].external_id, "amount": report.amount_fen, "paidAt": report.occurred_at,
            "coupons": []}


def _reason(source: str, report_id: int | None, by_id) -> str:
    return {"WELCOME": "Welcome bonus", "TASK": "Task reward", "ORDER": f"Order (seeded report {report_id})"}.get(
        source, source.title())


async def _write(session, show, model, rows: list[dict]) -> None:
    connection = await session.connection()
    for start in range(0, len(rows), CHUNK):
        await connection.execute(insert(model.__table__), rows[start:start + CHUNK])  # Core executemany
        show(min(start + CHUNK, len(rows)), len(rows))
    if not rows:
        show(0, 0)
