"""DateTime inputs keep their instant and text, with the standard library's fixed offset (fast to compare)."""

from datetime import datetime, timedelta, timezone

import pytest
from strawberry.exceptions import StrawberryInputCoercionError

from tierup.api.scalars import DateTimeScalar, parse_datetime_value
from tierup.services.reports import payload_hash

PARSE = DateTimeScalar.parse_value


@pytest.mark.parametrize("sent, offset", [("2026-01-15T12:00:00+08:00", 8), ("2026-01-15T04:00:00Z", 0),
                                          ("2026-01-15T12:00:00.250+0800", 8), ("2026-01-14T23:00:00-05:00", -5)])
def test_an_offset_becomes_a_fixed_offset_with_the_same_instant_and_text(sent, offset):
    import dateutil.parser

    parsed, strawberrys = PARSE(sent), dateutil.parser.isoparse(sent)
    assert type(parsed.tzinfo) is timezone and parsed.utcoffset() == timedelta(hours=offset)
    assert parsed == strawberrys and parsed.isoformat() == strawberrys.isoformat()
    # A report's fingerprint names the time as text: an order sent again is still the same report.
    assert payload_hash({"paidAt": parsed}) == payload_hash({"paidAt": strawberrys})


def test_a_time_without_offset_stays_naive_and_nonsense_is_refused():
    assert parse_datetime_value("2026-01-15T12:00:00").tzinfo is None  # refused later, with a field, by the rules
    with pytest.raises(StrawberryInputCoercionError):
        PARSE("yesterday")
    with pytest.raises(StrawberryInputCoercionError):
        PARSE(20260115)
    assert isinstance(PARSE("2026-01-15T12:00:00+08:00"), datetime)
