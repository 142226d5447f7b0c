"""The program document (fixtures/programs/*.toml, or the same structure as JSON) as one model.

Every section and key the loader accepts is declared here once: its type, pattern, range,
choices, default and description. The loader validates a document through these models, and
`tierup program schema` prints their JSON Schema, so an editor (Taplo / Even Better TOML, VS
Code, JetBrains) completes and checks exactly what the loader accepts and shows the
descriptions as hover text.

Checks within one table (a condition's window by its metric, a coupon's value by its kind,
dates in order) are model validators here. Checks across tables — codes that must be unique
in a list, codes one section names in another, task prerequisites and their cycles — are the
loader's, run after this model.

TOML has dates (`starts = 2026-06-01`): the models take a local date, or the same as text
"YYYY-MM-DD" (the JSON form; the schema says string/date, which is how TOML editors check
dates). Amounts of money and multipliers are decimals written as text ("250.00") or as
numbers; money has at most two decimals (fen).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, StrictBool,
                      StrictInt, StrictStr, StringConstraints, WithJsonSchema, model_validator)
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import PydanticCustomError

from ..domain.activity import GOAL_METRICS
from ..domain.benefits import PERIODS
from ..domain.coupons import COUPON_KINDS, FREE_SHIPPING, PERCENT_OFF, THRESHOLD_REDUCTION
from ..domain.money import MoneyError, to_fen
from ..domain.program import CHANNELS
from ..domain.rfm import LifecycleRules
from ..domain.tiers import METRICS

PROGRAM_CODE = r"^[a-z][a-z0-9_-]{0,39}$"
RULE_CODE = r"^[A-Z][A-Z0-9_]{0,39}$"
STORE_CODE = r"^[A-Z0-9][A-Z0-9_-]{0,39}$"  # as shops number them: SH-001
MAX_TIERS = 50
# Lists of rules (tasks, benefits, coupons…) hold at most this many.
MAX_ENTRIES = 1000
TASK_KINDS = ("BASIC", "ADVANCED", "CHALLENGE", "DAILY")
BENEFIT_CATEGORIES = ("ECONOMIC", "SERVICE", "SOCIAL", "IDENTITY")
WINDOWS = ("lifetime", "day", "week", "month", "campaign")
REPEATS = ("day", "week", "month")
TIER_METRICS = tuple(sorted(METRICS))


def problem(message: str, *at: str | int) -> PydanticCustomError:
    """A validation error the loader reports as written: at the table being validated, or at the
    key path `at` below it (a model validator's own errors would otherwise name only the table)."""
    return PydanticCustomError("program", message, {"at": at})


def between(low: Any, high: Any, got: Any, *, exclusive_low: bool = False, whole: bool = True) -> str:
    """How a number out of its range is reported."""
    if whole and not exclusive_low and high is not None:
        return f"must be between {low} and {high}, got {got}"
    bound = f"greater than {low}" if exclusive_low else f"at least {low}"
    return f"must be {bound}" + (f" and at most {high}" if high is not None else "") + f", got {got}"


# --- value types -------------------------------------------------------------------------------

def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank", "must be a non-empty string")
    return value


def Text(max_length: int = 200) -> Any:
    """Non-blank text of at most `max_length` characters."""
    return Annotated[StrictStr, StringConstraints(min_length=1, max_length=max_length), AfterValidator(_not_blank)]


Name = Text()
LongText = Text(2000)
Code = Annotated[StrictStr, StringConstraints(pattern=RULE_CODE)]
StoreCode = Annotated[StrictStr, StringConstraints(pattern=STORE_CODE)]


def Whole(low: int, high: int) -> Any:
    """A whole number from low to high (TOML integer; true/false, text and 1.0 are refused)."""
    def check(value: int) -> int:
        if not low <= value <= high:
            raise PydanticCustomError("range", between(low, high, value))
        return value
    return Annotated[StrictInt, AfterValidator(check), WithJsonSchema({"type": "integer", "minimum": low,
                                                                       "maximum": high})]


def _decimal_value(value: Any) -> Any:
    if isinstance(value, bool):
        raise PydanticCustomError("decimal", "must be a number, got {value}", {"value": repr(value)})
    return value


DECIMAL_TEXT = r"^[0-9]+(\.[0-9]+)?$"
MONEY_TEXT = r"^[0-9]+(\.[0-9]{1,2})?$"


def Number(*, low: Decimal | int = 0, high: Decimal | int | None = None, positive: bool = False,
           money: bool = False) -> Any:
    """A decimal written as text ("1.5") or as a number; money has at most two decimals (fen)."""
    def check(value: Decimal) -> Decimal:
        if value < low or (positive and value <= low) or (high is not None and value > high):
            raise PydanticCustomError("range", between(low, high, value, exclusive_low=positive, whole=False))
        return value
    numeric: dict[str, Any] = {"type": "number", ("exclusiveMinimum" if positive else "minimum"): low}
    if high is not None:
        numeric["maximum"] = high
    text = {"type": "string", "pattern": MONEY_TEXT if money else DECIMAL_TEXT}
    return Annotated[Decimal, BeforeValidator(_decimal_value), AfterValidator(check),
                     *([AfterValidator(_fen)] if money else []), WithJsonSchema({"anyOf": [numeric, text]})]


def _fen(value: Decimal) -> Decimal:
    try:
        to_fen(value)
    except MoneyError as exc:
        raise PydanticCustomError("money", str(exc)) from None
    return value


def _day(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise PydanticCustomError("date", "must be a date (YYYY-MM-DD), got {value}", {"value": repr(value)})


Day = Annotated[date, PlainValidator(_day), WithJsonSchema({
    "type": "string", "format": "date", "description": "A local date: 2026-06-01 in TOML, \"2026-06-01\" in JSON."})]


def _months_or(word: str, low: int, high: int) -> Any:
    """Whole months from low to high, or the word (`permanent`, `never`)."""
    def check(value: Any) -> int | str:
        if value == word:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise PydanticCustomError("months", f"must be a whole number of months or \"{word}\", got {{value}}",
                                      {"value": repr(value)})
        if not low <= value <= high:
            raise PydanticCustomError("months", between(low, high, value))
        return value
    return Annotated[int | str, PlainValidator(check), WithJsonSchema(
        {"anyOf": [{"type": "integer", "minimum": low, "maximum": high}, {"const": word}]})]


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise PydanticCustomError("time_zone", "unknown time zone {value}", {"value": repr(value)}) from None
    return value


def _also_required(*keys: str):
    """Keys the loader needs though the model defaults them (to report them where it always has)."""
    def extra(schema: dict) -> None:
        schema["required"] = [*schema.get("required", []), *keys]
    return extra


class Table(BaseModel):
    """A TOML table: unknown keys are refused (a typo is an error, not silently ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


# --- sections --------------------------------------------------------------------------------

class Enrolment(Table):
    """What a member gets on enrolling."""

    welcome_points: Whole(0, 1_000_000) = 0
    """Points given on enrolment."""
    welcome_coupon: Name | None = None
    """Code of a coupon template ([[coupons]]) given on enrolment."""


class Orders(Table):
    """Limits on the orders the shop reports."""

    max_amount: Number(positive=True, high=10_000_000_000, money=True) = Decimal(1_000_000)
    """An order above this amount (in the program's currency) is refused as a reporting error."""


class Badge(Table):
    """A badge shown on the member's profile."""

    code: Code
    """Badge code, e.g. TOP_REFERRER."""
    name: Name
    """Badge name shown to members."""


class Condition(Table):
    """One way to reach a tier: the metric is at least `at_least`, optionally over the past `months` months."""

    metric: Literal[TIER_METRICS]
    """What is measured: cumulative_spend and single_order_amount in money, spend_in_months in money over a
    window (months required), order_count (months optional), average_monthly_orders (months required),
    growth_value (no window)."""
    at_least: Number(positive=True, high=10_000_000_000)
    """The threshold: money for the money metrics ("500"), a count otherwise."""
    months: Whole(1, 120) | None = None
    """The window in months, ending at the moment judged."""

    @model_validator(mode="after")
    def _window_and_money(self) -> Condition:
        metric = METRICS[self.metric]
        if metric.months == "required" and self.months is None:
            raise problem(f"{self.metric} needs a window in months", "months")
        if metric.months == "forbidden" and self.months is not None:
            raise problem(f"{self.metric} takes no window", "months")
        if metric.money:
            try:
                to_fen(self.at_least)
            except MoneyError as exc:
                raise problem(str(exc), "at_least") from None
        return self

    model_config = ConfigDict(json_schema_extra={"allOf": [
        {"if": {"properties": {"metric": {"const": name}}, "required": ["metric"]},
         "then": {"required": ["months"]} if metric.months == "required" else {"not": {"required": ["months"]}}}
        for name, metric in sorted(METRICS.items()) if metric.months != "optional"]})


def _member_price(value: Decimal) -> Decimal:
    if value.as_tuple().exponent < -2:
        raise PydanticCustomError("member_price", "at most two decimal places")
    return value


MemberPrice = Annotated[Number(positive=True, high=100), AfterValidator(_member_price)]


class Stage(Table):
    """A stage groups consecutive tiers (三阶九级: base, advanced, peak)."""

    code: Code
    """Stage code, named by tiers' `stage`."""
    name: Name
    """Stage name shown to members."""
    description: LongText = ""
    """What the stage offers."""
    member_price_percent: MemberPrice | None = None
    """会员价 in percent of the list price for the stage's tiers (99 = 99折; 100 = the list price)."""


class Tier(Table):
    """One tier of the ladder, lowest first. The first tier is the entry tier, held on enrolment."""

    code: Code
    """Tier code, e.g. SILVER; fixed once members hold it."""
    name: Name
    """Tier name shown to members."""
    description: LongText = ""
    """What the tier offers, shown to members."""
    stage: Name | None = None
    """Code of the stage ([[ladder.stages]]) the tier belongs to."""
    conditions: list[Condition] = Field(default_factory=list, max_length=MAX_ENTRIES)
    """Ways to reach the tier (any one is enough). The entry tier has none; every other tier at least one."""
    points_multiplier: Number(high=100) = Decimal(1)
    """Points per unit of currency spent while holding the tier (floored per order)."""
    member_price_percent: MemberPrice | None = None
    """会员价 for this tier, overriding its stage's (100 = the list price)."""


class Ladder(Table):
    """The tier ladder."""

    validity_months: _months_or("permanent", 1, 120) = 12
    """How long a tier lasts before it is re-evaluated, or "permanent"."""
    stages: list[Stage] = Field(default_factory=list, max_length=MAX_ENTRIES)
    """Optional stages grouping the tiers."""
    tiers: list[Tier] = Field(default_factory=list, min_length=1, max_length=MAX_TIERS, validate_default=True)
    """The tiers, lowest first."""

    model_config = ConfigDict(json_schema_extra=_also_required("tiers"))


class Points(Table):
    """Points expiry."""

    expiry_months: _months_or("never", 1, 120) = "never"
    """Each earning expires at the end of the month this many months after the month it was earned (积分清零),
    or "never"."""


class Coupon(Table):
    """A coupon template (优惠券) that benefits, rewards, tasks and enrolment give."""

    code: Code
    """Template code, named wherever a coupon is given."""
    name: Name
    """Coupon name shown to members."""
    kind: Literal[COUPON_KINDS]
    """THRESHOLD_REDUCTION: `value` off orders of at least `min_spend` (满减); PERCENT_OFF: the price paid as a
    percentage (80 = 8折); FREE_SHIPPING (免邮)."""
    value: Number(high=1_000_000) | None = None
    """Money off (THRESHOLD_REDUCTION), the percentage paid (PERCENT_OFF, below 100); none for FREE_SHIPPING."""
    min_spend: Number(positive=True, high=10_000_000, money=True) | None = None
    """The least an order must come to for the coupon to apply."""
    valid_days: Whole(1, 3650) | None = None
    """Valid this many days from issue (to the end of the last day, program time); or give fixed dates."""
    valid_from: Day | None = None
    """First day of a fixed validity."""
    valid_until: Day | None = None
    """Last day of a fixed validity."""

    @model_validator(mode="after")
    def _value_and_validity(self) -> Coupon:
        if self.kind == PERCENT_OFF:
            _require(self.value, "value", high=Decimal(99))
        elif self.kind != FREE_SHIPPING:
            _require(self.value, "value", high=Decimal(1_000_000))
            try:
                to_fen(self.value)
            except MoneyError as exc:
                raise problem(str(exc), "value") from None
        if (self.kind == THRESHOLD_REDUCTION and self.value and self.min_spend is not None
                and self.value >= self.min_spend):
            raise problem("the reduction must be below the minimum spend", "value")
        has_dates = self.valid_from is not None or self.valid_until is not None
        if self.valid_days is None and not has_dates:
            raise problem("give valid_days, or valid_from and valid_until")
        if self.valid_days is not None and has_dates:
            raise problem("give valid_days or fixed dates, not both")
        if has_dates:
            for key in ("valid_from", "valid_until"):
                if getattr(self, key) is None:
                    raise problem("must be a date (YYYY-MM-DD), got None", key)
            if self.valid_until < self.valid_from:
                raise problem("ends before it starts", "valid_until")
        return self


def _require(value: Decimal | None, key: str, *, high: Decimal) -> None:
    if value is None:
        raise problem("is required", key)
    if not 0 < value <= high:
        raise problem(between(0, high, value, exclusive_low=True, whole=False), key)


class Quota(Table):
    """How often a member may use a benefit."""

    count: Whole(1, 1000) | None = None
    """Uses per period; none: unlimited."""
    per: Literal[PERIODS] = "lifetime"
    """The period the count applies to (program time)."""


class DateWindow(Table):
    """Dates a benefit may be claimed on."""

    starts: Day
    """First day."""
    ends: Day
    """Last day."""


class EarlyAccess(Table):
    """Some tiers may claim a windowed benefit early."""

    days: Whole(0, 365) = 0
    """Days before the window opens."""
    tiers: list[StrictStr] = Field(default_factory=list, max_length=MAX_ENTRIES)
    """Tier codes with early access."""


class BenefitGives(Table):
    """What a benefit gives: exactly one of coupon, badge or entitlement."""

    coupon: Name | None = None
    """Code of a coupon template ([[coupons]])."""
    badge: Badge | None = None
    """A badge."""
    entitlement: Code | None = None
    """A right the shop honours, e.g. PRIORITY_SHIPPING."""

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, data: Any) -> Any:
        if isinstance(data, dict) and len(data) != 1:
            raise problem("give exactly one of coupon, badge or entitlement")
        return data


class Benefit(Table):
    """A benefit of the catalogue (权益). It names the lowest tier that holds it; higher tiers keep it."""

    code: Code
    """Benefit code; clients deep-link to it."""
    name: Name
    """Benefit name shown to members."""
    description: LongText
    """What the benefit is, shown to members."""
    category: Literal[BENEFIT_CATEGORIES]
    """The value dimension: ECONOMIC, SERVICE, SOCIAL or IDENTITY."""
    tiers: list[StrictStr] = Field(default_factory=list, max_length=MAX_ENTRIES)
    """Tier codes: the lowest tier named and every tier above hold it (only those named with only_listed)."""
    only_listed: StrictBool = False
    """Held only in the tiers named, not the tiers above."""
    quota: Quota = Field(default_factory=Quota)
    """How often it may be used."""
    window: DateWindow | None = None
    """Dates it may be claimed on."""
    early_access: EarlyAccess | None = None
    """Tiers that may claim it before the window opens."""
    birthday_month: StrictBool = False
    """Claimable only in the member's birthday month."""
    gives: BenefitGives
    """What claiming it gives."""
    core: StrictBool = False
    """A core benefit of its tier, listed first."""

    @model_validator(mode="after")
    def _early_access_needs_a_window(self) -> Benefit:
        if self.early_access is not None and self.window is None:
            raise problem("early access needs a window", "early_access")
        return self


class ItemGives(Table):
    """What a points-mall item gives: exactly one of coupon or goods."""

    coupon: Name | None = None
    """Code of a coupon template ([[coupons]])."""
    goods: Name | None = None
    """Goods the shop hands over, e.g. TOTE_BAG."""

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, data: Any) -> Any:
        if isinstance(data, dict) and len(data) != 1:
            raise problem("give exactly one of coupon or goods")
        return data


class RewardItem(Table):
    """An item of the points mall (积分商城)."""

    code: Code
    """Item code."""
    name: Name
    """Item name shown to members."""
    description: LongText = ""
    """What the item is."""
    points_cost: Whole(1, 100_000_000)
    """Points one redemption costs."""
    stock: Whole(0, 100_000_000) | None = None
    """How many there are; none: unlimited."""
    per_member_limit: Whole(1, 1_000_000) | None = None
    """Redemptions per member; none: unlimited."""
    gives: ItemGives
    """What redeeming it gives."""


class Reward(Table):
    """What completing a task or passing a quest level gives."""

    points: Whole(0, 1_000_000) = 0
    """Points."""
    growth: Whole(0, 1_000_000) = 0
    """Growth value (成长值)."""
    badge: Badge | None = None
    """A badge."""
    coupon: Name | None = None
    """Code of a coupon template ([[coupons]])."""


class Goal(Table):
    """What a task counts and how far."""

    metric: Literal[GOAL_METRICS]
    """What is counted."""
    target: Whole(1, 1_000_000)
    """How many complete the task."""
    window: Literal[WINDOWS] = "lifetime"
    """Where it is counted: lifetime, the current day/week/month, or campaign dates (starts and ends)."""
    starts: Day | None = None
    """First day of a campaign window."""
    ends: Day | None = None
    """Last day of a campaign window."""
    activity: Name | None = None
    """For the activities metric: the activity code counted ([[activities]]); none counts every kind."""

    @model_validator(mode="after")
    def _window_and_activity(self) -> Goal:
        if self.activity is not None and self.metric != "activities":
            raise problem("only the activities metric counts an activity", "activity")
        if self.window == "campaign":
            for key in ("starts", "ends"):
                if getattr(self, key) is None:
                    raise problem("must be a date (YYYY-MM-DD), got None", key)
            if self.ends < self.starts:
                raise problem("ends before it starts", "ends")
        return self


class StreakBonus(Table):
    """Extra points for every `every` consecutive completions of a daily task."""

    every: Whole(2, 366) = 7
    """Streak length."""
    points: Whole(0, 1_000_000) = 0
    """Points per full streak."""


class Task(Table):
    """A task of the growth tree (成长树). Prerequisites unlock it."""

    code: Code
    """Task code; clients deep-link to it."""
    kind: Literal[TASK_KINDS]
    """BASIC, ADVANCED, CHALLENGE or DAILY."""
    title: Name
    """Title shown to members."""
    description: LongText
    """What to do, shown to members."""
    prerequisites: list[StrictStr] = Field(default_factory=list, max_length=MAX_ENTRIES)
    """Codes of tasks that must be completed first."""
    goal: Goal
    """What is counted and how far."""
    reward: Reward = Field(default_factory=Reward)
    """What completing it gives."""
    claim: Literal["automatic", "member"] = "automatic"
    """automatic: rewarded on completion; member: the member claims the reward."""
    repeat: Literal[REPEATS] | None = None
    """Completed again every day, week or month."""
    streak_bonus: StreakBonus | None = None
    """Extra points for a streak of completions."""


class QuestLevel(Table):
    """A level of a quest, passed when the points earned since the quest began reach its target."""

    title: Name
    """Title shown to members."""
    target: Whole(1, 100_000_000)
    """Points earned since the quest began; above the previous level's."""
    reward: Reward = Field(default_factory=Reward)
    """What passing it gives."""


class Quest(Table):
    """A points-level quest (积分闯关)."""

    code: Code
    """Quest code."""
    title: Name
    """Title shown to members."""
    description: LongText = ""
    """What it is about."""
    starts: Day
    """First day (program time)."""
    ends: Day
    """Last day."""
    levels: list[QuestLevel] = Field(default_factory=list, min_length=1, max_length=MAX_ENTRIES,
                                     validate_default=True)
    """The levels, lowest target first."""

    @model_validator(mode="after")
    def _order(self) -> Quest:
        if self.ends < self.starts:
            raise problem("ends before it starts", "ends")
        for j in range(1, len(self.levels)):
            if self.levels[j].target <= self.levels[j - 1].target:
                raise problem("must be above the previous level's target", "levels", j, "target")
        return self

    model_config = ConfigDict(json_schema_extra=_also_required("levels"))


class Lifecycle(Table):
    """Lifecycle stages (会员生命周期): CHURNED, NEW, DECLINING, MATURE, otherwise GROWING."""

    new_days: Whole(1, 3650) = LifecycleRules.new_days
    """Joined within this many days: NEW."""
    declining_days: Whole(1, 3650) = LifecycleRules.declining_days
    """No order for this many days: DECLINING."""
    churned_days: Whole(1, 3650) = LifecycleRules.churned_days
    """No order for this many days (counted from joining when never ordered): CHURNED."""
    mature_orders: Whole(1, 3650) = LifecycleRules.mature_orders
    """This many orders in the past 12 months: MATURE."""

    @model_validator(mode="after")
    def _order(self) -> Lifecycle:
        if not self.new_days < self.churned_days or not self.declining_days < self.churned_days:
            raise problem("new_days and declining_days must be below churned_days")
        return self


class Store(Table):
    """A physical store; STORE reports name one (线下门店)."""

    code: StoreCode
    """Store code as the shop numbers it, e.g. SH-001."""
    name: Name
    """Store name."""
    city: Name | None = None
    """City."""


class TopUpBonus(Table):
    """A stored-value top-up of at least `at_least` adds `bonus` (充值赠送)."""

    at_least: Number(positive=True, high=10_000_000, money=True)
    """Smallest top-up the rule applies to."""
    bonus: Number(positive=True, high=10_000_000, money=True)
    """Stored value added."""


class StoredValue(Table):
    """Stored value (储值): prepaid balances."""

    top_up_bonus: list[TopUpBonus] = Field(default_factory=list, max_length=MAX_ENTRIES)
    """Bonus rules, thresholds rising; the highest rule a top-up meets adds its bonus."""

    @model_validator(mode="after")
    def _rising(self) -> StoredValue:
        for i in range(1, len(self.top_up_bonus)):
            if self.top_up_bonus[i].at_least <= self.top_up_bonus[i - 1].at_least:
                raise problem("thresholds must rise from one rule to the next", "top_up_bonus", i, "at_least")
        return self


class Checkout(Table):
    """Paying with points at checkout (积分抵扣)."""

    points_cap_percent: Whole(0, 100) = 0
    """Points may pay at most this percentage of what is left after coupons (one point pays point_value)."""


class MembershipPlan(Table):
    """A paid membership plan (付费会员, PLUS)."""

    code: Code
    """Plan code."""
    name: Name
    """Plan name shown to members."""
    price: Number(positive=True, high=1_000_000, money=True)
    """Price."""
    months: Whole(1, 120)
    """Months one purchase lasts; buying again extends from the current end."""
    points_multiplier_bonus: Number(high=100) = Decimal(0)
    """Added to the tier's points multiplier while active."""
    free_shipping: StrictBool = False
    """Free shipping on every order while active."""
    benefits: list[StrictStr] = Field(default_factory=list, max_length=MAX_ENTRIES)
    """Benefit codes held while active, whatever the tier."""


class Reviews(Table):
    """Points for the first review of an order (评价晒单)."""

    points: Whole(0, 1_000_000) = 0
    """Points for a review."""
    photo_points: Whole(0, 1_000_000) | None = None
    """Points for a review with photos (default: points)."""


class Referrals(Table):
    """Referrals (推荐有礼), both sides."""

    new_member_coupon: Name | None = None
    """Code of the coupon template ([[coupons]]) the new member gets on enrolling with a referral code."""
    referrer_points: Whole(0, 1_000_000) = 0
    """Points the referrer gets on the new member's first paid order."""


class Boost(Table):
    """A points boost (积分翻倍): the highest boost that applies to an order line wins; boosts never stack.
    Name at most one of starts (with ends), weekday or day_of_month; none: every day."""

    code: Code
    """Boost code, named in the ledger."""
    name: Name
    """Boost name."""
    multiplier: Number(positive=True, high=100)
    """Multiplies the points of the lines it applies to."""
    starts: Day | None = None
    """First day (with ends)."""
    ends: Day | None = None
    """Last day."""
    weekday: Whole(1, 7) | None = None
    """Every week on this day (1 = Monday)."""
    day_of_month: Whole(1, 31) | None = None
    """Every month on this day (会员日)."""
    tiers: list[StrictStr] = Field(default_factory=list, max_length=MAX_ENTRIES)
    """Only for members in these tiers (tier codes); none: every tier."""
    categories: list[Annotated[StrictStr, StringConstraints(min_length=1)]] = Field(
        default_factory=list, max_length=MAX_ENTRIES)
    """Only for order lines of these product categories; none: every line."""
    channels: list[Literal[CHANNELS]] = Field(default_factory=list, max_length=MAX_ENTRIES)
    """Only for orders through these channels; none: every channel."""

    @model_validator(mode="after")
    def _when(self) -> Boost:
        given = [key for key in ("starts", "weekday", "day_of_month") if key in self.model_fields_set]
        if len(given) > 1:
            raise problem("name at most one of: starts (with ends), weekday, day_of_month")
        if "starts" in given and not (self.starts and self.ends and self.starts <= self.ends):
            raise problem("starts and ends must be dates, ends on or after starts", "ends")
        return self


class Activity(Table):
    """An activity the shop reports (分享, 环保行为, 互动游戏)."""

    code: Code
    """Activity code."""
    name: Name
    """Activity name."""
    points: Whole(0, 1_000_000) = 0
    """Points per activity, up to the daily cap."""
    growth: Whole(0, 1_000_000) = 0
    """Growth value per activity."""
    daily_cap: Whole(1, 1_000) | None = None
    """Activities per member per day that earn (program time); past it recorded with 0 points."""


class ProgramDocument(Table):
    """A tierup member program: tiers, points, coupons, benefits, tasks, quests and more."""

    code: Annotated[StrictStr, StringConstraints(pattern=PROGRAM_CODE)]
    """Program code (lower case), named in tokens and by clients."""
    name: Name
    """Program name."""
    description: LongText | None = None
    """What the program is."""
    currency: Annotated[StrictStr, StringConstraints(pattern=r"^[A-Z]{3}$")]
    """ISO 4217 currency code, e.g. CNY."""
    currency_symbol: Text(5) = "¥"
    """Symbol shown before amounts."""
    time_zone: Annotated[Name, AfterValidator(_time_zone)]
    """IANA time zone the program's days, windows and dates are counted in, e.g. Asia/Shanghai."""
    point_value: Number(positive=True) = Decimal("0.01")
    """What one point is worth in the currency (for the liability figure and points as cash)."""
    enrolment: Enrolment = Field(default_factory=Enrolment)
    orders: Orders = Field(default_factory=Orders)
    ladder: Ladder = Field(default_factory=dict, validate_default=True)
    points: Points = Field(default_factory=Points)
    coupons: list[Coupon] = Field(default_factory=list, max_length=MAX_ENTRIES)
    """Coupon templates (优惠券)."""
    rewards: list[RewardItem] = Field(default_factory=list, max_length=MAX_ENTRIES)
    """The points mall (积分商城)."""
    lifecycle: Lifecycle = Field(default_factory=Lifecycle)
    benefits: list[Benefit] = Field(default_factory=list, max_length=MAX_ENTRIES)
    """The benefit catalogue (权益)."""
    membership_plans: list[MembershipPlan] = Field(default_factory=list, max_length=MAX_ENTRIES)
    """Paid membership plans (付费会员)."""
    boosts: list[Boost] = Field(default_factory=list, max_length=MAX_ENTRIES)
    """Points boosts (积分翻倍) and member days."""
    activities: list[Activity] = Field(default_factory=list, max_length=MAX_ENTRIES)
    """Activities the shop reports."""
    tasks: list[Task] = Field(default_factory=list, max_length=MAX_ENTRIES)
    """The growth tree (成长树)."""
    quests: list[Quest] = Field(default_factory=list, max_length=MAX_ENTRIES)
    """Points-level quests (积分闯关)."""
    stores: list[Store] = Field(default_factory=list, max_length=MAX_ENTRIES)
    """Physical stores (线下门店)."""
    stored_value: StoredValue = Field(default_factory=StoredValue)
    checkout: Checkout = Field(default_factory=Checkout)
    reviews: Reviews = Field(default_factory=Reviews)
    referrals: Referrals = Field(default_factory=Referrals)

    model_config = ConfigDict(title="tierup program", json_schema_extra=_also_required("ladder"))


class _FileSchema(GenerateJsonSchema):
    """A program file has no nulls: an optional key is one left out, not one set to null."""

    def nullable_schema(self, schema: Any) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])


def json_schema() -> dict:
    """The JSON Schema of a program file, for editors and other checkers.

    It declares draft 7, which TOML and JSON editors read everywhere; what pydantic writes is draft 7
    apart from a description beside a `$ref` (ignored there), which is moved onto an `allOf` around it."""
    schema = _tidy(ProgramDocument.model_json_schema(schema_generator=_FileSchema))
    first = ("title", "description", "type", "properties", "required", "additionalProperties")
    return {"$schema": "http://json-schema.org/draft-07/schema#", **{key: schema[key] for key in first if key in schema},
            **{key: value for key, value in schema.items() if key not in first}}


def _tidy(node: Any) -> Any:
    """Descriptions on one line (they are docstrings here), no `default: null`, nothing beside a `$ref`."""
    if isinstance(node, dict):
        tidy = {key: (" ".join(value.split()) if key == "description" and isinstance(value, str) else _tidy(value))
                for key, value in node.items() if not (key == "default" and value is None)}
        if "$ref" in tidy and len(tidy) > 1:
            tidy["allOf"] = [{"$ref": tidy.pop("$ref")}]
        return tidy
    if isinstance(node, list):
        return [_tidy(value) for value in node]
    return node
