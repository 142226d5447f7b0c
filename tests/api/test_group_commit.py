"""Group commit: concurrent write transactions of one process share one SQLite transaction, each in a
savepoint of its own; a report that fails rolls back only itself, and each answer waits for the commit."""

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select

from conftest import POSTGRES_URL, START
from helpers import enroll, member_view
from tierup.domain.errors import ErrorCode, Rejected
from tierup.services.orders import OrderInput, record_order
from tierup.store.models import Report

PAID = START - timedelta(hours=1)
sqlite_only = pytest.mark.skipif(bool(POSTGRES_URL), reason="PostgreSQL runs concurrent transactions side by side")


def report(external_id: str, member: str, amount: str = "100") -> OrderInput:
    return OrderInput(external_id, member, Decimal(amount), PAID)


async def recorded(db, external_id: str) -> int:
    async with db.read() as session:
        return (await session.execute(select(func.count()).select_from(Report).where(
            Report.external_id == external_id))).scalar_one()


class Holder:
    """A write transaction that stays open until released, so that others queue behind it."""

    def __init__(self, db):
        self.db, self.inside, self.release = db, asyncio.Event(), asyncio.Event()

    async def __call__(self) -> None:
        async with self.db.write():
            self.inside.set()
            await self.release.wait()


async def settled(tasks) -> None:
    """Let every task run up to its first wait (all are queued for the group by then)."""
    for _ in range(3):
        await asyncio.sleep(0)
    assert not any(task.done() for task in tasks)


async def in_one_group(db, coroutines) -> list[asyncio.Task]:
    """Run the use cases while a write transaction is held open, so that all of them queue for one group, then let
    the group commit; their tasks, each to be awaited for its answer or its error."""
    holder = Holder(db)
    first = asyncio.create_task(holder())
    await holder.inside.wait()
    tasks = [asyncio.create_task(coroutine) for coroutine in coroutines]
    await settled(tasks)
    holder.release.set()
    await first
    return tasks


async def test_concurrent_reports_with_one_bad_one_lose_nothing_but_it(api, db, program, clock):
    members = ("ann", "bob", "cy")
    for member in (*members, *(m + "-alone" for m in members)):
        await enroll(api, member)
    good = [report(f"G-{n}", members[n % 3], str(100 + n)) for n in range(12)]
    bad = report("BAD-1", "nobody")
    outcomes = await asyncio.gather(*[record_order(db, program, r, now=clock()) for r in (*good[:6], bad, *good[6:])],
                                    return_exceptions=True)
    rejected = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(rejected) == 1 and isinstance(rejected[0], Rejected)
    assert rejected[0].problems[0].code == ErrorCode.NOT_FOUND
    assert [o.points for o in outcomes if not isinstance(o, BaseException)] == [100 + n for n in range(12)]
    assert await recorded(db, "BAD-1") == 0
    for r in good:  # the same reports one at a time, for twins of the members
        await record_order(db, program, report("alone-" + r.external_id, r.member_external_id + "-alone",
                                               str(r.amount)), now=clock())
    for member in members:
        together, alone = await member_view(api, member), await member_view(api, member + "-alone")
        assert together["orders"]["totalCount"] == 4
        assert (together["tier"], together["points"]["balance"]) == (alone["tier"], alone["points"]["balance"])


@sqlite_only
async def test_reports_waiting_together_share_one_commit(db, program, clock, api):
    await enroll(api, "ann")
    commits = []
    event.listen(db.engine.sync_engine, "commit", lambda conn: commits.append(conn))
    *reports, clash = await in_one_group(db, [
        *(record_order(db, program, report(f"R-{n}", "ann"), now=clock()) for n in range(5)),
        record_order(db, program, report("R-0", "ann", "999"), now=clock())])
    results = await asyncio.gather(*reports)
    with pytest.raises(Rejected) as refused:
        await clash
    assert refused.value.problems[0].code == ErrorCode.DUPLICATE
    assert [r.points for r in results] == [100] * 5
    assert len(commits) == 1  # the holder, five reports and the refused one: one transaction


@sqlite_only
async def test_an_answer_waits_for_its_group_to_commit(db, program, clock, api):
    await enroll(api, "ann")
    reported = asyncio.create_task(record_order(db, program, report("W-1", "ann"), now=clock()))
    holder = Holder(db)
    after = asyncio.create_task(holder())
    await holder.inside.wait()  # the report's savepoint is done; the group is still open
    assert not reported.done()
    assert await recorded(db, "W-1") == 0  # not committed: nobody may be told it was recorded
    holder.release.set()
    await after
    assert (await reported).points == 100
    assert await recorded(db, "W-1") == 1


def failing_write(db, program, clock, external_id: str):
    async def fails() -> None:
        async with db.write() as session:
            session.add(Report(program_id=program.id, program_version=program.version, kind="ORDER",
                               external_id=external_id, member_id=None, occurred_at=PAID, received_at=clock(),
                               payload_hash="x"))
            await session.flush()
            raise RuntimeError("the use case broke after writing")
    return fails()


@sqlite_only
@pytest.mark.parametrize("place", ["first", "after another"])
async def test_a_failed_write_in_a_group_leaves_the_rest_committed(db, program, clock, api, place):
    await enroll(api, "ann")
    holder = Holder(db)
    if place == "after another":  # the failing one gets a savepoint; first, it gets the transaction to itself
        first = asyncio.create_task(holder())
        await holder.inside.wait()
    broken = asyncio.create_task(failing_write(db, program, clock, "F-1"))
    good = asyncio.create_task(record_order(db, program, report("F-2", "ann"), now=clock()))
    if place == "after another":
        await settled([broken, good])
        holder.release.set()
        await first
    with pytest.raises(RuntimeError):
        await broken
    assert (await good).points == 100
    assert (await recorded(db, "F-1"), await recorded(db, "F-2")) == (0, 1)


async def test_a_rolled_back_turn_leaves_nothing_the_next_turn_could_count(api, db, program):
    """A refused report rolled back in its savepoint gives its id back on SQLite: the next turn in the group,
    for the same member, must not find it in the transaction's journal (a streak of months never bought)."""
    from datetime import datetime

    from tierup.store.models import TaskCompletion

    def paid(day: str) -> datetime:
        return datetime.fromisoformat(f"{day}T10:00:00+08:00")

    now = paid("2026-04-01")

    for name in ("ann", "bob"):
        await enroll(api, name)
    await record_order(db, program, OrderInput("J-1", "ann", "10", paid("2026-01-10")), now=now)
    results = await asyncio.gather(
        record_order(db, program, OrderInput("B-1", "bob", "10", paid("2026-01-10")), now=now),
        record_order(db, program, OrderInput("F-1", "ann", "10", paid("2026-02-10"), coupon_codes=("NOPE",)), now=now),
        record_order(db, program, OrderInput("M-1", "ann", "10", paid("2026-03-10")), now=now),
        return_exceptions=True)
    assert [type(r).__name__ for r in results] == ["OrderResult", "Rejected", "OrderResult"]
    async with db.read() as session:
        tasks = set((await session.execute(select(TaskCompletion.task_code))).scalars())
    assert "THREE_MONTH_STREAK" not in tasks


@sqlite_only
async def test_a_batch_failing_in_a_group_leaves_no_trace_in_the_state_the_next_batch_takes(
        api, db, program, clock, monkeypatch):
    """A batch keeps the states it leaves for the next; in one group the second batch takes the first one's and
    changes it in place. When the second then fails, its savepoint's rollback must not hand that state on: a
    third batch would count the failed batch's ¥1,800 (GOLD, and thousands of points never earned)."""
    from tierup.services import orders as order_service
    from tierup.services.orders import record_orders

    await enroll(api, "ann")
    keep_states = order_service.keep_states
    batches_ended = []

    def second_batch_fails(*args):
        batches_ended.append(1)
        if len(batches_ended) == 2:
            raise RuntimeError("the second batch fails at its end")
        return keep_states(*args)

    monkeypatch.setattr(order_service, "keep_states", second_batch_fails)
    batches = await in_one_group(db, [record_orders(db, program, [report(f"K-{n}", "ann", amount)], now=clock())
                                      for n, amount in ((1, "300"), (2, "1800"))])
    assert [(await batch)[0].points for batch in batches[:1]] == [300]
    with pytest.raises(RuntimeError):
        await batches[1]
    third = (await record_orders(db, program, [report("K-3", "ann", "100")], now=clock()))[0]
    assert third.points == 200  # at SILVER's 2× (¥300 reached it), not GOLD's 3×
    member = await member_view(api, "ann")
    assert (member["tier"]["code"], member["points"]["balance"]) == ("SILVER", 100 + 300 + 50 + 200)


@sqlite_only
async def test_refund_batches_and_a_single_order_in_one_group_each_take_ids_of_their_own(
        api, db, program, clock, monkeypatch):
    """A batch with refunds gives its reports and ledger entries their ids before they are written (counted on
    from the highest); the use cases after it in the group's transaction let SQLite number their rows. So the
    numbering ends with the batch: a second batch in the same group counts again after the single order's
    report, and nothing runs twice for a clash of ids."""
    from tierup.services import orders as order_service
    from tierup.services.orders import RefundInput, record_orders, refund_orders

    for name in ("ann", "bob"):
        await enroll(api, name)
    await record_orders(db, program, [report("G-1", "ann", "100"), report("G-2", "bob", "100")], now=clock())
    batch = order_service._record_batch
    runs = []

    async def counted(*args, deferred, **keywords):
        runs.append(deferred)
        return await batch(*args, deferred=deferred, **keywords)

    monkeypatch.setattr(order_service, "_record_batch", counted)
    tasks = await in_one_group(db, [refund_orders(db, program, [RefundInput("GF-1", "G-1", "40", PAID)], now=clock()),
                                    record_order(db, program, report("G-3", "bob", "100"), now=clock()),
                                    refund_orders(db, program, [RefundInput("GF-2", "G-2", "40", PAID)], now=clock())])
    first_refund, order, second_refund = [await task for task in tasks]
    assert (first_refund[0].points_reversed, order.points, second_refund[0].points_reversed) == (40, 100, 40)
    assert runs == [True, True]  # neither batch ran again
    assert [await recorded(db, name) for name in ("GF-1", "G-3", "GF-2")] == [1, 1, 1]
    # The welcome's 100, the first order's 100 and its task's 50, less the refund's 40; bob's G-3 earned 100.
    assert [(await member_view(api, name))["points"]["balance"] for name in ("ann", "bob")] == [210, 310]


@sqlite_only
async def test_two_batches_of_one_member_in_one_group_each_find_the_member_as_the_one_before_left_it(
        api, db, program, clock):
    """A batch writes its members with one UPDATE and its session forgets them (store.db.write_members): the next
    batch in the group's transaction reads the member again, and finds it as the batch before left it. Its ¥1,800
    then earns at SILVER's 2× and reaches GOLD; the member's version rises once for each batch."""
    from tierup.services.orders import record_orders
    from tierup.store.models import Member

    await enroll(api, "ann")

    async def version() -> int:
        async with db.read() as session:
            return await session.scalar(select(Member.version).where(Member.external_id == "ann"))

    enrolled = await version()
    batches = await in_one_group(db, [record_orders(db, program, [report(f"T-{n}", "ann", amount)], now=clock())
                                      for n, amount in ((1, "300"), (2, "1800"))])
    results = [(await batch)[0] for batch in batches]
    assert [(result.points, result.upgraded_to.code) for result in results] == [(300, "SILVER"), (3600, "GOLD")]
    member = await member_view(api, "ann")
    assert (member["tier"]["code"], member["points"]["balance"]) == ("GOLD", 100 + 300 + 50 + 3600)
    assert await version() == enrolled + 2
