"""Program data for money and engagement: bad values fail to load, each named by its key path."""

import pytest

from tierup.programs import bundled_program_path
from tierup.programs.loader import ProgramError, parse_program_text

CLASSIC = bundled_program_path("classic").read_text(encoding="utf-8")

BROKEN = [
    ('[[stores]]\ncode = "SH-001"\nname = "again"', "stores[2].code: duplicate store code 'SH-001'"),
    ('[[stores]]\ncode = "sh 1"\nname = "x"', "stores[2].code: 'sh 1' does not match"),
    ('[[boosts]]\ncode = "B"\nname = "x"\nmultiplier = "2"\nweekday = 8', "boosts[2].weekday: must be between 1 and 7"),
    ('[[boosts]]\ncode = "B"\nname = "x"\nmultiplier = "2"\nchannels = ["SHOP"]', "boosts[2].channels: unknown channels"),
    ('[[boosts]]\ncode = "B"\nname = "x"\nmultiplier = "2"\nweekday = 1\nday_of_month = 1',
     "boosts[2]: name at most one of"),
    ('[[membership_plans]]\ncode = "PLUS_YEAR"\nname = "x"\nprice = "1"\nmonths = 1',
     "membership_plans[2].code: duplicate plan code 'PLUS_YEAR'"),
    ('[[membership_plans]]\ncode = "P"\nname = "x"\nprice = "1"\nmonths = 1\nbenefits = ["NOPE"]',
     "membership_plans[2].benefits: unknown benefits ['NOPE']"),
]


@pytest.mark.parametrize("extra, problem", BROKEN)
def test_a_bad_rule_names_its_key_path(extra, problem):
    with pytest.raises(ProgramError) as refused:
        parse_program_text(CLASSIC + "\n" + extra + "\n", "classic.toml")
    assert any(str(p).startswith(problem) for p in refused.value.problems), refused.value.problems


@pytest.mark.parametrize("old, new, problem", [
    ('{ at_least = "1000", bonus = "80" }', '{ at_least = "400", bonus = "80" }',
     "stored_value.top_up_bonus[1].at_least: thresholds must rise"),
    ("points_cap_percent = 50", "points_cap_percent = 150", "checkout.points_cap_percent: must be between 0 and 100"),
    ('points_multiplier = "2"', 'points_multiplier = "2"\nmember_price_percent = "101"',
     "ladder.tiers[1].member_price_percent: must be greater than 0 and at most 100"),
])
def test_a_bad_setting_names_its_key_path(old, new, problem):
    with pytest.raises(ProgramError) as refused:
        parse_program_text(CLASSIC.replace(old, new, 1), "classic.toml")
    assert any(str(p).startswith(problem) for p in refused.value.problems), refused.value.problems
