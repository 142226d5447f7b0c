"""Goals count a window's items by bisection over lists in time order: the figures are those of
looking at every item, for any history, window and moment (including the window's edges)."""

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given, settings, strategies as st

from tierup.domain.activity import Activity, goal_value, local, period_bounds
from tierup.domain.program import Window

TZ = ZoneInfo("Asia/Shanghai")
EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)
WINDOWS = [Window("lifetime"), Window("day"), Window("week"), Window("month"),
           Window("campaign", date(2026, 1, 10), date(2026, 2, 20))]
# Whole hours and half days apart, so that items fall on midnights (the windows' edges) too.
moments = st.lists(st.integers(0, 24 * 100).map(lambda hours: EPOCH + timedelta(hours=hours)), max_size=30).map(sorted)


def counted(moment: datetime, bounds, at: datetime) -> bool:
    start, end = bounds
    return moment <= at and (start is None or moment >= start) and (end is None or moment < end)


def streak(months: set[int]) -> int:
    return max((n for n in range(1, 13) for m in months if all(m + k in months for k in range(n))), default=0)


def day_streak(days: set[date], today: date) -> int:
    """Consecutive days ending today, or yesterday when today is not among them."""
    last = today if today in days else today - timedelta(days=1)
    return next(n for n in range(len(days) + 1) if last - timedelta(days=n) not in days)


@settings(max_examples=300, deadline=None)
@given(orders=moments, actions=moments, reviews=moments, at_hours=st.integers(0, 24 * 100),
       window=st.sampled_from(WINDOWS), kind=st.sampled_from([None, "ECO", "RUN"]))
def test_every_goal_counts_what_a_look_at_every_item_counts(orders, actions, reviews, at_hours, window, kind):
    at = EPOCH + timedelta(hours=at_hours)
    days = sorted({local(m, TZ).date() for m in reviews})
    activity = Activity(orders=[(m, 100 + n * 250) for n, m in enumerate(orders)], check_ins=days,
                        photo_reviews=reviews, referral_first_orders=orders,
                        actions=[(m, "ECO" if n % 3 else "RUN") for n, m in enumerate(actions)])
    bounds = period_bounds(window, at, TZ)
    inside = [(m, fen) for m, fen in activity.orders if counted(m, bounds, at)]
    midnight = {day: datetime.combine(day, datetime.min.time(), tzinfo=TZ) for day in days}
    expected = {
        "orders": len(inside),
        "spend": sum(fen for _, fen in inside) // 100,
        "order_month_streak": streak({local(m, TZ).year * 12 + local(m, TZ).month for m, _ in inside}),
        "check_in_days": sum(1 for day in days if counted(midnight[day], bounds, at)),
        "check_in_streak": day_streak(set(days), local(at, TZ).date()),
        "photo_reviews": sum(1 for m in reviews if counted(m, bounds, at)),
        "referred_first_orders": sum(1 for m in orders if counted(m, bounds, at)),
        "activities": sum(1 for m, done in activity.actions if counted(m, bounds, at) and kind in (None, done)),
    }
    assert {metric: goal_value(metric, activity, window, at, TZ, kind) for metric in expected} == expected


def test_a_month_with_several_orders_counts_once_in_a_streak():
    from tierup.domain.activity import longest_month_streak

    paid = [datetime(2026, 1, 5, tzinfo=timezone.utc), datetime(2026, 2, 5, tzinfo=timezone.utc),
            datetime(2026, 2, 6, tzinfo=timezone.utc), datetime(2026, 2, 28, 16, tzinfo=timezone.utc),  # March 1st there
            datetime(2026, 3, 5, tzinfo=timezone.utc), datetime(2026, 5, 5, tzinfo=timezone.utc)]
    orders = [(moment, 100) for moment in paid]
    assert longest_month_streak(orders, TZ) == 3
    assert longest_month_streak(orders[:3], TZ) == 2
