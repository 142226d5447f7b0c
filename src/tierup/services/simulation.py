"""Replay stored history against a draft program (and the live one, side by side).

The reports up to `to` are read once, in time order, inside one read transaction that is always
rolled back, and applied in memory with the same domain rules the live path uses: points by the
tier held before each order, upgrades on the qualifying order, re-evaluation when validity ends
(both over the member's qualification period, which each evaluation restarts), proportional
refunds, tasks and quests with their rewards. Nothing is written.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import select, true

from ..domain.activity import Activity, period_key
from ..domain.clock import add_months, local, utc
from ..domain.boosts import order_lines, points_with_boosts
from ..domain.money import refunded_share
from ..domain.program import DEFAULT_CHANNEL
from ..domain.points import points_to_reverse
from ..domain.program import ProgramDefinition
from ..domain.quests import due_levels, quest_active
from ..domain.tasks import Completion, due_tasks, reward_points
from ..domain.tiers import MemberMetrics, order_metrics, qualifying_tier
from ..store.db import Database
from ..store.models import Member, Redemption, Report, TaskCompletion
from .memberships import active_plan, extend
from .programs import ActiveProgram

BATCH = 5000


@dataclass
class _Order:
    at: datetime
    amount: int
    refunded: int = 0
    earned: int = 0
    points_used: int = 0

    @property
    def net(self) -> int:
        return self.amount - self.refunded


@dataclass
class _MemberState:
    key: int  # the member's id in the store
    external_id: str
    tier: str
    valid_until: datetime | None
    qualification_started_at: datetime | None = None  # as Member.qualification_started_at: the latest evaluation
    balance: int = 0
    growth: int = 0
    orders: dict[int, _Order] = field(default_factory=dict)
    activity: Activity = field(default_factory=Activity)
    completions: dict = field(default_factory=dict)
    passes: dict = field(default_factory=dict)
    unclaimed: dict = field(default_factory=dict)  # (task, period) → reward points waiting for the member's claim
    # A paid membership's run, named as on Member so that the live path's rules read it alike.
    membership_plan: str | None = None
    membership_started_at: datetime | None = None
    membership_until: datetime | None = None


@dataclass
class Outcome:
    """What one definition did to the history, with figures counted for events in [from, to]."""

    tiers: dict[str, str] = field(default_factory=dict)  # member external id → tier at the end
    balances: dict[str, int] = field(default_factory=dict)  # member external id → points at the end
    members_per_tier: Counter = field(default_factory=Counter)
    upgrades: int = 0
    downgrades: int = 0
    points_issued: int = 0
    outstanding_points: int = 0
    task_completions: Counter = field(default_factory=Counter)


@dataclass
class Recording:
    """What a replay did, row by row, for writing a synthetic history (tierup seed)."""

    entries: list[tuple] = field(default_factory=list)  # (member key, kind, source, amount, at, report id)
    tier_changes: list[tuple] = field(default_factory=list)  # (member key, from, to, at, valid until)
    completions: list[tuple] = field(default_factory=list)  # (member key, task, period, at, claimed at, points, growth)
    passes: list[tuple] = field(default_factory=list)  # (member key, quest, level, at, points, growth)


class _Replay:
    def __init__(self, definition: ProgramDefinition, start: datetime, recording: Recording | None = None):
        self.d = definition
        self.start = start
        self.members: dict[int, _MemberState] = {}
        self.outcome = Outcome()
        self.referrer: dict[int, int] = {}
        self.recording = recording
        self._report: int | None = None  # the report being replayed, for the recording

    def counts(self, at: datetime) -> bool:
        return at >= self.start

    def earn(self, member: _MemberState, points: int, at: datetime, source: str = "ORDER") -> None:
        member.balance += points
        if self.counts(at):
            self.outcome.points_issued += points
        if points:
            member.activity.points_earned.append((at, points))
            if self.recording is not None:
                self.recording.entries.append((member.key, "EARN", source, points, at, self._report))

    def metrics(self, member: _MemberState, at: datetime) -> MemberMetrics:
        """The member's tier metrics at `at`, as the live path counts them (orders are kept in time order)."""
        return order_metrics(self.d, [(o.at, o.net) for o in member.orders.values()], as_of=at,
                             period_started_at=member.qualification_started_at, growth_value=member.growth)

    def validity(self, tier_code: str, at: datetime) -> datetime | None:
        if self.d.tier(tier_code).rank == 0 or self.d.tier_validity_months is None:
            return None
        return utc(add_months(local(at, self.d.zone), self.d.tier_validity_months))

    def move(self, member: _MemberState, tier_code: str, at: datetime) -> None:
        old, new = self.d.tier(member.tier), self.d.tier(tier_code)
        if self.counts(at):
            if new.rank > old.rank:
                self.outcome.upgrades += 1
            elif new.rank < old.rank:
                self.outcome.downgrades += 1
        if self.recording is not None:
            self.recording.tier_changes.append((member.key, member.tier, tier_code, at,
                                                self.validity(tier_code, at)))
        member.tier = tier_code
        member.valid_until = self.validity(tier_code, at)

    def evaluate_lapsed(self, member: _MemberState, at: datetime) -> None:
        """The evaluation job, as if it ran whenever validity ended; every outcome restarts the qualification period."""
        while member.valid_until is not None and member.valid_until <= at:
            ended = member.valid_until
            target = qualifying_tier(self.metrics(member, ended), self.d)
            member.qualification_started_at = ended
            if target.rank < self.d.tier(member.tier).rank:
                self.move(member, target.code, ended)
            else:
                member.tier = target.code if target.rank > self.d.tier(member.tier).rank else member.tier
                member.valid_until = utc(add_months(local(ended, self.d.zone), self.d.tier_validity_months))

    def upgrade(self, member: _MemberState, at: datetime) -> None:
        target = qualifying_tier(self.metrics(member, at), self.d)
        if target.rank > self.d.tier(member.tier).rank:
            self.move(member, target.code, at)

    def grow(self, member: _MemberState, at: datetime) -> None:
        tz = self.d.zone
        growth_before = member.growth
        for task in due_tasks(self.d, member.activity, member.completions, at):
            automatic = task.claim == "automatic"
            member.completions[(task.code, period_key(task.repeat, at, tz))] = Completion(
                task.code, period_key(task.repeat, at, tz), at, at if automatic else None)
            if self.counts(at):
                self.outcome.task_completions[task.code] += 1
            points = reward_points(task, member.activity, at, tz)
            if self.recording is not None:
                self.recording.completions.append((member.key, task.code, period_key(task.repeat, at, tz),
                                                   at, at if automatic else None, points, task.reward.growth_value))
            if automatic:
                self.earn(member, points, at, source="TASK")
                member.growth += task.reward.growth_value
            else:  # member-claimed rewards wait for the member's claim, replayed when the member made it
                member.unclaimed[(task.code, period_key(task.repeat, at, tz))] = points
        for quest in self.d.quests:
            if not quest_active(quest, at, tz):
                continue
            passed = member.passes.setdefault(quest.code, set())
            for level in due_levels(quest, member.activity, passed, tz):
                passed.add(level.level)
                member.balance += level.reward.points  # quest rewards do not count toward the quest
                if self.recording is not None:
                    self.recording.passes.append((member.key, quest.code, level.level, at,
                                                  level.reward.points, level.reward.growth_value))
                if self.counts(at):
                    self.outcome.points_issued += level.reward.points
                member.growth += level.reward.growth_value
        if member.growth != growth_before:  # growth value may reach a tier (the order itself was judged already)
            self.upgrade(member, at)

    def apply(self, report: Report, member_row: Member | None) -> None:
        at = report.occurred_at
        self._report = report.id
        if report.kind == "ENROLMENT":
            member = _MemberState(member_row.id, member_row.external_id, self.d.entry_tier.code, None)
            self.members[member_row.id] = member
            if member_row.referred_by_id is not None:
                self.referrer[member_row.id] = member_row.referred_by_id
            self.earn(member, self.d.welcome_points, at, source="WELCOME")
            self.grow(member, at)
            return
        member = self.members.get(report.member_id)
        if member is None:
            return
        self.evaluate_lapsed(member, at)
        if report.kind == "ORDER":
            first = not member.orders  # a first order, even if refunded later: an order after it is no first
            plan = active_plan(self.d, member, at)
            multiplier = self.d.tier(member.tier).points_multiplier + (plan.points_multiplier_bonus if plan else 0)
            points = points_with_boosts(report.amount_fen, multiplier, order_lines(getattr(report, "lines", None)),
                                        self.d.boosts, at=at, tz=self.d.zone, tier=member.tier,
                                        channel=getattr(report, "channel", None) or DEFAULT_CHANNEL).points
            member.orders[report.id] = _Order(at, report.amount_fen, earned=points, points_used=report.points or 0)
            member.balance -= report.points or 0  # points that paid for it (a report checked them live)
            member.activity.orders.append((at, report.amount_fen))
            self.earn(member, points, at)
            self.upgrade(member, at)
            self.grow(member, at)
            referrer = self.members.get(self.referrer.get(report.member_id))
            if first and referrer is not None:  # 推荐有礼: the referrer's points, and REFER_A_FRIEND's count
                referrer.activity.referral_first_orders.append(at)
                self.evaluate_lapsed(referrer, at)
                self.earn(referrer, self.d.referrer_points, at, source="REFERRAL")
                self.grow(referrer, at)
        elif report.kind == "REFUND":
            order = member.orders.get(report.order_id)
            if order is None:
                return
            reverse = points_to_reverse(order.earned, order.amount, order.refunded, report.amount_fen)
            member.balance += refunded_share(order.points_used, order.amount, order.refunded, report.amount_fen)
            order.refunded += report.amount_fen
            member.activity.orders = [(o.at, o.net) for o in member.orders.values() if o.net > 0]
            member.balance -= min(reverse, max(member.balance, 0))
        elif report.kind == "ADJUSTMENT":
            member.balance += report.points or 0
        elif report.kind == "MEMBERSHIP":
            try:  # the plan as this definition has it; a plan it lacks gives nothing
                extend(self.d, member, self.d.membership_plan(report.reference), at)
            except KeyError:
                pass
        elif report.kind == "CHECK_IN":
            member.activity.check_ins.append(local(at, self.d.zone).date())
            self.grow(member, at)
        elif report.kind == "REVIEW":
            if report.with_photos:
                member.activity.photo_reviews.append(at)
            self.grow(member, at)
        elif report.kind == "ACTIVITY":
            self.act(member, report.reference, at)

    def act(self, member: _MemberState, kind: str, at: datetime) -> None:
        """An activity: this definition's points and growth for its kind, the first `daily_cap` of a day."""
        member.activity.actions.append((at, kind))
        try:
            rule = self.d.activity(kind)
        except KeyError:  # a kind this definition does not have earns nothing, but tasks may still count it
            rule = None
        day = local(at, self.d.zone).date()
        done = sum(1 for moment, done in member.activity.actions if done == kind and local(moment, self.d.zone).date() == day)
        if rule is not None and (rule.daily_cap is None or done <= rule.daily_cap):
            self.earn(member, rule.points, at, source="ACTIVITY")
            member.growth += rule.growth_value
        self.grow(member, at)

    def claim(self, completion: TaskCompletion) -> None:
        """A member claimed a completed task's reward: paid now, if this definition's member completed it too
        and its reward waits for a claim."""
        member = self.members.get(completion.member_id)
        key = (completion.task_code, completion.period_key)
        if member is None or key not in member.unclaimed:
            return
        at = completion.claimed_at
        member.completions[key] = replace(member.completions[key], claimed_at=at)
        self.earn(member, member.unclaimed.pop(key), at, source="TASK")
        member.growth += self.d.task(completion.task_code).reward.growth_value
        self.grow(member, at)

    def redeem(self, redemption: Redemption) -> None:
        """A mall redemption is no report, but it spent points: the replay spends them too (never below zero,
        for a draft whose members earned less)."""
        member = self.members.get(redemption.member_id)
        if member is not None:
            member.balance -= min(redemption.points, max(member.balance, 0))

    def finish(self, end: datetime) -> Outcome:
        for member in self.members.values():
            self.evaluate_lapsed(member, end)
            self.outcome.tiers[member.external_id] = member.tier
            self.outcome.balances[member.external_id] = member.balance
            self.outcome.members_per_tier[member.tier] += 1
            self.outcome.outstanding_points += member.balance
        return self.outcome


@dataclass
class Simulation:
    live: Outcome
    draft: Outcome
    changed: list[tuple[str, str, str]]  # (member external id, live tier, draft tier)
    reports: int


async def simulate(db: Database, program: ActiveProgram, draft: ProgramDefinition, *, start: datetime,
                   end: datetime) -> Simulation:
    replays = [_Replay(program.definition, start), _Replay(draft, start)]
    reports = 0
    async with db.read() as session:  # one transaction, rolled back when the session closes
        members = {m.id: m for m in (await session.execute(select(Member).where(
            Member.program_id == program.id))).scalars()}
        # Few beside the reports: what members did themselves (redemptions, claims), in time order, replayed
        # as the reports pass them.
        acts = deque(sorted([(r.redeemed_at, 0, r.id, r) for r in (await session.execute(
            select(Redemption).where(Redemption.program_id == program.id, Redemption.redeemed_at < end))).scalars()]
            + [(c.claimed_at, 1, c.id, c) for c in (await session.execute(
                select(TaskCompletion).where(TaskCompletion.program_id == program.id,
                                             TaskCompletion.task_code.in_(_claimed_by_members(program.definition, draft)),
                                             TaskCompletion.claimed_at < end))).scalars()], key=lambda a: a[:3]))
        after = true()  # keyset pagination on (occurred_at, id): the reports in the order they happened
        while True:
            batch = list((await session.execute(
                select(Report).where(Report.program_id == program.id, Report.occurred_at < end, after)
                .order_by(Report.occurred_at, Report.id).limit(BATCH))).scalars())
            if not batch:
                break
            for report in batch:
                while acts and acts[0][0] < report.occurred_at:
                    _act(replays, acts.popleft()[3])
                for replay in replays:
                    replay.apply(report, members.get(report.member_id))
            reports += len(batch)
            last = batch[-1]
            after = (Report.occurred_at > last.occurred_at) | (
                (Report.occurred_at == last.occurred_at) & (Report.id > last.id))
        while acts:
            _act(replays, acts.popleft()[3])
        await session.rollback()
    live, drafted = (replay.finish(end) for replay in replays)
    changed = sorted((member, tier, drafted.tiers.get(member, tier)) for member, tier in live.tiers.items()
                     if drafted.tiers.get(member) != tier)
    return Simulation(live, drafted, changed, reports)


def _claimed_by_members(*definitions: ProgramDefinition) -> list[str]:
    return sorted({t.code for d in definitions for t in d.tasks if t.claim != "automatic"})


def _act(replays: list[_Replay], act: Redemption | TaskCompletion) -> None:
    for replay in replays:
        if isinstance(act, Redemption):
            replay.redeem(act)
        else:
            replay.claim(act)
