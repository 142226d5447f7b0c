"""Pure rules: points arithmetic, tier qualification, program calendar, definition checks."""

from datetime import datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from tierup.domain.clock import add_months, months_before
from tierup.domain.money import MoneyError, format_yuan, to_fen
from tierup.domain.points import points_for_order, points_to_reverse, reversal_within_balance
from tierup.domain.tiers import (MemberMetrics, counting_since, counts_growth_value, describe_condition, plain_number,
                                 qualifying_tier, tier_reached_above)
from tierup.domain.program import Condition, ProgramDefinition, TierRule
from tierup.programs import ProgramError, bundled_program_path, load_program_file, parse_program_text

CLASSIC = load_program_file(bundled_program_path("classic"))
NINE = load_program_file(bundled_program_path("nine-levels"))
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize("fen, multiplier, points", [
    (25099, Decimal(2), 501), (9999, Decimal(1), 99), (100, Decimal("1.1"), 1), (999, Decimal("1.5"), 14), (1, Decimal(4), 0),
])
def test_points_are_floored(fen, multiplier, points):
    assert points_for_order(fen, multiplier) == points


def test_partial_refunds_never_take_more_than_earned():
    for earned, order in [(99, 9999), (1400, 70000), (7, 300)]:
        for step in (1, 7, 33, 100):
            taken, refunded = 0, 0
            while refunded < order:
                part = min(step * 37, order - refunded)
                taken += points_to_reverse(earned, order, refunded, part)
                refunded += part
                assert taken <= earned
            assert taken == earned


def test_a_reversal_stops_at_zero():
    assert reversal_within_balance(200, 50) == (50, 150)
    assert reversal_within_balance(200, 500) == (200, 0)


@pytest.mark.parametrize("amount, fen", [("150", 15000), ("0.01", 1), ("1000000", 100000000), (Decimal("2.50"), 250)])
def test_money_converts_exactly(amount, fen):
    assert to_fen(amount) == fen


@pytest.mark.parametrize("amount", ["10.001", "abc", "NaN", "Infinity"])
def test_money_refuses_what_is_not_money(amount):
    with pytest.raises(MoneyError):
        to_fen(amount)


def test_amounts_read_like_an_operator_writes_them():
    assert format_yuan(Decimal("1000000")) == "¥1,000,000"
    assert format_yuan(Decimal("12.5")) == "¥12.50"


def metrics(cumulative=0, largest=0, last_12=0, orders_12=0, orders=0, growth=0):
    return MemberMetrics(cumulative_spend_fen=cumulative * 100, largest_order_fen=largest * 100, order_count=orders,
                         spend_fen_in_months={12: last_12 * 100}, orders_in_months={12: orders_12}, growth_value=growth)


@pytest.mark.parametrize("figures, tier", [
    (metrics(), "REGULAR"),
    (metrics(cumulative=499, largest=199), "REGULAR"),
    (metrics(cumulative=500), "SILVER"),
    (metrics(largest=200), "SILVER"),
    (metrics(cumulative=1999, last_12=999), "SILVER"),
    (metrics(cumulative=1100, last_12=1000), "GOLD"),
    (metrics(cumulative=2000), "GOLD"),
    (metrics(cumulative=4999, last_12=3000), "DIAMOND"),
    (metrics(cumulative=5000), "DIAMOND"),
])
def test_classic_thresholds(figures, tier):
    assert qualifying_tier(figures, CLASSIC).code == tier


@pytest.mark.parametrize("figures, tier", [
    (metrics(orders=3), "V2"),
    (metrics(cumulative=200), "V2"),
    (metrics(growth=300), "V3"),
    (metrics(orders_12=24), "V4"),
    (metrics(orders_12=23, last_12=7999), "V1"),
    (metrics(last_12=8000), "V4"),
    (metrics(growth=1500), "V5"),
    (metrics(orders_12=48), "V6"),
    (metrics(last_12=30000), "V7"),
    (metrics(last_12=100000), "V9"),
])
def test_nine_levels_thresholds(figures, tier):
    assert qualifying_tier(figures, NINE).code == tier


@pytest.mark.parametrize("figures, current, reached", [
    (metrics(cumulative=2000), "REGULAR", "GOLD"),
    (metrics(cumulative=2000), "SILVER", "GOLD"),
    (metrics(cumulative=2000), "GOLD", None),  # what the member holds is not reached again
    (metrics(cumulative=2000), "DIAMOND", None),  # nor anything below it
    (metrics(cumulative=499), "REGULAR", None),
    (metrics(cumulative=5000), "DIAMOND", None),  # the top of the ladder has nothing above it
])
def test_an_upgrade_looks_only_above_the_tier_held(figures, current, reached):
    found = tier_reached_above(figures, CLASSIC, CLASSIC.tier(current))
    assert (found and found.code) == reached


def test_a_ladder_counts_growth_value_only_where_a_tier_names_it():
    assert (counts_growth_value(CLASSIC), counts_growth_value(NINE)) == (False, True)


FRACTIONAL = ProgramDefinition(code="fractional", name="Fractional", currency="CNY", time_zone="Asia/Shanghai", tiers=(
    TierRule("BASE", "Base", 0, Decimal(1)),
    TierRule("SPEND", "Spend", 1, Decimal(1), (Condition("cumulative_spend", Decimal("199.99")),)),
    TierRule("ORDERS", "Orders", 2, Decimal(1), (Condition("order_count", Decimal("2.5")),)),
    TierRule("AVERAGE", "Average", 3, Decimal(1), (Condition("average_monthly_orders", Decimal("1.5"), 2),)),
))


@pytest.mark.parametrize("figures, tier", [
    (MemberMetrics(cumulative_spend_fen=19_998), "BASE"),
    (MemberMetrics(cumulative_spend_fen=19_999), "SPEND"),
    (MemberMetrics(order_count=2), "BASE"),  # 2 orders are not 2.5
    (MemberMetrics(order_count=3), "ORDERS"),
    (MemberMetrics(orders_in_months={2: 2}), "BASE"),  # 1 a month
    (MemberMetrics(orders_in_months={2: 3}), "AVERAGE"),  # 1.5 a month
])
def test_thresholds_hold_to_the_fen_and_between_whole_counts(figures, tier):
    assert qualifying_tier(figures, FRACTIONAL).code == tier


@pytest.mark.parametrize("number, plain", [
    ("300", "300"), ("3E+2", "300"), ("300.00", "300"), ("10", "10"), ("2.50", "2.5"), ("0.00", "0"), ("1500", "1500"),
])
def test_counts_and_growth_values_read_without_an_exponent(number, plain):
    assert str(plain_number(Decimal(number))) == plain


def test_a_growth_value_condition_says_its_target_plainly():
    v3 = NINE.tier("V3")
    assert [describe_condition(c) for c in v3.conditions] == ["cumulative spend ≥ ¥1,000", "growth value ≥ 300"]


def test_cumulative_figures_count_from_the_latest_evaluation_unless_tiers_are_permanent():
    from dataclasses import replace

    evaluated = datetime(2026, 1, 10, 2, 0, tzinfo=timezone.utc)
    assert counting_since(CLASSIC, evaluated) == evaluated
    assert counting_since(CLASSIC, None) is None  # never evaluated: the period runs from enrolment
    assert counting_since(replace(CLASSIC, tier_validity_months=None), evaluated) is None


def test_months_are_calendar_months_in_program_time():
    assert add_months(datetime(2026, 1, 31, tzinfo=SHANGHAI), 1) == datetime(2026, 2, 28, tzinfo=SHANGHAI)
    as_of = datetime(2025, 2, 28, 23, 0, tzinfo=timezone.utc)  # 2025-03-01 07:00 in Shanghai
    assert months_before(as_of, 12, SHANGHAI) == datetime(2024, 2, 29, 23, 0, tzinfo=timezone.utc)


def test_fixtures_state_the_documented_numbers():
    assert [t.code for t in CLASSIC.tiers] == ["REGULAR", "SILVER", "GOLD", "DIAMOND"]
    assert [t.name for t in CLASSIC.tiers] == ["普通会员", "银卡会员", "金卡会员", "钻石会员"]
    assert [t.points_multiplier for t in CLASSIC.tiers] == [1, 2, 3, 4]
    assert (CLASSIC.time_zone, CLASSIC.currency, CLASSIC.tier_validity_months) == ("Asia/Shanghai", "CNY", 12)
    assert (CLASSIC.welcome_points, CLASSIC.max_order_fen) == (100, 100_000_000)
    assert [s.code for s in NINE.stages] == ["BASE", "ADVANCED", "PEAK"]
    assert len(NINE.tiers) == 9


def test_a_definition_needs_an_entry_tier_without_conditions():
    text = '''code = "x"
name = "X"
currency = "CNY"
time_zone = "Asia/Shanghai"
[[ladder.tiers]]
code = "A"
name = "A"
conditions = [{ metric = "order_count", at_least = 1 }]
[[ladder.tiers]]
code = "A"
name = "B"
'''
    with pytest.raises(ProgramError) as error:
        parse_program_text(text, "x.toml")
    assert [str(p) for p in error.value.problems] == [
        "ladder.tiers[0].conditions: the entry tier (the first) is reached on enrolment and takes no conditions",
        "ladder.tiers[1].code: duplicate tier code 'A'",
        "ladder.tiers[1].conditions: a tier above the entry tier needs at least one condition",
    ]


def test_invalid_toml_names_the_file():
    with pytest.raises(ProgramError, match=r"^bad.toml: not valid TOML"):
        parse_program_text("code = ", "bad.toml")


GROWTH = '''code = "g"
name = "G"
currency = "CNY"
time_zone = "Asia/Shanghai"
[[ladder.tiers]]
code = "A"
name = "A"
[[tasks]]
code = "ONE"
kind = "BASIC"
title = "t"
description = "d"
prerequisites = ["THREE"]
goal = { metric = "orders", target = 1 }
[[tasks]]
code = "TWO"
kind = "ADVANCED"
title = "t"
description = "d"
prerequisites = ["ONE", "GHOST"]
goal = { metric = "steps_walked", target = 1 }
[[tasks]]
code = "THREE"
kind = "CHALLENGE"
title = "t"
description = "d"
prerequisites = ["TWO"]
goal = { metric = "orders", target = 1, window = "fortnight" }
'''


def test_a_growth_tree_with_unknown_names_or_a_cycle_fails_naming_them():
    with pytest.raises(ProgramError) as error:
        parse_program_text(GROWTH, "g.toml")
    assert [str(p) for p in error.value.problems] == [
        "tasks[1].goal.metric: unknown metric 'steps_walked' (known: orders, spend, order_month_streak, "
        "check_in_days, check_in_streak, photo_reviews, referred_first_orders, activities)",
        "tasks[2].goal.window: unknown window 'fortnight' (known: lifetime, day, week, month, campaign)",
        "tasks[1].prerequisites: unknown task 'GHOST'",
        "tasks: prerequisites form a cycle among ONE → THREE → TWO",
    ]


def test_streaks_and_months():
    from datetime import date

    from tierup.domain.activity import check_in_streak, longest_month_streak

    days = [date(2026, 1, d) for d in (1, 2, 3, 5, 6)]
    assert check_in_streak(days, date(2026, 1, 6)) == 2
    assert check_in_streak(days, date(2026, 1, 7)) == 2  # not yet today: the streak still stands
    assert check_in_streak(days, date(2026, 1, 8)) == 0
    moments = [datetime(2025, 12, 31, 17, tzinfo=timezone.utc),  # 2026-01-01 01:00 in Shanghai
               datetime(2026, 2, 15, tzinfo=timezone.utc), datetime(2026, 3, 1, tzinfo=timezone.utc)]
    assert longest_month_streak([(moment, 100) for moment in moments], SHANGHAI) == 3


@pytest.mark.parametrize("text", ["１２３", "١٢٣", "1_000", " 12.00 ", "12.00\n", "+5.00", "1e3", "1E3", "1e999999", "NaN",
                                  "Infinity", "-Infinity", ".5", "5.", "", "-", "1.2.3", "12,00", "0x10"])
def test_money_text_is_only_what_it_looks_like(text):
    with pytest.raises(MoneyError, match="is not an amount"):
        to_fen(text)


@pytest.mark.parametrize("amount, message", [
    ("10.000", "10.000 has more than two decimal places"),
    ("9" * 31, "is too large to be an amount"),
    ("9" * 5000, "is too large to be an amount"),  # never handed to int(): past Python's digit limit
    (Decimal("1e999999"), "is too large to be an amount"),  # no decimal.Overflow
    (Decimal("1e-999999"), "has more than two decimal places"),
])
def test_money_refuses_extremes_with_a_message(amount, message):
    with pytest.raises(MoneyError, match=message):
        to_fen(amount)


@pytest.mark.parametrize("amount, fen", [("0250.50", 25050), ("-5", -500), ("0", 0), ("999999999.99", 99999999999),
                                         (Decimal("1E+3"), 100000), (Decimal("10.000"), 1000), (7, 700)])
def test_plain_money_text_and_program_decimals_convert_exactly(amount, fen):
    # Text is a client's and must look like money; a Decimal from inside the program is judged by value.
    assert to_fen(amount) == fen


def test_a_boost_runs_for_its_tiers_channels_days_and_categories_and_the_best_one_wins_each_line():
    from datetime import date
    from decimal import Decimal

    from tierup.domain.boosts import BoostRule, points_with_boosts
    from tierup.domain.checkout import Line

    boosts = (BoostRule("GOLD_STORE", "金卡到店", Decimal("1.5"), tiers=("GOLD",), channels=("STORE",)),
              BoostRule("ECO", "环保", Decimal("2"), categories=("ECO",)),
              BoostRule("JUNE", "六月", Decimal("3"), starts=date(2026, 6, 1), ends=date(2026, 6, 30),
                        categories=("FOOD",)))
    may = datetime(2026, 5, 10, 4, tzinfo=timezone.utc)

    def earned(lines=None, *, at=may, tier="GOLD", channel="STORE", paid=10_000):
        earning = points_with_boosts(paid, Decimal("1"), lines, boosts, at=at, tz=SHANGHAI, tier=tier, channel=channel)
        return earning.points, [b.code for b in earning.boosts]

    assert earned() == (150, ["GOLD_STORE"])  # no lines: one line of no category
    assert earned(channel="ONLINE") == (100, [])  # a boost naming categories never runs for an order without lines
    assert earned(tier="SILVER") == (100, [])
    lines = [Line("tea", 6_000, categories=("ECO", "FOOD")), Line("cup", 4_000)]
    assert earned(lines) == (120 + 60, ["ECO", "GOLD_STORE"])  # ¥60 at 2×, ¥40 at 1.5×
    assert earned(lines, at=datetime(2026, 6, 10, 4, tzinfo=timezone.utc)) == (180 + 60, ["JUNE", "GOLD_STORE"])
    assert earned(lines, channel="ONLINE", paid=5_000) == (60 + 20, ["ECO"])  # ¥50 paid, shared by list price


@pytest.mark.parametrize("stores, named", [
    ((), "no store 'XX-9' in this program, which has none"),
    (("SH-001", "BJ-001"), "no store 'XX-9' in this program; its stores: SH-001, BJ-001"),
    (tuple(f"S-{n:02}" for n in range(12)),
     "no store 'XX-9' in this program; its stores: S-00, S-01, S-02, S-03, S-04, S-05, S-06, S-07, S-08, S-09 and 2 more"),
])
def test_an_unknown_store_code_is_answered_with_the_programs_stores(stores, named):
    from dataclasses import replace

    from tierup.domain.errors import Checks, ErrorCode, Rejected
    from tierup.domain.program import StoreRule
    from tierup.services.validation import check_channel

    program = replace(CLASSIC, stores=tuple(StoreRule(code, code) for code in stores))
    checks = Checks()
    check_channel(checks, program, "STORE", "XX-9", "input")
    with pytest.raises(Rejected) as rejected:
        checks.raise_any()
    [problem] = rejected.value.problems
    assert (problem.code, problem.message, problem.field) == (ErrorCode.NOT_FOUND, named, ("input", "storeCode"))
