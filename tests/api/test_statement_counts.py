"""No query in a loop: a page of members costs the same statements for 1 member as for 100."""

import contextlib
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Iterator

import pytest
from sqlalchemy import event, select

from conftest import POSTGRES_URL
from helpers import publish_classic, publish_classic_ladder_only
from tierup.services.expiry import expire_points, remind_expiring
from tierup.services.growth import load_states
from tierup.services.members import EnrolmentInput, enroll_member
from tierup.services.orders import OrderInput, record_order, record_orders
from tierup.store.db import count_statements
from tierup.programs import bundled_program_path, load_program_file
from tierup.services.programs import publish_program
from tierup.store.models import Member, MemberBadge, QuestPass, Report, TaskCompletion, TierChange


@pytest.fixture
async def program(db, clock):
    """These rules are the ladder's and the ledger's: the growth tree stays out of the figures."""
    return await publish_classic_ladder_only(db, clock())


DASHBOARD = """
query($first: Int!) {
  members(first: $first) {
    totalCount
    edges { node { externalId tier { code name } points { balance } nextTier { tier { code } conditions { current target met } } } }
  }
}"""


async def test_member_page_statements_do_not_grow_with_the_page(api, db, program, clock):
    when = datetime(2026, 2, 1, tzinfo=timezone.utc)
    for i in range(100):
        await enroll_member(db, program, EnrolmentInput(external_id=f"m{i:03}"), now=clock())
        if i % 3 == 0:
            await record_order(db, program, OrderInput(f"O-{i}", f"m{i:03}", Decimal(50 + i * 7), when), now=when)

    await api.as_operator(DASHBOARD, {"first": 1})  # the program's definition is read once per process
    counts = {}
    for first in (1, 100):
        with count_statements() as statements:
            result = await api.as_operator(DASHBOARD, {"first": first})
        assert "errors" not in result
        assert len(result["data"]["members"]["edges"]) == first
        counts[first] = statements[0]
    assert counts[1] == counts[100]
    assert counts[100] <= 4  # program version, page with its count, balances, metrics


RECORD_ORDER = """mutation($i: RecordOrderInput!) {
  recordOrder(input: $i) { order { pointsEarned } userErrors { code } } }"""


async def test_an_order_costs_a_bounded_number_of_statements(api, clock):
    """The write path's budget: the program's version, the member's lock, the report, the member's state in one
    statement, the tier metrics, the ledger entry and the member's version — however long the member's history.
    The answer reads nothing back: the order is answered as written, and the query does not ask for the member."""
    await api.as_service("mutation { enrollMember(input: {externalId: \"stmt-ann\"}) { userErrors { code } } }")
    counts = []
    for n in range(12):
        sent = {"externalId": f"stmt-O-{n}", "memberExternalId": "stmt-ann", "amount": "120.00",
                "paidAt": f"2026-01-0{1 + n % 4}T12:00:00+08:00"}
        with count_statements() as statements:
            answer = await api.as_service(RECORD_ORDER, {"i": sent})
        assert answer["data"]["recordOrder"]["userErrors"] == [], answer
        counts.append(statements[0])
    # An order that upgrades writes the tier change and reads the metrics again; the rest write only their rows.
    # (On PostgreSQL the member's version goes up in the caller's transaction: one statement more.)
    assert sorted(counts)[len(counts) // 2] <= 7, counts
    assert max(counts) <= 9, counts


async def test_a_batch_of_plain_orders_needs_no_savepoints(db, program, clock):
    """An order paid with money alone cannot be refused once stored, so a batch gives it no savepoint: its
    report, its ledger entry and the tier metrics, and a few statements for the whole batch."""
    when = clock()
    for i in range(10):
        await enroll_member(db, program, EnrolmentInput(external_id=f"b{i}"), now=when)
    orders = [OrderInput(f"B-{n}", f"b{n % 10}", Decimal("35.50"), when) for n in range(60)]
    with count_statements() as statements:
        results = await record_orders(db, program, orders, now=when)
    assert [r.points for r in results] == [35] * 60
    assert statements[0] <= 3 * 60 + 10, statements[0]


async def test_a_batch_sent_again_reads_no_members_state(db, program, clock):
    """A batch sent again (an import run again after it stopped half-way, by a new process that has kept
    nothing) answers its orders as repeats after reading its members and orders, and no member's state; the
    members' versions stay as they were."""
    from tierup.store.db import Database

    when = clock()
    for i in range(10):
        await enroll_member(db, program, EnrolmentInput(external_id=f"b{i}"), now=when)
    orders = [OrderInput(f"B-{n}", f"b{n % 10}", Decimal("35.50"), when) for n in range(60)]
    await record_orders(db, program, orders, now=when)
    async with db.read() as session:
        versions = dict((await session.execute(select(Member.external_id, Member.version))).all())
    again = Database(str(db.url))
    try:
        with count_statements() as statements:
            results = await record_orders(again, program, orders, now=when)
    finally:
        await again.dispose()
    assert [r.duplicate for r in results] == [True] * 60
    assert statements[0] == 2  # the members locked, the orders looked up
    async with db.read() as session:
        assert dict((await session.execute(select(Member.external_id, Member.version))).all()) == versions


async def test_a_batch_writes_what_the_growth_tree_gives_together(db, clock):
    """Tasks completed, quest levels passed, rewards (badges among them) and upgrades add no statements per order:
    their rows are written with the batch's, one statement per table, and the members' changes at the commit."""
    when = clock()
    program = (await publish_program(db, load_program_file(bundled_program_path("classic")), published_by="test",
                                     now=when)).program
    for i in range(10):
        await enroll_member(db, program, EnrolmentInput(external_id=f"g{i}"), now=when)
    spring = datetime(2026, 4, 1, 12, tzinfo=timezone.utc)  # the classic program's quest runs in spring
    orders = [OrderInput(f"G-{n}", f"g{n % 10}", Decimal("150.00"), spring) for n in range(100)]  # past level 2: a badge
    with count_statements() as statements:
        results = await record_orders(db, program, orders, now=spring)
    assert all(r.points > 0 for r in results)
    async with db.read() as session:
        written = {model.__name__: len((await session.execute(select(model.id))).all())
                   for model in (TaskCompletion, QuestPass, TierChange, MemberBadge)}
    assert min(written.values()) >= 10, written
    # Begin; the members, their states and the batch's reports; the reports' ids; one insert per table (reports,
    # ledger, tier changes, task completions, quest passes, badges); the members' changes and their versions.
    assert statements[0] <= 13, statements[0]


async def test_a_rewards_coupons_are_written_with_the_batch(db, clock):
    """A task whose reward is a coupon gives each member of a batch theirs, written together: the batch costs
    the same statements for six first orders as for two."""
    from tierup.store.models import Coupon

    when = clock()
    program = await publish_classic(db, when, lambda doc: doc["tasks"][0]["reward"].update(
        coupon="REWARD_5_OFF_50"), "classic, a coupon for the first order")
    statements = []
    for size in (2, 6):
        for i in range(size):
            await enroll_member(db, program, EnrolmentInput(external_id=f"r{size}-{i}"), now=when)
        with count_statements() as counted:
            await record_orders(db, program, [OrderInput(f"R{size}-{i}", f"r{size}-{i}", Decimal("20.00"), when)
                                              for i in range(size)], now=when)
        statements.append(counted[0])
    async with db.read() as session:
        given = (await session.execute(select(Coupon.member_id, Coupon.issued_at).where(
            Coupon.template_code == "REWARD_5_OFF_50", Coupon.source == "TASK"))).all()
    assert len({member for member, _ in given}) == len(given) == 8 and {at for _, at in given} == {when}
    assert statements[0] == statements[1], statements


async def test_members_changed_in_different_ways_are_written_in_one_statement(db, clock):
    """Some members of a batch upgrade, others only gain growth value from a task: all are written by one
    UPDATE, not one per member whose changed columns differ from its neighbour's."""
    when = clock()
    program = (await publish_program(db, load_program_file(bundled_program_path("classic")), published_by="test",
                                     now=when)).program
    for i in range(10):
        await enroll_member(db, program, EnrolmentInput(external_id=f"w{i}"), now=when)
    orders = [OrderInput(f"W-{n}", f"w{n}", Decimal("3000.00" if n % 2 else "20.00"), when) for n in range(10)]
    with count_statements() as statements:
        results = await record_orders(db, program, orders, now=when)
    assert [r.upgraded_to and r.upgraded_to.code for r in results] == ["DIAMOND" if n % 2 else None for n in range(10)]
    async with db.read() as session:
        completed = (await session.execute(select(TaskCompletion.member_id))).scalars().all()
    assert len(set(completed)) == 10  # every member's first order completes a task, whose reward is growth
    assert statements[0] <= 12, statements[0]


async def test_an_order_paying_with_points_keeps_its_savepoint(db, program, clock):
    """Points are judged after the report is stored: an order short of them rolls back alone."""
    when = clock()
    await enroll_member(db, program, EnrolmentInput(external_id="p1"), now=when)
    results = await record_orders(db, program, [
        OrderInput("P-1", "p1", Decimal("100"), when),
        OrderInput("P-2", "p1", Decimal("100"), when, points_used=99_999),
        OrderInput("P-3", "p1", Decimal("100"), when)], now=when)
    assert [getattr(r, "points", None) for r in results] == [100, None, 100]
    assert results[1].problems[0].code.value == "INSUFFICIENT_POINTS"
    async with db.read() as session:
        stored = (await session.execute(select(Report.external_id).where(Report.kind == "ORDER")
                                        .order_by(Report.external_id))).scalars().all()
    assert stored == ["P-1", "P-3"]


async def test_an_evaluation_costs_the_same_statements_for_2_members_as_for_20(db, program):
    """An evaluation writes its renewals' tier changes together (deferred rows) and its members, kept or lowered,
    in one UPDATE: 20 members due cost the statements 2 do."""
    from datetime import timedelta

    from tierup.services.tiers import evaluate_tiers

    counts = {}
    for members, start in ((2, datetime(2025, 1, 10, 2, tzinfo=timezone.utc)),
                           (20, datetime(2025, 3, 10, 2, tzinfo=timezone.utc))):
        later = start + timedelta(days=200)
        for i in range(members):
            name = f"e{members}-{i}"
            await enroll_member(db, program, EnrolmentInput(external_id=name, joined_at=start), now=start)
            # ¥3,000 in twelve months: DIAMOND, kept by half of them, who spend as much again within the year;
            # the others, left with ¥3,000 spent in the period and nothing in the last twelve months, go to GOLD.
            await record_order(db, program, OrderInput(f"E1-{name}", name, Decimal(3000), start), now=start)
            if i % 2:
                await record_order(db, program, OrderInput(f"E2-{name}", name, Decimal(3000), later), now=later)
        with count_statements() as statements:
            result = await evaluate_tiers(db, program, as_of=start + timedelta(days=400))
        counts[members] = statements[0]
        assert (result.evaluated, result.kept, result.downgraded) == (members, members // 2, members // 2)
    assert counts[2] == counts[20], counts


async def _enrolled(db, program, names: list[str], ordering: list[str], paid: datetime) -> None:
    """The members `names`, each of `ordering` with a ¥100 order O-{name} paid at `paid`."""
    for name in names:
        await enroll_member(db, program, EnrolmentInput(external_id=name), now=paid)
    await record_orders(db, program, [OrderInput(f"O-{name}", name, Decimal(100), paid) for name in ordering],
                        now=paid)


async def test_a_batch_of_refunds_reads_what_its_orders_need_once(db, program, clock):
    """refund_orders reads its orders, their members, what was refunded, earned and spent, and the members'
    states and open lots once for the batch; each refund then defers its report, its REVERSE entry and the
    lots it draws from with the batch's rows: a batch of 20 costs the statements of one of 2. (One by one, a
    refund once cost 15; then three each, written at once.)"""
    from tierup.services.orders import RefundInput, refund_orders

    paid = clock()
    counts = {}
    for refunds in (2, 20):
        names = [f"r{refunds}-{i}" for i in range(refunds)]
        await _enrolled(db, program, names, names, paid)
        with count_statements() as statements:
            results = await refund_orders(db, program, [RefundInput(f"F-{name}", f"O-{name}", Decimal(40), paid)
                                                        for name in names], now=paid)
        assert [r.points_reversed for r in results] == [40] * refunds
        counts[refunds] = statements[0]
    assert counts[20] == counts[2], counts


async def test_refunds_among_a_batchs_orders_cost_no_statement_each(db, program, clock):
    """Refunds sent after orders in one batch (an import's history, in time order) apply in memory: a refund of
    an order of the batch, or of one stored before, is known as written, its reversal draws from the lots the
    batch knows, and its rows go with the batch's. A batch with 20 of them costs the statements of one with 2,
    and each refund takes back what it took from its own order's lot, as a refund reported alone does."""
    from tierup.services.orders import RefundInput
    from tierup.store.models import LotDraw, PointsEntry

    paid = clock()
    counts = {}
    for refunds in (2, 20):
        names = [f"i{refunds}-{i}" for i in range(refunds)]
        # Half the orders refunded were stored before the batch, half are the batch's own.
        await _enrolled(db, program, names, names[::2], paid)
        batch = [OrderInput(f"O-{name}", name, Decimal(100), paid) for name in names[1::2]]
        batch += [RefundInput(f"F-{name}", f"O-{name}", Decimal(40), paid) for name in names]
        with count_statements() as statements:
            results = await record_orders(db, program, batch, now=paid)
        assert [r.points for r in results[:refunds // 2]] == [100] * (refunds // 2)
        assert [r.points_reversed for r in results[refunds // 2:]] == [40] * refunds
        counts[refunds] = statements[0]
        async with db.read() as session:
            drawn = (await session.execute(
                select(Member.external_id, PointsEntry.kind, LotDraw.amount)
                .join(PointsEntry, PointsEntry.id == LotDraw.lot_entry_id).join(Member, Member.id == LotDraw.member_id)
                .where(Member.external_id.in_(names)).order_by(Member.external_id))).all()
        assert sorted(drawn) == sorted((name, "EARN", 40) for name in names)
    assert counts[2] == counts[20], counts


async def test_expiring_points_costs_the_same_statements_for_2_members_as_for_20(db, program, clock):
    """The expiry job reads a batch's lots and balances at once and writes its EXPIRE entries and their draws
    together: what each member is left with is exact, and the statements do not grow with the members."""
    from tierup.services.ledger import balances_of
    from tierup.store.models import LotDraw, PointsEntry

    earned = datetime(2025, 1, 10, tzinfo=timezone.utc)  # expires at the end of January 2026 (Asia/Shanghai)
    counts = {}
    for members, as_of in ((2, datetime(2026, 2, 2, tzinfo=timezone.utc)), (20, datetime(2026, 2, 3, tzinfo=timezone.utc))):
        ids = []
        for i in range(members):
            ids.append((await enroll_member(db, program, EnrolmentInput(external_id=f"x{members}-{i}"), now=earned)
                        ).member_id)
            await record_order(db, program, OrderInput(f"X{members}-{i}", f"x{members}-{i}", Decimal(100 + i), earned),
                               now=earned)
        with count_statements() as statements:
            run = await expire_points(db, program, as_of=as_of)
        counts[members] = statements[0]
        assert run.members_affected == members
        assert run.points_expired == sum(100 + 100 + i for i in range(members))  # welcome points and the order's
        async with db.read() as session:
            assert set((await balances_of(session, ids)).values()) == {0}
            expired = (await session.execute(select(PointsEntry.amount, PointsEntry.balance_after).where(
                PointsEntry.member_id == ids[-1], PointsEntry.kind == "EXPIRE"))).all()
            drawn = (await session.execute(select(LotDraw.amount).join(PointsEntry, PointsEntry.id == LotDraw.entry_id)
                                           .where(PointsEntry.member_id == ids[-1]))).scalars()
        assert expired == [(-(200 + members - 1), 0)]
        assert sorted(drawn) == [100, 100 + members - 1]  # the welcome lot and the order's
    assert counts[2] == counts[20]


@contextlib.contextmanager
def statements_run(db) -> Iterator[list[tuple[str, Any]]]:
    """The statements the database is sent inside the block, with their parameters."""
    statements: list[tuple[str, Any]] = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    event.listen(db.engine.sync_engine, "before_cursor_execute", keep)
    try:
        yield statements
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", keep)


async def query_plan(session, statement: str, parameters: Any) -> list[str]:
    """SQLite's plan of a statement: a step per row, such as "SEARCH members USING INDEX …"."""
    return [row[-1] for row in (await (await session.connection()).exec_driver_sql(
        "EXPLAIN QUERY PLAN " + statement, parameters)).all()]


@pytest.mark.skipif(bool(POSTGRES_URL), reason="PostgreSQL plans by statistics: a small table is scanned whatever its indexes")
async def test_one_members_state_is_read_by_indexes_without_scanning_a_table(db, program, clock):
    """Every order reported alone, every refund, reads its member's state: a scan of a table there (the members,
    for those a member referred) costs each report more the larger the program grows."""
    await enroll_member(db, program, EnrolmentInput(external_id="ref-ann"), now=clock())
    async with db.write() as session:
        ann = (await session.execute(select(Member).where(Member.external_id == "ref-ann"))).scalar_one()
        with statements_run(db) as statements:
            await load_states(session, program, [ann.id])
        (statement, parameters), = statements
        plan = await query_plan(session, statement, parameters)
    scans = [step for step in plan if step.startswith("SCAN ") and not step.startswith("SCAN anon_")]
    assert any(step.startswith("SEARCH members USING") and "ix_members_referred_by" in step for step in plan)
    assert scans == []


@pytest.mark.skipif(bool(POSTGRES_URL), reason="PostgreSQL plans by statistics: a small table is scanned whatever its indexes")
@pytest.mark.parametrize("since", [None, datetime(2027, 1, 1, tzinfo=timezone.utc)], ids=["job", "import"])
async def test_the_expiry_job_finds_its_members_by_when_their_lots_expire_without_scanning_the_ledger(db, program,
                                                                                                     since):
    """The job runs every interval (and an import runs it every month of the history it brings): a scan of the
    ledger there costs each run more the longer the program has run. With `since` (the import's), the members
    are found among the lots due after it alone."""
    joined = datetime(2026, 1, 5, 2, tzinfo=timezone.utc)
    await enroll_member(db, program, EnrolmentInput(external_id="ann", joined_at=joined), now=joined)
    with statements_run(db) as statements:
        run = await expire_points(db, program, as_of=datetime(2027, 2, 1, tzinfo=timezone.utc), since=since)
    assert (run.members_affected, run.points_expired) == (1, 100)  # the welcome points, earned in January 2026
    finding = [(statement, parameters) for statement, parameters in statements
               if statement.startswith("SELECT DISTINCT points_entries.member_id")]
    assert len(finding) == 2  # the members with lots due, then those with lots due within the reminders' 30 days
    async with db.read() as session:
        for statement, parameters in finding:
            plan = await query_plan(session, statement, parameters)
            assert [step for step in plan if step.startswith("SCAN ")] == []
            assert any("USING INDEX ix_points_entries_expiring (program_id=? AND expires_at" in step for step in plan)
    # Run again, it finds nobody: ann's lot expired and holds nothing, so her lots are not read again.
    with statements_run(db) as statements:
        again = await expire_points(db, program, as_of=datetime(2027, 2, 1, tzinfo=timezone.utc), since=since)
    assert (again.members_affected, again.points_expired) == (0, 0)
    assert [statement for statement, _ in statements if "FROM points_entries" in statement] == [
        statement for statement, _ in finding]


async def test_expiry_reminders_are_inserted_together_whatever_their_number(db, program):
    """A month's start reminds every member of the lots expiring within 30 days: one INSERT for them all
    (SQLAlchemy sends a multi-row INSERT for every thousand), not one a reminder, which cost the job half a
    millisecond each. Run again, the same INSERT finds them all there and nobody is reminded twice."""
    joined = datetime(2026, 1, 5, 2, tzinfo=timezone.utc)
    for name in ("ann", "bo", "cy"):
        await enroll_member(db, program, EnrolmentInput(external_id=name, joined_at=joined), now=joined)
    as_of = datetime(2027, 1, 10, tzinfo=timezone.utc)  # the welcome lots expire on 2027-02-01 (program time)
    for expected in (3, 0):
        with statements_run(db) as statements:
            assert await remind_expiring(db, program, as_of=as_of) == expected
        inserts = [statement for statement, _ in statements if statement.startswith("INSERT INTO notifications")]
        assert len(inserts) == 1


async def test_states_of_more_members_than_one_statement_names_are_read_alike(db, clock, monkeypatch):
    """A statement reads the states of at most STATES_PER_STATEMENT members (it names each id a dozen times, past
    what PostgreSQL takes for an import's batch): more take one statement each that many, and read the same."""
    from tierup.services import activity

    when = clock()
    program = (await publish_program(db, load_program_file(bundled_program_path("classic")), published_by="test",
                                     now=when)).program
    for i in range(5):
        await enroll_member(db, program, EnrolmentInput(external_id=f"s{i}"), now=when)
    spring = datetime(2026, 4, 1, 12, tzinfo=timezone.utc)  # orders complete tasks and pass the spring quest's levels
    await record_orders(db, program, [OrderInput(f"S-{n}", f"s{n % 5}", Decimal(100 + 150 * n), spring)
                                      for n in range(12)], now=spring)
    async with db.read() as session:
        ids = sorted((await session.execute(select(Member.id))).scalars())
        whole = await load_states(session, program, ids)
        monkeypatch.setattr(activity, "STATES_PER_STATEMENT", 2)
        with count_statements() as statements:
            chunked = await load_states(session, program, ids)
    assert statements[0] == 3
    assert chunked == whole
    assert all(state.activity.orders and state.completions for state in whole.values())
    assert sum(len(levels) for state in whole.values() for levels in state.passes.values()) >= 5
