"""What a program's rules give, worked out once per rule object.

Rules are immutable, and a report's rules ask for the same derived figures again and again (a tier's
thresholds, a quest's window). Hashing a rule, tuples of rules within, costs more than the work, so
figures are kept by the rule's id, with the rule itself, which keeps the id its own.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

T = TypeVar("T")
_KEPT: dict[tuple, tuple[Any, Any]] = {}
# A program published again brings new rule objects; past this many figures the old ones are let go.
_MOST_KEPT = 4096


def derived(build: Callable[..., T], rule: Any, *args: Any) -> T:
    """build(rule, *args), once for this rule object and these (cheaply hashed) arguments."""
    key = (build, id(rule), *args)
    found = _KEPT.get(key)
    if found is None or found[0] is not rule:
        if len(_KEPT) >= _MOST_KEPT:
            _KEPT.clear()
        found = _KEPT[key] = (rule, build(rule, *args))
    return found[1]
