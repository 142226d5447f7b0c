"""Points-level quests (积分闯关): levels passed on points earned since the quest began."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from .activity import Activity, moment_of, midnight
from .derived import derived
from .program import QuestLevel, QuestRule


def quest_window(quest: QuestRule, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) as UTC instants: from the first day's midnight to the midnight after the last day."""
    return derived(_window, quest, tz)


def _window(quest: QuestRule, tz: ZoneInfo) -> tuple[datetime, datetime]:
    return midnight(quest.starts, tz), midnight(quest.ends + timedelta(days=1), tz)


def points_counted_from(quests: list[QuestRule], tz: ZoneInfo) -> datetime | None:
    """When the earliest quest starts: points earned before it count toward no quest (None: no quests)."""
    return min((quest_window(quest, tz)[0] for quest in quests), default=None)


def quest_active(quest: QuestRule, at: datetime, tz: ZoneInfo) -> bool:
    start, end = quest_window(quest, tz)
    return start <= at < end


def quest_points(quest: QuestRule, activity: Activity, tz: ZoneInfo) -> int:
    """Points earned inside the quest's window. Quest rewards are not in `activity.points_earned`."""
    start, end = quest_window(quest, tz)
    earned = activity.points_earned  # in time order
    return sum(points for _, points in earned[bisect.bisect_left(earned, start, key=moment_of):
                                             bisect.bisect_left(earned, end, key=moment_of)])


@dataclass(frozen=True)
class QuestState:
    quest: QuestRule
    current_level: int  # the level being played: one past the last passed, or the last level when all are passed
    progress: int
    target: int
    passed_levels: tuple[int, ...]


def quest_state(quest: QuestRule, activity: Activity, passed: set[int], tz: ZoneInfo) -> QuestState:
    progress = quest_points(quest, activity, tz)
    levels = [lv for lv in quest.levels if lv.level not in passed]
    current = levels[0] if levels else quest.levels[-1]
    return QuestState(quest, current.level, progress, current.target, tuple(sorted(passed)))


def due_levels(quest: QuestRule, activity: Activity, passed: set[int], tz: ZoneInfo) -> list[QuestLevel]:
    """Levels passed now, in order: passing a level opens the next."""
    progress = quest_points(quest, activity, tz)
    due = []
    for level in quest.levels:
        if level.level in passed:
            continue
        if progress < level.target:
            break
        due.append(level)
    return due
