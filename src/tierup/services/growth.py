"""Growth: after a report changes a member, complete what is due, pass quest levels, upgrade on
growth value, and tell subscribers what changed.

A use case `watch`es each member it will touch before it writes, and `settle`s after: the
difference between the two snapshots becomes the live events, published after commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.activity import Activity, period_key
from ..domain.program import Reward
from ..domain.quests import QuestState, due_levels, quest_active, quest_state
from ..domain.tasks import Completion, Completions, TaskState, due_tasks, reward_points, task_states
from ..events import Broker, Event
from ..store.models import Member, MemberBadge, QuestPass, TaskCompletion
from .coupons import issue_coupon
from .activity import insert_once, load_activity, load_completions, load_quest_passes
from .ledger import append_entry, balance_of
from .programs import ActiveProgram
from .tiers import upgrade_if_qualified


@dataclass
class Snapshot:
    tier: str
    balance: int
    growth_value: int
    tasks: dict[str, TaskState]
    quests: dict[str, QuestState]


@dataclass
class _Watched:
    member: Member
    before: Snapshot
    activity: Activity


class GrowthTracker:
    def __init__(self, session: AsyncSession, program: ActiveProgram):
        self.session = session
        self.program = program
        self.events: list[Event] = []
        self._watched: dict[int, _Watched] = {}

    async def watch(self, member: Member, at: datetime, *, exclude_report: int | None = None) -> Snapshot:
        """Take the member's picture as it was before the use case's report; the caller holds the lock.

        The report may already be stored (it is inserted first, so a repeat is caught by its
        UNIQUE key before anything is read); `exclude_report` leaves it out of the picture.
        """
        before, activity, _, _ = await self._snapshot(member, at, exclude_report)
        self._watched[member.id] = _Watched(member, before, activity)
        return before

    def activity_before(self, member_id: int) -> Activity:
        return self._watched[member_id].activity

    async def settle(self, at: datetime) -> dict[int, Snapshot]:
        """Complete due tasks and quest levels for every watched member, record what changed as
        events, and return each member's picture after."""
        after_by_member = {}
        for member_id, watched in self._watched.items():
            activity, completions, passes = await self._advance(watched.member, at)
            after = await self._picture(watched.member, at, activity, completions, passes)
            self._diff(watched.member, watched.before, after, at)
            after_by_member[member_id] = after
        return after_by_member

    async def _snapshot(self, member: Member, at: datetime, exclude_report: int | None = None):
        activity, completions, passes = await self._load(member, exclude_report)
        return await self._picture(member, at, activity, completions, passes), activity, completions, passes

    async def _load(self, member: Member, exclude_report: int | None = None):
        await self.session.flush()  # read everything the use case has written so far
        activity = (await load_activity(self.session, self.program.definition, [member.id], exclude_report))[member.id]
        completions = (await load_completions(self.session, [member.id]))[member.id]
        passes = (await load_quest_passes(self.session, [member.id]))[member.id]
        return activity, completions, passes

    async def _picture(self, member: Member, at: datetime, activity: Activity, completions: Completions,
                       passes: dict[str, set[int]]) -> Snapshot:
        definition = self.program.definition
        return Snapshot(
            tier=member.tier_code, balance=await balance_of(self.session, member.id), growth_value=member.growth_value,
            tasks=task_states(definition, activity, completions, at),
            quests={q.code: quest_state(q, activity, passes.get(q.code, set()), definition.zone)
                    for q in definition.quests})

    async def _advance(self, member: Member, at: datetime):
        """Complete what is due and pass what is passed; returns the member's activity, completions and
        quest passes as they now stand (kept up to date in memory, so the picture after needs no reload)."""
        definition = self.program.definition
        tz = definition.zone
        growth_before = member.growth_value
        activity, completions, passes = await self._load(member)  # the report's own entries count toward quests
        for task in due_tasks(definition, activity, completions, at):
            points = reward_points(task, activity, at, tz)
            automatic = task.claim == "automatic"
            key = period_key(task.repeat, at, tz)
            created = await insert_once(self.session, TaskCompletion, program_id=self.program.id, member_id=member.id,
                                        task_code=task.code, period_key=key, completed_at=at,
                                        claimed_at=at if automatic else None, points=points,
                                        growth_value=task.reward.growth_value)
            if created is None:  # cannot happen under the member's lock; reread rather than guess
                return await self._load(member)
            completions[(task.code, key)] = Completion(task.code, key, at, at if automatic else None)
            self.events.append(self._event(member, "TASK_COMPLETED", f"Task {task.title} completed", at))
            if automatic:
                await self.pay(member, task.reward, points, at, source="TASK", reason=f"Task {task.code}")
                activity.points_earned.append((at, points))
        for quest in definition.quests:
            if not quest_active(quest, at, tz):
                continue
            for level in due_levels(quest, activity, passes.setdefault(quest.code, set()), tz):
                created = await insert_once(self.session, QuestPass, program_id=self.program.id, member_id=member.id,
                                            quest_code=quest.code, level=level.level, passed_at=at,
                                            points=level.reward.points, growth_value=level.reward.growth_value)
                if created is None:
                    return await self._load(member)
                passes[quest.code].add(level.level)
                self.events.append(self._event(member, "QUEST_LEVEL_PASSED",
                                               f"{quest.title}: level {level.level} ({level.title}) passed", at))
                await self.pay(member, level.reward, level.reward.points, at, source="QUEST",
                               reason=f"Quest {quest.code} level {level.level}")
        if member.growth_value != growth_before:  # rewards raised growth value, which tiers may count
            await upgrade_if_qualified(self.session, self.program, member, at=at, report_id=None, reason="GROWTH")
        return activity, completions, passes

    async def pay(self, member: Member, reward: Reward, points: int, at: datetime, *, source: str, reason: str) -> None:
        """Deliver a reward: points into the ledger, growth value onto the member, a badge once."""
        if points:
            await append_entry(self.session, self.program, member.id, "EARN", points, reason, source=source,
                               occurred_at=at)
        member.growth_value += reward.growth_value
        if reward.coupon is not None:
            await issue_coupon(self.session, self.program, member.id, reward.coupon, at, source=source)
        if reward.badge is not None:
            created = await insert_once(self.session, MemberBadge, member_id=member.id, code=reward.badge.code,
                                        name=reward.badge.name, earned_at=at)
            if created is not None:
                self.events.append(self._event(member, "BADGE_EARNED", f"Badge {reward.badge.name} earned", at))
        await self.session.flush()

    def _diff(self, member: Member, before: Snapshot, after: Snapshot, at: datetime) -> None:
        for code, state in after.tasks.items():
            old = before.tasks[code]
            if (old.status, old.current) != (state.status, state.current):
                self.events.append(Event(self.program.id, member.id, "TASK_PROGRESS",
                                         f"{state.task.title}: {state.status} {state.current}/{state.target}", at,
                                         task=code, previous_status=old.status))
        if after.tier != before.tier:
            name = self.program.definition.tier(after.tier).name
            self.events.append(self._event(member, "TIER_CHANGED", f"Tier is now {name}", at))
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

