"""A batch writes its rows together: deferred rows are seen by every later statement, a rolled-back
savepoint takes its own back, a batch tells repeats from the reports it read at once, and tier
metrics counted in memory equal the database's."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from conftest import POSTGRES_URL
from helpers import publish_classic
from tierup.domain.tiers import order_metrics
from tierup.services.activity import read_states
from tierup.services.members import EnrolmentInput, enroll_member
from tierup.services.orders import OrderInput, RefundInput, record_orders, refund_order
from tierup.services.tiers import evaluate_tiers, member_metrics
from tierup.store import db as store
from tierup.store.db import count_statements, defer_insert, execute_core, savepoint, write_ahead
from tierup.store.models import Member, Report, TierChange

UTC = timezone.utc
START = datetime(2025, 1, 10, 4, 0, tzinfo=UTC)


async def _member(db, program, external_id: str = "ann") -> Member:
    await enroll_member(db, program, EnrolmentInput(external_id=external_id, joined_at=START), now=START)
    async with db.read() as session:
        return (await session.execute(select(Member).where(Member.external_id == external_id))).scalar_one()


def _change(member: Member, reason: str) -> dict:
    return dict(member_id=member.id, from_tier="BRONZE", to_tier="BRONZE", changed_at=START, valid_until=None,
                reason=reason, report_id=None)


async def _reasons(db) -> list[str]:
    async with db.read() as session:
        return list((await session.execute(select(TierChange.reason).where(TierChange.reason.like("T-%"))
                                           .order_by(TierChange.id))).scalars())


@pytest.mark.parametrize("ahead", [False, True], ids=["deferred", "written ahead"])
async def test_a_deferred_row_is_seen_by_the_next_statement_of_any_kind(db, program, ahead):
    member = await _member(db, program)
    async with db.write() as session:
        defer_insert(session, TierChange.__table__, _change(member, "T-core"))
        if ahead:
            await session.run_sync(write_ahead)
        with count_statements() as statements:
            core = (await execute_core(session, select(func.count()).select_from(TierChange).where(
                TierChange.reason == "T-core"))).scalar_one()
        defer_insert(session, TierChange.__table__, _change(member, "T-orm"))
        if ahead:
            await session.run_sync(write_ahead)
        orm = (await session.execute(select(TierChange.reason).where(TierChange.reason == "T-orm"))).scalar_one()
    # The row, then the query; a row written ahead was sent before (on SQLite: elsewhere it waits as deferred).
    assert (core, orm, statements[0]) == (1, "T-orm", 1 if ahead and db.is_sqlite else 2)
    assert await _reasons(db) == ["T-core", "T-orm"]


@pytest.mark.parametrize("ahead", [False, True], ids=["deferred", "written ahead"])
async def test_a_rolled_back_savepoint_takes_its_deferred_rows_back_and_keeps_the_earlier_ones(db, program, ahead):
    member = await _member(db, program)
    async with db.write() as session:
        defer_insert(session, TierChange.__table__, _change(member, "T-before"))
        if ahead:  # on SQLite, the connection's thread writes it while the transaction goes on
            await session.run_sync(write_ahead)
        with pytest.raises(RuntimeError):
            async with savepoint(session):
                defer_insert(session, TierChange.__table__, _change(member, "T-inside"))
                raise RuntimeError("refused")
        defer_insert(session, TierChange.__table__, _change(member, "T-after"))
    assert await _reasons(db) == ["T-before", "T-after"]


@pytest.mark.parametrize("columns", ["all", "some left to their defaults"])
async def test_ids_reserved_before_rows_written_ahead_are_counted_again_after_another_write(db, program, columns):
    """Ids reserved for deferred rows are counted on from the highest only until something else writes into the
    table: rows written ahead (sent to the connection's thread, or at once when they leave a column to its
    default), then a report stored the usual way, then a reservation, give three ids."""
    from tierup.services.reports import store_report
    from tierup.store.db import reserve_id

    member = await _member(db, program)
    row = dict(program_id=program.id, program_version=program.version, kind="ORDER", member_id=member.id,
               amount_fen=100, occurred_at=START, received_at=START, payload_hash="x")
    if columns == "all":
        row |= {column.key: None for column in Report.__table__.columns if column.key not in row}
        row |= {"channel": "ONLINE", "with_photos": False}
    async with db.write() as session:
        first = await reserve_id(session, Report.__table__, 3)
        defer_insert(session, Report.__table__, {**row, "id": first, "external_id": "W-ahead"})
        await session.run_sync(write_ahead)
        stored = await store_report(session, program, "ORDER", "W-usual", {"n": 1}, occurred_at=START, now=START,
                                    member_id=member.id, amount_fen=100)
        later = await reserve_id(session, Report.__table__, 1)
        defer_insert(session, Report.__table__, {**row, "id": later, "external_id": "W-later"})
    assert len({first, stored.report_id, later}) == 3
    async with db.read() as session:
        ids = dict((await session.execute(select(Report.external_id, Report.id).where(
            Report.external_id.like("W-%")))).all())
    assert ids == {"W-ahead": first, "W-usual": stored.report_id, "W-later": later}


async def test_a_text_written_ahead_keeps_what_follows_a_nul_character(db, program):
    """SQLite's JSON functions end a text at a NUL character: such rows are written ahead bound one by one."""
    if not db.is_sqlite:
        pytest.skip("rows are written ahead on SQLite only, and PostgreSQL stores no NUL character")
    member = await _member(db, program)
    async with db.write() as session:
        defer_insert(session, TierChange.__table__, _change(member, "T-a\x00b"))
        await session.run_sync(write_ahead)
    assert await _reasons(db) == ["T-a\x00b"]


@pytest.mark.parametrize("write_ahead_every", [1, store.WRITE_AHEAD])
async def test_a_batch_tells_repeats_within_itself_and_frees_the_key_of_an_order_refused(db, program, monkeypatch,
                                                                                        write_ahead_every):
    """Alike whether the batch's rows wait for its end or are written ahead after each order (on SQLite)."""
    monkeypatch.setattr(store, "WRITE_AHEAD", write_ahead_every)
    await _member(db, program)
    when = START + timedelta(days=1)
    results = await record_orders(db, program, [
        OrderInput("R-1", "ann", "100", when),
        OrderInput("R-1", "ann", "100", when),  # the same order again: a duplicate
        OrderInput("R-1", "ann", "999", when),  # the same key, other content
        OrderInput("R-2", "ann", "100", when, points_used=999_999),  # refused after storing: rolled back
        OrderInput("R-2", "ann", "30", when),  # so the key is free for this one
    ], now=when)
    assert [type(r).__name__ for r in results] == ["OrderResult", "OrderResult", "Rejected", "Rejected", "OrderResult"]
    assert (results[1].duplicate, results[1].order_id) == (True, results[0].order_id)
    assert results[2].problems[0].code.value == "DUPLICATE"
    assert results[3].problems[0].code.value == "INSUFFICIENT_POINTS"
    assert (results[4].duplicate, results[4].points) == (False, 30)
    async with db.read() as session:
        stored = (await session.execute(select(Report.id, Report.external_id, Report.amount_fen)
                                        .where(Report.kind == "ORDER").order_by(Report.id))).all()
    assert [(external_id, fen) for _, external_id, fen in stored] == [("R-1", 10000), ("R-2", 3000)]
    assert [stored[0].id, stored[1].id] == [results[0].order_id, results[4].order_id]


@pytest.mark.parametrize("ahead", [False, True], ids=["deferred", "written ahead"])
async def test_many_deferred_rows_breaking_a_key_fail_as_an_insert_would_and_write_nothing(db, program, ahead):
    """A table's many deferred rows go in as one command (COPY on PostgreSQL; on SQLite, one JSON parameter
    when written ahead): one row breaking a UNIQUE key fails them all with the IntegrityError an INSERT gives
    (which a batch's rerun relies on), and the transaction writes none of them."""
    from sqlalchemy.exc import IntegrityError

    member = await _member(db, program)
    async with db.read() as session:
        enrolment = (await session.execute(select(Report).where(Report.kind == "ENROLMENT"))).scalar_one()
    row = dict(program_id=program.id, program_version=program.version, kind="ORDER", member_id=member.id,
               amount_fen=100, occurred_at=START, received_at=START, payload_hash="x")
    with pytest.raises(IntegrityError):
        async with db.write() as session:
            for n in range(24):
                defer_insert(session, Report.__table__, {**row, "external_id": f"D-{n}"})
            defer_insert(session, Report.__table__, {**row, "kind": "ENROLMENT", "external_id": enrolment.external_id})
            if ahead:
                await session.run_sync(write_ahead)
                defer_insert(session, Report.__table__, {**row, "external_id": "D-after"})
    async with db.read() as session:
        assert (await session.execute(select(func.count()).select_from(Report))).scalar_one() == 1


async def test_two_batches_racing_for_the_same_keys_store_one_and_refuse_the_other(db, program):
    """Two batches of other members' orders under the same externalIds, at once: on PostgreSQL neither sees the
    other's reports when it reads its keys, and the one that writes second breaks the key and runs again, each
    report then stored or refused on its own; on SQLite they take turns. Either way one batch is stored whole
    and the other answers DUPLICATE for every order."""
    import asyncio

    await _member(db, program, "ann")
    await _member(db, program, "bob")
    when = START + timedelta(days=1)
    batches = [[OrderInput(f"K-{n}", member, "100", when) for n in range(25)] for member in ("ann", "bob")]
    answers = await asyncio.gather(*(record_orders(db, program, batch, now=when) for batch in batches))
    kinds = sorted(tuple(sorted({type(r).__name__ for r in results})) for results in answers)
    assert kinds == [("OrderResult",), ("Rejected",)]
    refused = next(results for results in answers if type(results[0]).__name__ == "Rejected")
    assert {r.problems[0].code.value for r in refused} == {"DUPLICATE"}
    async with db.read() as session:
        stored = (await session.execute(select(Report.member_id, func.count()).where(Report.kind == "ORDER")
                                        .group_by(Report.member_id))).all()
    assert [count for _, count in stored] == [25]


async def _held_at_the_lock(db, program, monkeypatch, first, second) -> tuple:
    """Run `first` until it has locked its members, then `second` until it waits for a lock `first` holds (on
    PostgreSQL, which runs them side by side) or has committed; then let `first` go on. Their answers."""
    import asyncio

    from sqlalchemy import text

    from tierup.services import orders as order_service

    lock_members, locked, go_on = order_service.lock_members, asyncio.Event(), asyncio.Event()

    async def held(*args, **keywords):
        found = await lock_members(*args, **keywords)
        if not locked.is_set():
            locked.set()
            await go_on.wait()
        return found

    monkeypatch.setattr(order_service, "lock_members", held)
    held_task = asyncio.create_task(first())
    await locked.wait()
    waiting_task = asyncio.create_task(second())
    for _ in range(1000):  # until the second waits on the first's lock, or is done
        async with db.read() as session:
            waiting = (await session.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = "
                "'Lock'"))).scalar_one()
        if waiting or waiting_task.done():
            break
        await asyncio.sleep(0.01)
    go_on.set()
    return await _settled(held_task), await _settled(waiting_task)


async def _settled(task):
    from tierup.domain.errors import Rejected

    try:
        return await task
    except Rejected as rejection:
        return rejection


@pytest.mark.skipif(not POSTGRES_URL, reason="SQLite runs one write transaction at a time")
@pytest.mark.parametrize("batched", [False, True], ids=["refundOrder", "refundOrders"])
async def test_a_refund_sent_again_while_the_first_holds_its_member_is_answered_as_a_repeat(
        db, program, monkeypatch, batched):
    """A client sends a refund again before its first answer came. The second transaction finds the order, then
    waits for the member's lock while the first stores the refund; the refunds stored before are read under
    the lock, so it finds the refund there and answers it as a repeat, neither refused as taking more than is
    left to refund nor failing on the key. The same refund id for another member's order at the same time is
    refused as DUPLICATE."""
    from tierup.services.orders import refund_orders

    for name in ("ann", "bob", "cy"):
        await _member(db, program, name)
        await record_orders(db, program, [OrderInput(f"O-{name}", name, "100", START)], now=START)

    async def refund(external_id: str, order: str):
        request = RefundInput(external_id, order, "100", START)
        if batched:
            return (await refund_orders(db, program, [request], now=START))[0]
        return await refund_order(db, program, request, now=START)

    first, again = await _held_at_the_lock(db, program, monkeypatch, lambda: refund("F-1", "O-ann"),
                                           lambda: refund("F-1", "O-ann"))
    assert (first.duplicate, first.points_reversed, again.duplicate) == (False, 100, True)
    monkeypatch.undo()
    # bob's refund holds bob; cy's, under the same id, stores it meanwhile.
    first, other = await _held_at_the_lock(db, program, monkeypatch, lambda: refund("F-2", "O-bob"),
                                           lambda: refund("F-2", "O-cy"))
    assert (first.problems[0].code.value, other.duplicate) == ("DUPLICATE", False)


@pytest.fixture
async def counting_program(db, clock):
    """The classic ladder with an order-count window too, so that every kind of figure is compared."""
    def edit(document):
        document["ladder"]["tiers"][1]["conditions"].append({"metric": "order_count", "months": 3, "at_least": "4"})
        document["ladder"]["tiers"][2]["conditions"].append({"metric": "average_monthly_orders", "months": 6, "at_least": "2"})
    return await publish_classic(db, clock(), edit, "classic, counting orders")


async def test_tier_metrics_counted_in_memory_equal_the_databases(db, counting_program):
    """Orders over two years, refunds of earlier orders, and an evaluation that restarts the qualification
    period: after each report, at the moment of the report and later, the figures counted in memory from
    the member's state are member_metrics' figures; before a refund was reported the state cannot tell."""
    program = counting_program
    await _member(db, program)

    async def compare(moments) -> None:
        async with db.read() as session:
            member = (await session.execute(select(Member).where(Member.external_id == "ann"))).scalar_one()
            state = (await read_states(session, program.definition, [member.id]))[member.id]
            for as_of in moments:
                database = (await member_metrics(session, program.definition, [member], as_of=as_of))[member.id]
                assert order_metrics(program.definition, state.orders_as_of(as_of), as_of=as_of,
                                     period_started_at=member.qualification_started_at,
                                     growth_value=member.growth_value) == database, as_of
            if state.refunded_until is not None:
                assert state.orders_as_of(state.refunded_until - timedelta(seconds=1)) is None

    for n in range(40):
        paid = START + timedelta(days=23 * n, hours=n % 7)
        await record_orders(db, program, [OrderInput(f"M-{n}", "ann", Decimal(40 + 37 * (n % 9)), paid)], now=paid)
        if n % 6 == 5:  # refund an earlier order
            await refund_order(db, program, RefundInput(f"F-{n}", f"M-{n - 3}", Decimal(20), paid), now=paid)
        if n == 33:  # after the tier reached at the 17th order lapsed
            await evaluate_tiers(db, program, as_of=paid + timedelta(hours=1))
        await compare([paid, paid + timedelta(hours=2), paid + timedelta(days=100), paid + timedelta(days=200)])
    async with db.read() as session:
        assert (await session.execute(select(Member.qualification_started_at))).scalar_one() is not None


async def test_a_batch_uses_the_states_the_batch_before_left_while_nobody_else_changed_the_member(db, program,
                                                                                                  database_url):
    """The state a batch leaves is used by the next batch in this process (no statement reads it again) — but
    not once anything else changed the member: a single order here, or another process. A three-month
    streak completes only if the next batch's state has the order in between."""
    from tierup.services.orders import record_order
    from tierup.store.db import Database
    from tierup.store.models import TaskCompletion

    for name in ("ann", "bob"):
        await enroll_member(db, program, EnrolmentInput(external_id=name, joined_at=START), now=START)
    month = [datetime(2026, m, 10, 2, tzinfo=UTC) for m in (1, 2, 3, 4)]
    now = datetime(2026, 5, 1, tzinfo=UTC)

    async def batch(*orders) -> int:
        with count_statements() as statements:
            results = await record_orders(db, program, list(orders), now=now)
        assert all(not r.duplicate for r in results), results
        return statements[0]

    await batch(OrderInput("A-1", "ann", "10", month[0]), OrderInput("B-1", "bob", "10", month[0]))
    kept = await batch(OrderInput("A-2", "ann", "10", month[0]), OrderInput("B-2", "bob", "10", month[0]))
    await record_order(db, program, OrderInput("A-3", "ann", "10", month[1]), now=now)  # the single path
    other = Database(database_url)  # another process
    try:
        await record_order(other, program, OrderInput("B-3", "bob", "10", month[1]), now=now)
    finally:
        await other.dispose()
    read_again = await batch(OrderInput("A-4", "ann", "10", month[0]), OrderInput("B-4", "bob", "10", month[0]))
    assert read_again == kept + 1  # the same work, and the statement reading the states
    await batch(OrderInput("A-5", "ann", "10", month[2]), OrderInput("B-5", "bob", "10", month[2]))
    async with db.read() as session:
        streaks = (await session.execute(select(TaskCompletion.member_id).where(
            TaskCompletion.task_code == "THREE_MONTH_STREAK"))).scalars().all()
    assert len(streaks) == 2


async def test_a_referred_members_late_order_reaches_the_referrer_in_batches_as_one_by_one(db, program):
    """A referred member's order reported late becomes their first: the referrer's referred first order moves
    back, which a state kept by an earlier batch would not know. Two pairs live the same history, one
    reported order by order and one in batches; the referrer's tasks come out the same."""
    from tierup.services.orders import record_order
    from tierup.store.models import TaskCompletion

    start = datetime(2026, 1, 5, 2, tzinfo=UTC)
    now = datetime(2026, 5, 1, tzinfo=UTC)

    async def live(pair: str, batched: bool) -> list[str]:
        async def report(external_id: str, who: str, paid: datetime) -> None:
            request = OrderInput(f"{pair}-{external_id}", f"{pair}-{who}", "20", paid)
            result = ((await record_orders(db, program, [request], now=now))[0] if batched
                      else await record_order(db, program, request, now=now))
            assert not result.duplicate

        await enroll_member(db, program, EnrolmentInput(external_id=f"{pair}-ref", joined_at=start), now=start)
        async with db.read() as session:
            code = (await session.execute(select(Member.referral_code).where(
                Member.external_id == f"{pair}-ref"))).scalar_one()
        await enroll_member(db, program, EnrolmentInput(external_id=f"{pair}-new", joined_at=start,
                                                        referral_code=code), now=start)
        await report("R-1", "ref", datetime(2026, 1, 10, 2, tzinfo=UTC))
        await report("R-2", "ref", datetime(2026, 2, 10, 2, tzinfo=UTC))
        await report("N-1", "new", datetime(2026, 4, 20, 2, tzinfo=UTC))  # the referred member's first order
        await report("R-3", "ref", datetime(2026, 4, 21, 2, tzinfo=UTC))
        await record_order(db, program, OrderInput(f"{pair}-N-0", f"{pair}-new", "20",  # reported late
                                                   datetime(2026, 3, 1, 2, tzinfo=UTC)), now=now)
        await report("R-4", "ref", datetime(2026, 3, 5, 2, tzinfo=UTC))  # January, February, March
        async with db.read() as session:
            return sorted((await session.execute(select(TaskCompletion.task_code).join(
                Member, Member.id == TaskCompletion.member_id).where(Member.external_id == f"{pair}-ref"))).scalars())

    one_by_one = await live("a", batched=False)
    assert one_by_one == ["FIRST_ORDER", "REFER_A_FRIEND", "THREE_MONTH_STREAK"]
    assert await live("b", batched=True) == one_by_one


async def test_a_key_freed_by_a_refused_order_and_used_again_runs_the_batch_once(db, program, monkeypatch):
    """The refused order's report id is given back: the ids reserved for the batch last, and no report is
    given an id another one holds (which would run the whole batch a second time)."""
    from tierup.services import orders as orders_service

    for name in ("ann", "bob"):
        await enroll_member(db, program, EnrolmentInput(external_id=name, joined_at=START), now=START)
    when = START + timedelta(days=1)
    await record_orders(db, program, [OrderInput("B-0", "bob", "10", when)], now=when)
    runs = []
    batch = orders_service._record_batch

    async def counted(*args, **kwargs):
        runs.append(kwargs["deferred"])
        return await batch(*args, **kwargs)
    monkeypatch.setattr(orders_service, "_record_batch", counted)
    results = await record_orders(db, program, [
        OrderInput("X", "ann", "10", when, coupon_codes=("NOPE",)),  # stored, refused, rolled back
        OrderInput("X", "bob", "10", when),  # the key is free again
        OrderInput("Y", "bob", "10", when)], now=when)
    assert runs == [True]
    assert [type(r).__name__ for r in results] == ["Rejected", "OrderResult", "OrderResult"]
    async with db.read() as session:
        stored = (await session.execute(select(Report.external_id, Member.external_id).join(
            Member, Member.id == Report.member_id).where(Report.kind == "ORDER").order_by(Report.id))).all()
    assert [tuple(row) for row in stored] == [("B-0", "bob"), ("X", "bob"), ("Y", "bob")]


async def test_a_batch_of_refunds_rejects_only_the_bad_ones_and_counts_its_own_refunds(db, program):
    """refund_orders judges each refund before it writes anything, against what the refunds before it in the
    batch left: a bad one is refused alone, a repeat is a duplicate, the rest apply in order."""
    from tierup.services.orders import refund_orders
    from tierup.store.models import PointsEntry

    await _member(db, program)
    paid = START + timedelta(days=1)
    earned = [r.points for r in await record_orders(db, program, [OrderInput("O-1", "ann", Decimal(100), paid),
                                                                  OrderInput("O-2", "ann", Decimal(50), paid)],
                                                    now=paid)]
    async with db.read() as session:
        rows_before = (await session.execute(select(func.count()).select_from(PointsEntry))).scalar_one()
    later = paid + timedelta(days=2)
    results = await refund_orders(db, program, [
        RefundInput("F-1", "O-1", "30", later),
        RefundInput("F-2", "O-9", "10", later),  # no such order
        RefundInput("F-3", "O-1", "80", later),  # 70 is left after F-1
        RefundInput("F-1", "O-1", "30", later),  # sent again
        RefundInput("F-1", "O-1", "31", later),  # its id reused for another refund
        RefundInput("F-4", "O-2", "50", paid - timedelta(hours=1)),  # before the order was paid
        RefundInput("F-5", "O-1", "70", later),  # all that is left
    ], now=later)
    told = [("refused", [p.code.value for p in r.problems]) if hasattr(r, "problems") else
            ("duplicate" if r.duplicate else r.points_reversed) for r in results]
    first = earned[0] * 30 // 100
    assert told == [first, ("refused", ["NOT_FOUND"]), ("refused", ["INVALID"]), "duplicate",
                    ("refused", ["DUPLICATE"]), ("refused", ["INVALID"]), earned[0] - first]
    async with db.read() as session:
        refunds = (await session.execute(select(Report.external_id, Report.amount_fen).where(
            Report.kind == "REFUND").order_by(Report.id))).all()
        reversed_ = (await session.execute(select(PointsEntry.amount).where(PointsEntry.kind == "REVERSE")
                                           .order_by(PointsEntry.id))).scalars().all()
        rows_after = (await session.execute(select(func.count()).select_from(PointsEntry))).scalar_one()
    assert refunds == [("F-1", 3000), ("F-5", 7000)]
    assert reversed_ == [-first, -(earned[0] - first)]
    assert rows_after == rows_before + 2


async def test_members_written_together_leave_a_change_of_another_column_to_the_flush(db, program):
    """write_members writes the members changed only in the columns it names, with one UPDATE, and the ORM forgets
    them; a member changed in another column too is left to the flush, which writes all of its changes."""
    ann, bob = await _member(db, program, "ann"), await _member(db, program, "bob")
    async with db.write() as session:
        loaded = {m.external_id: m for m in (await session.execute(
            select(Member).where(Member.id.in_([ann.id, bob.id])))).scalars()}
        loaded["ann"].tier_code = "SILVER"
        loaded["bob"].tier_code, loaded["bob"].display_name = "GOLD", "Bob"
        with count_statements() as statements:
            await store.write_members(session, loaded.values(), ("tier_code", "growth_value"))
        assert statements[0] == 1
        assert [m.external_id for m in loaded.values() if m in session] == ["bob"]
    async with db.read() as session:
        stored = (await session.execute(
            select(Member.external_id, Member.tier_code, Member.display_name, Member.version)
            .where(Member.id.in_([ann.id, bob.id])).order_by(Member.external_id))).all()
    # Both changed members' versions rise, as a flush's would.
    assert [tuple(row) for row in stored] == [("ann", "SILVER", None, ann.version + 1),
                                              ("bob", "GOLD", "Bob", bob.version + 1)]
