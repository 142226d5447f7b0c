"""Nodes whose identity is program data: tiers, tasks, quests, coupon templates, benefits, mall items.

Their global id carries "<program code>:<code>"; one lookup serves them all.
"""

from __future__ import annotations

from typing import Callable, Iterable, TypeVar

from strawberry.types import Info

from ..domain.program import ProgramDefinition
from .errors import forbidden

Rule = TypeVar("Rule")
NodeT = TypeVar("NodeT")


def node_key(definition: ProgramDefinition, code: str) -> str:
    return f"{definition.code}:{code}"


def rule_from_key(definition: ProgramDefinition, key: str, lookup: Callable[[str], Rule], what: str) -> Rule | None:
    """The rule a key names in the caller's program; another program's key is FORBIDDEN, an unknown code None."""
    program_code, _, code = key.partition(":")
    if program_code != definition.code:
        raise forbidden(f"that {what} belongs to another program")
    try:
        return lookup(code)
    except KeyError:
        return None


async def program_data_nodes(info: Info, node_ids: Iterable[str], lookup: Callable[[ProgramDefinition], Callable],
                             build: Callable[[ProgramDefinition, Rule], NodeT], what: str) -> list[NodeT | None]:
    definition = (await info.context.program()).definition
    rules = [rule_from_key(definition, key, lookup(definition), what) for key in node_ids]
    return [build(definition, rule) if rule is not None else None for rule in rules]
