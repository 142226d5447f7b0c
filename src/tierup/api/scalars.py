"""Scalars whose input keeps what the client wrote.

Strawberry's Decimal reads an input with `Decimal(str(value))`, which also takes "１２３", "1_000", " 12 ",
"1e999999" and "NaN", and an inline literal `1e3` reaches it as the float 1000.0: the text is gone before any
rule sees it. Ours is the same scalar to clients (name "Decimal", description and string serialisation
unchanged), but each input value is a `SentDecimal` that remembers the text it came from, so money inputs
can be judged on what was sent (see `domain.money.to_fen`). A value that is no number at all is still a
GraphQL error, as before.

DateTime is strawberry's too (ISO 8601, read by dateutil), but an offset it reads is handed on as the
standard library's fixed offset instead of dateutil's: the same instant and the same text, while every
comparison with it no longer calls back into Python (a member's state compares hundreds per report).
"""

from __future__ import annotations

import decimal
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import dateutil.parser

from graphql import FloatValueNode, IntValueNode, StringValueNode, ValueNode, value_from_ast_untyped
from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.schema.types.base_scalars import wrap_parser
from strawberry.types.scalar import scalar

from .errors import BAD_USER_INPUT

MAX_SHOWN = 40


class SentDecimal(Decimal):
    """A Decimal input, with `sent`: the text the client wrote (a JSON number as Python writes it)."""

    sent: str

    def __new__(cls, sent: str) -> "SentDecimal":
        value = super().__new__(cls, sent)
        value.sent = sent
        return value


def sent_text(value: Decimal) -> Decimal | str:
    """What the client wrote for a Decimal input; the value itself when it did not come through the API."""
    return getattr(value, "sent", value)


def _refuse(value: Any) -> StrawberryInputCoercionError:
    shown = str(value) if not isinstance(value, str) or len(value) <= MAX_SHOWN else value[:MAX_SHOWN] + "…"
    return StrawberryInputCoercionError(f'Value cannot represent a Decimal: "{shown}".',
                                        extensions={"code": BAD_USER_INPUT})


def parse_decimal_value(value: Any) -> SentDecimal:
    """A variable's value: a string, or a JSON number."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _refuse(value)
    try:
        text = value if isinstance(value, str) else repr(value)
    except ValueError:  # an integer with more digits than Python will print
        raise _refuse("a number too long to read") from None
    try:
        return SentDecimal(text)
    except (decimal.DecimalException, ValueError):
        raise _refuse(value) from None


def parse_decimal_literal(node: ValueNode, variables: dict[str, Any] | None = None) -> SentDecimal:
    """An inline literal: its source text, so `amount: 1e3` is judged as "1e3", not as 1000.0."""
    if isinstance(node, (StringValueNode, IntValueNode, FloatValueNode)):
        return parse_decimal_value(node.value)
    return parse_decimal_value(value_from_ast_untyped(node, variables))


DecimalScalar = scalar(
    name="Decimal",
    description="Decimal (fixed-point)",
    serialize=str,
    parse_value=parse_decimal_value,
    parse_literal=parse_decimal_literal,
)

def parse_datetime_value(value: str) -> datetime:
    moment = dateutil.parser.isoparse(value)
    offset = moment.utcoffset()
    return moment if offset is None else moment.replace(tzinfo=timezone(offset))


DateTimeScalar = scalar(
    name="DateTime",
    description="Date with time (isoformat)",
    serialize=datetime.isoformat,
    parse_value=wrap_parser(parse_datetime_value, "DateTime"),
)

# For strawberry.Schema(scalar_overrides=...): every Decimal and DateTime in the schema uses these definitions.
SCALAR_OVERRIDES = {Decimal: DecimalScalar, datetime: DateTimeScalar}
