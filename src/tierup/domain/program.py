"""A program definition: the rules of one member program, as data."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Condition:
    """One qualifying rule of a tier: metric ≥ target, optionally over the past `months` months."""

    metric: str
    target: Decimal
    months: int | None = None


@dataclass(frozen=True)
class TierRule:
    code: str
    name: str
    rank: int
    points_multiplier: Decimal
    conditions: tuple[Condition, ...] = ()
    stage: str | None = None
    description: str = ""


@dataclass(frozen=True)
class StageRule:
    code: str
    name: str
    description: str = ""


@dataclass(frozen=True)
class ProgramDefinition:
    code: str
    name: str
    currency: str
    time_zone: str
    tiers: tuple[TierRule, ...]
    stages: tuple[StageRule, ...] = ()
    tier_validity_months: int | None = 12  # None: tiers are permanent (长期)
    welcome_points: int = 0
    max_order_fen: int = 100_000_000
    point_value: Decimal = Decimal("0.01")
    currency_symbol: str = "¥"
    source: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def entry_tier(self) -> TierRule:
        return self.tiers[0]

    def tier(self, code: str) -> TierRule:
        for tier in self.tiers:
            if tier.code == code:
                return tier
        raise KeyError(code)

    def next_tier(self, code: str) -> TierRule | None:
        rank = self.tier(code).rank
        return self.tiers[rank + 1] if rank + 1 < len(self.tiers) else None
