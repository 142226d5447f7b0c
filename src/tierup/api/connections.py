"""Relay cursor connections with totalCount; `first` is bounded to 1–100."""

from __future__ import annotations

from typing import Callable, Generic, Optional, TypeVar

import strawberry
from strawberry import relay

from .errors import bad_input
from .loaders import Page, decode_cursor, encode_cursor

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20

NodeT = TypeVar("NodeT")


@strawberry.type(description="One node of a connection, with the cursor to page on after it.")
class Edge(Generic[NodeT]):
    cursor: str = strawberry.field(description="Opaque; pass it as `after` to continue after this node.")
    node: NodeT = strawberry.field(description="The item.")


@strawberry.type(description="A page of a list: edges in order, paging information and the total count.")
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]] = strawberry.field(description="The items of this page, in order.")
    page_info: relay.PageInfo = strawberry.field(description="Whether there is more, and the cursors to fetch it.")
    total_count: int = strawberry.field(description="How many items the whole list holds, across all pages.")


def page_args(first: Optional[int], after: Optional[str]) -> tuple[int, int | None]:
    """Validate paging arguments; a malformed request is a GraphQL error, not a userError."""
    if first is None:
        first = DEFAULT_PAGE_SIZE
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise bad_input(f"first must be between 1 and {MAX_PAGE_SIZE}, got {first}")
    after_id = None
    if after is not None:
        after_id = decode_cursor(after)
        if after_id is None:
            raise bad_input(f"after is not a cursor from this API: {after!r}")
    return first, after_id


def connection(page: Page, to_node: Callable, after: int | None, cls=Connection):
    edges = [Edge(cursor=encode_cursor(row.id), node=to_node(row)) for row in page.rows]
    return cls(
        edges=edges,
        page_info=relay.PageInfo(
            has_next_page=page.has_next,
            has_previous_page=after is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        total_count=page.total,
    )


def list_connection(items: list, first: Optional[int], after: Optional[str], to_node: Callable, cls,
                    edge_cls=Edge):
    """A page of a list held in memory (program data, a simulation's result); the cursor is the position."""
    size, after_index = page_args(first, after)
    start = after_index or 0
    edges = [edge_cls(cursor=encode_cursor(start + n + 1), node=to_node(item))
             for n, item in enumerate(items[start:start + size])]
    return cls(edges=edges, total_count=len(items), page_info=relay.PageInfo(
        has_next_page=start + size < len(items), has_previous_page=start > 0,
        start_cursor=edges[0].cursor if edges else None, end_cursor=edges[-1].cursor if edges else None))
