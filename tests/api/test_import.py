"""`tierup import`: a bad file imports nothing and names every bad row; a good one applies its rows in
time order through the live rules, so it leaves what reporting the same history live leaves; a
second run adds nothing."""

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Awaitable, Callable

import pytest
from sqlalchemy import func, select, text

from conftest import POSTGRES_URL
from documents import MEMBER_BY_EXTERNAL_ID
from helpers import enroll, order, refund, row_counts
from tierup.cli import main

MEMBERS_CSV = """externalId,displayName,birthday,joinedAt
{p}ann,Ann,1990-05-17,2026-02-01T09:00:00+08:00
{p}bob,,,2026-02-03T09:00:00+08:00
"""
# Out of time order on purpose: rows apply in the order they happened.
ORDERS_CSV = """externalId,memberExternalId,amount,paidAt
{p}O-3,{p}ann,2600.00,2026-05-20T12:00:00+08:00
{p}O-1,{p}ann,150,2026-02-10T12:00:00+08:00
{p}O-2,{p}ann,250.50,2026-03-11T12:00:00+08:00
{p}O-4,{p}bob,99.90,2026-04-02T12:00:00+08:00
{p}O-5,{p}ann,80,2026-06-01T12:00:00+08:00
"""
REFUNDS_JSONL = """{{"externalId": "{p}R-1", "orderExternalId": "{p}O-2", "amount": "100", "refundedAt": "2026-03-20T12:00:00+08:00"}}
"""


async def cli(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


def write(tmp_path, name: str, text: str, prefix: str = "") -> str:
    path = tmp_path / name
    path.write_text(text.format(p=prefix), encoding="utf-8")
    return str(path)


async def state(api, external_id: str) -> dict:
    member = (await api.as_operator(MEMBER_BY_EXTERNAL_ID, {"externalId": external_id}))["data"]["member"]
    return {"tier": member["tier"]["code"], "balance": member["points"]["balance"], "growth": member["growthValue"],
            "ledger": [(e["node"]["kind"], e["node"]["amount"], e["node"]["balanceAfter"])
                       for e in member["points"]["ledger"]["edges"]],
            "orders": [(o["node"]["pointsEarned"], o["node"]["refundedAmount"]["amount"])
                       for o in member["orders"]["edges"]]}


def live_reports(*files: str) -> list[tuple[datetime, int, Callable[..., Awaitable], tuple, dict]]:
    """The members, orders and refunds of the files (CSV with a header, or JSON lines; "live-" ids) as the calls
    that report them live, `(time, rank, helper, arguments, keywords)`, in time order: at one moment a member
    joins, then orders, then refunds."""
    found = []
    for content in files:
        lines = content.format(p="live-").splitlines()
        rows = ([json.loads(line) for line in lines] if lines[0].startswith("{")
                else [dict(zip(lines[0].split(","), line.split(","))) for line in lines[1:]])
        for row in rows:
            if "joinedAt" in row:
                found.append((datetime.fromisoformat(row["joinedAt"]), 0, enroll, (row["externalId"],),
                              {name: value for name, value in row.items() if value and name != "externalId"}))
            elif "paidAt" in row:
                found.append((datetime.fromisoformat(row["paidAt"]), 1, order, (
                    row["externalId"], row["memberExternalId"], row["amount"], row["paidAt"]), {}))
            else:
                found.append((datetime.fromisoformat(row["refundedAt"]), 2, refund, (
                    row["externalId"], row["orderExternalId"], row["amount"], row["refundedAt"]), {}))
    return sorted(found, key=lambda report: report[:2])


async def report_live(api, *files: str) -> None:
    for _, _, report, arguments, keywords in live_reports(*files):
        await report(api, *arguments, **keywords)


async def test_an_import_leaves_what_the_same_history_reported_live_leaves(api, tmp_path, capsys, monkeypatch,
                                                                          database_url, clock):
    monkeypatch.setenv("TIERUP_DATABASE_URL", database_url)
    monkeypatch.setattr("tierup.services.importing.BATCH", 2)  # a member's orders span batches
    monkeypatch.setattr("tierup.store.db.WRITE_AHEAD", 1)  # on SQLite, each order's rows written as the batch goes on
    assert await cli("import", "members", write(tmp_path, "members.csv", MEMBERS_CSV, "imp-")) == 0
    assert await cli("import", "orders", write(tmp_path, "orders.csv", ORDERS_CSV, "imp-")) == 0
    assert await cli("import", "refunds", write(tmp_path, "refunds.jsonl", REFUNDS_JSONL, "imp-")) == 0
    assert capsys.readouterr().out.splitlines() == [
        "2 members imported, 0 imported before", "5 orders imported, 0 imported before",
        "1 refund imported, 0 imported before"]
    assert await cli("import", "refunds", write(tmp_path, "refunds.jsonl", REFUNDS_JSONL, "imp-")) == 0
    assert capsys.readouterr().out.splitlines() == ["nothing new: the refund of refunds.jsonl was imported before"]

    # The same history reported live in the order the imports applied it: each file in time order,
    # the refunds after the orders (a refund reported late does not re-judge what came before it).
    clock.now = datetime.now(timezone.utc)
    await report_live(api, MEMBERS_CSV, ORDERS_CSV)
    await report_live(api, REFUNDS_JSONL)

    for name in ("ann", "bob"):
        imported, live = await state(api, f"imp-{name}"), await state(api, f"live-{name}")
        assert imported == live
    assert (await state(api, "imp-ann"))["tier"] == "DIAMOND"


LAPSING_MEMBERS_CSV = """externalId,joinedAt
{p}cy,2024-01-01T09:00:00+08:00
"""
# GOLD on the first order, valid until 2025-02-10 12:00; kept at the evaluation after it (its period counted
# since enrolment), then lowered to REGULAR at the next (a year of ¥100): the last order earns at 1×, not 3×.
LAPSING_ORDERS_CSV = """externalId,memberExternalId,amount,paidAt
{p}L-1,{p}cy,2600.00,2024-02-10T12:00:00+08:00
{p}L-2,{p}cy,100.00,2025-03-01T12:00:00+08:00
{p}L-3,{p}cy,300.00,2026-03-01T12:00:00+08:00
"""


# Two members whose tiers lapse between C-2 and C-3: cy's GOLD on 2025-02-10, dee's SILVER on 2025-02-12 (no lot
# expires then). C-1 net ¥1,600 (under GOLD's ¥2,000) and out of the 12 months by cy's evaluation: lowered to
# SILVER.
TWO_LAPSING_MEMBERS_CSV = "externalId,joinedAt\n{p}cy,2024-01-01T09:00:00+08:00\n{p}dee,2024-01-01T09:00:00+08:00\n"
TWO_LAPSING_ORDERS_CSV = """externalId,memberExternalId,amount,paidAt
{p}C-1,{p}cy,2600.00,2024-02-10T12:00:00+08:00
{p}D-1,{p}dee,300.00,2024-02-12T12:00:00+08:00
{p}C-2,{p}cy,100.00,2025-02-05T12:00:00+08:00
{p}C-3,{p}cy,100.00,2025-02-20T12:00:00+08:00
"""
TWO_LAPSING_REFUNDS_CSV = "externalId,orderExternalId,amount,refundedAt\n{p}CR-1,{p}C-1,1000.00,2024-02-20T12:00:00+08:00\n"


@dataclass
class ImportedBatch:
    reports: list[str]  # its orders' and refunds' externalIds, in the order applied
    states_read: set[int] = field(default_factory=set)  # the members whose states it read from the database


def watch_batches(monkeypatch) -> list[ImportedBatch]:
    """The batches of orders and refunds an import runs, each as it ran."""
    from tierup.services import growth, importing

    batches: list[ImportedBatch] = []
    running: list[ImportedBatch] = []  # the batch running, while one runs
    record_orders, load_states = importing.record_orders, growth.load_states

    async def counted(db, program, requests, **keywords):
        running.append(ImportedBatch([request.external_id for request in requests]))
        batches.append(running[0])
        try:
            return await record_orders(db, program, requests, **keywords)
        finally:
            running.clear()

    async def reading(session, program, member_ids, **keywords):
        for batch in running:
            batch.states_read.update(member_ids)
        return await load_states(session, program, member_ids, **keywords)

    monkeypatch.setattr(importing, "record_orders", counted)
    monkeypatch.setattr(growth, "load_states", reading)
    return batches


async def tier_changes(db, external_id: str) -> list[tuple]:
    from tierup.store.models import Member, TierChange

    async with db.read() as session:
        return [tuple(row) for row in await session.execute(
            select(TierChange.from_tier, TierChange.to_tier, TierChange.changed_at, TierChange.valid_until,
                   TierChange.reason).join(Member, Member.id == TierChange.member_id)
            .where(Member.external_id == external_id).order_by(TierChange.id))]


async def imported_and_lived(api, db, program, tmp_path, monkeypatch, database_url, clock, orders_csv: str,
                             midnights: tuple[str, ...], refunds_csv: str | None = None,
                             members_csv: str = LAPSING_MEMBERS_CSV) -> tuple[dict, dict]:
    """The lapsing member (of `members_csv`) and `orders_csv` (with `refunds_csv`) imported (imp-cy), and the same
    history reported live (live-cy) with the daily jobs (points expiry, then tier evaluation) run shortly after
    each of the `midnights`: a report at that midnight comes first. Returns both cy's states."""
    from tierup.services.expiry import expire_points
    from tierup.services.tiers import evaluate_tiers

    monkeypatch.setenv("TIERUP_DATABASE_URL", database_url)
    assert await cli("import", "members", write(tmp_path, "members.csv", members_csv, "imp-")) == 0
    refunds = ["--refunds", write(tmp_path, "refunds.csv", refunds_csv, "imp-")] if refunds_csv else []
    assert await cli("import", "orders", write(tmp_path, "orders.csv", orders_csv, "imp-"), *refunds) == 0

    clock.now = datetime.now(timezone.utc)
    jobs = [(datetime.fromisoformat(midnight), 3, None, (), {}) for midnight in midnights]
    for at, _, report, arguments, keywords in sorted(
            live_reports(members_csv, orders_csv, *filter(None, [refunds_csv])) + jobs, key=lambda s: s[:2]):
        if report is None:
            await expire_points(db, program, as_of=at)
            await evaluate_tiers(db, program, as_of=at)
        else:
            await report(api, *arguments, **keywords)
    return await state(api, "imp-cy"), await state(api, "live-cy")


# The jobs that find something to do during the lapsing history: the welcome points (January 2024) expire at
# the end of January 2025, the first order's (February 2024) at the end of February 2025; GOLD's validity
# ends on 2025-02-10 and again on 2026-02-10.
LAPSING_MIDNIGHTS = ("2025-02-01T00:00:00+08:00", "2025-02-11T00:00:00+08:00", "2025-03-01T00:00:00+08:00",
                     "2026-02-11T00:00:00+08:00")


async def test_an_import_reevaluates_tiers_when_their_validity_ends_as_the_daily_job_would_have(
        api, db, program, tmp_path, monkeypatch, database_url, clock):
    imported, live = await imported_and_lived(api, db, program, tmp_path, monkeypatch, database_url, clock,
                                              LAPSING_ORDERS_CSV, LAPSING_MIDNIGHTS)
    assert imported == live
    assert imported["tier"] == "SILVER"  # one order of ¥200 or more, after the lowering
    assert [points for points, _ in imported["orders"]] == [300, 300, 2600]  # newest first: L-3 at 1×, L-2 at 3×
    changes = await tier_changes(db, "imp-cy")
    assert changes == await tier_changes(db, "live-cy")
    assert [(old, new, reason) for old, new, _, _, reason in changes] == [
        (None, "REGULAR", "ENROLMENT"), ("REGULAR", "GOLD", "ORDER"), ("GOLD", "GOLD", "RENEWAL"),
        ("GOLD", "REGULAR", "EVALUATION"), ("REGULAR", "SILVER", "ORDER")]
    assert changes[3][2] == datetime.fromisoformat("2026-02-11T00:00:00+08:00")


async def test_an_import_expires_points_when_their_lots_expire_as_the_daily_job_would_have(
        api, db, tmp_path, monkeypatch, database_url):
    """Each later entry's balance is what the member had then, and the expiries are dated when they happened
    (not all at once when `tierup jobs` first runs after the import); an import reminds nobody."""
    from tierup.store.models import Member, Notification, PointsEntry

    monkeypatch.setenv("TIERUP_DATABASE_URL", database_url)
    assert await cli("import", "members", write(tmp_path, "members.csv", LAPSING_MEMBERS_CSV, "imp-")) == 0
    assert await cli("import", "orders", write(tmp_path, "orders.csv", LAPSING_ORDERS_CSV, "imp-")) == 0
    imported = await state(api, "imp-cy")  # equal to the history reported live: the test above
    # Newest first: the welcome 100, then the first order's 2,600 and its FIRST_ORDER task's 50 expired before L-2.
    assert imported["ledger"] == [("EARN", 300, 600), ("EARN", 300, 300), ("EXPIRE", -2650, 0),
                                  ("EXPIRE", -100, 2650), ("EARN", 50, 2750), ("EARN", 2600, 2700),
                                  ("EARN", 100, 100)]
    async with db.read() as session:
        expired_at = list((await session.execute(
            select(PointsEntry.occurred_at).join(Member, Member.id == PointsEntry.member_id)
            .where(Member.external_id == "imp-cy", PointsEntry.kind == "EXPIRE").order_by(PointsEntry.id))).scalars())
        reminders = (await session.execute(select(func.count()).select_from(Notification).join(
            Member, Member.id == Notification.member_id).where(Member.external_id == "imp-cy"))).scalar_one()
    assert expired_at == [datetime.fromisoformat("2025-02-01T00:00:00+08:00"),
                          datetime.fromisoformat("2025-03-01T00:00:00+08:00")]
    assert reminders == 0


# L-1 is partly refunded within the month, and L-2 a week after it was paid.
LAPSING_REFUNDS_CSV = """externalId,orderExternalId,amount,refundedAt
{p}LR-1,{p}L-1,1000.00,2024-02-20T12:00:00+08:00
{p}LR-2,{p}L-2,40.00,2025-03-08T12:00:00+08:00
"""


async def test_refunds_imported_with_their_orders_apply_at_their_time(api, db, program, tmp_path, monkeypatch,
                                                                     database_url, clock):
    """A refund reverses the points of its order before they expire, and counts at the evaluations after it, as
    when it was reported live; imported with the orders (--refunds), it applies between them."""
    imported, live = await imported_and_lived(api, db, program, tmp_path, monkeypatch, database_url, clock,
                                              LAPSING_ORDERS_CSV, LAPSING_MIDNIGHTS, LAPSING_REFUNDS_CSV)
    assert imported == live
    # The refund of L-1 leaves ¥1,600 of the year's spend: GOLD is not kept at its evaluation but lowered to
    # SILVER, so L-2 earns at 2× (200; its refund takes 40% of that back). Newest first: L-1's 2,600 less the
    # 1,000 refunded expired with its task's 50 before L-2.
    assert imported["ledger"] == [("EARN", 300, 420), ("REVERSE", -80, 120), ("EARN", 200, 200),
                                  ("EXPIRE", -1650, 0), ("EXPIRE", -100, 1650), ("REVERSE", -1000, 1750),
                                  ("EARN", 50, 2750), ("EARN", 2600, 2700), ("EARN", 100, 100)]
    assert imported["orders"] == [(300, "0.00"), (200, "40.00"), (2600, "1000.00")]
    changes = await tier_changes(db, "imp-cy")
    assert changes == await tier_changes(db, "live-cy")
    assert [(old, new, reason) for old, new, _, _, reason in changes] == [
        (None, "REGULAR", "ENROLMENT"), ("REGULAR", "GOLD", "ORDER"), ("GOLD", "SILVER", "EVALUATION"),
        ("SILVER", "REGULAR", "EVALUATION"), ("REGULAR", "SILVER", "ORDER")]


async def test_tiers_lapsing_among_a_batch_are_evaluated_at_their_midnights_without_ending_it(
        api, db, program, tmp_path, monkeypatch, database_url, clock):
    """Tiers lapse on any day: a batch of orders runs on past those midnights. A member reporting after theirs
    is evaluated first, as of it (cy: lowered before C-3, which earns at SILVER's 2×); the others as the batch
    ends (dee, kept), each as the daily job would have."""
    batches = watch_batches(monkeypatch)
    imported, live = await imported_and_lived(
        api, db, program, tmp_path, monkeypatch, database_url, clock, TWO_LAPSING_ORDERS_CSV,
        ("2025-02-01T00:00:00+08:00", "2025-02-11T00:00:00+08:00", "2025-02-13T00:00:00+08:00"),
        TWO_LAPSING_REFUNDS_CSV, TWO_LAPSING_MEMBERS_CSV)
    assert imported == live
    assert [points for points, _ in imported["orders"]] == [200, 300, 2600]  # newest first: C-3 at 2×
    assert await state(api, "imp-dee") == await state(api, "live-dee")
    for name, evaluated in (("cy", ("GOLD", "SILVER", "2025-02-11", "EVALUATION")),
                            ("dee", ("SILVER", "SILVER", "2025-02-13", "RENEWAL"))):
        changes = await tier_changes(db, f"imp-{name}")
        assert changes == await tier_changes(db, f"live-{name}")
        old, new, at, _, reason = changes[-1]
        assert (old, new, at, reason) == (*evaluated[:2], datetime.fromisoformat(f"{evaluated[2]}T00:00:00+08:00"),
                                          evaluated[3])
    # Split only where lots expired (2025-02-01), the refund among the orders.
    assert [batch.reports for batch in batches] == [["imp-C-1", "imp-D-1", "imp-CR-1"], ["imp-C-2", "imp-C-3"]]


async def test_the_states_a_batch_kept_hold_across_the_expiry_and_the_evaluations_after_it(
        api, db, program, tmp_path, monkeypatch, database_url, clock):
    """Between two batches of an import, lots expire (the batch ended there) and tiers lapsed before are
    evaluated: those jobs change the members but nothing their states hold except the balance, so the next
    batch goes on from the states the last one kept instead of reading them again (cy's after the expiry on
    2025-02-01, dee's after her evaluation on 2025-02-13 and the expiry on 2025-03-01), and the history still
    ends as it does reported live."""
    batches = watch_batches(monkeypatch)
    orders = TWO_LAPSING_ORDERS_CSV + "{p}D-2,{p}dee,100.00,2025-03-05T12:00:00+08:00\n"
    imported, live = await imported_and_lived(
        api, db, program, tmp_path, monkeypatch, database_url, clock, orders,
        ("2025-02-01T00:00:00+08:00", "2025-02-11T00:00:00+08:00", "2025-02-13T00:00:00+08:00",
         "2025-03-01T00:00:00+08:00"), TWO_LAPSING_REFUNDS_CSV, TWO_LAPSING_MEMBERS_CSV)
    assert imported == live
    assert await state(api, "imp-dee") == await state(api, "live-dee")
    assert [batch.reports for batch in batches] == [["imp-C-1", "imp-D-1", "imp-CR-1"], ["imp-C-2", "imp-C-3"],
                                                    ["imp-D-2"]]
    from tierup.store.models import Member, PointsEntry

    async with db.read() as session:
        ids = dict((await session.execute(select(Member.external_id, Member.id))).all())
        expired = (await session.execute(
            select(Member.external_id, PointsEntry.occurred_at).join(Member, Member.id == PointsEntry.member_id)
            .where(PointsEntry.kind == "EXPIRE", Member.external_id.like("imp-%"))
            .order_by(Member.external_id, PointsEntry.occurred_at))).all()
    assert [batch.states_read for batch in batches] == [{ids["imp-cy"], ids["imp-dee"]}, set(), set()]
    february, march = (datetime.fromisoformat(f"2025-0{month}-01T00:00:00+08:00") for month in (2, 3))
    assert [tuple(row) for row in expired] == [("imp-cy", february), ("imp-cy", march), ("imp-dee", february),
                                               ("imp-dee", march)]
    renewed = datetime.fromisoformat("2025-02-13T00:00:00+08:00")
    assert [(old, new, at, reason) for old, new, at, _, reason in await tier_changes(db, "imp-dee")][-1] == (
        "SILVER", "SILVER", renewed, "RENEWAL")


async def test_an_order_judged_by_the_database_after_an_evaluation_in_its_batch_counts_the_new_period(
        api, db, tmp_path, monkeypatch, database_url, clock):
    """A refund dated after an order has the database count the order's upgrade (member_metrics); it counts from
    the qualification period the evaluation right before the order restarted, in the batch and not yet written:
    O3's ¥800 alone, not ¥2,100 since enrolment (GOLD's ¥2,000)."""
    monkeypatch.setenv("TIERUP_DATABASE_URL", database_url)
    members = "externalId,joinedAt\n{p}a,2024-01-01T09:00:00+08:00\n{p}b,2024-01-01T09:00:00+08:00\n"
    assert await cli("import", "members", write(tmp_path, "members.csv", members, "imp-")) == 0
    first = ("externalId,memberExternalId,amount,paidAt\n{p}O1,{p}a,1200.00,2024-02-20T12:00:00+08:00\n"
             "{p}O2,{p}a,100.00,2024-03-01T12:00:00+08:00\n")  # GOLD (¥1,000 in 12 months) until 2025-02-20
    assert await cli("import", "orders", write(tmp_path, "first.csv", first, "imp-")) == 0
    clock.now = datetime.now(timezone.utc)
    await refund(api, "imp-R2", "imp-O2", "50", "2025-06-01T12:00:00+08:00")
    # In one batch: a is lowered to SILVER as of 2025-02-21 (¥1,300 since enrolment, ¥100 in the 12 months),
    # right before O3.
    later = ("externalId,memberExternalId,amount,paidAt\n{p}OX,{p}b,50.00,2025-02-15T12:00:00+08:00\n"
             "{p}O3,{p}a,800.00,2025-02-25T12:00:00+08:00\n")
    assert await cli("import", "orders", write(tmp_path, "later.csv", later, "imp-")) == 0
    assert [(old, new, at, reason) for old, new, at, _, reason in await tier_changes(db, "imp-a")] == [
        (None, "REGULAR", datetime.fromisoformat("2024-01-01T09:00:00+08:00"), "ENROLMENT"),
        ("REGULAR", "GOLD", datetime.fromisoformat("2024-02-20T12:00:00+08:00"), "ORDER"),
        ("GOLD", "SILVER", datetime.fromisoformat("2025-02-21T00:00:00+08:00"), "EVALUATION")]


async def test_evaluating_lapsed_tiers_in_a_batch_takes_orders_paid_with_money_alone(db, program, clock):
    """An order paid with a coupon, points or stored value may be refused after its member's evaluation, which
    its savepoint's rollback would take with it: record_orders refuses to evaluate for such orders."""
    from tierup.services.orders import OrderInput, record_orders

    paid = OrderInput("X-1", "nobody", "10.00", datetime.fromisoformat("2026-01-01T12:00:00+08:00"), points_used=10)
    with pytest.raises(ValueError, match="money alone"):
        await record_orders(db, program, [paid], now=clock(), evaluate_lapsed=True)


async def test_the_evaluations_a_batch_ran_past_are_made_together_each_as_of_its_midnight(api, db, program, clock):
    """Between an import's batches the days' evaluations are made at once (tiers.evaluate_lapsed_before), each as
    of its own midnight: GOLD kept at the first, which renews it for a year, and lowered at the next, as in the
    lapsing history above, in one call; the midnight of `before` itself is not yet due."""
    from tierup.services.tiers import evaluate_lapsed_before

    clock.now = datetime.now(timezone.utc)
    await enroll(api, "ev", joinedAt="2024-01-01T09:00:00+08:00")
    await order(api, "EV-1", "ev", "2600.00", "2024-02-10T12:00:00+08:00")  # GOLD until 2025-02-10 12:00
    for before, made in (("2025-02-11T00:00:00", 0), ("2026-02-11T00:00:01", 2), ("2027-01-01T00:00:00", 0)):
        assert await evaluate_lapsed_before(db, program, before=datetime.fromisoformat(f"{before}+08:00")) == made
    assert [(old, new, at, until, reason) for old, new, at, until, reason in await tier_changes(db, "ev")][2:] == [
        ("GOLD", "GOLD", datetime.fromisoformat("2025-02-11T00:00:00+08:00"),
         datetime.fromisoformat("2026-02-10T12:00:00+08:00"), "RENEWAL"),
        ("GOLD", "REGULAR", datetime.fromisoformat("2026-02-11T00:00:00+08:00"), None, "EVALUATION")]


async def test_an_order_paid_at_the_midnight_of_an_evaluation_comes_before_it(api, db, program, tmp_path,
                                                                             monkeypatch, database_url, clock):
    """The daily job runs shortly after midnight: an order paid at 00:00 is judged at the tier before it, and
    counts toward keeping the tier at that evaluation."""
    at_midnight = LAPSING_ORDERS_CSV.replace("300.00,2026-03-01T12:00:00", "2000.00,2026-02-11T00:00:00")
    imported, live = await imported_and_lived(api, db, program, tmp_path, monkeypatch, database_url, clock,
                                              at_midnight, LAPSING_MIDNIGHTS)
    assert imported == live
    assert imported["tier"] == "GOLD" and imported["orders"][0][0] == 6000  # at GOLD's 3×, and GOLD kept
    assert await tier_changes(db, "imp-cy") == await tier_changes(db, "live-cy")


async def test_an_import_under_permanent_tiers_evaluates_nothing(api, db, program, tmp_path, monkeypatch,
                                                                 database_url, clock):
    """Tiers made permanent after members had a validity end: nothing lapses, and the import does not wait for it."""
    from helpers import publish_classic

    monkeypatch.setenv("TIERUP_DATABASE_URL", database_url)
    assert await cli("import", "members", write(tmp_path, "members.csv", LAPSING_MEMBERS_CSV, "imp-")) == 0
    header, first, *later = LAPSING_ORDERS_CSV.splitlines(keepends=True)
    assert await cli("import", "orders", write(tmp_path, "first.csv", header + first, "imp-")) == 0
    assert (await state(api, "imp-cy"))["tier"] == "GOLD"  # valid until 2025-02-10
    await publish_classic(db, clock(), lambda document: document["ladder"].update(validity_months="permanent"),
                          "classic, permanent tiers")
    assert await cli("import", "orders", write(tmp_path, "later.csv", header + "".join(later), "imp-")) == 0
    imported = await state(api, "imp-cy")
    assert imported["tier"] == "GOLD" and [points for points, _ in imported["orders"]] == [900, 300, 2600]


async def test_an_import_announces_nothing(api, db, tmp_path, monkeypatch, database_url):
    """History reaches neither live sockets nor webhooks: a shop's endpoint is not flooded with years of it."""
    monkeypatch.setenv("TIERUP_DATABASE_URL", database_url)
    created = await api.as_operator(
        'mutation { createWebhook(input: {url: "http://127.0.0.1:9/hook", events: [TIER_CHANGED, POINTS_CHANGED]}) '
        '{ userErrors { code } } }')
    assert created["data"]["createWebhook"]["userErrors"] == []
    assert await cli("import", "members", write(tmp_path, "members.csv", MEMBERS_CSV, "quiet-")) == 0
    assert await cli("import", "orders", write(tmp_path, "orders.csv", ORDERS_CSV, "quiet-")) == 0
    assert await cli("import", "refunds", write(tmp_path, "refunds.jsonl", REFUNDS_JSONL, "quiet-")) == 0
    assert (await state(api, "quiet-ann"))["tier"] == "DIAMOND"
    assert (await row_counts(db))["webhook_deliveries"] == 0
    await enroll(api, "live-one")  # reported live, it is announced
    assert (await row_counts(db))["webhook_deliveries"] == 1


async def test_orders_with_a_bad_refunds_file_import_nothing_and_every_problem_names_its_file(
        api, db, tmp_path, capsys, monkeypatch, database_url):
    monkeypatch.setenv("TIERUP_DATABASE_URL", database_url)
    assert await cli("import", "members", write(tmp_path, "members.csv", MEMBERS_CSV, "both-")) == 0
    counts = await row_counts(db)
    bad_orders = ORDERS_CSV.replace("99.90", "-5")
    refunds = """externalId,orderExternalId,amount,refundedAt
{p}R-1,{p}O-2,100,2026-03-20T12:00:00+08:00
{p}R-2,{p}O-9,10,2026-03-20T12:00:00+08:00
{p}R-3,{p}O-5,10,2026-05-31T12:00:00+08:00
"""
    orders_path, refunds_path = write(tmp_path, "orders.csv", bad_orders, "both-"), write(tmp_path, "refunds.csv",
                                                                                            refunds, "both-")
    assert await cli("import", "orders", orders_path, "--refunds", refunds_path) == 1
    # R-1 names an order of the orders file: known, though that file has a bad row.
    assert capsys.readouterr().err.splitlines() == [
        "orders.csv: line 5: amount must be greater than zero",
        "refunds.csv: line 3: orderExternalId: no order 'both-O-9' in program classic",
        "refunds.csv: line 4: refundedAt is before order 'both-O-5' was paid",
        "tierup: orders.csv and refunds.csv: 3 problem(s); nothing was imported"]
    assert await row_counts(db) == counts

    assert await cli("import", "members", write(tmp_path, "members.csv", MEMBERS_CSV), "--refunds", refunds_path) == 2
    assert capsys.readouterr().err == "tierup: --refunds goes with `tierup import orders`\n"

    # An orders file that cannot be read: its refunds are not judged against it (nothing to judge them by).
    unreadable = tmp_path / "latin1.csv"
    unreadable.write_bytes(ORDERS_CSV.format(p="both-").replace("ann", "Zoë").encode("latin-1"))
    assert await cli("import", "orders", str(unreadable), "--refunds", refunds_path) == 1
    assert capsys.readouterr().err.splitlines() == [
        "latin1.csv: line 2: not utf-8 text (byte 0xeb): save the file as \"CSV UTF-8\", or name its encoding, "
        "e.g. --encoding gb18030 for Excel's \"CSV\" on a Chinese system",
        "tierup: latin1.csv and refunds.csv: 1 problem(s); nothing was imported"]
    assert await row_counts(db) == counts


async def test_refunds_are_judged_against_their_orders_before_anything_is_written(api, db, tmp_path, capsys,
                                                                                 monkeypatch, database_url, clock):
    """Against an order of the file or a stored one alike: not before it was paid, not more than is left on it
    (the refunds stored before and the file's own, in time order); run again, the file's refunds are no excess."""
    monkeypatch.setenv("TIERUP_DATABASE_URL", database_url)
    assert await cli("import", "members", write(tmp_path, "members.csv", MEMBERS_CSV, "j-")) == 0
    header, *orders = ORDERS_CSV.splitlines(keepends=True)
    assert await cli("import", "orders", write(tmp_path, "stored.csv", header + orders[1], "j-")) == 0  # O-1, ¥150
    clock.now = datetime.now(timezone.utc)
    await refund(api, "j-R-0", "j-O-1", "50", "2026-02-11T12:00:00+08:00")
    counts = await row_counts(db)
    refunds = """externalId,orderExternalId,amount,refundedAt
{p}R-1,{p}O-1,60,2026-02-12T12:00:00+08:00
{p}R-2,{p}O-1,40.01,2026-02-13T12:00:00+08:00
{p}R-3,{p}O-1,1,2026-02-09T12:00:00+08:00
{p}R-4,{p}O-2,250.50,2026-03-12T12:00:00+08:00
{p}R-5,{p}O-2,0.01,2026-03-13T12:00:00+08:00
"""
    refunds_path = write(tmp_path, "refunds.csv", refunds, "j-")
    # O-1 again (stored, with its stored refund), O-2 (¥250.50), O-4, O-5.
    orders_path = write(tmp_path, "orders.csv", header + "".join(orders[1:]), "j-")
    assert await cli("import", "orders", orders_path, "--refunds", refunds_path) == 1
    assert capsys.readouterr().err.splitlines() == [
        "refunds.csv: line 3: amount: refund exceeds what is left to refund on order 'j-O-1' (¥40)",
        "refunds.csv: line 4: refundedAt is before order 'j-O-1' was paid",
        "refunds.csv: line 6: amount: refund exceeds what is left to refund on order 'j-O-2' (¥0)",
        "tierup: orders.csv and refunds.csv: 3 problem(s); nothing was imported"]
    assert await row_counts(db) == counts

    good = "".join(line for number, line in enumerate(refunds.splitlines(keepends=True), 1) if number in (1, 2, 5))
    refunds_path = write(tmp_path, "refunds.csv", good, "j-")
    assert await cli("import", "orders", orders_path, "--refunds", refunds_path) == 0
    assert await cli("import", "orders", orders_path, "--refunds", refunds_path) == 0
    assert capsys.readouterr().out.splitlines()[-4:] == [
        "3 orders imported, 1 imported before", "2 refunds imported, 0 imported before",
        "nothing new: all 4 orders of orders.csv were imported before",
        "nothing new: all 2 refunds of refunds.csv were imported before"]
    assert [amount for _, amount in (await state(api, "j-ann"))["orders"]] == ["0.00", "250.50", "110.00"]


async def test_refunds_imported_with_orders_of_several_members_equal_them_reported_live(api, tmp_path, monkeypatch,
                                                                                       database_url, clock):
    """A batch of orders takes the refunds among them after it, unless the refund's member orders again in it:
    either way each member's history is as reported live, each report at its time."""
    monkeypatch.setenv("TIERUP_DATABASE_URL", database_url)
    monkeypatch.setattr("tierup.store.db.WRITE_AHEAD", 1)  # on SQLite, each order's rows written as the batch goes on
    refunds = REFUNDS_JSONL + """{{"externalId": "{p}R-2", "orderExternalId": "{p}O-4", "amount": "9.90", "refundedAt": "2026-04-10T12:00:00+08:00"}}
"""
    assert await cli("import", "members", write(tmp_path, "members.csv", MEMBERS_CSV, "imp-")) == 0
    assert await cli("import", "orders", write(tmp_path, "orders.csv", ORDERS_CSV, "imp-"), "--refunds",
                     write(tmp_path, "refunds.jsonl", refunds, "imp-")) == 0

    clock.now = datetime.now(timezone.utc)
    await report_live(api, MEMBERS_CSV, ORDERS_CSV, refunds)
    for name in ("ann", "bob"):
        assert await state(api, f"imp-{name}") == await state(api, f"live-{name}")
    assert (await state(api, "imp-bob"))["orders"] == [(99, "9.90")]


# A referrer (A) and the member they referred (B): B's first order pays A, at A's balance then, and counts for
# A's tasks while it is not refunded in full.
REFERRAL_ORDERS_CSV = """externalId,memberExternalId,amount,paidAt
{p}O-1,{p}A,150,2026-03-01T10:00:00+08:00
{p}O-B,{p}B,50,2026-03-01T14:00:00+08:00
{p}O-2,{p}A,20,2026-03-01T15:00:00+08:00
"""


@pytest.mark.parametrize("refunded", ["O-1", "O-B"])
async def test_a_refund_among_a_batch_comes_before_the_orders_of_the_members_it_concerns(
        api, tmp_path, monkeypatch, database_url, clock, refunded):
    """A refund of the referrer's order comes before the referred member's first order (which pays the referrer
    at the balance then), and one of the referred member's first order before the referrer's next order, as they
    did live."""
    monkeypatch.setenv("TIERUP_DATABASE_URL", database_url)
    clock.now = datetime.now(timezone.utc)
    for p in ("imp-", "live-"):
        referrer = await enroll(api, f"{p}A", joinedAt="2026-02-01T09:00:00+08:00")
        await enroll(api, f"{p}B", joinedAt="2026-02-01T10:00:00+08:00",
                     referralCode=referrer["member"]["referralCode"])
    amount, at = ("150", "2026-03-01T13:00:00+08:00") if refunded == "O-1" else ("50", "2026-03-01T14:30:00+08:00")
    # Refunding O-1, the referrer orders no more: nothing but the referral puts the refund before O-B.
    orders_csv = REFERRAL_ORDERS_CSV if refunded == "O-B" else REFERRAL_ORDERS_CSV.rsplit("{p}O-2", 1)[0]
    refunds = f"""externalId,orderExternalId,amount,refundedAt
{{p}}R-1,{{p}}{refunded},{amount},{at}
"""
    assert await cli("import", "orders", write(tmp_path, "orders.csv", orders_csv, "imp-"), "--refunds",
                     write(tmp_path, "refunds.csv", refunds, "imp-")) == 0
    await report_live(api, orders_csv, refunds)
    for name in ("A", "B"):
        assert await state(api, f"imp-{name}") == await state(api, f"live-{name}")
    if refunded == "O-1":  # newest first: the referral's 200 on what the refund left, the refund
        assert (await state(api, "imp-A"))["ledger"][:2] == [("EARN", 200, 350), ("REVERSE", -150, 150)]


async def test_importing_a_file_again_adds_nothing(api, db, tmp_path, capsys, monkeypatch, database_url):
    monkeypatch.setenv("TIERUP_DATABASE_URL", database_url)
    members, orders = write(tmp_path, "members.csv", MEMBERS_CSV), write(tmp_path, "orders.csv", ORDERS_CSV)
    assert await cli("import", "members", members) == 0
    assert await cli("import", "orders", orders) == 0
    counts = await row_counts(db)
    assert await cli("import", "members", members) == 0
    assert await cli("import", "orders", orders) == 0
    assert capsys.readouterr().out.splitlines()[2:] == [
        "nothing new: all 2 members of members.csv were imported before",
        "nothing new: all 5 orders of orders.csv were imported before"]
    assert await row_counts(db) == counts


async def test_an_import_that_stopped_half_way_run_again_leaves_what_one_run_leaves(api, tmp_path, capsys,
                                                                                   monkeypatch, database_url):
    """The batches an import committed before it stopped (its earliest orders) are answered as repeats when the
    file is imported again, and the rest apply as they would have."""
    monkeypatch.setenv("TIERUP_DATABASE_URL", database_url)
    monkeypatch.setattr("tierup.services.importing.BATCH", 2)
    committed = "\n".join(line for line in ORDERS_CSV.splitlines() if "O-3" not in line and "O-5" not in line)
    for prefix in ("one-", "two-"):
        assert await cli("import", "members", write(tmp_path, f"{prefix}members.csv", MEMBERS_CSV, prefix)) == 0
    assert await cli("import", "orders", write(tmp_path, "two-committed.csv", committed + "\n", "two-")) == 0
    for prefix in ("one-", "two-"):
        assert await cli("import", "orders", write(tmp_path, f"{prefix}orders.csv", ORDERS_CSV, prefix)) == 0
    assert capsys.readouterr().out.splitlines()[2:] == [
        "3 orders imported, 0 imported before", "5 orders imported, 0 imported before",
        "2 orders imported, 3 imported before"]
    for name in ("ann", "bob"):
        assert await state(api, f"two-{name}") == await state(api, f"one-{name}")


@pytest.mark.parametrize("name, text, problems", [
    ("members.csv", "externalId,displayName\nann,Ann\x00Smith\nbob,Bob\n",
     ["line 2: displayName must not contain NUL characters (\\u0000) or unpaired surrogates"]),
    ("members.jsonl", '{{"externalId": "a\\u0000b", "displayName": "Ann"}}\n{{"externalId": "bob", "displayName": '
     '"B\\ud800b"}}\n{{"externalId": "cy\\udc00"}}\n{{"externalId": "dy"}}\n',
     [f"line {n}: {column} must not contain NUL characters (\\u0000) or unpaired surrogates"
      for n, column in ((1, "externalId"), (2, "displayName"), (3, "externalId"))]),
], ids=["csv", "json-lines"])
async def test_a_character_no_database_stores_is_a_bad_row_as_the_api_refuses_it(api, db, tmp_path, capsys,
                                                                                  monkeypatch, database_url, name,
                                                                                  text, problems):
    """The API refuses a NUL character or an unpaired surrogate in any string; a file's texts and ids meet the same
    refusal (PostgreSQL cannot store a NUL, neither database's driver a lone surrogate, which a JSON line can
    hold as an escape), not an error of one database."""
    monkeypatch.setenv("TIERUP_DATABASE_URL", database_url)
    counts = await row_counts(db)
    assert await cli("import", "members", write(tmp_path, name, text)) == 1
    assert capsys.readouterr().err.splitlines()[:-1] == problems
    assert await row_counts(db) == counts


@pytest.mark.parametrize("name, text, problems", [
    ("members.csv", "externalId,displayName\nann,Ann\n\"bob,Bob\ncat,Cat\n",
     ["line 3: not CSV (a quote opened in this row is never closed)"]),
    ("members.csv", "externalId,displayName,,\nann,Ann,,\n\n\"bob\"x,Bob,,\n\ncat,Cat,,Persian\ndan,Dan,,,\n",
     ["line 4: not CSV (',' expected after '\"')", "line 6: a value where the header names no column"]),
    ("members.csv", "externalId,displayName\nann,Ann\nbob," + "B" * 200_000 + "\ncat,Cat\n",
     ["line 3: not CSV (a cell is longer than 131,072 characters)"]),
    ("members.csv", "externalId,displayName,externalId\nann,Ann,bob\n",
     ["line 1: the header names externalId more than once"]),
    ("members.jsonl", '{{"externalId": ["ann"], "displayName": {{"first": "Ann"}}}}\n{{"externalId": "bob", '
     '"displayName": true}}\n{{"externalId": "cat", "displayName": ' + "[" * 100_000 + "]" * 100_000 + "}}\n",
     ["line 1: externalId must be text or a number, not a list; displayName must be text or a number, not an object",
      "line 2: displayName must be text or a number, not true or false", "line 3: not JSON (nested too deeply)"]),
    ("members.jsonl", '{{"externalId": "ann", "displayName": "Ann", "externalId": "bob"}}\n',
     ["line 1: the object names externalId more than once"]),
], ids=["quote-left-open", "lines-after-blank-ones", "cell-too-long", "header-twice", "json-not-text",
        "json-name-twice"])
async def test_a_file_csv_or_json_cannot_read_as_it_meant_names_its_lines_and_imports_nothing(
        api, db, tmp_path, capsys, monkeypatch, database_url, name, text, problems):
    """A row the reader cannot take as the file meant it is a bad row, not a crash, nor a member named by half a
    line (a quote left open reads to the end of the file), by the last of two columns of one name, or by a list
    written out as text."""
    monkeypatch.setenv("TIERUP_DATABASE_URL", database_url)
    counts = await row_counts(db)
    assert await cli("import", "members", write(tmp_path, name, text)) == 1
    assert capsys.readouterr().err.splitlines()[:-1] == problems
    assert await row_counts(db) == counts


@pytest.mark.parametrize("delimiter", [";", "\t"], ids=["semicolons", "tabs"])
async def test_a_file_separated_as_its_header_is_read_as_a_comma_separated_one(db, tmp_path, capsys, monkeypatch,
                                                                               database_url, delimiter):
    """A spreadsheet whose decimal separator is the comma saves "CSV" with semicolons; text copied out of one has
    tabs. The header tells which: the file is read as if it had commas."""
    from tierup.store.models import Member

    monkeypatch.setenv("TIERUP_DATABASE_URL", database_url)
    members = write(tmp_path, "members.csv", MEMBERS_CSV.replace(",", delimiter), "sep-")
    assert await cli("import", "members", members) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "2 members imported, 0 imported before"
    async with db.read() as session:
        assert (await session.execute(select(Member.external_id, Member.display_name, Member.birthday).where(
            Member.external_id.like("sep-%")).order_by(Member.external_id))).all() == [
            ("sep-ann", "Ann", datetime(1990, 5, 17).date()), ("sep-bob", None, None)]


async def test_a_json_number_is_read_as_written_as_the_api_reads_an_amount(api, db, tmp_path, capsys, monkeypatch,
                                                                           database_url):
    """12.50 is ¥12.50; 1e3 is no amount (the API refuses the text "1e3"), where reading it as a float would make
    it ¥1,000."""
    monkeypatch.setenv("TIERUP_DATABASE_URL", database_url)
    assert await cli("import", "members", write(tmp_path, "members.csv", MEMBERS_CSV, "num-")) == 0
    counts = await row_counts(db)
    orders = write(tmp_path, "orders.jsonl", """{{"externalId": "num-1", "memberExternalId": "num-ann", "amount": 1e3, \
"paidAt": "2026-02-10T12:00:00+08:00"}}
""")
    assert await cli("import", "orders", orders) == 1
    assert capsys.readouterr().err.splitlines()[-2] == (
        "line 1: amount: '1e3' is not an amount: write ASCII digits with at most one \".\" and two decimals, "
        "e.g. \"250.00\"")
    assert await row_counts(db) == counts
    orders = write(tmp_path, "orders.jsonl", """{{"externalId": "num-1", "memberExternalId": "num-ann", "amount": 12.50, \
"paidAt": "2026-02-10T12:00:00+08:00"}}
""")
    assert await cli("import", "orders", orders) == 0
    assert (await state(api, "num-ann"))["orders"] == [(12, "0.00")]


async def test_a_file_of_a_header_alone_imports_nothing_and_says_so(api, db, tmp_path, capsys, monkeypatch,
                                                                   database_url):
    monkeypatch.setenv("TIERUP_DATABASE_URL", database_url)
    counts = await row_counts(db)
    header_alone = write(tmp_path, "orders.csv", "externalId,memberExternalId,amount,paidAt\n")
    assert await cli("import", "orders", header_alone) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "nothing to import: orders.csv holds no orders"
    assert await row_counts(db) == counts


async def test_a_file_with_bad_rows_imports_nothing_and_names_every_one(api, db, tmp_path, capsys, monkeypatch,
                                                                         database_url):
    monkeypatch.setenv("TIERUP_DATABASE_URL", database_url)
    assert await cli("import", "members", write(tmp_path, "members.csv", MEMBERS_CSV)) == 0
    counts = await row_counts(db)
    bad = write(tmp_path, "orders.csv", """externalId,memberExternalId,amount,paidAt
O-1,ann,150,2026-02-10T12:00:00+08:00
O-2,ann,12.345,2026-02-11T12:00:00+08:00
O-3,nobody,10,2026-02-12T12:00:00+08:00
O-4,ann,10,2026-02-12 12:00
O-1,bob,20,2026-02-13T12:00:00+08:00
O-6,ann,,1999-12-31T12:00:00+08:00
""")
    assert await cli("import", "orders", bad) == 1
    assert capsys.readouterr().err.splitlines() == [
        "line 3: amount: 12.345 has more than two decimal places",
        "line 4: memberExternalId: no member 'nobody' in program classic",
        "line 5: paidAt: '2026-02-12 12:00' needs a UTC offset, e.g. 2026-03-01T10:00:00+08:00",
        "line 6: externalId 'O-1' is already on line 2",
        "line 7: amount is required",
        "tierup: orders.csv: 5 problem(s); nothing was imported",
        "tierup: 1 order names a member who is not in program classic: import members before their orders "
        "(tierup import members FILE)",
    ]
    assert await row_counts(db) == counts


async def test_an_enrolment_refused_in_a_batch_changes_nothing_and_the_rest_join(db, program, clock):
    from tierup.domain.errors import Rejected
    from tierup.services.members import EnrolmentInput, enroll_members

    results = await enroll_members(db, program, [
        EnrolmentInput("batch-ann"), EnrolmentInput("batch-bob", referral_code="NOSUCHCODE"),
        EnrolmentInput("batch-dan", phone="call me"), EnrolmentInput("batch-cat")], now=clock())
    assert [type(r).__name__ for r in results] == ["EnrolmentResult", "Rejected", "Rejected", "EnrolmentResult"]
    assert isinstance(results[1], Rejected) and results[1].problems[0].code.value == "NOT_FOUND"
    assert results[2].problems[0].code.value == "INVALID" and results[2].problems[0].field == ("input", "members", "2",
                                                                                              "phone")
    counts = await row_counts(db)
    again = await enroll_members(db, program, [EnrolmentInput("batch-ann"), EnrolmentInput("batch-cat")], now=clock())
    assert [r.duplicate for r in again] == [True, True]
    assert await row_counts(db) == counts
    assert counts["members"] == 2 and counts["reports"] == 2


async def test_members_enrolled_in_a_batch_are_those_enrolled_one_by_one(db, program, clock):
    """A batch writes its new members with their reports, coupons, welcome points and first tier changes
    together; each ends as enrolled alone, a referral to a member enrolled before included."""
    from tierup.services.members import EnrolmentInput, enroll_member, enroll_members
    from tierup.store.models import Coupon, Member, PointsEntry, TierChange

    referrer = await enroll_member(db, program, EnrolmentInput("ref-zoe"), now=clock())
    async with db.read() as session:
        code = (await session.execute(select(Member.referral_code).where(Member.id == referrer.member_id))).scalar_one()
    joined = datetime(2026, 1, 2, 10, tzinfo=timezone.utc)

    def requests(prefix: str) -> list[EnrolmentInput]:
        return [EnrolmentInput(f"{prefix}-ann", display_name="Ann", joined_at=joined),
                EnrolmentInput(f"{prefix}-bob", referral_code=code, joined_at=joined),
                EnrolmentInput(f"{prefix}-cat", phone="+86 138 0000 0000", joined_at=joined)]

    batch = await enroll_members(db, program, requests("batch"), now=clock())
    alone = [await enroll_member(db, program, request, now=clock()) for request in requests("alone")]
    assert [r.referred_by_id for r in batch] == [r.referred_by_id for r in alone] == [None, referrer.member_id, None]

    async def enrolled(prefix: str) -> list[tuple]:
        async with db.read() as session:
            members = (await session.execute(select(Member).where(Member.external_id.like(f"{prefix}-%"))
                                              .order_by(Member.external_id))).scalars().all()
            rows = []
            for m in members:
                coupons = sorted((await session.execute(select(Coupon.template_code, Coupon.source).where(
                    Coupon.member_id == m.id))).all())
                entries = (await session.execute(select(PointsEntry.kind, PointsEntry.amount, PointsEntry.source)
                                                 .where(PointsEntry.member_id == m.id))).all()
                changes = (await session.execute(select(TierChange.to_tier, TierChange.reason)
                                                 .where(TierChange.member_id == m.id))).all()
                rows.append((m.external_id.split("-", 1)[1], m.display_name, m.phone, m.referred_by_id, m.tier_code,
                             m.growth_value, m.joined_at, m.version, coupons, entries, changes))
        return rows

    assert await enrolled("batch") == await enrolled("alone")
    assert len(await enrolled("batch")) == 3
    again = await enroll_members(db, program, requests("batch"), now=clock())
    assert [(r.member_id, r.duplicate) for r in again] == [(r.member_id, True) for r in batch]


async def test_a_batch_that_meets_a_member_enrolled_meanwhile_enrols_one_by_one(db, program, clock, monkeypatch):
    """On PostgreSQL another transaction may enrol a batch's externalId after the batch looked for it: the
    batch's rows then break the UNIQUE key when written, and the batch runs again, each enrolment checked as it
    is stored. (Here the batch is made not to see the member enrolled before.)"""
    from tierup.services import members
    from tierup.services.members import EnrolmentInput, enroll_member, enroll_members

    first = await enroll_member(db, program, EnrolmentInput("race-ann"), now=clock())
    counts = await row_counts(db)
    seen = members.known_reports

    async def blind(session, program, kind, external_ids):
        known = await seen(session, program, kind, set())
        known.remaining = len(external_ids)
        return known

    monkeypatch.setattr(members, "known_reports", blind)
    results = await enroll_members(db, program, [EnrolmentInput("race-ann"), EnrolmentInput("race-bob")], now=clock())
    assert [(r.member_id == first.member_id, r.duplicate) for r in results] == [(True, True), (False, False)]
    after = await row_counts(db)
    assert after["members"] == counts["members"] + 1 and after["reports"] == counts["reports"] + 1


async def test_a_file_in_excels_chinese_csv_encoding_is_named_and_read_when_told(db, program, tmp_path, capsys,
                                                                                 monkeypatch, database_url):
    monkeypatch.setenv("TIERUP_DATABASE_URL", database_url)
    path = tmp_path / "members.csv"
    path.write_bytes("externalId,displayName\ngina,王小明\n".encode("gb18030"))
    counts = await row_counts(db)
    assert await cli("import", "members", str(path)) == 1
    err = capsys.readouterr().err
    assert 'line 2: not utf-8 text (byte 0xcd): save the file as "CSV UTF-8"' in err and "nothing was imported" in err
    assert await row_counts(db) == counts
    assert await cli("import", "members", str(path), "--encoding", "gb18030") == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 member imported, 0 imported before"


@pytest.mark.skipif(not POSTGRES_URL, reason="SQLite plans by its indexes alone")
async def test_an_import_has_postgresql_count_the_tables_it_grows(db, program, tmp_path):
    """Plans rest on statistics autovacuum refreshes about once a minute; one made while the reports held no
    orders finds a batch's orders by scanning every order, so each batch of an import cost more than the last
    (30,000 orders: 820/s, 1,726/s with the refresh). The import refreshes them as the tables grow."""
    from pathlib import Path

    from tierup.services.importing import import_file
    from tierup.store.models import Report

    for kind, csv in (("members", MEMBERS_CSV), ("orders", ORDERS_CSV)):
        done = await import_file(db, program, kind, Path(write(tmp_path, f"{kind}.csv", csv, "stats-")),
                                 now=datetime.now(timezone.utc))
        assert done.new == len(csv.splitlines()) - 1
    async with db.read() as session:
        estimated = (await session.execute(text("SELECT reltuples::bigint FROM pg_class WHERE relname = 'reports'"))
                     ).scalar_one()
        counted = (await session.execute(select(func.count()).select_from(Report))).scalar_one()
    assert estimated == counted
