"""Points-level quests (积分闯关) and each member's level in them."""

from __future__ import annotations

from datetime import datetime
from typing import Iterable

import strawberry
from strawberry import relay
from strawberry.types import Info

from ..domain.program import ProgramDefinition, QuestRule
from ..domain.quests import QuestState, quest_window
from .nodes import node_key, program_data_nodes
from .rewards import Reward


@strawberry.type(description="One level of a quest.")
class QuestLevel:
    level: int = strawberry.field(description="1 for the first level.")
    title: str = strawberry.field(description="Display title.")
    target: int = strawberry.field(description="Points earned since the quest began that pass this level.")
    reward: Reward = strawberry.field(description="What passing it gives. Quest rewards never count toward the quest.")


@strawberry.type(description="A run of levels within a time window (积分闯关).")
class Quest(relay.Node):
    quest_key: relay.NodeID[str] = strawberry.field(description="Program code and quest code.")
    code: str = strawberry.field(description="Stable code, e.g. SPRING_QUEST.")
    title: str = strawberry.field(description="Display title.")
    description: str = strawberry.field(description="What it is about.")
    starts_at: datetime = strawberry.field(description="When it begins (program time).")
    ends_at: datetime = strawberry.field(description="When it ends: the midnight after its last day (program time).")
    levels: list[QuestLevel] = strawberry.field(description="Its levels, in order; passing one opens the next.")

    @classmethod
    def of(cls, definition: ProgramDefinition, rule: QuestRule) -> "Quest":
        tz = definition.zone
        start, end = quest_window(rule, tz)
        return cls(quest_key=node_key(definition, rule.code), code=rule.code, title=rule.title,
                   description=rule.description, starts_at=start.astimezone(tz), ends_at=end.astimezone(tz),
                   levels=[QuestLevel(level=lv.level, title=lv.title, target=lv.target, reward=Reward.of(definition, lv.reward))
                           for lv in rule.levels])

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        return await program_data_nodes(info, node_ids, lambda d: d.quest, cls.of, "quest")


@strawberry.type(description="A member's standing in a quest.")
class QuestProgress:
    id: strawberry.ID = strawberry.field(description="The same on every read of this member's standing in this quest: "
                                                     "what normalised client caches key it by. Not a node id.")
    quest: Quest = strawberry.field(description="The quest.")
    current_level: int = strawberry.field(description="The level being played; the last level once all are passed.")
    progress: int = strawberry.field(description="Points earned since the quest began (quest rewards excluded).")
    target: int = strawberry.field(description="The current level's target.")
    passed_levels: list[int] = strawberry.field(description="Levels passed so far.")

    @classmethod
    def of(cls, definition: ProgramDefinition, state: QuestState, member_id: int) -> "QuestProgress":
        return cls(id=strawberry.ID(relay.to_base64("QuestProgress", f"{member_id}:{state.quest.code}")),
                   quest=Quest.of(definition, state.quest), current_level=state.current_level,
                   progress=state.progress, target=state.target, passed_levels=list(state.passed_levels))
