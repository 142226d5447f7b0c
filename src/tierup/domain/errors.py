"""Business rejections: a use case refuses with one or more coded problems and changes nothing."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum


class ErrorCode(str, Enum):
    INVALID = "INVALID"
    NOT_FOUND = "NOT_FOUND"
    DUPLICATE = "DUPLICATE"
    INSUFFICIENT_POINTS = "INSUFFICIENT_POINTS"
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
    OUT_OF_STOCK = "OUT_OF_STOCK"
    LIMIT_REACHED = "LIMIT_REACHED"
    NOT_ELIGIBLE = "NOT_ELIGIBLE"
    ALREADY_DONE = "ALREADY_DONE"
    EXPIRED = "EXPIRED"


@dataclass(frozen=True)
class Problem:
    code: ErrorCode
    message: str
    field: tuple[str, ...] | None = None


class Rejected(Exception):
    """Raised inside a use case's transaction: it rolls back and the caller reports userErrors."""

    def __init__(self, *problems: Problem):
        self.problems = list(problems)
        super().__init__("; ".join(p.message for p in problems))

    @classmethod
    def one(cls, code: ErrorCode, message: str, *field: str) -> "Rejected":
        return cls(Problem(code, message, tuple(field) or None))

    def within(self, *prefix: str | int) -> "Rejected":
        """The same problems about one item of a list input: ("input", "amount") becomes
        prefix + ("amount",), e.g. ("input", "orders", "3", "amount")."""
        at = tuple(str(p) for p in prefix)
        return Rejected(*(replace(p, field=at + p.field[1:] if p.field and p.field[0] == "input" else p.field)
                          for p in self.problems))


class Checks:
    """Collects input problems so a request hears about all of them at once."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def fail(self, code: ErrorCode, message: str, *field: str) -> None:
        self.problems.append(Problem(code, message, tuple(field) or None))

    def raise_any(self) -> None:
        if self.problems:
            raise Rejected(*self.problems)
