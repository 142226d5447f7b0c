"""Growth: after a report changes a member, complete what is due, pass quest levels, upgrade on
growth value, and tell subscribers what changed.

A use case `watch`es each member it will touch before it writes, and `settle`s after: the
difference between the two snapshots becomes the live events, published after commit. The picture
after is the one before plus what the transaction's journal says was written since (the report and
ledger entries), so settling reads nothing again unless the journal holds something it cannot apply
(a refund changes an order's net amount, which the refund's use case tells it; a referred member's first
order counts for the referrer).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.activity import Activity, period_key
from ..domain.benefits import unlocked_by
from ..domain.clock import local_date
from ..domain.program import Badge, Reward
from ..domain.quests import QuestState, due_levels, quest_active, quest_state
from ..domain.tasks import Completion, TaskState, due_tasks, reward_points, task_states
from ..domain.tiers import counts_growth_value
from ..events import Broker, Event
from ..store.db import Database, Written, defer_insert, journal
from ..store.models import Member, MemberBadge, QuestPass, TaskCompletion
from .coupons import issue_coupon
from .activity import MemberState, held_states, insert_once, read_states
from .ledger import append_entry
from .programs import ActiveProgram
from .tiers import evaluate_if_lapsed, upgrade_if_qualified


@dataclass
class Snapshot:
    tier: str
    balance: int
    growth_value: int
    tasks: dict[str, TaskState]
    quests: dict[str, QuestState]


async def load_states(session: AsyncSession, program: ActiveProgram, member_ids: list[int], *,
                      exclude_report: int | None = None) -> dict[int, MemberState]:
    """Members' states in one statement for every 2,000 of them (activity.read_states)."""
    await session.flush()  # read everything the transaction has written so far
    return await read_states(session, program.definition, member_ids, exclude_report)


async def batch_states(db: Database, session: AsyncSession, program: ActiveProgram,
                       members: list[Member]) -> dict[int, MemberState]:
    """The states of a batch's members, locked: those a batch before kept (keep_states) while they hold, the
    others read in one statement."""
    found = held_states(db, session, program, members)
    missing = sorted(member.id for member in members if member.id not in found)
    if missing:
        found.update(await load_states(session, program, missing))
    return found


@dataclass
class _Watched:
    member: Member
    before: Snapshot
    # As in the picture before, then with what the transaction wrote since applied to it up to the journal's
    # length `applied` (_in_memory); None once the journal holds something that cannot be applied in memory.
    state: MemberState | None
    report: Written | None  # the use case's report, stored before the picture and left out of it
    since: int  # the journal's length when the picture was taken
    applied: int = -1  # -1: nothing applied yet (not even the report)
    refunds: set[int] = field(default_factory=set)  # refunds' reports already applied to the state (refunded)


class GrowthTracker:
    """`states`, when given, carries members' states from one use case to the next in one transaction
    (recordOrders): a state found there is used instead of reading it, and the state after is put back;
    a use case that fails between the two leaves its members' states out, so the next one reads them.
    `announce=False` (an import of history, which tells nobody): the pictures leave tasks and quests out,
    which is most of their cost, their differences make no events, and the caller drops the others.
    `evaluate_lapsed` (that import, whose batches run past the daily jobs' midnights): a member watched is
    first evaluated as the daily job would have left it (tiers.evaluate_if_lapsed)."""

    def __init__(self, session: AsyncSession, program: ActiveProgram, states: dict[int, MemberState] | None = None,
                 *, announce: bool = True, evaluate_lapsed: bool = False):
        self.session = session
        self.program = program
        self._journal = journal(session)  # the transaction's, one list throughout
        self.events: list[Event] = []
        self._watched: dict[int, _Watched] = {}
        self._states = states
        self._announce = announce
        self._evaluate_lapsed = evaluate_lapsed

    async def watch(self, member: Member, at: datetime, *, exclude_report: int | None = None) -> Snapshot:
        """Take the member's picture as it was before the use case's report; the caller holds the lock.

        The report may already be stored (it is inserted first, so a repeat is caught by its
        UNIQUE key before anything is read); `exclude_report` leaves it out of the picture.
        """
        state = self._states.pop(member.id, None) if self._states is not None else None
        if state is None:
            state = (await load_states(self.session, self.program, [member.id], exclude_report=exclude_report))[member.id]
        if self._evaluate_lapsed and member.tier_valid_until is not None and member.tier_valid_until < at:
            await evaluate_if_lapsed(self.session, self.program, member, state, before=at)
        before = self._picture(member, at, state)
        written = self._journal
        report = None
        if exclude_report is not None:  # stored just before, so looked for from the end
            report = next((w for w in reversed(written) if w.what == "REPORT" and w.report_id == exclude_report), None)
        self._watched[member.id] = _Watched(member, before, state, report, len(written))
        return before

    def claimed(self, member_id: int, task_code: str, period: str, at: datetime) -> None:
        """The use case delivered a completed task's reward: the picture after shows it claimed."""
        state = self._watched[member_id].state
        if state is not None:  # else the state after is read from the database, which has the claim
            state.completions[(task_code, period)] = replace(state.completions[(task_code, period)], claimed_at=at)

    def refunded(self, member_id: int, report_id: int, paid_at: datetime, net_fen: int, refund_fen: int,
                 at: datetime) -> None:
        """The use case's refund (its report `report_id`, at `at`) took `refund_fen` off a watched member's order
        paid at `paid_at`, whose net amount was `net_fen`: the state takes it in place (the refund's report alone
        does not say which order it changes)."""
        watched = self._watched[member_id]
        state = watched.state
        if state is None:
            return
        orders = state.activity.orders
        index = bisect.bisect_left(orders, (paid_at, net_fen))
        if index == len(orders) or orders[index] != (paid_at, net_fen):  # not as the state has it: read it again
            watched.state = None
            return
        del orders[index]
        if net_fen > refund_fen:
            bisect.insort(orders, (paid_at, net_fen - refund_fen))
        state.refunded_until = at if state.refunded_until is None else max(state.refunded_until, at)
        watched.refunds.add(report_id)

    def activity_before(self, member_id: int) -> Activity:
        """What the member had done before the use case's report: asked before anything written is applied to
        the state (known_orders, settle), which happens in place."""
        watched = self._watched[member_id]
        if watched.applied >= 0:
            raise RuntimeError("the member's state has taken what was written since its picture")
        return watched.state.activity

    async def settle(self, at: datetime, *, measured: int | None = None) -> dict[int, Snapshot]:
        """Complete due tasks and quest levels for every watched member, record what changed as
        events, and return each member's picture after. `measured`: the member whose tier the use case has
        just measured at `at` (an order's upgrade)."""
        after_by_member = {}
        for member_id, watched in self._watched.items():
            state = await self._now(watched)
            await self._advance(watched.member, at, state, measured=member_id == measured)
            if watched.state is state:  # _advance kept it up to date with what it wrote
                watched.applied = len(self._journal)
            state.balance = self._balance(watched)
            after = self._picture(watched.member, at, state)
            if self._announce:
                self._diff(watched.member, watched.before, after, at)
            after_by_member[member_id] = after
            if self._states is not None:
                self._states[member_id] = state
        return after_by_member

    def known_orders(self, member_id: int, at: datetime) -> list[tuple[datetime, int]] | None:
        """A watched member's orders as the transaction has them now, for tier metrics at `at` counted in
        memory (tiers.upgrade_if_qualified); None when only the database can tell."""
        state = self._in_memory(self._watched[member_id])
        return state.orders_as_of(at) if state is not None else None

    async def _now(self, watched: _Watched) -> MemberState:
        """The member's state as the transaction has it now (balance: as in the picture)."""
        state = self._in_memory(watched)
        if state is None:
            return (await load_states(self.session, self.program, [watched.member.id]))[watched.member.id]
        return state

    def _in_memory(self, watched: _Watched) -> MemberState | None:
        """The state before plus what the journal says was written since; None when the journal holds
        something that cannot be applied in memory (a refund changes an order's net amount, unless the use case
        told which: refunded; another member's report, such as a referred member's first order, counts for this
        one). What was written is applied to the state in place, each part once: a copy would cost the member's
        whole history."""
        length = len(self._journal)
        if watched.state is None or watched.applied == length:
            return watched.state
        first = watched.applied < 0
        start = watched.since if first else watched.applied
        reports = self._written(watched, "REPORT", start, with_report=first)
        if any(w.member_id != watched.member.id or (w.kind == "REFUND" and w.report_id not in watched.refunds)
               for w in reports):
            watched.state = None
        else:
            self._apply(watched.state, reports, self._written(watched, "ENTRY", start))
            watched.applied = length
        return watched.state

    def _apply(self, state: MemberState, reports: list[Written], entries: list[Written]) -> None:
        activity = state.activity
        tz = self.program.definition.zone
        for w in reports:
            if w.kind == "ORDER" and w.amount > 0:
                bisect.insort(activity.orders, (w.at, w.amount))
            elif w.kind == "CHECK_IN":
                bisect.insort(activity.check_ins, local_date(w.at, tz))
            elif w.kind == "REVIEW" and w.with_photos:
                bisect.insort(activity.photo_reviews, w.at)
            elif w.kind == "ACTIVITY":
                bisect.insort(activity.actions, (w.at, w.reference))
        for w in entries:
            if w.kind == "EARN" and w.source != "QUEST":
                bisect.insort(activity.points_earned, (w.at, w.amount))

    def _balance(self, watched: _Watched) -> int:
        """The member's balance now: the picture's plus the ledger entries written since."""
        return watched.before.balance + sum(w.amount for w in self._written(watched, "ENTRY"))

    def _written(self, watched: _Watched, what: str, start: int | None = None, *,
                 with_report: bool = True) -> list[Written]:
        """What the transaction wrote about the member since the picture, or since the journal's length `start`
        (with the report left out of the picture, unless not `with_report`)."""
        since = watched.since if start is None else start
        mine = [w for w in self._journal[since:] if w.what == what and w.member_id == watched.member.id]
        if what == "REPORT" and with_report and watched.report is not None:
            mine.append(watched.report)
        return mine

    def _picture(self, member: Member, at: datetime, state: MemberState) -> Snapshot:
        definition = self.program.definition
        if not self._announce:
            return Snapshot(tier=member.tier_code, balance=state.balance, growth_value=member.growth_value, tasks={},
                            quests={})
        return Snapshot(
            tier=member.tier_code, balance=state.balance, growth_value=member.growth_value,
            tasks=task_states(definition, state.activity, state.completions, at),
            quests={q.code: quest_state(q, state.activity, state.passes.get(q.code, set()), definition.zone)
                    for q in definition.quests})

    async def _advance(self, member: Member, at: datetime, state: MemberState, *, measured: bool) -> None:
        """Complete what is due and pass what is passed, keeping the state up to date in memory
        (all but the balance, which the journal tells). `measured`: the member's tier was just measured at `at`."""
        activity, completions, passes = state.activity, state.completions, state.passes
        definition = self.program.definition
        tz = definition.zone
        growth_before = member.growth_value
        for task in due_tasks(definition, activity, completions, at):
            points = reward_points(task, activity, at, tz)
            automatic = task.claim == "automatic"
            key = period_key(task.repeat, at, tz)
            # The state holds every completion and pass of the member, read under its lock: a row for one that is
            # not there is new, and nothing is read back from it (a repeat would break the UNIQUE key).
            defer_insert(self.session, TaskCompletion.__table__, dict(
                program_id=self.program.id, member_id=member.id, task_code=task.code, period_key=key, completed_at=at,
                claimed_at=at if automatic else None, points=points, growth_value=task.reward.growth_value))
            completions[(task.code, key)] = Completion(task.code, key, at, at if automatic else None)
            self.events.append(self._event(member, "TASK_COMPLETED", f"Task {task.title} completed", at))
            if automatic:
                await self.pay(member, task.reward, points, at, source="TASK", reason=f"Task {task.code}", state=state)
                bisect.insort(activity.points_earned, (at, points))
        for quest in definition.quests:
            if not quest_active(quest, at, tz):
                continue
            for level in due_levels(quest, activity, passes.setdefault(quest.code, set()), tz):
                defer_insert(self.session, QuestPass.__table__, dict(
                    program_id=self.program.id, member_id=member.id, quest_code=quest.code, level=level.level,
                    passed_at=at, points=level.reward.points, growth_value=level.reward.growth_value))
                passes[quest.code].add(level.level)
                self.events.append(self._event(member, "QUEST_LEVEL_PASSED",
                                               f"{quest.title}: level {level.level} ({level.title}) passed", at))
                await self.pay(member, level.reward, level.reward.points, at, source="QUEST",
                               reason=f"Quest {quest.code} level {level.level}", state=state)
        # Rewards raised growth value, which tiers may count. Where none does, a member whose tiers were measured at
        # `at` already would be measured on the same figures again: nothing else a reward changes is a tier metric.
        if member.growth_value != growth_before and (counts_growth_value(definition) or not measured):
            await upgrade_if_qualified(self.session, self.program, member, at=at, report_id=None, reason="GROWTH",
                                       orders=state.orders_as_of(at))

    async def pay(self, member: Member, reward: Reward, points: int, at: datetime, *, source: str, reason: str,
                  state: MemberState | None = None) -> None:
        """Deliver a reward to a watched member: points into the ledger, growth value onto the member, a badge once
        (told by the member's `state` as it is now, which then holds it, or else by the database)."""
        if points:
            await append_entry(self.session, self.program, member.id, "EARN", points, reason, source=source,
                               occurred_at=at, balance=self._balance(self._watched[member.id]))
        member.growth_value += reward.growth_value
        if reward.coupon is not None:
            await issue_coupon(self.session, self.program, member.id, reward.coupon, at, source=source, deferred=True)
        if reward.badge is not None and await self._new_badge(member, reward.badge, at, state):
            self.events.append(self._event(member, "BADGE_EARNED", f"Badge {reward.badge.name} earned", at))

    async def _new_badge(self, member: Member, badge: Badge, at: datetime, state: MemberState | None) -> bool:
        """Give the badge unless the member holds it; whether it was new. Told by the state, the row is deferred
        with the batch's (a badge written at once wrote everything deferred before it, a statement per table)."""
        row = dict(member_id=member.id, code=badge.code, name=badge.name, earned_at=at)
        if state is None:
            return await insert_once(self.session, MemberBadge, **row) is not None
        if badge.code in state.badges:
            return False
        defer_insert(self.session, MemberBadge.__table__, row)
        state.badges.add(badge.code)
        return True

    def _diff(self, member: Member, before: Snapshot, after: Snapshot, at: datetime) -> None:
        for code, state in after.tasks.items():
            old = before.tasks[code]
            if (old.status, old.current) != (state.status, state.current):
                self.events.append(Event(self.program.id, member.id, "TASK_PROGRESS",
                                         f"{state.task.title}: {state.status} {state.current}/{state.target}", at,
                                         task=code, previous_status=old.status))
        if after.tier != before.tier:
            definition = self.program.definition
            self.events.append(self._event(member, "TIER_CHANGED", f"Tier is now {definition.tier(after.tier).name}", at))
            opened = unlocked_by(definition, before.tier, after.tier)
            if opened:
                self.events.append(self._event(member, "BENEFIT_UNLOCKED", f"Benefits unlocked: {', '.join(opened)}", at))
        if after.balance != before.balance:
            change = after.balance - before.balance
            self.events.append(self._event(member, "POINTS_CHANGED",
                                           f"Points balance is now {after.balance} ({change:+d})", at))

    def _event(self, member: Member, kind: str, message: str, at: datetime) -> Event:
        return Event(self.program.id, member.id, kind, message, at)


async def publish(broker: Broker | None, events: list[Event]) -> None:
    """Called after the transaction committed: a rolled-back use case never gets here."""
    if broker is not None and events:
        await broker.publish(events)

