"""Turn a program document (TOML, or the same structure as JSON) into a ProgramDefinition.

Validation collects every problem before failing, each naming the key path and what is wrong,
so an operator fixes a broken file in one pass.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any, Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..domain.money import MoneyError, to_fen
from ..domain.activity import GOAL_METRICS
from ..domain.benefits import PERIODS
from ..domain.boosts import BoostRule
from ..domain.rfm import LifecycleRules
from ..domain.coupons import COUPON_KINDS, FREE_SHIPPING, PERCENT_OFF, THRESHOLD_REDUCTION
from ..domain.program import (CHANNELS, Badge, BenefitRule, Condition, CouponTemplateRule, RewardItemRule, Goal, ProgramDefinition, QuestLevel, QuestRule, Reward, StageRule,
                              ActivityRule, MembershipPlan, StoreRule, StreakBonus, TaskRule, TierRule, TopUpBonus, Window)
from ..domain.tiers import METRICS

PROGRAM_CODE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
RULE_CODE = re.compile(r"^[A-Z][A-Z0-9_]{0,39}$")
STORE_CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,39}$")  # as shops number them: SH-001
MAX_TIERS = 50
# The deepest a real definition nests is about six levels (tasks → task → goal → window); far deeper is an
# attack or an accident, and deep enough exhausts the parser's recursion (a RecursionError, not a message).
MAX_NESTING = 32
# Lists of rules (tasks, benefits, coupons…) hold at most this many; problems listed at most this many.
MAX_ENTRIES = 1000
MAX_PROBLEMS = 100
# Points columns are 32-bit INTEGER (int4 on PostgreSQL): one order may not earn more.
MAX_POINTS_PER_ORDER = 2_147_483_647
TOO_DEEP = f"nested too deeply: arrays and tables may nest at most {MAX_NESTING} levels"


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ProgramError(ValueError):
    """A program document with one or more problems; nothing was loaded."""

    def __init__(self, problems: list[Problem], source: str = "program"):
        self.problems = problems
        self.source = source
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


class _Reader:
    """Reads typed values out of nested dicts, recording a Problem instead of raising."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.coupon_references: list[tuple[str, str]] = []  # (path, template code), checked once all are read

    def fail(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def table(self, doc: Any, path: str) -> dict:
        if isinstance(doc, dict):
            return doc
        self.fail(path, f"must be a table, got {type(doc).__name__}")
        return {}

    def known_keys(self, doc: dict, path: str, allowed: set[str]) -> None:
        for key in doc.keys() - allowed:
            self.fail(_join(path, key), f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def text(self, doc: dict, path: str, key: str, *, required: bool = True, pattern: re.Pattern | None = None,
             max_length: int = 200, default: str | None = None) -> str | None:
        value = doc.get(key)
        where = _join(path, key)
        if value is None:
            if required:
                self.fail(where, "is required")
            return default
        if not isinstance(value, str) or not value.strip():
            self.fail(where, "must be a non-empty string")
            return default
        if len(value) > max_length:
            self.fail(where, f"is longer than {max_length} characters")
            return default
        if pattern is not None and not pattern.match(value):
            self.fail(where, f"{value!r} does not match {pattern.pattern}")
            return default
        return value

    def integer(self, doc: dict, path: str, key: str, *, default: int | None, low: int, high: int) -> int | None:
        value = doc.get(key)
        where = _join(path, key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(where, f"must be a whole number, got {value!r}")
            return default
        if not low <= value <= high:
            self.fail(where, f"must be between {low} and {high}, got {value}")
            return default
        return value

    def decimal(self, doc: dict, path: str, key: str, *, required: bool = True, default: Decimal | None = None,
                low: Decimal = Decimal(0), high: Decimal | None = None, positive: bool = False) -> Decimal | None:
        value = doc.get(key)
        where = _join(path, key)
        if value is None:
            if required:
                self.fail(where, "is required")
            return default
        if isinstance(value, bool):
            self.fail(where, f"must be a number, got {value!r}")
            return default
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            self.fail(where, f"must be a number, got {value!r}")
            return default
        if not number.is_finite() or number < low or (positive and number <= 0) or (high is not None and number > high):
            bound = f"greater than {low}" if positive else f"at least {low}"
            self.fail(where, f"must be {bound}" + (f" and at most {high}" if high is not None else "") + f", got {value}")
            return default
        return number

    def array(self, doc: dict, path: str, key: str) -> list:
        value = doc.get(key, [])
        if not isinstance(value, list):
            self.fail(_join(path, key), "must be an array")
            return []
        if len(value) > MAX_ENTRIES:  # read no further: checks across entries would take quadratic time
            self.fail(_join(path, key), f"at most {MAX_ENTRIES} entries, got {len(value)}")
            return value[:MAX_ENTRIES]
        return value


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


TOP_KEYS = {"code", "name", "currency", "currency_symbol", "time_zone", "point_value", "enrolment", "orders", "ladder",
            "description", "tasks", "quests", "coupons", "benefits", "rewards", "points", "lifecycle", "stores",
            "stored_value", "checkout", "membership_plans",
            "reviews", "referrals", "boosts", "activities"}
BENEFIT_CATEGORIES = ("ECONOMIC", "SERVICE", "SOCIAL", "IDENTITY")
TASK_KINDS = ("BASIC", "ADVANCED", "CHALLENGE", "DAILY")
WINDOWS = ("lifetime", "day", "week", "month", "campaign")
REPEATS = ("day", "week", "month")


def nesting_problem(doc: Any) -> Problem | None:
    """A Problem at the first array or table nested deeper than MAX_NESTING, walked without recursion."""
    pending: list[tuple[Any, str, int]] = [(doc, "", 0)]
    while pending:
        value, path, depth = pending.pop()
        if isinstance(value, dict):
            children = [(v, _join(path, str(k)), depth + 1) for k, v in value.items()]
        elif isinstance(value, list):
            children = [(v, _join(path, i), depth + 1) for i, v in enumerate(value)]
        else:
            continue
        if depth >= MAX_NESTING:
            return Problem(path, TOO_DEEP)
        pending.extend(children)
    return None


def parse_program(doc: Any, source: str = "program") -> ProgramDefinition:
    """Validate a program document and build its definition, or raise ProgramError with every problem."""
    too_deep = nesting_problem(doc)
    if too_deep is not None:
        raise ProgramError([too_deep], source)
    r = _Reader()
    doc = r.table(doc, "")
    r.known_keys(doc, "", TOP_KEYS)
    code = r.text(doc, "", "code", pattern=PROGRAM_CODE)
    name = r.text(doc, "", "name")
    currency = r.text(doc, "", "currency", pattern=re.compile(r"^[A-Z]{3}$"))
    symbol = r.text(doc, "", "currency_symbol", required=False, default="¥", max_length=5)
    time_zone = r.text(doc, "", "time_zone")
    if time_zone is not None:
        try:
            ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            r.fail("time_zone", f"unknown time zone {time_zone!r}")
    point_value = r.decimal(doc, "", "point_value", required=False, default=Decimal("0.01"), positive=True)

    enrolment = r.table(doc.get("enrolment", {}), "enrolment")
    r.known_keys(enrolment, "enrolment", {"welcome_points", "welcome_coupon"})
    welcome = r.integer(enrolment, "enrolment", "welcome_points", default=0, low=0, high=1_000_000)
    welcome_coupon = r.text(enrolment, "enrolment", "welcome_coupon", required=False)

    orders = r.table(doc.get("orders", {}), "orders")
    r.known_keys(orders, "orders", {"max_amount"})
    max_amount = r.decimal(orders, "orders", "max_amount", required=False, default=Decimal(1_000_000), positive=True,
                           high=Decimal(10_000_000_000))
    max_order_fen = _fen(r, "orders.max_amount", max_amount)

    ladder = r.table(doc.get("ladder", {}), "ladder")
    r.known_keys(ladder, "ladder", {"validity_months", "stages", "tiers"})
    validity = ladder.get("validity_months", 12)
    if validity == "permanent":
        validity_months = None
    else:
        validity_months = r.integer(ladder, "ladder", "validity_months", default=12, low=1, high=120)
    stages = _stages(r, ladder)
    tiers = _tiers(r, ladder, stages, symbol or "¥")
    if tiers and max_order_fen * max(t.points_multiplier for t in tiers) / 100 > MAX_POINTS_PER_ORDER:
        r.fail("orders.max_amount", f"an order of this amount at the highest multiplier would earn more than "
                                    f"{MAX_POINTS_PER_ORDER:,} points; lower the ceiling or the multiplier")

    points = r.table(doc.get("points", {}), "points")
    r.known_keys(points, "points", {"expiry_months"})
    expiry = points.get("expiry_months", "never")
    expiry_months = None if expiry == "never" else r.integer(points, "points", "expiry_months", default=None,
                                                             low=1, high=120)
    templates = _coupon_templates(r, doc)
    items = _reward_items(r, doc)
    lifecycle_doc = r.table(doc.get("lifecycle", {}), "lifecycle")
    r.known_keys(lifecycle_doc, "lifecycle", {"new_days", "declining_days", "churned_days", "mature_orders"})
    defaults = LifecycleRules()
    lifecycle = LifecycleRules(**{key: r.integer(lifecycle_doc, "lifecycle", key, default=getattr(defaults, key),
                                                 low=1, high=3650) for key in lifecycle_doc.keys() & {
        "new_days", "declining_days", "churned_days", "mature_orders"}})
    if not lifecycle.new_days < lifecycle.churned_days or not lifecycle.declining_days < lifecycle.churned_days:
        r.fail("lifecycle", "new_days and declining_days must be below churned_days")
    benefits = _benefits(r, doc, [t.code for t in tiers])
    plans = _membership_plans(r, doc, {b.code for b in benefits})
    boosts = _boosts(r, doc, [t.code for t in tiers])
    activities = _activities(r, doc)
    tasks = _tasks(r, doc, {a.code for a in activities})
    quests = _quests(r, doc)
    stores = _stores(r, doc)
    top_up_bonuses = _top_up_bonuses(r, doc)
    reviews = r.table(doc.get("reviews", {}), "reviews")
    r.known_keys(reviews, "reviews", {"points", "photo_points"})
    review_points = r.integer(reviews, "reviews", "points", default=0, low=0, high=1_000_000)
    photo_review_points = r.integer(reviews, "reviews", "photo_points", default=review_points, low=0, high=1_000_000)
    referrals = r.table(doc.get("referrals", {}), "referrals")
    r.known_keys(referrals, "referrals", {"new_member_coupon", "referrer_points"})
    referral_coupon = r.text(referrals, "referrals", "new_member_coupon", required=False)
    if referral_coupon is not None:
        r.coupon_references.append(("referrals.new_member_coupon", referral_coupon))
    referrer_points = r.integer(referrals, "referrals", "referrer_points", default=0, low=0, high=1_000_000)
    checkout = r.table(doc.get("checkout", {}), "checkout")
    r.known_keys(checkout, "checkout", {"points_cap_percent"})
    points_cap = r.integer(checkout, "checkout", "points_cap_percent", default=0, low=0, high=100)
    known = {t.code for t in templates}
    if welcome_coupon is not None and welcome_coupon not in known:
        r.fail("enrolment.welcome_coupon", f"unknown coupon template {welcome_coupon!r}")
    for where, coupon in r.coupon_references:
        if coupon not in known:
            r.fail(where, f"unknown coupon template {coupon!r}")

    if len(r.problems) > MAX_PROBLEMS:
        more = len(r.problems) - MAX_PROBLEMS
        raise ProgramError(r.problems[:MAX_PROBLEMS] + [Problem("", f"and {more} more problems not listed")], source)
    if r.problems:
        raise ProgramError(r.problems, source)
    return ProgramDefinition(
        code=code, name=name, currency=currency, currency_symbol=symbol, time_zone=time_zone,
        tiers=tuple(tiers), stages=tuple(stages), tier_validity_months=validity_months,
        welcome_points=welcome, max_order_fen=max_order_fen, point_value=point_value,
        welcome_coupon=welcome_coupon, coupon_templates=tuple(templates), benefits=tuple(benefits),
        rewards=tuple(items), points_expiry_months=expiry_months, lifecycle=lifecycle,
        tasks=tuple(tasks), quests=tuple(quests), stores=tuple(stores),
        top_up_bonuses=tuple(top_up_bonuses), points_cap_percent=points_cap,
        membership_plans=tuple(plans), review_points=review_points, photo_review_points=photo_review_points,
        referral_coupon=referral_coupon, referrer_points=referrer_points, boosts=tuple(boosts),
        activities=tuple(activities), source=doc,
    )


def _fen(r: _Reader, path: str, amount: Decimal | None) -> int:
    if amount is None:
        return 0
    try:
        return to_fen(amount)
    except MoneyError as exc:
        r.fail(path, str(exc))
        return 0


def _entries(r: _Reader, doc: dict, section: str, allowed: set[str]) -> Iterator[tuple[str, dict]]:
    """Each table of a top-level array of rules, with its key path; unknown keys are problems."""
    for i, raw in enumerate(r.array(doc, "", section)):
        path = _join(section, i)
        raw = r.table(raw, path)
        r.known_keys(raw, path, allowed)
        yield path, raw


def _code(r: _Reader, raw: dict, path: str, seen: set[str], what: str, pattern: re.Pattern = RULE_CODE) -> str:
    """The rule's code, which no earlier rule of its kind may have."""
    code = r.text(raw, path, "code", pattern=pattern) or ""
    if code and code in seen:
        r.fail(_join(path, "code"), f"duplicate {what} code {code!r}")
    seen.add(code)
    return code


def _activities(r: _Reader, doc: dict) -> list[ActivityRule]:
    seen: set[str] = set()
    return [ActivityRule(_code(r, raw, path, seen, "activity"), r.text(raw, path, "name") or "",
                         r.integer(raw, path, "points", default=0, low=0, high=1_000_000),
                         r.integer(raw, path, "growth", default=0, low=0, high=1_000_000),
                         r.integer(raw, path, "daily_cap", default=None, low=1, high=1_000))
            for path, raw in _entries(r, doc, "activities", {"code", "name", "points", "growth", "daily_cap"})]


def _stores(r: _Reader, doc: dict) -> list[StoreRule]:
    seen: set[str] = set()
    return [StoreRule(_code(r, raw, path, seen, "store", STORE_CODE), r.text(raw, path, "name") or "",
                      r.text(raw, path, "city", required=False))
            for path, raw in _entries(r, doc, "stores", {"code", "name", "city"})]


def _top_up_bonuses(r: _Reader, doc: dict) -> list[TopUpBonus]:
    section = r.table(doc.get("stored_value", {}), "stored_value")
    r.known_keys(section, "stored_value", {"top_up_bonus"})
    rules: list[TopUpBonus] = []
    for i, raw in enumerate(r.array(section, "stored_value", "top_up_bonus")):
        path = _join("stored_value.top_up_bonus", i)
        raw = r.table(raw, path)
        r.known_keys(raw, path, {"at_least", "bonus"})
        at_least = _fen(r, _join(path, "at_least"), r.decimal(raw, path, "at_least", positive=True,
                                                               high=Decimal(10_000_000)))
        bonus = _fen(r, _join(path, "bonus"), r.decimal(raw, path, "bonus", positive=True, high=Decimal(10_000_000)))
        if rules and at_least <= rules[-1].at_least_fen:
            r.fail(_join(path, "at_least"), "thresholds must rise from one rule to the next")
        rules.append(TopUpBonus(at_least, bonus))
    return rules


def _boosts(r: _Reader, doc: dict, tier_codes: list[str]) -> list[BoostRule]:
    boosts: list[BoostRule] = []
    seen: set[str] = set()
    for path, raw in _entries(r, doc, "boosts", {"code", "name", "multiplier", "starts", "ends", "weekday",
                                                 "day_of_month", "tiers", "categories", "channels"}):
        code = _code(r, raw, path, seen, "boost")
        multiplier = r.decimal(raw, path, "multiplier", positive=True, high=Decimal(100)) or Decimal(1)
        when = [key for key in ("starts", "weekday", "day_of_month") if key in raw]
        if len(when) > 1:  # none: every day
            r.fail(path, "name at most one of: starts (with ends), weekday, day_of_month")
        starts, ends = raw.get("starts"), raw.get("ends")
        if "starts" in raw and not (isinstance(starts, date) and isinstance(ends, date) and starts <= ends):
            r.fail(_join(path, "ends"), "starts and ends must be dates, ends on or after starts")
            starts = ends = None
        tiers = _codes(r, raw, path, "tiers", allowed=tier_codes)
        channels = _codes(r, raw, path, "channels", allowed=list(CHANNELS))
        categories = _codes(r, raw, path, "categories", allowed=None)
        boosts.append(BoostRule(code, r.text(raw, path, "name") or "", multiplier,
                                starts if isinstance(starts, date) else None, ends if isinstance(ends, date) else None,
                                r.integer(raw, path, "weekday", default=None, low=1, high=7),
                                r.integer(raw, path, "day_of_month", default=None, low=1, high=31),
                                tiers, categories, channels))
    return boosts


def _codes(r: _Reader, raw: dict, path: str, key: str, *, allowed: list[str] | None) -> tuple[str, ...]:
    """A list of codes; `allowed` (when given) names every one it may hold."""
    values = r.array(raw, path, key)
    codes = tuple(v for v in values if isinstance(v, str) and v)
    unknown = sorted(set(codes) - set(allowed)) if allowed is not None else []
    if len(codes) != len(values) or unknown:
        r.fail(_join(path, key), f"unknown {key} {unknown}" if unknown else "must be a list of codes")
    return codes


def _membership_plans(r: _Reader, doc: dict, benefit_codes: set[str]) -> list[MembershipPlan]:
    plans: list[MembershipPlan] = []
    seen: set[str] = set()
    for path, raw in _entries(r, doc, "membership_plans", {"code", "name", "price", "months",
                                                           "points_multiplier_bonus", "free_shipping", "benefits"}):
        code = _code(r, raw, path, seen, "plan")
        price = _fen(r, _join(path, "price"), r.decimal(raw, path, "price", positive=True, high=Decimal(1_000_000)))
        free_shipping = raw.get("free_shipping", False)
        if not isinstance(free_shipping, bool):
            r.fail(_join(path, "free_shipping"), "must be true or false")
        benefits = [b for b in r.array(raw, path, "benefits") if isinstance(b, str)]
        unknown = sorted(set(benefits) - benefit_codes)
        if unknown or len(benefits) != len(r.array(raw, path, "benefits")):
            r.fail(_join(path, "benefits"), f"unknown benefits {unknown}" if unknown else "must be benefit codes")
        plans.append(MembershipPlan(
            code, r.text(raw, path, "name") or "", price, r.integer(raw, path, "months", default=None, low=1, high=120) or 1,
            r.decimal(raw, path, "points_multiplier_bonus", required=False, default=Decimal(0), high=Decimal(100))
            or Decimal(0), free_shipping is True, tuple(benefits)))
        if "months" not in raw:
            r.fail(_join(path, "months"), "is required")
    return plans


def _stages(r: _Reader, ladder: dict) -> list[StageRule]:
    stages: list[StageRule] = []
    for i, raw in enumerate(r.array(ladder, "ladder", "stages")):
        path = _join("ladder.stages", i)
        raw = r.table(raw, path)
        r.known_keys(raw, path, {"code", "name", "description", "member_price_percent"})
        code = r.text(raw, path, "code", pattern=RULE_CODE)
        if code and code in {s.code for s in stages}:
            r.fail(_join(path, "code"), f"duplicate stage code {code!r}")
        stages.append(StageRule(code or "", r.text(raw, path, "name") or "",
                                r.text(raw, path, "description", required=False, default="", max_length=2000),
                                _member_price(r, raw, path)))
    return stages


def _member_price(r: _Reader, raw: dict, path: str) -> Decimal | None:
    """会员价 in percent of the list price (99 = 99折); 100 is the list price itself, kept as none."""
    percent = r.decimal(raw, path, "member_price_percent", required=False, positive=True, high=Decimal(100))
    if percent is not None and percent.as_tuple().exponent < -2:
        r.fail(_join(path, "member_price_percent"), "at most two decimal places")
    return None if percent == 100 else percent


def _tiers(r: _Reader, ladder: dict, stages: list[StageRule], symbol: str) -> list[TierRule]:
    stage_codes = {s.code for s in stages}
    raw_tiers = r.array(ladder, "ladder", "tiers")
    if not raw_tiers:
        r.fail("ladder.tiers", "at least one tier is required")
    if len(raw_tiers) > MAX_TIERS:
        r.fail("ladder.tiers", f"at most {MAX_TIERS} tiers")
        raw_tiers = raw_tiers[:MAX_TIERS]
    tiers: list[TierRule] = []
    for rank, raw in enumerate(raw_tiers):
        path = _join("ladder.tiers", rank)
        raw = r.table(raw, path)
        r.known_keys(raw, path, {"code", "name", "points_multiplier", "stage", "conditions", "description",
                                 "member_price_percent"})
        code = r.text(raw, path, "code", pattern=RULE_CODE) or ""
        if code and code in {t.code for t in tiers}:
            r.fail(_join(path, "code"), f"duplicate tier code {code!r}")
        stage = r.text(raw, path, "stage", required=False)
        if stage is not None and stage not in stage_codes:
            r.fail(_join(path, "stage"), f"unknown stage {stage!r} (stages: {', '.join(sorted(stage_codes)) or 'none'})")
        conditions = _conditions(r, raw, path)
        if rank == 0 and conditions:
            r.fail(_join(path, "conditions"), "the entry tier (the first) is reached on enrolment and takes no conditions")
        if rank > 0 and not conditions and not any(p.path.startswith(_join(path, "conditions")) for p in r.problems):
            r.fail(_join(path, "conditions"), "a tier above the entry tier needs at least one condition")
        tiers.append(TierRule(
            code=code, name=r.text(raw, path, "name") or "", rank=rank,
            points_multiplier=r.decimal(raw, path, "points_multiplier", required=False, default=Decimal(1),
                                        high=Decimal(100)) or Decimal(0),
            conditions=tuple(conditions), stage=stage,
            description=r.text(raw, path, "description", required=False, default="", max_length=2000),
            member_price_percent=(_member_price(r, raw, path) if "member_price_percent" in raw
                                  else next((s.member_price_percent for s in stages if s.code == stage), None)),
        ))
    return tiers


def _conditions(r: _Reader, tier: dict, tier_path: str) -> list[Condition]:
    conditions = []
    for i, raw in enumerate(r.array(tier, tier_path, "conditions")):
        path = _join(_join(tier_path, "conditions"), i)
        raw = r.table(raw, path)
        r.known_keys(raw, path, {"metric", "at_least", "months"})
        metric_name = r.text(raw, path, "metric")
        metric = METRICS.get(metric_name or "")
        if metric_name and metric is None:
            r.fail(_join(path, "metric"), f"unknown metric {metric_name!r} (known: {', '.join(sorted(METRICS))})")
        target = r.decimal(raw, path, "at_least", positive=True, high=Decimal(10_000_000_000))
        if target is not None and metric is not None and metric.money:
            _fen(r, _join(path, "at_least"), target)
        months = r.integer(raw, path, "months", default=None, low=1, high=120)
        if metric is not None:
            if metric.months == "required" and months is None:
                r.fail(_join(path, "months"), f"{metric_name} needs a window in months")
            if metric.months == "forbidden" and "months" in raw:
                r.fail(_join(path, "months"), f"{metric_name} takes no window")
        if metric is not None and target is not None:
            conditions.append(Condition(metric_name, target, months))
    return conditions


def _reward(r: _Reader, doc: dict, path: str) -> Reward:
    raw = r.table(doc.get("reward", {}), _join(path, "reward"))
    where = _join(path, "reward")
    r.known_keys(raw, where, {"points", "growth", "badge", "coupon"})
    coupon = r.text(raw, where, "coupon", required=False)
    if coupon is not None:
        r.coupon_references.append((_join(where, "coupon"), coupon))
    badge = None
    if "badge" in raw:
        badge_doc = r.table(raw["badge"], _join(where, "badge"))
        r.known_keys(badge_doc, _join(where, "badge"), {"code", "name"})
        badge = Badge(r.text(badge_doc, _join(where, "badge"), "code", pattern=RULE_CODE) or "",
                      r.text(badge_doc, _join(where, "badge"), "name") or "")
    return Reward(points=r.integer(raw, where, "points", default=0, low=0, high=1_000_000),
                  growth_value=r.integer(raw, where, "growth", default=0, low=0, high=1_000_000), badge=badge,
                  coupon=coupon)


def _reward_items(r: _Reader, doc: dict) -> list[RewardItemRule]:
    items: list[RewardItemRule] = []
    for i, raw in enumerate(r.array(doc, "", "rewards")):
        path = _join("rewards", i)
        raw = r.table(raw, path)
        r.known_keys(raw, path, {"code", "name", "description", "points_cost", "stock", "per_member_limit", "gives"})
        code = r.text(raw, path, "code", pattern=RULE_CODE) or ""
        if code and code in {item.code for item in items}:
            r.fail(_join(path, "code"), f"duplicate reward code {code!r}")
        cost = r.integer(raw, path, "points_cost", default=None, low=1, high=100_000_000)
        if cost is None:
            r.fail(_join(path, "points_cost"), "is required")
        gives = r.table(raw.get("gives", {}), _join(path, "gives"))
        r.known_keys(gives, _join(path, "gives"), {"coupon", "goods"})
        if len(gives) != 1:
            r.fail(_join(path, "gives"), "give exactly one of coupon or goods")
        coupon = r.text(gives, _join(path, "gives"), "coupon", required=False)
        if coupon is not None:
            r.coupon_references.append((_join(_join(path, "gives"), "coupon"), coupon))
        items.append(RewardItemRule(
            code=code, name=r.text(raw, path, "name") or "", points_cost=cost or 1,
            stock=r.integer(raw, path, "stock", default=None, low=0, high=100_000_000),
            per_member_limit=r.integer(raw, path, "per_member_limit", default=None, low=1, high=1_000_000),
            coupon=coupon, goods=r.text(gives, _join(path, "gives"), "goods", required=False),
            description=r.text(raw, path, "description", required=False, default="", max_length=2000)))
    return items


def _benefits(r: _Reader, doc: dict, ladder: list[str]) -> list[BenefitRule]:
    benefits: list[BenefitRule] = []
    for i, raw in enumerate(r.array(doc, "", "benefits")):
        path = _join("benefits", i)
        raw = r.table(raw, path)
        r.known_keys(raw, path, {"code", "name", "description", "category", "tiers", "only_listed", "quota", "window",
                                 "early_access", "birthday_month", "gives", "core"})
        code = r.text(raw, path, "code", pattern=RULE_CODE) or ""
        if code and code in {b.code for b in benefits}:
            r.fail(_join(path, "code"), f"duplicate benefit code {code!r}")
        category = raw.get("category")
        if category not in BENEFIT_CATEGORIES:
            r.fail(_join(path, "category"), f"must be one of {', '.join(BENEFIT_CATEGORIES)}, got {category!r}")
        listed = [t for t in r.array(raw, path, "tiers") if isinstance(t, str)]
        unknown = [t for t in listed if t not in ladder]
        if not listed or unknown:
            r.fail(_join(path, "tiers"), f"unknown tiers {unknown}" if unknown else "name at least one tier")
            listed = [t for t in listed if t in ladder] or ladder[:1]
        if not listed:  # the ladder itself is broken (and reported): nothing to hold the benefit
            tiers = []
        else:
            tiers = listed if raw.get("only_listed") else ladder[min(ladder.index(t) for t in listed):]
        quota_doc = r.table(raw.get("quota", {}), _join(path, "quota"))
        r.known_keys(quota_doc, _join(path, "quota"), {"count", "per"})
        period = quota_doc.get("per", "lifetime")
        if period not in PERIODS:
            r.fail(_join(_join(path, "quota"), "per"), f"must be one of {', '.join(PERIODS)}, got {period!r}")
        window = r.table(raw.get("window", {}), _join(path, "window"))
        r.known_keys(window, _join(path, "window"), {"starts", "ends"})
        starts = _date(r, window, _join(path, "window"), "starts") if window else None
        ends = _date(r, window, _join(path, "window"), "ends") if window else None
        early = r.table(raw.get("early_access", {}), _join(path, "early_access"))
        r.known_keys(early, _join(path, "early_access"), {"days", "tiers"})
        early_tiers = [t for t in r.array(early, _join(path, "early_access"), "tiers") if t in ladder]
        if early and starts is None:
            r.fail(_join(path, "early_access"), "early access needs a window")
        gives = r.table(raw.get("gives", {}), _join(path, "gives"))
        r.known_keys(gives, _join(path, "gives"), {"coupon", "badge", "entitlement"})
        if len(gives) != 1:
            r.fail(_join(path, "gives"), "give exactly one of coupon, badge or entitlement")
        coupon = r.text(gives, _join(path, "gives"), "coupon", required=False)
        if coupon is not None:
            r.coupon_references.append((_join(_join(path, "gives"), "coupon"), coupon))
        badge = None
        if "badge" in gives:
            badge_doc = r.table(gives["badge"], _join(_join(path, "gives"), "badge"))
            badge = Badge(r.text(badge_doc, _join(path, "gives.badge"), "code", pattern=RULE_CODE) or "",
                          r.text(badge_doc, _join(path, "gives.badge"), "name") or "")
        benefits.append(BenefitRule(
            code=code, name=r.text(raw, path, "name") or "",
            description=r.text(raw, path, "description", max_length=2000) or "", category=category or "ECONOMIC",
            tiers=tuple(tiers), quota=r.integer(quota_doc, _join(path, "quota"), "count", default=None, low=1, high=1000),
            period=period if period in PERIODS else "lifetime", starts=starts, ends=ends,
            early_days=r.integer(early, _join(path, "early_access"), "days", default=0, low=0, high=365) or 0,
            early_tiers=tuple(early_tiers), birthday_month=bool(raw.get("birthday_month", False)), coupon=coupon,
            badge=badge, entitlement=r.text(gives, _join(path, "gives"), "entitlement", required=False,
                                            pattern=RULE_CODE),
            core=bool(raw.get("core", False))))
    return benefits


def _coupon_templates(r: _Reader, doc: dict) -> list[CouponTemplateRule]:
    templates: list[CouponTemplateRule] = []
    for i, raw in enumerate(r.array(doc, "", "coupons")):
        path = _join("coupons", i)
        raw = r.table(raw, path)
        r.known_keys(raw, path, {"code", "name", "kind", "value", "min_spend", "valid_days", "valid_from", "valid_until"})
        code = r.text(raw, path, "code", pattern=RULE_CODE) or ""
        if code and code in {t.code for t in templates}:
            r.fail(_join(path, "code"), f"duplicate coupon template {code!r}")
        kind = raw.get("kind")
        if kind not in COUPON_KINDS:
            r.fail(_join(path, "kind"), f"must be one of {', '.join(COUPON_KINDS)}, got {kind!r}")
        if kind == PERCENT_OFF:
            value = r.decimal(raw, path, "value", positive=True, high=Decimal(99))
        elif kind == FREE_SHIPPING:
            value = r.decimal(raw, path, "value", required=False, default=Decimal(0))
        else:
            value = r.decimal(raw, path, "value", positive=True, high=Decimal(1_000_000))
            _fen(r, _join(path, "value"), value)
        min_spend = r.decimal(raw, path, "min_spend", required=False, positive=True, high=Decimal(10_000_000))
        min_spend_fen = _fen(r, _join(path, "min_spend"), min_spend) if min_spend is not None else None
        if kind == THRESHOLD_REDUCTION and value and min_spend is not None and value >= min_spend:
            r.fail(_join(path, "value"), "the reduction must be below the minimum spend")
        days = r.integer(raw, path, "valid_days", default=None, low=1, high=3650)
        has_dates = "valid_from" in raw or "valid_until" in raw
        valid_from = valid_until = None
        if days is None and not has_dates:
            r.fail(path, "give valid_days, or valid_from and valid_until")
        elif days is not None and has_dates:
            r.fail(path, "give valid_days or fixed dates, not both")
        elif has_dates:
            valid_from, valid_until = _date(r, raw, path, "valid_from"), _date(r, raw, path, "valid_until")
            if valid_from and valid_until and valid_until < valid_from:
                r.fail(_join(path, "valid_until"), "ends before it starts")
        templates.append(CouponTemplateRule(code, r.text(raw, path, "name") or "", kind or "", value or Decimal(0),
                                            min_spend_fen, days, valid_from, valid_until))
    return templates


def _date(r: _Reader, doc: dict, path: str, key: str) -> date | None:
    value = doc.get(key)
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    r.fail(_join(path, key), f"must be a date (YYYY-MM-DD), got {value!r}")
    return None


def _window(r: _Reader, goal: dict, path: str) -> Window:
    kind = goal.get("window", "lifetime")
    if kind not in WINDOWS:
        r.fail(_join(path, "window"), f"unknown window {kind!r} (known: {', '.join(WINDOWS)})")
        return Window("lifetime")
    if kind != "campaign":
        return Window(kind)
    starts, ends = _date(r, goal, path, "starts"), _date(r, goal, path, "ends")
    if starts and ends and ends < starts:
        r.fail(_join(path, "ends"), "ends before it starts")
    return Window(kind, starts, ends)


def _tasks(r: _Reader, doc: dict, activity_codes: set[str]) -> list[TaskRule]:
    tasks: dict[str, TaskRule] = {}
    for i, raw in enumerate(r.array(doc, "", "tasks")):
        path = _join("tasks", i)
        raw = r.table(raw, path)
        r.known_keys(raw, path, {"code", "kind", "title", "description", "prerequisites", "goal", "reward", "claim",
                                 "repeat", "streak_bonus"})
        code = r.text(raw, path, "code", pattern=RULE_CODE) or f"#{i}"
        if code in tasks:
            r.fail(_join(path, "code"), f"duplicate task code {code!r}")
        kind = raw.get("kind")
        if kind not in TASK_KINDS:
            r.fail(_join(path, "kind"), f"must be one of {', '.join(TASK_KINDS)}, got {kind!r}")
        goal_doc = r.table(raw.get("goal", {}), _join(path, "goal"))
        goal_path = _join(path, "goal")
        r.known_keys(goal_doc, goal_path, {"metric", "target", "window", "starts", "ends", "activity"})
        metric = r.text(goal_doc, goal_path, "metric") or ""
        if metric and metric not in GOAL_METRICS:
            r.fail(_join(goal_path, "metric"), f"unknown metric {metric!r} (known: {', '.join(GOAL_METRICS)})")
        counted = r.text(goal_doc, goal_path, "activity", required=False)
        if counted is not None and (metric != "activities" or counted not in activity_codes):
            r.fail(_join(goal_path, "activity"), f"unknown activity {counted!r}" if metric == "activities"
                   else "only the activities metric counts an activity")
        target = r.integer(goal_doc, goal_path, "target", default=None, low=1, high=1_000_000)
        if target is None and "target" not in goal_doc:
            r.fail(_join(goal_path, "target"), "is required")
        claim = raw.get("claim", "automatic")
        if claim not in ("automatic", "member"):
            r.fail(_join(path, "claim"), f"must be 'automatic' or 'member', got {claim!r}")
        repeat = raw.get("repeat")
        if repeat is not None and repeat not in REPEATS:
            r.fail(_join(path, "repeat"), f"must be one of {', '.join(REPEATS)}, got {repeat!r}")
        prerequisites = r.array(raw, path, "prerequisites")
        if not all(isinstance(p, str) for p in prerequisites):
            r.fail(_join(path, "prerequisites"), "must be task codes")
            prerequisites = []
        bonus = None
        if "streak_bonus" in raw:
            bonus_doc = r.table(raw["streak_bonus"], _join(path, "streak_bonus"))
            r.known_keys(bonus_doc, _join(path, "streak_bonus"), {"every", "points"})
            bonus = StreakBonus(r.integer(bonus_doc, _join(path, "streak_bonus"), "every", default=7, low=2, high=366),
                                r.integer(bonus_doc, _join(path, "streak_bonus"), "points", default=0, low=0,
                                          high=1_000_000))
        tasks[code] = TaskRule(
            code=code, kind=kind if kind in TASK_KINDS else "BASIC",
            title=r.text(raw, path, "title") or "", description=r.text(raw, path, "description", max_length=2000) or "",
            goal=Goal(metric, target or 1, _window(r, goal_doc, goal_path), counted), reward=_reward(r, raw, path),
            prerequisites=tuple(prerequisites), claim=claim, repeat=repeat, streak_bonus=bonus)
    return _dependency_order(r, tasks)


def _dependency_order(r: _Reader, tasks: dict[str, TaskRule]) -> list[TaskRule]:
    """Prerequisites first (in waves, file order within a wave); an unknown prerequisite or a
    cycle is a problem naming them."""
    for i, task in enumerate(tasks.values()):
        for prerequisite in task.prerequisites:
            if prerequisite not in tasks:
                r.fail(_join(_join("tasks", i), "prerequisites"), f"unknown task {prerequisite!r}")
    ordered: list[TaskRule] = []
    placed: set[str] = set()
    pending = list(tasks.values())
    while pending:
        ready = [t for t in pending if all(p in placed or p not in tasks for p in t.prerequisites)]
        if not ready:
            cycle = " → ".join(sorted(t.code for t in pending))
            r.fail("tasks", f"prerequisites form a cycle among {cycle}")
            return ordered
        for task in ready:
            ordered.append(task)
            placed.add(task.code)
        pending = [t for t in pending if t.code not in placed]
    return ordered


def _quests(r: _Reader, doc: dict) -> list[QuestRule]:
    quests = []
    for i, raw in enumerate(r.array(doc, "", "quests")):
        path = _join("quests", i)
        raw = r.table(raw, path)
        r.known_keys(raw, path, {"code", "title", "description", "starts", "ends", "levels"})
        code = r.text(raw, path, "code", pattern=RULE_CODE) or ""
        if code and code in {q.code for q in quests}:
            r.fail(_join(path, "code"), f"duplicate quest code {code!r}")
        starts, ends = _date(r, raw, path, "starts"), _date(r, raw, path, "ends")
        if starts and ends and ends < starts:
            r.fail(_join(path, "ends"), "ends before it starts")
        levels = []
        for j, level_doc in enumerate(r.array(raw, path, "levels")):
            level_path = _join(_join(path, "levels"), j)
            level_doc = r.table(level_doc, level_path)
            r.known_keys(level_doc, level_path, {"title", "target", "reward"})
            target = r.integer(level_doc, level_path, "target", default=None, low=1, high=100_000_000) or 0
            if levels and target <= levels[-1].target:
                r.fail(_join(level_path, "target"), "must be above the previous level's target")
            levels.append(QuestLevel(j + 1, r.text(level_doc, level_path, "title") or "", target,
                                     _reward(r, level_doc, level_path)))
        if not levels:
            r.fail(_join(path, "levels"), "at least one level is required")
        if starts and ends and levels:
            quests.append(QuestRule(code, r.text(raw, path, "title") or "", starts, ends, tuple(levels),
                                    r.text(raw, path, "description", required=False, default="", max_length=2000)))
    return quests


def parse_program_text(text: str, source: str = "program") -> ProgramDefinition:
    try:
        doc = tomllib.loads(text)
    except RecursionError:
        raise ProgramError([Problem("", TOO_DEEP)], source) from None
    except ValueError as exc:  # TOMLDecodeError, or a number too long to convert
        raise ProgramError([Problem("", f"not valid TOML: {exc}")], source) from exc
    return parse_program(doc, source)


def load_program_file(path: str | Path) -> ProgramDefinition:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProgramError([Problem("", f"cannot read: {exc.strerror}")], str(path)) from exc
    return parse_program_text(text, str(path))


def bundled_program_path(name: str) -> Path:
    """A program file shipped with tierup (fixtures/programs/NAME.toml)."""
    return Path(str(resources.files("tierup.fixtures").joinpath("programs", f"{name}.toml")))
