"""The growth tree: tasks, each member's progress in them, and claiming rewards."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Iterable, Optional

import strawberry
from strawberry import relay
from strawberry.types import Info

from ..domain.errors import ErrorCode, Rejected
from ..domain.program import ProgramDefinition, TaskRule
from ..domain.tasks import TaskState, task_state
from ..services import tasks as task_service
from .errors import UserError, user_errors
from .nodes import node_key, program_data_nodes, rule_from_key
from .permissions import MemberOnly
from .rewards import Reward

if TYPE_CHECKING:
    from .members import Member

MemberRef = Annotated["Member", strawberry.lazy("tierup.api.members")]


@strawberry.enum(description="The three kinds of the growth tree, plus daily tasks.")
class TaskKind(Enum):
    BASIC = strawberry.enum_value("BASIC", description="基础任务: first steps, e.g. the first order.")
    ADVANCED = strawberry.enum_value("ADVANCED", description="进阶任务: e.g. buying in 3 consecutive months.")
    CHALLENGE = strawberry.enum_value("CHALLENGE", description="挑战任务: e.g. referring a friend who then orders.")
    DAILY = strawberry.enum_value("DAILY", description="每日任务: repeats every day, e.g. check-in.")


@strawberry.enum(description="Where a member stands on a task.")
class TaskStatus(Enum):
    LOCKED = strawberry.enum_value("LOCKED", description="A prerequisite is not completed yet; progress still counts.")
    AVAILABLE = strawberry.enum_value("AVAILABLE", description="Unlocked, nothing done yet.")
    IN_PROGRESS = strawberry.enum_value("IN_PROGRESS", description="Unlocked and partly done.")
    COMPLETED = strawberry.enum_value(
        "COMPLETED", description="Done. Automatic rewards are delivered at once; others wait for claimTaskReward.")
    CLAIMED = strawberry.enum_value("CLAIMED", description="Done and its reward claimed by the member.")


@strawberry.type(description="A task of the growth tree (成长树).")
class Task(relay.Node):
    task_key: relay.NodeID[str] = strawberry.field(description="Program code and task code.")
    code: str = strawberry.field(description="Stable code clients deep-link to, e.g. FIRST_ORDER.")
    kind: TaskKind = strawberry.field(description="Basic, advanced, challenge or daily.")
    title: str = strawberry.field(description="Display title.")
    description: str = strawberry.field(description="What to do.")
    target: int = strawberry.field(description="How much of the goal's metric completes it.")
    goal_metric: str = strawberry.field(description="What is counted, e.g. orders, photo_reviews, order_month_streak.")
    goal_window: str = strawberry.field(description="Where it is counted: lifetime, day, week, month or campaign.")
    reward: Reward = strawberry.field(description="What completing it gives.")
    repeatable: bool = strawberry.field(description="Whether it can be done again each day, week or month.")
    claimed_by_member: bool = strawberry.field(
        description="True when the member claims the reward (claimTaskReward); false when it is paid on completion.")
    prerequisite_codes: strawberry.Private[tuple[str, ...]]
    program: strawberry.Private[ProgramDefinition]

    @classmethod
    def of(cls, definition: ProgramDefinition, rule: TaskRule) -> "Task":
        return cls(task_key=node_key(definition, rule.code), code=rule.code, kind=TaskKind(rule.kind),
                   title=rule.title, description=rule.description, target=rule.goal.target,
                   goal_metric=rule.goal.metric, goal_window=rule.goal.window.kind, reward=Reward.of(definition, rule.reward),
                   repeatable=rule.repeat is not None, claimed_by_member=rule.claim == "member",
                   prerequisite_codes=rule.prerequisites, program=definition)

    @strawberry.field(description="Tasks that must be completed first.")
    def prerequisites(self) -> list["Task"]:
        return [Task.of(self.program, self.program.task(code)) for code in self.prerequisite_codes]

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        return await program_data_nodes(info, node_ids, lambda d: d.task, Task.of, "task")


def task_code_from_global_id(definition: ProgramDefinition, value: relay.GlobalID) -> str | None:
    if value.type_name != "Task":
        return None
    rule = rule_from_key(definition, value.node_id, definition.task, "task")
    return rule.code if rule else None


@strawberry.type(description="The program's growth tree: every task, prerequisites first.")
class GrowthTree:
    tasks: list[Task] = strawberry.field(description="All tasks, in dependency order.")


@strawberry.type(description="One member's progress on one task.")
class TaskProgress:
    id: strawberry.ID = strawberry.field(description="The same on every read of this member's progress on this task: "
                                                     "what normalised client caches (Apollo, urql) key it by. Not a "
                                                     "node id.")
    task: Task = strawberry.field(description="The task.")
    status: TaskStatus = strawberry.field(description="Locked, available, in progress, completed or claimed.")
    current: int = strawberry.field(description="Progress on the goal, up to the target.")
    target: int = strawberry.field(description="The goal's target.")
    completed_at: Optional[datetime] = strawberry.field(description="When it was completed (this period, if it repeats).")
    claimed_at: Optional[datetime] = strawberry.field(description="When its reward was delivered.")

    @classmethod
    def of(cls, context, definition: ProgramDefinition, state: TaskState, member_id: int) -> "TaskProgress":
        return cls(id=strawberry.ID(relay.to_base64("TaskProgress", f"{member_id}:{state.task.code}")),
                   task=Task.of(definition, state.task), status=TaskStatus(state.status), current=state.current,
                   target=state.target, completed_at=context.local_time(state.completed_at),
                   claimed_at=context.local_time(state.claimed_at))


async def member_task_states(context, member_id: int, at: datetime | None = None) -> list[TaskState]:
    """Every task's state for the member, as of `at` (default: now)."""
    definition = (await context.program()).definition
    at = at or context.now
    loaders = await context.loaders()
    activity = await loaders.activity_by_member_id.load(member_id)
    completions = await loaders.completions_by_member_id.load(member_id)
    return [task_state(t, activity, completions, at, definition.zone) for t in definition.tasks]


@strawberry.input(description="Which task's reward to claim.")
class ClaimTaskRewardInput:
    task_id: relay.GlobalID = strawberry.field(description="The task (a Task id).")


@strawberry.type(description="Result of claimTaskReward.")
class ClaimTaskRewardPayload:
    progress: Optional[TaskProgress] = strawberry.field(default=None, description="The task, now CLAIMED.")
    member: Optional[MemberRef] = strawberry.field(default=None, description="The member with the reward added.")
    user_errors: list[UserError] = strawberry.field(default_factory=list, description="Why nothing was changed, if so.")


@strawberry.type
class TaskMutations:
    @strawberry.mutation(permission_classes=[MemberOnly], description=(
        "Claim the reward of a completed task whose reward the member claims (e.g. THREE_MONTH_STREAK). "
        "NOT_ELIGIBLE before completion, ALREADY_DONE after a claim. MEMBER only."))
    async def claim_task_reward(self, info: Info, input: ClaimTaskRewardInput) -> ClaimTaskRewardPayload:
        from .members import member_node

        context = info.context
        program = await context.program()
        code = task_code_from_global_id(program.definition, input.task_id)
        try:
            if code is None:
                raise Rejected.one(ErrorCode.NOT_FOUND, "taskId is not a task of this program", "input", "taskId")
            result = await task_service.claim_task_reward(context.db, program, context.principal.sub, code,
                                                          now=context.now, broker=context.broker)
        except Rejected as rejection:
            return ClaimTaskRewardPayload(user_errors=user_errors(rejection))
        context.reset_loaders()
        states = {s.task.code: s for s in await member_task_states(context, result.member_id)}
        return ClaimTaskRewardPayload(progress=TaskProgress.of(context, program.definition, states[code],
                                                               result.member_id),
                                      member=await member_node(context, result.member_id))
