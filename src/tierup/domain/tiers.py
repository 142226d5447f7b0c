"""Tier qualification: which tier a member's metrics reach, and how far the next one is."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Callable, Mapping, Sequence

from .activity import moment_of
from .clock import months_before
from .money import format_yuan, to_yuan
from .derived import derived
from .program import Condition, ProgramDefinition, TierRule


@dataclass(frozen=True)
class MemberMetrics:
    """What tier conditions are measured on, for one member at one moment.

    Spend is net of refunds. Cumulative spend, the largest order and the order count cover the
    member's qualification period (see `counting_since`); windowed figures are keyed by the
    window length in months and end at the moment judged; growth value is the member's running
    total.
    """

    cumulative_spend_fen: int = 0
    largest_order_fen: int = 0
    order_count: int = 0
    spend_fen_in_months: Mapping[int, int] = field(default_factory=dict)
    orders_in_months: Mapping[int, int] = field(default_factory=dict)
    growth_value: int = 0
    # When a windowed figure next changes by time alone (for kept answers; not a figure itself).
    changes_at: datetime | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Metric:
    """A metric tier conditions may use: how to read it and how to say it."""

    name: str
    money: bool
    months: str  # "required", "optional" or "forbidden"
    measure: Callable[[MemberMetrics, int | None], int | Decimal]  # in fen for money
    describe: Callable[[str, int | None], str]

    def value(self, metrics: MemberMetrics, months: int | None) -> Decimal:
        """As a condition states it: money in yuan."""
        measured = self.measure(metrics, months)
        return to_yuan(measured) if self.money else Decimal(measured)

    def threshold(self, target: Decimal) -> int | Decimal:
        """A condition's target in the measure's unit (fen for money), a whole one as an int: compared with
        what is measured, an int costs a fraction of a Decimal."""
        measured = target * 100 if self.money else target
        return int(measured) if measured == measured.to_integral_value() else measured


def _windowed(table: str) -> Callable[[MemberMetrics, int | None], int]:
    return lambda m, months: getattr(m, table).get(months, 0)


def _order_count(m: MemberMetrics, months: int | None) -> int:
    return m.order_count if months is None else m.orders_in_months.get(months, 0)


def _average_monthly_orders(m: MemberMetrics, months: int | None) -> Decimal:
    average = Decimal(m.orders_in_months.get(months, 0)) / Decimal(months)
    return average.quantize(Decimal("0.01"), rounding=ROUND_FLOOR)


METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric("cumulative_spend", True, "forbidden",
               lambda m, _: m.cumulative_spend_fen,
               lambda target, _: f"cumulative spend ≥ {target}"),
        Metric("single_order_amount", True, "forbidden",
               lambda m, _: m.largest_order_fen,
               lambda target, _: f"one order ≥ {target}"),
        Metric("spend_in_months", True, "required",
               _windowed("spend_fen_in_months"),
               lambda target, months: f"≥ {target} spent in the past {months} months"),
        Metric("order_count", False, "optional", _order_count,
               lambda target, months: f"{target} orders" + (f" in the past {months} months" if months else "")),
        Metric("average_monthly_orders", False, "required", _average_monthly_orders,
               lambda target, months: f"on average ≥ {target} orders a month over the past {months} months"),
        Metric("growth_value", False, "forbidden",
               lambda m, _: m.growth_value,
               lambda target, _: f"growth value ≥ {target}"),
    )
}


@dataclass(frozen=True)
class ConditionProgress:
    condition: Condition
    description: str
    current: Decimal
    target: Decimal

    @property
    def met(self) -> bool:
        return self.current >= self.target


def describe_condition(condition: Condition, currency_symbol: str = "¥") -> str:
    metric = METRICS[condition.metric]
    target = format_yuan(condition.target, currency_symbol) if metric.money else _plain(condition.target)
    return metric.describe(target, condition.months)


def _plain(number: Decimal) -> str:
    return f"{plain_number(number):f}"


def plain_number(number: Decimal) -> Decimal:
    """The number without trailing zeros and without an exponent: 300, not 3E+2 (what normalize() alone gives)."""
    normal = number.normalize()
    return normal.quantize(Decimal(1)) if normal.as_tuple().exponent > 0 else normal


def counting_since(program: ProgramDefinition, period_started_at: datetime | None) -> datetime | None:
    """Where a member's cumulative figures start: after the start of their current qualification period.

    The period starts at enrolment and restarts at every tier evaluation (kept, raised or
    lowered); an upgrade on an order does not restart it. `period_started_at` is the time of the
    member's latest evaluation, None before the first one (then the whole history counts). A
    permanent ladder is never evaluated and counts the whole history whatever is stored.
    """
    if program.tier_validity_months is None:
        return None
    return period_started_at


def condition_progress(metrics: MemberMetrics, condition: Condition, currency_symbol: str = "¥") -> ConditionProgress:
    current = METRICS[condition.metric].value(metrics, condition.months)
    return ConditionProgress(condition, describe_condition(condition, currency_symbol), current, condition.target)


def qualifies(metrics: MemberMetrics, tier: TierRule) -> bool:
    """A tier is reached when ANY of its conditions holds; the entry tier has none and always holds."""
    return not tier.conditions or any(measure(metrics, months) >= threshold
                                      for measure, months, threshold in derived(_measured, tier))


def _measured(tier: TierRule) -> tuple[tuple[Callable, int | None, int | Decimal], ...]:
    """The tier's conditions as qualifies measures them."""
    return tuple((METRICS[c.metric].measure, c.months, METRICS[c.metric].threshold(c.target)) for c in tier.conditions)


def qualifying_tier(metrics: MemberMetrics, program: ProgramDefinition) -> TierRule:
    """The highest tier of the ladder the metrics reach (looked for from the top: most members reach the
    lower ones, whose conditions then need no measuring)."""
    return tier_reached_above(metrics, program, program.entry_tier) or program.entry_tier


def tier_reached_above(metrics: MemberMetrics, program: ProgramDefinition, tier: TierRule) -> TierRule | None:
    """The highest tier above `tier` the metrics reach, None when they reach none: an upgrade from `tier` need not
    measure the tiers below it."""
    for rank in range(len(program.tiers) - 1, tier.rank, -1):
        if qualifies(metrics, program.tiers[rank]):
            return program.tiers[rank]
    return None


def counts_growth_value(program: ProgramDefinition) -> bool:
    """Whether any tier of the ladder is reached by growth value: if none is, rewards that raise it move no tier."""
    return derived(_counts_growth_value, program)


def _counts_growth_value(program: ProgramDefinition) -> bool:
    return any(condition.metric == "growth_value" for tier in program.tiers for condition in tier.conditions)


def metric_windows(program: ProgramDefinition) -> tuple[frozenset[int], frozenset[int]]:
    """The window lengths (months) the ladder needs: (for spend, for order counts)."""
    return derived(_windows, program)


def _windows(program: ProgramDefinition) -> tuple[frozenset[int], frozenset[int]]:
    spend: set[int] = set()
    orders: set[int] = set()
    for tier in program.tiers:
        for condition in tier.conditions:
            if condition.months is None:
                continue
            if condition.metric == "spend_in_months":
                spend.add(condition.months)
            else:
                orders.add(condition.months)
    return frozenset(spend), frozenset(orders)


def higher(a: TierRule, b: TierRule) -> TierRule:
    return a if a.rank >= b.rank else b


def order_metrics(program: ProgramDefinition, orders: Sequence[tuple[datetime, int]], *, as_of: datetime,
                  period_started_at: datetime | None, growth_value: int) -> MemberMetrics:
    """A member's metrics at `as_of` from their orders (paid at, net fen), in time order, counted as the
    store's member_metrics counts them: orders after `as_of` do not count, cumulative figures cover the
    qualification period, windows end at `as_of`. For members whose orders are in memory (a batch, the
    replay); `changes_at` is not told."""
    end = bisect.bisect_right(orders, as_of, key=moment_of)
    since = counting_since(program, period_started_at)
    start = bisect.bisect_right(orders, since, key=moment_of) if since is not None else 0
    in_period = [net for _, net in orders[start:end]]
    spend_windows, order_windows = metric_windows(program)
    spend: dict[int, int] = {}
    counts: dict[int, int] = {}
    for months in spend_windows | order_windows:
        inside = [net for _, net in orders[bisect.bisect_right(orders, months_before(as_of, months, program.zone),
                                                                key=moment_of):end]]
        if months in spend_windows:
            spend[months] = sum(inside)
        if months in order_windows:
            counts[months] = sum(1 for net in inside if net > 0)
    return MemberMetrics(cumulative_spend_fen=sum(in_period), largest_order_fen=max(in_period, default=0),
                         order_count=sum(1 for net in in_period if net > 0), spend_fen_in_months=spend,
                         orders_in_months=counts, growth_value=growth_value)
