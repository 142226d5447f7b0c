"""GraphQL errors for bad requests and access, and userErrors for business rejections."""

from __future__ import annotations

from datetime import date
from enum import Enum
from typing import Optional

import strawberry
from graphql import GraphQLError

from ..domain.errors import Rejected
from ..services.validation import day_problem

UNAUTHENTICATED = "UNAUTHENTICATED"
FORBIDDEN = "FORBIDDEN"
BAD_USER_INPUT = "BAD_USER_INPUT"


def unauthenticated(message: str = "sign in: send 'Authorization: Bearer <token>'") -> GraphQLError:
    return GraphQLError(message, extensions={"code": UNAUTHENTICATED})


def forbidden(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": FORBIDDEN})


def bad_input(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": BAD_USER_INPUT})


MAX_RANGE_DAYS = 3660


def check_day_range(start: date, end: date) -> None:
    """A range of program days (KPIs, simulations): forward, at most ten years, in years a report may have."""
    for name, day in (("from", start), ("to", end)):
        if (problem := day_problem(day)) is not None:
            raise bad_input(f"`{name}` {problem}")
    if end < start:
        raise bad_input("`to` is before `from`")
    if (end - start).days > MAX_RANGE_DAYS:
        raise bad_input("the range is longer than ten years")


@strawberry.enum(description="Why a request was rejected; stable for clients to branch on.")
class UserErrorCode(Enum):
    INVALID = strawberry.enum_value("INVALID", description="The input fails validation (format, range, length).")
    NOT_FOUND = strawberry.enum_value("NOT_FOUND", description="An id names nothing in the caller's program.")
    DUPLICATE = strawberry.enum_value(
        "DUPLICATE", description="The idempotency key was already used for a report with different content.")
    INSUFFICIENT_POINTS = strawberry.enum_value("INSUFFICIENT_POINTS", description="Not enough points.")
    INSUFFICIENT_BALANCE = strawberry.enum_value("INSUFFICIENT_BALANCE", description="Stored value beyond the balance.")
    OUT_OF_STOCK = strawberry.enum_value("OUT_OF_STOCK", description="The item has no stock left.")
    LIMIT_REACHED = strawberry.enum_value("LIMIT_REACHED", description="A per-member or per-period quota is used up.")
    NOT_ELIGIBLE = strawberry.enum_value("NOT_ELIGIBLE", description="Tier, unlock or window rules say no.")
    ALREADY_DONE = strawberry.enum_value(
        "ALREADY_DONE", description="Done before: a second check-in the same day, a reward already claimed.")
    EXPIRED = strawberry.enum_value("EXPIRED", description="The coupon, benefit or window has ended.")


@strawberry.type(description="A business rule said no. Nothing was changed by the request.")
class UserError:
    field: Optional[list[str]] = strawberry.field(
        description='Path to the input field at fault, e.g. ["input", "amount"].')
    message: str = strawberry.field(description="What is wrong, for a developer or an operator to read.")
    code: UserErrorCode = strawberry.field(description="A stable code for clients to branch on.")


def user_errors(rejection: Rejected) -> list[UserError]:
    return [UserError(field=list(p.field) if p.field else None, message=p.message, code=UserErrorCode(p.code.value))
            for p in rejection.problems]
