"""Input checks shared by every report: ids, amounts, times and channels."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from ..domain.errors import Checks, ErrorCode
from ..domain.money import MoneyError, format_yuan, to_fen, to_yuan
from ..domain.program import CHANNELS, STORE_CHANNEL, ProgramDefinition
from ..store.models import ID_LENGTH

# Reports may come from shop clocks a little ahead of ours.
CLOCK_SKEW = timedelta(minutes=5)
# Nothing the shop reports happened before this; earlier times are typos (or year 1, which no zone can convert).
EARLIEST_REPORT = datetime(2000, 1, 1, tzinfo=timezone.utc)
# Jobs may run as of a simulated future, but not as of a time no calendar arithmetic can reach.
EARLIEST_AS_OF = EARLIEST_REPORT
LATEST_AS_OF = datetime(9000, 1, 1, tzinfo=timezone.utc)
EARLIEST_BIRTHDAY = date(1900, 1, 1)
# Blanks other than the space: tabs, line breaks and the like (`\s` is what str.isspace() calls a blank).
_CONTROL_BLANK = re.compile(r"[^\S ]")
# NUL cannot be stored by PostgreSQL and an unpaired surrogate by neither database's driver. The API refuses
# both in any string (api.limits); a JSON line of an import can hold either as an escape (\u0000, \ud800).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE_MESSAGE = "must not contain NUL characters (\\u0000) or unpaired surrogates"


def check_id(checks: Checks, value: str | None, *field: str, required: bool = True) -> None:
    if value is None or value == "":
        if required:
            checks.fail(ErrorCode.INVALID, f"{field[-1]} is required", *field)
        return
    if len(value) > ID_LENGTH:
        checks.fail(ErrorCode.INVALID, f"{field[-1]} is longer than {ID_LENGTH} characters", *field)
    elif value != value.strip() or _CONTROL_BLANK.search(value):
        checks.fail(ErrorCode.INVALID, f"{field[-1]} must not have leading/trailing blanks or control characters", *field)
    elif UNSTORABLE.search(value):
        checks.fail(ErrorCode.INVALID, f"{field[-1]} {UNSTORABLE_MESSAGE}", *field)


def check_text(checks: Checks, value: str | None, max_length: int, *field: str, required: bool = False) -> None:
    if value is None or not value.strip():
        if required or value is not None:
            checks.fail(ErrorCode.INVALID, f"{field[-1]} must not be empty", *field)
        return
    if len(value) > max_length:
        checks.fail(ErrorCode.INVALID, f"{field[-1]} is longer than {max_length} characters", *field)
    elif UNSTORABLE.search(value):
        checks.fail(ErrorCode.INVALID, f"{field[-1]} {UNSTORABLE_MESSAGE}", *field)


def check_amount(checks: Checks, amount: Decimal | str, program: ProgramDefinition, *field: str) -> int | None:
    """A positive amount in whole fen no larger than the program's per-order ceiling.

    Text is what the client sent and must look like money ("250.00"; see to_fen)."""
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
    """A report's time must carry an offset, lie on or after 2000-01-01 and not in the future (beyond the
    clock skew allowed). Comparing aware datetimes never converts them, so year 1 and year 9999 are safe here."""
    if when is None:
        return
    if when.tzinfo is None or when.utcoffset() is None:
        checks.fail(ErrorCode.INVALID, f"{field[-1]} needs a UTC offset, e.g. 2026-03-01T10:00:00+08:00", *field)
    elif when < EARLIEST_REPORT:
        checks.fail(ErrorCode.INVALID, f"{field[-1]} lies before 2000-01-01", *field)
    elif when > now + CLOCK_SKEW:
        checks.fail(ErrorCode.INVALID, f"{field[-1]} lies in the future", *field)


def as_of_problem(when: datetime) -> str | None:
    """Why a job cannot run as of this time, or None: it needs an offset and must lie in 2000-01-01..9000-01-01
    (the future is fine: operators simulate)."""
    if when.tzinfo is None or when.utcoffset() is None:
        return "needs a UTC offset, e.g. 2027-03-01T00:00:00+08:00"
    if not EARLIEST_AS_OF <= when < LATEST_AS_OF:
        return "must lie between 2000-01-01 and 9000-01-01"
    return None


def day_problem(day: date) -> str | None:
    """Why a day cannot bound a report range (KPIs, simulations), or None: the same years as asOf."""
    if not EARLIEST_AS_OF.date() <= day < LATEST_AS_OF.date():
        return "must lie between 2000-01-01 and 9000-01-01"
    return None


def check_birthday(checks: Checks, birthday: date | None, today: date, *field: str) -> None:
    """A birthday lies between 1900-01-01 and today (program time)."""
    if birthday is None:
        return
    if birthday < EARLIEST_BIRTHDAY:
        checks.fail(ErrorCode.INVALID, f"{field[-1]} lies before 1900-01-01", *field)
    elif birthday > today:
        checks.fail(ErrorCode.INVALID, f"{field[-1]} lies in the future", *field)


def check_channel(checks: Checks, program: ProgramDefinition, channel: str, store_code: str | None, *parent: str) -> None:
    """A STORE report names one of the program's stores (NOT_FOUND otherwise); the others name none."""
    if channel not in CHANNELS:
        checks.fail(ErrorCode.INVALID, f"channel must be one of {', '.join(CHANNELS)}", *parent, "channel")
    elif channel == STORE_CHANNEL and store_code is None:
        checks.fail(ErrorCode.INVALID, "storeCode is required for STORE reports", *parent, "storeCode")
    elif channel != STORE_CHANNEL and store_code is not None:
        checks.fail(ErrorCode.INVALID, f"storeCode is only for STORE reports, not {channel}", *parent, "storeCode")
    elif store_code is not None and store_code not in {s.code for s in program.stores}:
        checks.fail(ErrorCode.NOT_FOUND, f"no store {store_code[:40]!r} in this program{_stores_named(program)}",
                    *parent, "storeCode")


STORES_NAMED = 10  # at most, in a message about a store code that is none of them


def _stores_named(program: ProgramDefinition) -> str:
    """The program's store codes, for a message about one that is none of them (a typo is then plain to see)."""
    codes = [store.code for store in program.stores]
    if not codes:
        return ", which has none"
    more = len(codes) - STORES_NAMED
    return f"; its stores: {', '.join(codes[:STORES_NAMED])}" + (f" and {more:,} more" if more > 0 else "")
