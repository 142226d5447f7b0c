"""The growth tree (成长树): which tasks are locked, available, in progress, completed or claimed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from .activity import Activity, check_in_streak, goal_value, nothing_counted, period_key
from .clock import local_date
from .program import ProgramDefinition, TaskRule

LOCKED, AVAILABLE, IN_PROGRESS, COMPLETED, CLAIMED = "LOCKED", "AVAILABLE", "IN_PROGRESS", "COMPLETED", "CLAIMED"


@dataclass(frozen=True)
class Completion:
    """A task done in one period ('' for one-off tasks). claimed_at: when its reward was delivered."""

    task_code: str
    period_key: str
    completed_at: datetime
    claimed_at: datetime | None


@dataclass(frozen=True)
class TaskState:
    task: TaskRule
    status: str
    current: int
    target: int
    period_key: str
    completed_at: datetime | None = None
    claimed_at: datetime | None = None


Completions = dict[tuple[str, str], Completion]


def _done_codes(completions: Completions) -> set[str]:
    return {code for code, _ in completions}


def unlocked(task: TaskRule, done: set[str]) -> bool:
    """A task unlocks as soon as its prerequisites are completed, claimed or not."""
    return done.issuperset(task.prerequisites)


def task_state(task: TaskRule, activity: Activity, completions: Completions, at: datetime, tz: ZoneInfo,
               done: set[str] | None = None) -> TaskState:
    """`done`: the codes of the tasks completed, when the caller has them (task_states, for every task)."""
    key = period_key(task.repeat, at, tz)
    target = task.goal.target
    completion = completions.get((task.code, key))
    if completion is not None:  # its goal was met: not measured again
        status = CLAIMED if task.claim == "member" and completion.claimed_at else COMPLETED
        return TaskState(task, status, target, target, key, completion.completed_at, completion.claimed_at)
    current = min(goal_value(task.goal.metric, activity, task.goal.window, at, tz, task.goal.activity), target)
    if not unlocked(task, _done_codes(completions) if done is None else done):
        return TaskState(task, LOCKED, current, target, key)
    return TaskState(task, IN_PROGRESS if current else AVAILABLE, current, target, key)


def task_states(program: ProgramDefinition, activity: Activity, completions: Completions,
                at: datetime) -> dict[str, TaskState]:
    tz = program.zone
    done = _done_codes(completions)
    return {t.code: task_state(t, activity, completions, at, tz, done) for t in program.tasks}


def due_tasks(program: ProgramDefinition, activity: Activity, completions: Completions, at: datetime) -> list[TaskRule]:
    """Tasks whose goal is met now and that are not yet completed for this period.

    Walked in dependency order, so a task completed here unlocks its dependents in the same
    pass: progress made while a task was locked counts the moment it unlocks.
    """
    tz = program.zone
    done = _done_codes(completions)
    due = []
    for task in program.tasks:
        if task.goal.target > 0 and nothing_counted(task.goal.metric, activity):
            continue  # first, as it needs no period: most tasks of most members at most reports
        if (task.code, period_key(task.repeat, at, tz)) in completions or not unlocked(task, done):
            continue
        if goal_value(task.goal.metric, activity, task.goal.window, at, tz, task.goal.activity) >= task.goal.target:
            due.append(task)
            done.add(task.code)
    return due


def reward_points(task: TaskRule, activity: Activity, at: datetime, tz: ZoneInfo) -> int:
    """The task's points, plus its streak bonus on every N-th consecutive check-in day."""
    points = task.reward.points
    bonus = task.streak_bonus
    if bonus and check_in_streak(activity.check_ins, local_date(at, tz)) % bonus.every == 0:
        points += bonus.points
    return points


def check_in_task(program: ProgramDefinition) -> TaskRule | None:
    """The daily check-in task (签到), if the program has one."""
    for task in program.tasks:
        if task.goal.metric == "check_in_days" and task.repeat == "day":
            return task
    return None
