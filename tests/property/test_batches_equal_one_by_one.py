"""Differential property test: a history reported with its orders in batches (services.orders.record_orders)
leaves every member as the same history reported one report at a time.

A batch takes shortcuts the single use cases do not: it defers its rows and writes them together, tells
repeats from the reports it read at once (reports.Known, which a refused order gives its key back to),
keeps the member states it leaves for the next batch (growth.keep_states, while the member's version
says they hold) and counts tier metrics in memory. Whichever of them goes wrong, some member ends up
with other points, tiers, tasks or badges — so that is what is compared.

Each seed makes a history of 120 steps, hours to weeks apart, over two to three years of program time:
batches of orders, some paid long before they are reported, with orders refused after their report was
stored (too many points used, an unknown coupon) and repeats of the batch's or recent ids (as they were,
corrected, or with other content); batches reported at the same moment as single orders (one group
commit on SQLite, side-by-side transactions on PostgreSQL); refunds, a few at once (refund_orders, which reads
what they need of their orders at once and tells each member's state what a refund changed), some sent again,
and some after the orders of a batch, in it (as an import sends its history: the batch's entries numbered, the
refunds of its own orders applied in memory);
check-ins, activities, reviews, point adjustments and task claims; and as each month begins, tier evaluation
and points expiry. Members who shop most in the first half shop least in the second, so tiers are reached,
renewed and lost.

Six members, three of them referred, live the history twice in one program: as "a-m0" … "a-m5" through
the batch path, and as "b-m0" … "b-m5" order by order, with tier metrics forced through SQL
(tiers.member_metrics) — the reference. Every id a telling sends carries its prefix. The two tellings
take each step in turn, and the program-wide jobs (evaluation, expiry) run once for both, at their
moment. Compared, with the prefix left out: each step's answers (accepted and what it earned, a
duplicate, refused and why), then per member the points entries in order (kind, source, amount,
balance after, when), balance, tier, its validity and growth value, tier changes (from, to, when,
why), task completions, quest passes, badges and the reports the member's telling sent.

Reports sent at the same moment belong to different referral families (a referred member's first order
pays the referrer), so however the database interleaves them, every member ends the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable

import pytest
from sqlalchemy import select

from tierup.domain.errors import Rejected
from tierup.services.activities import ActivityInput, record_activity
from tierup.services.activity import MemberState
from tierup.services.checkins import check_in
from tierup.services.expiry import expire_points
from tierup.services.members import EnrolmentInput, enroll_member
from tierup.services.orders import OrderInput, RefundInput, record_order, record_orders, refund_order, refund_orders
from tierup.services.points import AdjustmentInput, adjust_points
from tierup.services.programs import ActiveProgram
from tierup.services.reviews import ReviewInput, record_review
from tierup.services.tasks import claim_task_reward
from tierup.services.tiers import evaluate_tiers
from tierup.store.db import Database
from tierup.store.models import Member, MemberBadge, PointsEntry, QuestPass, Report, TaskCompletion, TierChange

START = datetime(2026, 1, 5, 2, 0, tzinfo=timezone.utc)  # the program's clock in the tests (conftest)

SEEDS = (1, 2, 3)
STEPS = 120
MEMBERS = ("m0", "m1", "m2", "m3", "m4", "m5")
REFERRED_BY = {"m3": "m0", "m4": "m1", "m5": "m0"}
FAMILIES = (("m0", "m3", "m5"), ("m1", "m4"), ("m2",))  # a referrer and the members they referred
PROGRAM_WIDE = ("EVALUATION", "EXPIRY")
AMOUNTS = ("10", "35", "55", "90", "120", "230", "480")
SHOPPING = ((4, 3, 2, 2, 1, 1), (1, 1, 2, 2, 4, 3))  # how often each member shops, in each half of the history

# ---------------------------------------------------------------------------------------------
# The history


@dataclass(frozen=True)
class Step:
    kind: str  # ORDERS AT_ONCE REFUNDS CHECK_IN ACTIVITY REVIEW ADJUSTMENT CLAIM EVALUATION EXPIRY
    now: datetime
    what: Any = None


def history(seed: int) -> list[Step]:
    """The steps, in namespace-free names ("m0", "O-1"): a telling prefixes them as it sends them."""
    rnd = random.Random(seed)
    numbers = itertools.count(1)
    sent: list[OrderInput] = []
    steps: list[Step] = []
    now = START
    weights = SHOPPING[0]

    def someone() -> str:
        return rnd.choices(MEMBERS, weights)[0]

    def order(member: str) -> OrderInput:
        paid_at = now - timedelta(hours=rnd.choice([0, 0, 0, 1, 30, 400, 1500]))
        request = OrderInput(f"O-{next(numbers)}", member, rnd.choice(AMOUNTS), paid_at)
        odd = rnd.random()
        if odd < 0.12:  # refused unless the member holds the points
            request = dataclasses.replace(request, points_used=rnd.choice([50, 100, 100_000]))
        elif odd < 0.2:  # refused after its report was stored
            request = dataclasses.replace(request, coupon_codes=("NOPE",))
        sent.append(request)
        return request

    def refunds(now: datetime) -> list[RefundInput]:
        """One to three refunds of recent orders, each partial or whole; some sent again as they were, or with
        another amount."""
        batch: list[RefundInput] = []
        for _ in range(rnd.randint(1, 3)):
            if batch and rnd.random() < 0.25:
                earlier = rnd.choice(batch)
                batch.append(earlier if rnd.random() < 0.5 else dataclasses.replace(earlier, amount="7"))
            else:
                refunded = rnd.choice(sent[-12:])
                batch.append(RefundInput(f"F-{next(numbers)}", refunded.external_id,
                                         rnd.choice(["5", "20", refunded.amount]), now))
        return batch

    def again(batch: list[OrderInput]) -> OrderInput:
        """An order of the batch, or else a recent one, sent again: as it was, corrected, or with other content."""
        earlier = rnd.choice(batch or sent[-3:])
        if rnd.random() < 0.5:
            return earlier
        if earlier.coupon_codes or earlier.points_used:
            sent.append(dataclasses.replace(earlier, coupon_codes=(), points_used=0))
        else:
            sent.append(dataclasses.replace(earlier, paid_at=earlier.paid_at - timedelta(hours=1)))
        return sent[-1]

    for number in range(STEPS):
        weights = SHOPPING[number >= STEPS // 2]
        before, now = now, now + timedelta(hours=rnd.choice([3, 7, 20, 50, 200, 400, 600]))
        if (now.year, now.month) != (before.year, before.month):  # the monthly jobs, before the month's first report
            steps += [Step("EVALUATION", now), Step("EXPIRY", now)]
        member = someone()
        roll = rnd.random()
        if roll < 0.45:
            batch: list[OrderInput] = []
            for _ in range(rnd.randint(1, 4)):
                batch.append(again(batch) if sent and rnd.random() < 0.2 else order(someone()))
            if rnd.random() < 0.3:  # refunds after them, of theirs or of recent orders
                batch += refunds(now)
            steps.append(Step("ORDERS", now, batch))
        elif roll < 0.55:  # a batch and two single orders, each of another family
            batch_family, *single_families = rnd.sample(FAMILIES, 3)
            batch = [order(rnd.choice(batch_family)) for _ in range(rnd.randint(1, 3))]
            steps.append(Step("AT_ONCE", now, (batch, *(order(rnd.choice(family)) for family in single_families))))
        elif roll < 0.64 and sent:
            steps.append(Step("REFUNDS", now, refunds(now)))
        elif roll < 0.74:
            steps.append(Step("CHECK_IN", now, member))
        elif roll < 0.82:
            steps.append(Step("ACTIVITY", now, ActivityInput(f"A-{next(numbers)}", member,
                                                             rnd.choice(["ECO_ACTION", "SHARE"]),
                                                             now - timedelta(hours=rnd.choice([0, 5, 100])))))
        elif roll < 0.88:
            theirs = [request.external_id for request in sent if request.member_external_id == member]
            reviewed = rnd.choice(theirs) if theirs and rnd.random() < 0.6 else None
            steps.append(Step("REVIEW", now, ReviewInput(f"RV-{next(numbers)}", member, rnd.random() < 0.7, now,
                                                         order_external_id=reviewed)))
        elif roll < 0.93:
            steps.append(Step("ADJUSTMENT", now, (member, rnd.choice([-150, 300, -20]), f"ADJ-{next(numbers)}")))
        else:
            steps.append(Step("CLAIM", now, (member, rnd.choice(["THREE_MONTH_STREAK", "REFER_A_FRIEND"]))))
    return steps


# ---------------------------------------------------------------------------------------------
# Two tellings of it


async def settled(call: Awaitable) -> Any:
    """The use case's result, or its refusal: both are answers."""
    try:
        return await call
    except Rejected as rejection:
        return rejection


# What the use cases' results tell a caller, besides ids (which differ between the tellings).
TOLD = ("duplicate", "points", "points_used", "points_reversed", "shortfall", "points_awarded", "task_code")


def answer(result) -> tuple:
    """What the caller is told, without ids."""
    if isinstance(result, Rejected):
        return ("refused", [problem.code.value for problem in result.problems])
    return ("accepted", {name: getattr(result, name) for name in TOLD if hasattr(result, name)})


@dataclass
class Telling:
    """The history lived by one namespace: every external id it sends starts with `prefix`."""

    db: Database
    program: ActiveProgram
    prefix: str
    batched: bool
    member_ids: dict[str, int] = dataclasses.field(default_factory=dict)

    async def enrol(self) -> None:
        db, program = self.db, self.program
        for name in MEMBERS:
            code = None
            if name in REFERRED_BY:
                async with db.read() as session:
                    code = (await session.execute(select(Member.referral_code).where(
                        Member.id == self.member_ids[REFERRED_BY[name]]))).scalar_one()
            result = await enroll_member(db, program, EnrolmentInput(self.prefix + name, referral_code=code,
                                                                     joined_at=START), now=START)
            self.member_ids[name] = result.member_id

    def sent(self, request):
        """The request as this telling sends it."""
        return dataclasses.replace(request, **{
            name: self.prefix + value for name in ("external_id", "member_external_id", "order_external_id")
            if isinstance(value := getattr(request, name, None), str)})

    async def orders(self, requests: list[OrderInput | RefundInput], now: datetime) -> list:
        """Orders, and refunds among them."""
        requests = [self.sent(request) for request in requests]
        if self.batched:
            return await record_orders(self.db, self.program, requests, now=now)
        return [await settled((refund_order if isinstance(request, RefundInput) else record_order)(
            self.db, self.program, request, now=now)) for request in requests]

    async def at_once(self, batch: list[OrderInput], singles: tuple[OrderInput, ...], now: datetime) -> list:
        """The batch and the single orders at the same moment; one after the other when not batched."""
        if not self.batched:
            return [*await self.orders(batch, now), *await self.orders(list(singles), now)]
        from_batch, *from_singles = await asyncio.gather(self.orders(batch, now), *(
            settled(record_order(self.db, self.program, self.sent(request), now=now)) for request in singles))
        return [*from_batch, *from_singles]

    async def take(self, step: Step) -> list[tuple]:
        """Take the step; the answers, in the order of its reports."""
        db, program, now, what = self.db, self.program, step.now, step.what
        if step.kind == "ORDERS":
            results = await self.orders(what, now)
        elif step.kind == "AT_ONCE":
            results = await self.at_once(what[0], what[1:], now)
        elif step.kind == "REFUNDS":
            requests = [self.sent(request) for request in what]
            if self.batched:
                results = await refund_orders(db, program, requests, now=now)
            else:
                results = [await settled(refund_order(db, program, request, now=now)) for request in requests]
        elif step.kind == "CHECK_IN":
            results = [await settled(check_in(db, program, self.prefix + what, now=now))]
        elif step.kind == "ACTIVITY":
            results = [await settled(record_activity(db, program, self.sent(what), now=now))]
        elif step.kind == "REVIEW":
            results = [await settled(record_review(db, program, self.sent(what), now=now))]
        elif step.kind == "ADJUSTMENT":
            member, amount, external_id = what
            results = [await settled(adjust_points(db, program, AdjustmentInput(
                self.member_ids[member], amount, "goodwill", self.prefix + external_id), operator="ops", now=now))]
        elif step.kind == "CLAIM":
            member, task = what
            results = [await settled(claim_task_reward(db, program, self.prefix + member, task, now=now))]
        else:
            raise AssertionError(step.kind)
        return [answer(result) for result in results]


@contextlib.contextmanager
def tier_metrics_by_sql(monkeypatch):
    """No member state answers for the orders tier metrics count, so every upgrade asks member_metrics."""
    with monkeypatch.context() as patch:
        patch.setattr(MemberState, "orders_as_of", lambda state, at: None)
        yield


async def run_job(db: Database, program: ActiveProgram, step: Step) -> None:
    if step.kind == "EVALUATION":
        await evaluate_tiers(db, program, as_of=step.now)
    else:
        await expire_points(db, program, as_of=step.now)


# ---------------------------------------------------------------------------------------------
# What the members see


async def seen(db: Database, prefix: str) -> dict[str, dict[str, list]]:
    """Each member of a telling, by name without the prefix: what they can see of themselves."""
    async with db.read() as session:
        members = {member.id: member for member in (await session.execute(
            select(Member).where(Member.external_id.startswith(prefix)))).scalars()}

        async def rows(table, *columns, where=()) -> dict[int, list[tuple]]:
            found = defaultdict(list)
            for member_id, *row in (await session.execute(select(table.member_id, *columns).where(
                    table.member_id.in_(members), *where).order_by(table.id))).all():
                found[member_id].append(tuple(row))
            return found

        points = await rows(PointsEntry, PointsEntry.kind, PointsEntry.source, PointsEntry.amount,
                            PointsEntry.balance_after, PointsEntry.occurred_at)
        changes = await rows(TierChange, TierChange.from_tier, TierChange.to_tier, TierChange.changed_at,
                             TierChange.reason)
        completions = await rows(TaskCompletion, TaskCompletion.task_code, TaskCompletion.period_key,
                                 TaskCompletion.completed_at, TaskCompletion.claimed_at, TaskCompletion.points)
        passes = await rows(QuestPass, QuestPass.quest_code, QuestPass.level, QuestPass.passed_at, QuestPass.points)
        badges = await rows(MemberBadge, MemberBadge.code, MemberBadge.earned_at)
        reports = await rows(Report, Report.kind, Report.external_id, Report.amount_fen, Report.occurred_at,
                             where=[Report.external_id.startswith(prefix)])
    return {member.external_id.removeprefix(prefix): {
        "standing": [(member.tier_code, member.tier_valid_until, member.growth_value,
                      sum(entry[2] for entry in points[member_id]))],
        "points": points[member_id],
        "tier changes": changes[member_id],
        "task completions": sorted(completions[member_id]),
        "quest passes": sorted(passes[member_id]),
        "badges": sorted(badges[member_id]),
        "reports": sorted((kind, external_id.removeprefix(prefix), fen or 0, at)
                          for kind, external_id, fen, at in reports[member_id]),
    } for member_id, member in members.items()}


# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
async def test_a_history_reported_in_batches_ends_as_one_by_one(db, program, monkeypatch, seed):
    batched, one_by_one = Telling(db, program, "a-", batched=True), Telling(db, program, "b-", batched=False)
    await batched.enrol()
    await one_by_one.enrol()
    for number, step in enumerate(history(seed)):
        if step.kind in PROGRAM_WIDE:
            await run_job(db, program, step)
            continue
        answers = await batched.take(step)
        with tier_metrics_by_sql(monkeypatch):
            expected = await one_by_one.take(step)
        assert answers == expected, f"step {number}: {step}"

    members, reference = await seen(db, batched.prefix), await seen(db, one_by_one.prefix)
    assert members.keys() == reference.keys() == set(MEMBERS)
    for name in MEMBERS:
        for aspect, expected in reference[name].items():
            assert members[name][aspect] == expected, f"{name}: {aspect}"
