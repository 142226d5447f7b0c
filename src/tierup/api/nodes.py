"""Global ids: how a node's id names what it stands for.

Nodes whose identity is program data (tiers, tasks, quests, coupon templates, benefits, mall items) carry
"<program code>:<code>"; one lookup serves them all. Nodes that are database rows (members, orders, coupons,
points entries) carry the row id, read by `row_id`.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable, TypeVar

from strawberry import relay
from strawberry.types import Info

from ..domain.errors import ErrorCode, Rejected
from ..domain.program import ProgramDefinition
from .errors import bad_input, forbidden

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


# Row ids are INTEGER columns (int4 on PostgreSQL): a larger number cannot name a row.
MAX_ROW_ID = 2_147_483_647
_ROW_ID = re.compile(r"[1-9][0-9]*")  # ASCII digits only: no sign, no leading zero, no blanks, no "１" or "²"


def row_id(node_id: str, type_name: str) -> int | None:
    """The row a global id's node part names: a canonical positive decimal integer.

    Anything else is BAD_USER_INPUT. A well-formed number beyond the id column's range names no row (None),
    so it reads as unknown instead of overflowing the database's integer.
    """
    if _ROW_ID.fullmatch(node_id) is None:
        shown = node_id if len(node_id) <= 40 else node_id[:40] + "…"
        raise bad_input(f"malformed {type_name} id: its number must be a positive whole number in ASCII digits, "
                        f"without sign or leading zeros; got {shown!r}")
    if len(node_id) > len(str(MAX_ROW_ID)):
        return None
    value = int(node_id)
    return value if value <= MAX_ROW_ID else None


def row_ids(node_ids: Iterable[str], type_name: str) -> list[int | None]:
    return [row_id(node_id, type_name) for node_id in node_ids]


async def rows_by_node_ids(loader, node_ids: Iterable[str], type_name: str) -> list:
    """The rows these global ids name, through a per-request dataloader keyed by row id; None where no row can
    have the id."""
    ids = row_ids(node_ids, type_name)
    found = iter(await loader.load_many([i for i in ids if i is not None]))
    return [next(found) if i is not None else None for i in ids]


def input_row_id(value: relay.GlobalID, type_name: str, *field: str) -> int:
    """A mutation input's row id: another type's id, or a number no row can have, is NOT_FOUND like any unknown id."""
    name = field[-1]
    if value.type_name != type_name:
        raise Rejected.one(ErrorCode.NOT_FOUND, f"{name} is not a {type_name} id", *field)
    found = row_id(value.node_id, type_name)
    if found is None:
        raise Rejected.one(ErrorCode.NOT_FOUND, f"{name} names no {type_name} in this program", *field)
    return found
