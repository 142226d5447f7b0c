"""Input checks shared by every report: ids, amounts and times."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from ..domain.errors import Checks, ErrorCode
from ..domain.money import MoneyError, format_yuan, to_fen, to_yuan
from ..domain.program import ProgramDefinition
from ..store.models import ID_LENGTH

# Reports may come from shop clocks a little ahead of ours.
CLOCK_SKEW = timedelta(minutes=5)


def check_id(checks: Checks, value: str | None, *field: str, required: bool = True) -> None:
    if value is None or value == "":
        if required:
            checks.fail(ErrorCode.INVALID, f"{field[-1]} is required", *field)
        return
    if len(value) > ID_LENGTH:
        checks.fail(ErrorCode.INVALID, f"{field[-1]} is longer than {ID_LENGTH} characters", *field)
    elif value != value.strip() or any(ch.isspace() and ch != " " for ch in value):
        checks.fail(ErrorCode.INVALID, f"{field[-1]} must not have leading/trailing blanks or control characters", *field)


def check_text(checks: Checks, value: str | None, max_length: int, *field: str, required: bool = False) -> None:
    if value is None or not value.strip():
        if required or value is not None:
            checks.fail(ErrorCode.INVALID, f"{field[-1]} must not be empty", *field)
        return
    if len(value) > max_length:
        checks.fail(ErrorCode.INVALID, f"{field[-1]} is longer than {max_length} characters", *field)


def check_amount(checks: Checks, amount: Decimal, program: ProgramDefinition, *field: str) -> int | None:
    """A positive amount in whole fen no larger than the program's per-order ceiling."""
    try:
        fen = to_fen(amount)
    except MoneyError as exc:
        checks.fail(ErrorCode.INVALID, f"{field[-1]}: {exc}", *field)
        return None
    if fen <= 0:
        checks.fail(ErrorCode.INVALID, f"{field[-1]} must be greater than zero", *field)
        return None
    if fen > program.max_order_fen:
        ceiling = format_yuan(to_yuan(program.max_order_fen), program.currency_symbol)
        checks.fail(ErrorCode.INVALID, f"{field[-1]} is above the program's ceiling of {ceiling} per order", *field)
        return None
    return fen


def check_time(checks: Checks, when: datetime | None, now: datetime, *field: str) -> None:
    """A report's time must carry an offset and may not lie in the future."""
    if when is None:
        return
    if when.tzinfo is None:
        checks.fail(ErrorCode.INVALID, f"{field[-1]} needs a UTC offset, e.g. 2026-03-01T10:00:00+08:00", *field)
    elif when > now + CLOCK_SKEW:
        checks.fail(ErrorCode.INVALID, f"{field[-1]} lies in the future", *field)
