"""A program definition: the rules of one member program, as data."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo

from .rfm import LifecycleRules

if TYPE_CHECKING:
    from .boosts import BoostRule


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
    member_price_percent: Decimal | None = None  # 会员价: 99 = 99折; None = the list price


# Where a report comes from (线上线下融合): one member, one ledger, whatever the channel.
CHANNELS = ("ONLINE", "APP", "MINI_PROGRAM", "STORE")
DEFAULT_CHANNEL = "ONLINE"
STORE_CHANNEL = "STORE"


@dataclass(frozen=True)
class StoreRule:
    """A physical store the program lists; STORE reports name one."""

    code: str
    name: str
    city: str | None = None


@dataclass(frozen=True)
class TopUpBonus:
    """A stored-value top-up of at least `at_least_fen` adds `bonus_fen` (充值赠送)."""

    at_least_fen: int
    bonus_fen: int


@dataclass(frozen=True)
class ActivityRule:
    """A kind of thing members do that the shop reports (分享, 环保行为, 互动游戏), and what it earns."""

    code: str
    name: str
    points: int = 0
    growth_value: int = 0
    daily_cap: int | None = None  # how many earn per member per day (program time); None: no cap


@dataclass(frozen=True)
class MembershipPlan:
    """A paid membership (付费会员, PLUS): bought for money, it runs beside the tier ladder."""

    code: str
    name: str
    price_fen: int
    months: int
    points_multiplier_bonus: Decimal = Decimal(0)  # added to the tier's multiplier while active
    free_shipping: bool = False
    benefits: tuple[str, ...] = ()  # benefit codes its holders hold, whatever their tier


@dataclass(frozen=True)
class StageRule:
    code: str
    name: str
    description: str = ""
    member_price_percent: Decimal | None = None  # the stage's tiers inherit it unless they name their own


@dataclass(frozen=True)
class Badge:
    code: str
    name: str


@dataclass(frozen=True)
class CouponTemplateRule:
    """THRESHOLD_REDUCTION: `value` off orders ≥ min spend (满减). PERCENT_OFF: the price paid as a
    percentage (80 = 8折). FREE_SHIPPING: no discount on the goods. Valid for `valid_days` days from
    issue, or between fixed dates (both inclusive, program time)."""

    code: str
    name: str
    kind: str
    value: Decimal
    min_spend_fen: int | None = None
    valid_days: int | None = None
    valid_from: date | None = None
    valid_until: date | None = None


@dataclass(frozen=True)
class Reward:
    """What completing a task, passing a quest level or redeeming an item gives."""

    points: int = 0
    growth_value: int = 0
    badge: Badge | None = None
    coupon: str | None = None  # a coupon template code


@dataclass(frozen=True)
class StreakBonus:
    """Extra points on every `every`-th consecutive day (签到连续奖励)."""

    every: int
    points: int


@dataclass(frozen=True)
class Window:
    """Where a goal is counted: lifetime, the current day/week/month, or campaign dates (program time)."""

    kind: str  # lifetime | day | week | month | campaign
    starts: date | None = None
    ends: date | None = None  # inclusive


@dataclass(frozen=True)
class Goal:
    metric: str
    target: int
    window: Window = Window("lifetime")
    activity: str | None = None  # metric "activities": the kind counted (None: every kind)


@dataclass(frozen=True)
class TaskRule:
    code: str
    kind: str  # BASIC ADVANCED CHALLENGE DAILY
    title: str
    description: str
    goal: Goal
    reward: Reward
    prerequisites: tuple[str, ...] = ()
    claim: str = "automatic"  # automatic | member
    repeat: str | None = None  # None | day | week | month
    streak_bonus: StreakBonus | None = None


@dataclass(frozen=True)
class QuestLevel:
    level: int
    title: str
    target: int
    reward: Reward


@dataclass(frozen=True)
class QuestRule:
    """A run of levels on points earned since the quest began (积分闯关)."""

    code: str
    title: str
    starts: date
    ends: date  # inclusive, program time
    levels: tuple[QuestLevel, ...]
    description: str = ""


@dataclass(frozen=True)
class BenefitRule:
    """A benefit (权益) of the catalogue: who holds it, how often, when, and what claiming gives."""

    code: str
    name: str
    description: str
    category: str  # ECONOMIC SERVICE SOCIAL IDENTITY
    tiers: tuple[str, ...]  # every tier that holds it (the loader adds higher tiers unless told only_listed)
    quota: int | None = None  # claims per period; None = unlimited
    period: str = "lifetime"  # day week month quarter year lifetime
    starts: date | None = None  # window, inclusive, program time
    ends: date | None = None
    early_days: int = 0
    early_tiers: tuple[str, ...] = ()
    birthday_month: bool = False
    coupon: str | None = None
    badge: Badge | None = None
    entitlement: str | None = None
    core: bool = False  # counts toward the core benefit usage rate


@dataclass(frozen=True)
class RewardItemRule:
    """An item of the points mall (积分商城)."""

    code: str
    name: str
    points_cost: int
    stock: int | None = None  # None: unlimited
    per_member_limit: int | None = None
    coupon: str | None = None
    goods: str | None = None  # a physical item or service handed over by the shop
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
    welcome_coupon: str | None = None
    coupon_templates: tuple[CouponTemplateRule, ...] = ()
    benefits: tuple[BenefitRule, ...] = ()
    rewards: tuple[RewardItemRule, ...] = ()
    points_expiry_months: int | None = None  # None: points never expire
    lifecycle: LifecycleRules = field(default_factory=LifecycleRules)
    tasks: tuple[TaskRule, ...] = ()  # in dependency order: prerequisites first
    quests: tuple[QuestRule, ...] = ()
    stores: tuple[StoreRule, ...] = ()
    top_up_bonuses: tuple[TopUpBonus, ...] = ()  # ascending thresholds
    points_cap_percent: int = 0  # 积分抵扣: points pay at most this share of what is left after coupons
    membership_plans: tuple[MembershipPlan, ...] = ()
    review_points: int = 0  # 评价晒单: what the first review of an order earns
    photo_review_points: int = 0  # … when it carries photos
    referral_coupon: str | None = None  # 推荐有礼: the new member's coupon when enrolling with a code
    referrer_points: int = 0  # … and the referrer's points on that member's first paid order
    boosts: tuple["BoostRule", ...] = ()  # 积分翻倍, 会员日
    activities: tuple[ActivityRule, ...] = ()
    source: dict = field(default_factory=dict, compare=False, repr=False)

    @functools.cached_property
    def zone(self) -> ZoneInfo:  # asked for at every step of every report
        return ZoneInfo(self.time_zone)

    @property
    def entry_tier(self) -> TierRule:
        return self.tiers[0]

    def tier(self, code: str) -> TierRule:
        for tier in self.tiers:
            if tier.code == code:
                return tier
        raise KeyError(code)

    def task(self, code: str) -> TaskRule:
        for task in self.tasks:
            if task.code == code:
                return task
        raise KeyError(code)

    def coupon_template(self, code: str) -> CouponTemplateRule:
        for template in self.coupon_templates:
            if template.code == code:
                return template
        raise KeyError(code)

    def reward_item(self, code: str) -> RewardItemRule:
        for item in self.rewards:
            if item.code == code:
                return item
        raise KeyError(code)

    def benefit(self, code: str) -> BenefitRule:
        for benefit in self.benefits:
            if benefit.code == code:
                return benefit
        raise KeyError(code)

    def top_up_bonus(self, amount_fen: int) -> int:
        """The bonus of the highest rule a top-up meets; 0 when it meets none."""
        return max((rule.bonus_fen for rule in self.top_up_bonuses if amount_fen >= rule.at_least_fen), default=0)

    def activity(self, code: str) -> ActivityRule:
        for activity in self.activities:
            if activity.code == code:
                return activity
        raise KeyError(code)

    def membership_plan(self, code: str) -> MembershipPlan:
        for plan in self.membership_plans:
            if plan.code == code:
                return plan
        raise KeyError(code)

    def store(self, code: str) -> StoreRule:
        for store in self.stores:
            if store.code == code:
                return store
        raise KeyError(code)

    def quest(self, code: str) -> QuestRule:
        for quest in self.quests:
            if quest.code == code:
                return quest
        raise KeyError(code)

    def next_tier(self, code: str) -> TierRule | None:
        rank = self.tier(code).rank
        return self.tiers[rank + 1] if rank + 1 < len(self.tiers) else None
