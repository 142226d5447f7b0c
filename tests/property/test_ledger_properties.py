"""Property tests: whatever the shop, the operators and the members do, in any order, the ledger
keeps its rules (issue 8).

A Hypothesis state machine sends random sequences of reports through the use cases (the
service functions, as the API's resolvers call them): enrolments, orders, partial refunds,
repeats of earlier reports (same content, or the same key with changed content), point
adjustments either way, check-ins on various days and points-mall redemptions, while program
time (Asia/Shanghai) moves forward within 2026. After every step:

- each member's balance is the sum of their ledger entries, and never below zero;
- no lot gives more points than it earned, and every deduction is drawn in full from lots;
- a refund never takes back more points than its order earned (over all its refunds);
- the mall never sells more than its stock or a member's limit;
- a repeated report, or any rejected step, changed nothing (row counts, balances, tiers).

At the end of each example, replaying the stored reports with the replay engine gives the live
tiers and balances (mall redemptions are not reports: the replay spends them as it passes them).

Each example starts from an empty, freshly migrated database (a copy of the session's SQLite
template, or a TRUNCATE of the PostgreSQL database) with the classic program published.

Budgets are Hypothesis profiles, chosen by TIERUP_HYPOTHESIS_PROFILE:
  ci        (default on SQLite)  200 examples of up to 20 steps, derandomized: CI cannot flake
  postgres  (default when TIERUP_TEST_DATABASE_URL is set)  50 examples of up to 20 steps, derandomized
  soak      random exploration, 5,000 examples of up to 40 steps; failures are kept in
            bench/results/hypothesis/ (tried first next time) and printed with a @reproduce_failure blob
TIERUP_HYPOTHESIS_EXAMPLES overrides the number of examples of any of them.

    TIERUP_HYPOTHESIS_PROFILE=soak .venv/bin/pytest tests/property      (or bench/property_soak.sh)
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import functools
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.stateful import (Bundle, RuleBasedStateMachine, initialize, invariant, precondition, rule,
                                 run_state_machine_as_test)
from sqlalchemy import func, select, text

from tierup.domain.errors import ErrorCode, Rejected
from tierup.domain.money import to_yuan
from tierup.programs import bundled_program_path, load_program_file, parse_program
from tierup.services import simulation
from tierup.services.checkins import check_in
from tierup.services.members import EnrolmentInput, enroll_member
from tierup.services.orders import OrderInput, RefundInput, record_order, refund_order
from tierup.services.points import MAX_ADJUSTMENT, AdjustmentInput, adjust_points
from tierup.services.programs import ActiveProgram, publish_program
from tierup.services.rewards import redeem_reward
from tierup.store.db import Database
from tierup.store.models import Base, LotDraw, Member, PointsEntry, Redemption, Report, RewardStock

POSTGRES_URL = os.environ.get("TIERUP_TEST_DATABASE_URL")

# ---------------------------------------------------------------------------------------------
# Budgets

SOAK_FAILURES = Path(__file__).resolve().parents[2] / "bench" / "results" / "hypothesis"  # git-ignored
_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("tierup-property-ci", max_examples=200, stateful_step_count=20, derandomize=True,
                          database=None, **_COMMON)
settings.register_profile("tierup-property-postgres", max_examples=50, stateful_step_count=20, derandomize=True,
                          database=None, **_COMMON)
settings.register_profile("tierup-property-soak", max_examples=5_000, stateful_step_count=40, print_blob=True,
                          database=DirectoryBasedExampleDatabase(SOAK_FAILURES), **_COMMON)
PROFILE = os.environ.get("TIERUP_HYPOTHESIS_PROFILE") or ("postgres" if POSTGRES_URL else "ci")

# ---------------------------------------------------------------------------------------------
# The world the steps play in

SHANGHAI = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 1, 1, 9, 0, tzinfo=SHANGHAI)
END = datetime(2026, 12, 31, 23, 0, tzinfo=SHANGHAI)  # every report stays within 2026


def classic_with_two_tote_bags():
    """The whole classic program (its tasks pay points too), with two tote bags in stock instead of
    five, so that a short sequence can empty the stock."""
    document = copy.deepcopy(load_program_file(bundled_program_path("classic")).source)
    next(item for item in document["rewards"] if item["code"] == "TOTE_BAG")["stock"] = 2
    return parse_program(document, "classic (two tote bags)")


CLASSIC = classic_with_two_tote_bags()
CEILING_FEN = CLASSIC.max_order_fen
MEMBERS = ["m0", "m1", "m2", "m3"]  # more members than tote bags
REWARDS = {item.code: item for item in CLASSIC.rewards}

everyday_fen = st.integers(1, 100_000)  # valid money: whole fen, > 0, ≤ the ceiling
large_fen = st.one_of(  # tier thresholds, the ceiling, anything up to it
    st.sampled_from([19_999, 20_000, 50_000, 100_000, 200_000, 300_000, 500_000, CEILING_FEN]),
    st.integers(100_000, CEILING_FEN),
)
pauses = st.one_of(  # how much program time passes: a day (check-in streaks), minutes, hours, days or weeks
    st.just(86_400), st.integers(0, 3_600), st.integers(3_600, 3 * 86_400), st.integers(86_400, 40 * 86_400),
).map(lambda seconds: timedelta(seconds=seconds))
adjustments = st.one_of(st.integers(1, 2_000), st.integers(-2_000, -1),
                        st.integers(-MAX_ADJUSTMENT, MAX_ADJUSTMENT)).filter(bool)


@dataclass(frozen=True)
class Sent:
    """A report that was accepted, kept to be sent again."""

    kind: str  # ENROLMENT ORDER REFUND ADJUSTMENT
    request: object


# ---------------------------------------------------------------------------------------------
# What the database holds, read at once, and the rules it must keep


@dataclass
class LedgerView:
    entries: list  # (id, member_id, kind, amount, balance_after, report_id, shortfall), by id
    draws: list  # (member_id, entry_id, lot_entry_id, amount)
    reports: dict  # id → (id, kind, member_id, order_id, amount_fen)
    redemptions: list  # (member_id, reward_code, quantity)
    stock: dict  # reward code → remaining


async def read_ledger(db: Database) -> LedgerView:
    async with db.read() as session:
        entries = (await session.execute(select(
            PointsEntry.id, PointsEntry.member_id, PointsEntry.kind, PointsEntry.amount, PointsEntry.balance_after,
            PointsEntry.report_id, PointsEntry.shortfall).order_by(PointsEntry.id))).all()
        draws = (await session.execute(select(LotDraw.member_id, LotDraw.entry_id, LotDraw.lot_entry_id,
                                              LotDraw.amount))).all()
        reports = {row.id: row for row in (await session.execute(select(
            Report.id, Report.kind, Report.member_id, Report.order_id, Report.amount_fen))).all()}
        redemptions = (await session.execute(select(Redemption.member_id, Redemption.reward_code,
                                                    Redemption.quantity))).all()
        stock = dict((await session.execute(select(RewardStock.reward_code, RewardStock.remaining))).all())
    return LedgerView(entries, draws, reports, redemptions, stock)


def balances_are_ledger_sums(view: LedgerView) -> None:
    """A balance is the sum of the member's ledger entries: each entry's balance_after is the running
    sum up to it, and no balance is ever below zero."""
    running: Counter = Counter()
    for entry_id, member_id, kind, amount, balance_after, _, _ in view.entries:
        running[member_id] += amount
        assert balance_after == running[member_id], (
            f"entry {entry_id} ({kind} {amount:+d}) says balance {balance_after}, the entries sum to {running[member_id]}")
        assert balance_after >= 0, f"entry {entry_id} ({kind} {amount:+d}) left member {member_id} at {balance_after}"


def lots_are_never_overdrawn(view: LedgerView) -> None:
    """Every positive entry is a lot; a draw takes points from a lot of the same member; no lot gives
    more than it earned; every deduction is drawn in full from lots; so per member, lots drawn ≤ lots
    earned, and what the lots still hold is exactly the balance."""
    by_id = {entry.id: entry for entry in view.entries}
    drawn_from_lot: Counter = Counter()
    drawn_by_entry: Counter = Counter()
    drawn_by_member: Counter = Counter()
    for member_id, entry_id, lot_id, amount in view.draws:
        lot, deduction = by_id[lot_id], by_id[entry_id]
        assert amount > 0, f"draw of {amount} from lot {lot_id}"
        assert lot.amount > 0 and lot.member_id == member_id, f"entry {entry_id} drew from {lot_id}, not a lot"
        assert deduction.amount < 0 and deduction.member_id == member_id, f"draw for entry {entry_id}, not a deduction"
        drawn_from_lot[lot_id] += amount
        drawn_by_entry[entry_id] += amount
        drawn_by_member[member_id] += amount
    for lot_id, drawn in drawn_from_lot.items():
        assert drawn <= by_id[lot_id].amount, f"lot {lot_id} earned {by_id[lot_id].amount} but gave {drawn}"
    earned: Counter = Counter()
    balance: Counter = Counter()
    for entry_id, member_id, kind, amount, *_ in view.entries:
        balance[member_id] += amount
        if amount > 0:
            earned[member_id] += amount
        elif amount < 0:
            assert drawn_by_entry[entry_id] == -amount, (
                f"{kind} entry {entry_id} of {amount} drew {drawn_by_entry[entry_id]} points from lots")
    for member_id, points in earned.items():
        drawn = drawn_by_member[member_id]
        assert drawn <= points, f"member {member_id}: lots drawn {drawn} > lots earned {points}"
        assert points - drawn == balance[member_id], (
            f"member {member_id}: lots hold {points - drawn}, the balance is {balance[member_id]}")


def refunds_stay_within_what_the_order_earned(view: LedgerView) -> None:
    """Over all refunds of an order, the points taken back (what was taken plus any shortfall)
    never exceed what the order earned, and the money refunded never exceeds what was paid."""
    earned: Counter = Counter()
    reversed_: Counter = Counter()
    refunded: Counter = Counter()
    for _, _, kind, amount, _, report_id, shortfall in view.entries:
        if report_id is None:
            continue
        report = view.reports[report_id]
        if kind == "EARN" and report.kind == "ORDER":
            earned[report.id] += amount
        elif kind == "REVERSE":
            assert report.kind == "REFUND" and shortfall >= 0 and amount <= 0
            reversed_[report.order_id] += -amount + shortfall
    for report in view.reports.values():
        if report.kind == "REFUND":
            refunded[report.order_id] += report.amount_fen
    for order_id, points in reversed_.items():
        assert points <= earned[order_id], f"order {order_id} earned {earned[order_id]}, refunds took back {points}"
    for order_id, fen in refunded.items():
        paid = view.reports[order_id].amount_fen
        assert fen <= paid, f"order {order_id} refunded {fen} fen of {paid}"


def the_mall_never_oversells(view: LedgerView) -> None:
    """Stock is never below zero, and no member redeems an item more often than its per-member limit."""
    for code, remaining in view.stock.items():
        taken = sum(q for _, c, q in view.redemptions if c == code)
        assert remaining >= 0 and remaining + taken == REWARDS[code].stock, f"{code}: {remaining} left, {taken} taken"
    per_member = Counter((m, c) for m, c, q in view.redemptions for _ in range(q))
    for (member_id, code), quantity in per_member.items():
        assert quantity <= (REWARDS[code].per_member_limit or quantity), f"member {member_id} holds {quantity} × {code}"


async def replayed(db: Database, program: ActiveProgram, end: datetime) -> tuple[dict[str, str], dict[str, int]]:
    """Tiers and balances by member external id, as the replay engine rebuilds them from the stored
    reports (and mall redemptions) with the live definition."""
    result = await simulation.simulate(db, program, program.definition, start=START, end=end)
    assert sum(result.live.balances.values()) == result.live.outstanding_points
    return result.live.tiers, result.live.balances


async def live_state(db: Database) -> tuple[dict[str, str], dict[str, int]]:
    async with db.read() as session:
        tiers = dict((await session.execute(select(Member.external_id, Member.tier_code))).all())
        balances = dict((await session.execute(
            select(Member.external_id, func.coalesce(func.sum(PointsEntry.amount), 0))
            .outerjoin(PointsEntry, PointsEntry.member_id == Member.id).group_by(Member.external_id))).all())
    return tiers, {k: int(v) for k, v in balances.items()}


async def snapshot(db: Database) -> tuple:
    """What a repeated or rejected report must leave as it was: the rows in every table, and each
    member's balance, tier, validity and growth value."""
    counts = select(*(select(func.count()).select_from(t).scalar_subquery().label(t.name)
                      for t in Base.metadata.sorted_tables))
    balances = (select(PointsEntry.member_id, func.sum(PointsEntry.amount).label("balance"))
                .group_by(PointsEntry.member_id).subquery())
    async with db.read() as session:
        rows = (await session.execute(counts)).one()._asdict()
        members = (await session.execute(select(
            Member.external_id, balances.c.balance, Member.tier_code, Member.tier_valid_until, Member.growth_value)
            .outerjoin(balances, balances.c.member_id == Member.id).order_by(Member.id))).all()
    return rows, members


# ---------------------------------------------------------------------------------------------
# A fresh database per example


class FreshDatabases:
    """Hands out an empty migrated database per example: a copy of the SQLite template, or the
    PostgreSQL database truncated."""

    def __init__(self, template: str):
        self.template = template
        self.directory = Path(tempfile.mkdtemp(prefix="tierup-property-"))
        self.count = 0

    async def fresh(self) -> Database:
        if POSTGRES_URL:
            database = Database(POSTGRES_URL)
            tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
            async with database.engine.begin() as conn:
                await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            return database
        self.count += 1
        path = self.directory / f"example-{self.count}.db"
        shutil.copyfile(self.template, path)
        return Database(f"sqlite+aiosqlite:///{path}")

    def discard(self) -> None:
        for leftover in self.directory.glob(f"example-{self.count}.db*"):
            leftover.unlink()

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# The machine


class LedgerMachine(RuleBasedStateMachine):
    databases: FreshDatabases  # set by the test

    def __init__(self):
        super().__init__()
        self.loop = asyncio.Runner()
        self.now = START
        self.db = self.run(self.databases.fresh())
        self.program = self.run(publish_program(self.db, CLASSIC, published_by="property test", now=START)).program
        self.enrolled: dict[str, int] = {}  # external id → member id
        self.refundable: dict[str, int] = {}  # order external id → fen not yet refunded
        self.sent: list[Sent] = []  # accepted reports, to send again
        self.checked_in: set[tuple[str, object]] = set()
        self.serial = 0
        self.may_have_written = True

    def run(self, coroutine):
        self.clean = False  # until the checks after this step have passed
        self.may_have_written = True  # until the step showed it changed nothing
        return self.loop.run(coroutine)

    def teardown(self):
        try:
            if self.clean:  # the example ended without a failure: now the replay must agree with it
                self.run(self.replaying_the_reports_gives_the_live_tiers_and_balances())
        finally:
            self.loop.run(self.db.dispose())
            self.loop.close()
            self.databases.discard()

    def next_id(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}-{self.serial}"

    def send(self, kind: str, request):
        """Apply one report through its use case, as the API would; keep it, once accepted, to send again."""
        use_case = {"ENROLMENT": enroll_member, "ORDER": record_order, "REFUND": refund_order,
                    "ADJUSTMENT": functools.partial(adjust_points, operator="ops")}[kind]
        result = self.run(use_case(self.db, self.program, request, now=self.now))
        if not result.duplicate:
            self.sent.append(Sent(kind, request))
        return result

    def rejected(self, call, code: ErrorCode) -> None:
        """The step is refused with `code` and changes nothing."""
        before = self.run(snapshot(self.db))
        try:
            outcome = call()
        except Rejected as exc:
            assert [p.code for p in exc.problems] == [code], exc.problems
        else:
            raise AssertionError(f"expected {code.value}, got {outcome}")
        assert self.run(snapshot(self.db)) == before, f"a step refused with {code.value} changed something"
        self.may_have_written = False

    def balance(self, member: str) -> int:
        return self.run(live_state(self.db))[1][member]

    # --- steps ------------------------------------------------------------------------------

    members = Bundle("members")  # external ids of enrolled members
    orders = Bundle("orders")  # external ids of reported orders

    @rule(pause=pauses)
    def time_passes(self, pause):
        self.now = min(self.now + pause, END)

    @initialize(target=members)
    def the_first_customer_enrols(self):
        return self.a_customer_enrols(named=True)

    @precondition(lambda self: len(self.enrolled) < len(MEMBERS))
    @rule(target=members, named=st.booleans())
    def a_customer_enrols(self, named):
        external_id = MEMBERS[len(self.enrolled)]
        request = EnrolmentInput(external_id, display_name=f"Member {external_id}" if named else None,
                                 joined_at=self.now)
        result = self.send("ENROLMENT", request)
        assert not result.duplicate
        self.enrolled[external_id] = result.member_id
        return external_id

    @rule(target=orders, member=members, amount=everyday_fen)
    def the_shop_reports_an_everyday_order(self, member, amount):
        return self.the_shop_reports_an_order(member, amount)

    @rule(target=orders, member=members, amount=large_fen)
    def the_shop_reports_a_large_order(self, member, amount):
        return self.the_shop_reports_an_order(member, amount)

    def the_shop_reports_an_order(self, member, amount):
        request = OrderInput(self.next_id("O"), member, to_yuan(amount), self.now)
        assert not self.send("ORDER", request).duplicate
        self.refundable[request.external_id] = amount
        return request.external_id

    @rule(order=orders, amount=st.integers(0, CEILING_FEN), whole=st.booleans())
    def the_shop_refunds_part_of_an_order(self, order, amount, whole):
        left = self.refundable[order]
        if left == 0:
            return  # the_shop_refunds_more_than_is_left covers it
        fen = left if whole else 1 + amount % left  # all that is left, or part of it
        result = self.send("REFUND", RefundInput(self.next_id("R"), order, to_yuan(fen), self.now))
        assert not result.duplicate
        event("refund: points already spent (shortfall)" if result.shortfall else "refund: points taken back")
        self.refundable[order] -= fen

    @rule(order=orders, extra=st.integers(1, 10_000))
    def the_shop_refunds_more_than_is_left(self, order, extra):
        too_much = self.refundable[order] + extra
        if too_much > CEILING_FEN:
            return  # not valid money: the ceiling leaves no room above what is left
        request = RefundInput(self.next_id("R"), order, to_yuan(too_much), self.now)
        self.rejected(lambda: self.send("REFUND", request), ErrorCode.INVALID)

    @rule(member=members, amount=adjustments)
    def an_operator_adjusts_points(self, member, amount):
        request = AdjustmentInput(self.enrolled[member], amount, "property test", self.next_id("A"))
        if self.balance(member) + amount < 0:
            event("adjustment: refused, it would take the balance below zero")
            self.rejected(lambda: self.send("ADJUSTMENT", request), ErrorCode.INSUFFICIENT_POINTS)
            return
        event(f"adjustment: {'added' if amount > 0 else 'taken'}")
        assert not self.send("ADJUSTMENT", request).duplicate

    @rule(member=members)
    def an_operator_takes_every_point(self, member):
        """Points all spent: a refund now finds less than it would take back."""
        balance = self.balance(member)
        if balance > 0:
            assert not self.send("ADJUSTMENT", AdjustmentInput(self.enrolled[member], -min(balance, MAX_ADJUSTMENT),
                                                               "property test: all spent", self.next_id("A"))).duplicate

    @precondition(lambda self: self.now.astimezone(SHANGHAI).weekday() == 0)
    @rule(member=members, days=st.sampled_from([7, 3]))
    def a_member_checks_in_every_day_from_monday(self, member, days):
        """A streak: today, a Monday, then each following day (the 7th consecutive day pays a bonus).
        Only on Mondays: each day costs a use case, and the budget is better spent on other steps."""
        for _ in range(days):
            self.a_member_checks_in(member)
            self.now = min(self.now + timedelta(days=1), END)

    @rule(member=members)
    def a_member_checks_in(self, member):
        day = self.now.astimezone(SHANGHAI).date()
        call = lambda: self.run(check_in(self.db, self.program, member, now=self.now))  # noqa: E731
        if (member, day) in self.checked_in:
            self.rejected(call, ErrorCode.ALREADY_DONE)
            return
        points = call().points_awarded
        assert points > 0
        event(f"check-in: {points} points")
        self.checked_in.add((member, day))

    @rule(member=members, code=st.sampled_from(sorted(REWARDS)), quantity=st.integers(1, 3))
    def a_member_redeems_in_the_mall(self, member, code, quantity):
        item = REWARDS[code]
        view = self.run(read_ledger(self.db))
        mine = sum(q for m, c, q in view.redemptions if m == self.enrolled[member] and c == code)
        stock = view.stock.get(code, item.stock)
        call = lambda: self.run(redeem_reward(self.db, self.program, member, code, quantity, now=self.now))  # noqa: E731
        if item.per_member_limit is not None and mine + quantity > item.per_member_limit:
            expected = ErrorCode.LIMIT_REACHED
        elif self.balance(member) < item.points_cost * quantity:
            expected = ErrorCode.INSUFFICIENT_POINTS
        elif stock is not None and stock < quantity:
            expected = ErrorCode.OUT_OF_STOCK
        else:
            expected = None
        event(f"redemption: {expected.value if expected else 'redeemed'}")
        if expected:
            self.rejected(call, expected)
        else:
            call()
            # The replay orders a redemption after reports of the same instant; live, the next report
            # comes later. (Events a microsecond apart are told apart; the machine's clock would not.)
            self.now += timedelta(seconds=1)

    @precondition(lambda self: self.sent)
    @rule(report=st.integers(0, 1_000))
    def the_same_report_arrives_again(self, report):
        """`report` counts back from the latest report accepted (0), modulo their number."""
        sent = self.sent[-1 - report % len(self.sent)]
        before = self.run(snapshot(self.db))
        assert self.send(sent.kind, sent.request).duplicate
        assert self.run(snapshot(self.db)) == before, f"a repeated {sent.kind} changed something"
        self.may_have_written = False

    @precondition(lambda self: self.sent)
    @rule(report=st.integers(0, 1_000))
    def a_report_id_is_reused_for_other_content(self, report):
        """`report` counts back from the latest report accepted (0), modulo their number."""
        sent = self.sent[-1 - report % len(self.sent)]
        self.rejected(lambda: self.send(sent.kind, changed(sent)), ErrorCode.DUPLICATE)

    # --- after every step -------------------------------------------------------------------

    @invariant()
    def the_ledger_keeps_its_rules(self):
        if not self.may_have_written:  # time passed, or the step proved it changed nothing: as checked before
            self.clean = True
            return
        view = self.run(read_ledger(self.db))
        balances_are_ledger_sums(view)
        lots_are_never_overdrawn(view)
        refunds_stay_within_what_the_order_earned(view)
        the_mall_never_oversells(view)
        self.clean = True
        self.may_have_written = False

    # --- at the end of every example --------------------------------------------------------

    async def replaying_the_reports_gives_the_live_tiers_and_balances(self):
        """The replay engine, run over the stored reports with the live definition, rebuilds each
        member's tier and balance exactly."""
        live_tiers, live_balances = await live_state(self.db)
        tiers, balances = await replayed(self.db, self.program, self.now + timedelta(seconds=1))
        assert tiers == live_tiers, f"replayed tiers {tiers}, live {live_tiers}"
        assert balances == live_balances, f"replayed balances {balances}, live {live_balances}"


def changed(sent: Sent):
    """The same report id with other content."""
    request = sent.request
    if sent.kind == "ENROLMENT":
        return dataclasses.replace(request, display_name=f"{request.display_name or 'Anonymous'} (edited)")
    if sent.kind in ("ORDER", "REFUND"):
        fen = int(request.amount * 100)
        return dataclasses.replace(request, amount=to_yuan(fen - 1 if fen == CEILING_FEN else fen + 1))
    if sent.kind == "ADJUSTMENT":
        other = request.amount - 1 if request.amount in (-1, MAX_ADJUSTMENT) else request.amount + 1
        return dataclasses.replace(request, amount=other)
    raise AssertionError(sent.kind)


def budget() -> settings:
    chosen = settings.get_profile(f"tierup-property-{PROFILE}")
    examples = os.environ.get("TIERUP_HYPOTHESIS_EXAMPLES")
    return settings(chosen, max_examples=int(examples)) if examples else chosen


def test_any_sequence_of_reports_keeps_the_ledger_rules(migrated_template):
    LedgerMachine.databases = FreshDatabases(migrated_template)
    try:
        run_state_machine_as_test(LedgerMachine, settings=budget())
    finally:
        LedgerMachine.databases.close()


async def test_replay_after_a_mall_redemption_gives_the_live_balance(db):
    """The sequence the machine found when the replay ignored the mall: m0 enrols (100 welcome points)
    and redeems a 100-point coupon."""
    program = (await publish_program(db, CLASSIC, published_by="property test", now=START)).program
    await enroll_member(db, program, EnrolmentInput("m0", joined_at=START), now=START)
    await redeem_reward(db, program, "m0", "REWARD_COUPON_5", 1, now=START + timedelta(minutes=1))
    live = await live_state(db)
    assert live == ({"m0": "REGULAR"}, {"m0": 0})
    assert await replayed(db, program, START + timedelta(minutes=2)) == live
