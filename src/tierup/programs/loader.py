"""Turn a program document (TOML, or the same structure as JSON) into a ProgramDefinition.

The document is validated through one model (programs/document.py, whose JSON Schema editors
use); then the checks across tables run on what validated: codes unique in their list, the
codes one section names in another (coupon templates, tiers, stages, benefits, activities),
task prerequisites and their cycles. Every problem names its key path and what is wrong, and
all are collected before failing, so an operator fixes a broken file in one pass.
"""

from __future__ import annotations

import tomllib
import types
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Iterable, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError

from ..domain.boosts import BoostRule
from ..domain.money import to_fen
from ..domain.program import (ActivityRule, Badge, BenefitRule, Condition, CouponTemplateRule, Goal, MembershipPlan,
                              ProgramDefinition, QuestLevel, QuestRule, Reward, RewardItemRule, StageRule, StoreRule,
                              StreakBonus, TaskRule, TierRule, TopUpBonus, Window)
from ..domain.rfm import LifecycleRules
from . import document as model
from .document import MAX_ENTRIES, ProgramDocument

# The deepest a real definition nests is about six levels (tasks → task → goal → window); far deeper is an
# attack or an accident, and deep enough exhausts the parser's recursion (a RecursionError, not a message).
MAX_NESTING = 32
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


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _path(loc: Iterable[str | int]) -> str:
    path = ""
    for part in loc:
        path = _join(path, part)
    return path


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


def _bounded(value: Any, path: str, problems: list[Problem]) -> Any:
    """The document with every array cut at MAX_ENTRIES (each cut a problem), so that no check — the
    model's or the ones across entries — reads further than that."""
    if isinstance(value, dict):
        bounded = {key: _bounded(item, _join(path, str(key)), problems) for key, item in value.items()}
        return value if all(bounded[key] is value[key] for key in value) else bounded
    if isinstance(value, list):
        if len(value) > MAX_ENTRIES:
            problems.append(Problem(path, f"at most {MAX_ENTRIES} entries, got {len(value)}"))
            value = value[:MAX_ENTRIES]
        bounded_items = [_bounded(item, _join(path, i), problems) for i, item in enumerate(value)]
        return value if all(a is b for a, b in zip(bounded_items, value)) else bounded_items
    return value


def parse_program(doc: Any, source: str = "program") -> ProgramDefinition:
    """Validate a program document and build its definition, or raise ProgramError with every problem."""
    too_deep = nesting_problem(doc)
    if too_deep is not None:
        raise ProgramError([too_deep], source)
    problems: list[Problem] = []
    bounded = _bounded(doc, "", problems)
    cut = {p.path for p in problems}
    try:
        document: ProgramDocument | None = ProgramDocument.model_validate(bounded)
    except ValidationError as invalid:
        problems += [p for p in model_problems(invalid) if p.path not in cut]
        document = _salvage(ProgramDocument, bounded)
    if document is not None:
        problems += cross_checks(document)
    if len(problems) > MAX_PROBLEMS:
        more = len(problems) - MAX_PROBLEMS
        raise ProgramError(problems[:MAX_PROBLEMS] + [Problem("", f"and {more} more problems not listed")], source)
    if problems:
        raise ProgramError(problems, source)
    return _definition(document, doc)


# --- the model's errors, as the loader words them ------------------------------------------------

def model_problems(invalid: ValidationError) -> list[Problem]:
    """One Problem per error of the model, with its key path; the entries of a list of choices that are
    not among them (`channels = ["SHOP"]`) make one problem naming the list."""
    found: list[Problem | tuple] = []  # a tuple: the path of a list whose unknown entries are gathered
    unknown: dict[tuple, list[str]] = {}
    for error in invalid.errors(include_url=False):
        loc, kind, ctx = tuple(error["loc"]), error["type"], error.get("ctx") or {}
        if kind == "literal_error" and loc and isinstance(loc[-1], int):
            if loc[:-1] not in unknown:
                unknown[loc[:-1]] = []
                found.append(loc[:-1])
            unknown[loc[:-1]].append(str(error["input"]))
            continue
        if kind == "program":
            loc += tuple(ctx.get("at", ()))
        found.append(Problem(_path(loc), _message(loc, kind, error)))
    return [entry if isinstance(entry, Problem) else Problem(
        _path(entry), f"unknown {entry[-1]} {sorted(unknown[entry])} "
                      f"(known: {', '.join(get_args(_annotation_at((*entry, 0))))})") for entry in found]


def _message(loc: tuple, kind: str, error: dict) -> str:
    ctx, given = error.get("ctx") or {}, error.get("input")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        holder = _annotation_at(loc[:-1])
        allowed = sorted(holder.model_fields) if _is_model(holder) else []
        return f"unknown key (allowed: {', '.join(allowed)})"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a table, got {type(given).__name__}"
    if kind == "list_type":
        return "must be an array"
    if kind == "too_short":
        if ctx.get("min_length") == 1 and isinstance(loc[-1], str):
            return f"at least one {loc[-1].removesuffix('s')} is required"
        return f"at least {ctx.get('min_length')} entries, got {ctx.get('actual_length')}"
    if kind == "too_long":
        return f"at most {ctx.get('max_length')} entries, got {ctx.get('actual_length')}"
    if kind in ("string_type", "string_too_short"):
        return "must be a non-empty string"
    if kind == "string_too_long":
        return f"is longer than {ctx.get('max_length')} characters"
    if kind == "string_pattern_mismatch":
        return f"{given!r} does not match {ctx.get('pattern')}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be a whole number, got {given!r}"
    if kind == "bool_type":
        return "must be true or false"
    if kind.startswith("decimal_") or kind == "finite_number":
        return f"must be a number, got {given!r}"
    if kind == "literal_error":
        choices = get_args(_annotation_at(loc)) or ()
        if loc[-1] in ("metric", "window"):
            return f"unknown {loc[-1]} {given!r} (known: {', '.join(choices)})"
        return f"must be one of {', '.join(choices)}, got {given!r}"
    return error["msg"]


def _bare(annotation: Any) -> Any:
    """The type under Annotated[...] and Optional[...]."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
        elif get_origin(annotation) in (Union, types.UnionType):
            options = [a for a in get_args(annotation) if a is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _annotation_at(loc: tuple) -> Any:
    """The declared type at a key path of the document (None when the path leaves the model)."""
    annotation: Any = ProgramDocument
    for part in loc:
        annotation = _bare(annotation)
        if isinstance(part, int) and get_origin(annotation) is list:
            annotation = get_args(annotation)[0]
        elif isinstance(part, str) and _is_model(annotation) and part in annotation.model_fields:
            annotation = annotation.model_fields[part].annotation
        else:
            return None
    return _bare(annotation)


# --- what validated, for the checks across tables -------------------------------------------------

@lru_cache(maxsize=None)
def _field_adapter(owner: type[BaseModel], name: str) -> TypeAdapter:
    field = owner.model_fields[name]
    return TypeAdapter(Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation)


@lru_cache(maxsize=None)
def _item_adapter(owner: type[BaseModel], name: str) -> TypeAdapter:
    return TypeAdapter(get_args(_bare(owner.model_fields[name].annotation))[0])


def _salvage(owner: type[BaseModel], raw: Any) -> Any:
    """A document that failed validation, as far as it validates: each key that validates on its own
    keeps its value, tables and lists of tables are salvaged entry by entry, and what fails is None.
    The checks across tables read it so that they can run beside the model's errors."""
    if not isinstance(raw, dict):
        return None
    try:
        return owner.model_validate(raw)
    except ValidationError:
        pass
    values: dict[str, Any] = {}
    for name, field in owner.model_fields.items():
        if name not in raw:
            default = None if field.is_required() else field.get_default(call_default_factory=True)
            values[name] = _salvage_field(owner, name, default) if field.validate_default else default
        else:
            values[name] = _salvage_field(owner, name, raw[name])
    return owner.model_construct(**values)


def _salvage_field(owner: type[BaseModel], name: str, raw: Any) -> Any:
    try:
        return _field_adapter(owner, name).validate_python(raw)
    except ValidationError:
        pass
    annotation = _bare(owner.model_fields[name].annotation)
    if _is_model(annotation):
        return _salvage(annotation, raw)
    if get_origin(annotation) is list and isinstance(raw, list):
        item = _bare(get_args(annotation)[0])
        if _is_model(item):
            return [_salvage(item, entry) for entry in raw]
        adapter = _item_adapter(owner, name)
        return [_valid_or_none(adapter, entry) for entry in raw]
    return None


def _valid_or_none(adapter: TypeAdapter, raw: Any) -> Any:
    try:
        return adapter.validate_python(raw)
    except ValidationError:
        return None


# --- checks across tables ---------------------------------------------------------------------

def _entries(items: list | None) -> list[tuple[int, Any]]:
    """(index, entry) of a list that validated at least in part; entries that are not tables are left out."""
    return [(i, item) for i, item in enumerate(items or []) if item is not None]


def _codes(items: list | None) -> set[str]:
    return {item.code for _, item in _entries(items) if item.code}


def _unique(problems: list[Problem], section: str, items: list | None, what: str) -> None:
    seen: set[str] = set()
    for i, item in _entries(items):
        if item.code and item.code in seen:
            problems.append(Problem(_join(_join(section, i), "code"), f"duplicate {what} {item.code!r}"))
        if item.code:
            seen.add(item.code)


def cross_checks(d: ProgramDocument) -> list[Problem]:
    """The checks that read more than one table, on a validated (or salvaged) document."""
    problems: list[Problem] = []
    fail = lambda path, message: problems.append(Problem(path, message))  # noqa: E731
    ladder = d.ladder
    stages = ladder.stages if ladder is not None else None
    tiers = ladder.tiers if ladder is not None else None
    _unique(problems, "ladder.stages", stages, "stage code")
    stage_codes = _codes(stages)
    seen_tiers: set[str] = set()
    for rank, tier in _entries(tiers):
        path = _join("ladder.tiers", rank)
        if tier.code and tier.code in seen_tiers:
            fail(_join(path, "code"), f"duplicate tier code {tier.code!r}")
        if tier.code:
            seen_tiers.add(tier.code)
        if tier.stage is not None and tier.stage not in stage_codes:
            fail(_join(path, "stage"),
                 f"unknown stage {tier.stage!r} (stages: {', '.join(sorted(stage_codes)) or 'none'})")
        if tier.conditions is not None:
            if rank == 0 and tier.conditions:
                fail(_join(path, "conditions"),
                     "the entry tier (the first) is reached on enrolment and takes no conditions")
            if rank > 0 and not tier.conditions:
                fail(_join(path, "conditions"), "a tier above the entry tier needs at least one condition")
    tier_codes = [tier.code for _, tier in _entries(tiers) if tier.code]
    multipliers = [tier.points_multiplier for _, tier in _entries(tiers) if tier.points_multiplier is not None]
    if multipliers and d.orders is not None and d.orders.max_amount is not None:
        if to_fen(d.orders.max_amount) * max(multipliers) / 100 > MAX_POINTS_PER_ORDER:
            fail("orders.max_amount", f"an order of this amount at the highest multiplier would earn more than "
                                      f"{MAX_POINTS_PER_ORDER:,} points; lower the ceiling or the multiplier")

    _unique(problems, "coupons", d.coupons, "coupon template")
    _unique(problems, "rewards", d.rewards, "reward code")
    _unique(problems, "benefits", d.benefits, "benefit code")
    for i, benefit in _entries(d.benefits):
        if benefit.tiers is not None:
            listed = [t for t in benefit.tiers if t is not None]
            unknown = [t for t in listed if t not in tier_codes]
            if tiers is not None and (not listed or unknown):
                fail(_join(_join("benefits", i), "tiers"), f"unknown tiers {unknown}" if unknown
                     else "name at least one tier")
    benefit_codes = _codes(d.benefits)
    _unique(problems, "membership_plans", d.membership_plans, "plan code")
    for i, plan in _entries(d.membership_plans):
        unknown = sorted({b for b in plan.benefits or [] if b is not None} - benefit_codes)
        if unknown:
            fail(_join(_join("membership_plans", i), "benefits"), f"unknown benefits {unknown}")
    _unique(problems, "boosts", d.boosts, "boost code")
    for i, boost in _entries(d.boosts):
        unknown = sorted({t for t in boost.tiers or [] if t is not None} - set(tier_codes))
        if unknown and tiers is not None:
            fail(_join(_join("boosts", i), "tiers"), f"unknown tiers {unknown}")
    _unique(problems, "activities", d.activities, "activity code")
    activity_codes = _codes(d.activities)
    _unique(problems, "tasks", d.tasks, "task code")
    for i, task in _entries(d.tasks):
        goal = task.goal
        if goal is not None and goal.metric == "activities" and goal.activity is not None \
                and goal.activity not in activity_codes:
            fail(_join(_join("tasks", i), "goal.activity"), f"unknown activity {goal.activity!r}")
    problems += _dependency_problems(d.tasks)
    _unique(problems, "quests", d.quests, "quest code")
    _unique(problems, "stores", d.stores, "store code")
    _coupon_references(d, fail)
    return problems


def _coupon_references(d: ProgramDocument, fail) -> None:
    """Every coupon a section gives names a coupon template."""
    known = _codes(d.coupons)
    references: list[tuple[str, str | None]] = [
        ("enrolment.welcome_coupon", d.enrolment.welcome_coupon if d.enrolment is not None else None)]
    references += [(f"rewards[{i}].gives.coupon", item.gives.coupon) for i, item in _entries(d.rewards)
                   if item.gives is not None]
    references += [(f"benefits[{i}].gives.coupon", b.gives.coupon) for i, b in _entries(d.benefits)
                   if b.gives is not None]
    references += [(f"tasks[{i}].reward.coupon", t.reward.coupon) for i, t in _entries(d.tasks)
                   if t.reward is not None]
    references += [(f"quests[{i}].levels[{j}].reward.coupon", level.reward.coupon)
                   for i, quest in _entries(d.quests) for j, level in _entries(quest.levels)
                   if level.reward is not None]
    references.append(("referrals.new_member_coupon",
                       d.referrals.new_member_coupon if d.referrals is not None else None))
    for where, coupon in references:
        if coupon is not None and coupon not in known:
            fail(where, f"unknown coupon template {coupon!r}")


def _task_prerequisites(tasks: list | None) -> dict[str, tuple[int, tuple[str, ...]]]:
    """Each task's code → (its index, its prerequisites); a later task of the same code wins."""
    found: dict[str, tuple[int, tuple[str, ...]]] = {}
    for i, task in _entries(tasks):
        found[task.code or f"#{i}"] = (i, tuple(p for p in task.prerequisites or [] if p is not None))
    return found


def _dependency_problems(tasks: list | None) -> list[Problem]:
    """Unknown prerequisites, and prerequisites that form a cycle."""
    found = _task_prerequisites(tasks)
    problems = [Problem(_join(_join("tasks", i), "prerequisites"), f"unknown task {prerequisite!r}")
                for i, prerequisites in found.values() for prerequisite in prerequisites if prerequisite not in found]
    _, cycle = _dependency_order(found)
    if cycle:
        problems.append(Problem("tasks", f"prerequisites form a cycle among {' → '.join(sorted(cycle))}"))
    return problems


def _dependency_order(found: dict[str, tuple[int, tuple[str, ...]]]) -> tuple[list[str], list[str]]:
    """Task codes with prerequisites first (in waves, file order within a wave), and the codes left in a
    cycle (none when there is no cycle)."""
    ordered: list[str] = []
    placed: set[str] = set()
    pending = list(found)
    while pending:
        ready = [code for code in pending if all(p in placed or p not in found for p in found[code][1])]
        if not ready:
            return ordered, pending
        ordered += ready
        placed.update(ready)
        pending = [code for code in pending if code not in placed]
    return ordered, []


# --- the definition ---------------------------------------------------------------------------

def _definition(d: ProgramDocument, source: dict) -> ProgramDefinition:
    stages = [StageRule(s.code, s.name, s.description, _member_price(s.member_price_percent))
              for s in d.ladder.stages]
    stage_price = {s.code: s.member_price_percent for s in stages}
    tiers = [TierRule(
        code=t.code, name=t.name, rank=rank, points_multiplier=t.points_multiplier,
        conditions=tuple(Condition(c.metric, c.at_least, c.months) for c in t.conditions), stage=t.stage,
        description=t.description,
        member_price_percent=(_member_price(t.member_price_percent) if "member_price_percent" in t.model_fields_set
                              else stage_price.get(t.stage)))
        for rank, t in enumerate(d.ladder.tiers)]
    ladder = [t.code for t in tiers]
    found = _task_prerequisites(d.tasks)
    order, _ = _dependency_order(found)
    tasks = {t.code: _task(t) for t in d.tasks}
    reviews = d.reviews
    return ProgramDefinition(
        code=d.code, name=d.name, currency=d.currency, currency_symbol=d.currency_symbol, time_zone=d.time_zone,
        tiers=tuple(tiers), stages=tuple(stages),
        tier_validity_months=None if d.ladder.validity_months == "permanent" else d.ladder.validity_months,
        welcome_points=d.enrolment.welcome_points, max_order_fen=to_fen(d.orders.max_amount),
        point_value=d.point_value, welcome_coupon=d.enrolment.welcome_coupon,
        coupon_templates=tuple(CouponTemplateRule(
            c.code, c.name, c.kind, c.value or Decimal(0), to_fen(c.min_spend) if c.min_spend is not None else None,
            c.valid_days, c.valid_from, c.valid_until) for c in d.coupons),
        benefits=tuple(_benefit(b, ladder) for b in d.benefits),
        rewards=tuple(RewardItemRule(
            code=r.code, name=r.name, points_cost=r.points_cost, stock=r.stock, per_member_limit=r.per_member_limit,
            coupon=r.gives.coupon, goods=r.gives.goods, description=r.description) for r in d.rewards),
        points_expiry_months=None if d.points.expiry_months == "never" else d.points.expiry_months,
        lifecycle=LifecycleRules(new_days=d.lifecycle.new_days, declining_days=d.lifecycle.declining_days,
                                 churned_days=d.lifecycle.churned_days, mature_orders=d.lifecycle.mature_orders),
        tasks=tuple(tasks[code] for code in order),
        quests=tuple(QuestRule(q.code, q.title, q.starts, q.ends, tuple(
            QuestLevel(j + 1, level.title, level.target, _reward(level.reward)) for j, level in enumerate(q.levels)),
            q.description) for q in d.quests),
        stores=tuple(StoreRule(s.code, s.name, s.city) for s in d.stores),
        top_up_bonuses=tuple(TopUpBonus(to_fen(b.at_least), to_fen(b.bonus)) for b in d.stored_value.top_up_bonus),
        points_cap_percent=d.checkout.points_cap_percent,
        membership_plans=tuple(MembershipPlan(
            p.code, p.name, to_fen(p.price), p.months, p.points_multiplier_bonus, p.free_shipping, tuple(p.benefits))
            for p in d.membership_plans),
        review_points=reviews.points,
        photo_review_points=reviews.points if reviews.photo_points is None else reviews.photo_points,
        referral_coupon=d.referrals.new_member_coupon, referrer_points=d.referrals.referrer_points,
        boosts=tuple(BoostRule(b.code, b.name, b.multiplier, b.starts if "starts" in b.model_fields_set else None,
                               b.ends, b.weekday, b.day_of_month, tuple(b.tiers), tuple(b.categories),
                               tuple(b.channels)) for b in d.boosts),
        activities=tuple(ActivityRule(a.code, a.name, a.points, a.growth, a.daily_cap) for a in d.activities),
        source=source,
    )


def _member_price(percent):
    """会员价 in percent of the list price (99 = 99折); 100 is the list price itself, kept as none."""
    return None if percent == 100 else percent


def _benefit(b: model.Benefit, ladder: list[str]) -> BenefitRule:
    tiers = b.tiers if b.only_listed else ladder[min(ladder.index(t) for t in b.tiers):]
    window = b.window
    early = b.early_access
    return BenefitRule(
        code=b.code, name=b.name, description=b.description, category=b.category, tiers=tuple(tiers),
        quota=b.quota.count, period=b.quota.per, starts=window.starts if window else None,
        ends=window.ends if window else None, early_days=early.days if early else 0,
        early_tiers=tuple(t for t in early.tiers if t in ladder) if early else (), birthday_month=b.birthday_month,
        coupon=b.gives.coupon, badge=_badge(b.gives.badge), entitlement=b.gives.entitlement, core=b.core)


def _badge(badge: model.Badge | None) -> Badge | None:
    return Badge(badge.code, badge.name) if badge is not None else None


def _reward(reward: model.Reward) -> Reward:
    return Reward(points=reward.points, growth_value=reward.growth, badge=_badge(reward.badge), coupon=reward.coupon)


def _task(t: model.Task) -> TaskRule:
    goal = t.goal
    window = Window("campaign", goal.starts, goal.ends) if goal.window == "campaign" else Window(goal.window)
    bonus = StreakBonus(t.streak_bonus.every, t.streak_bonus.points) if t.streak_bonus is not None else None
    return TaskRule(code=t.code, kind=t.kind, title=t.title, description=t.description,
                    goal=Goal(goal.metric, goal.target, window, goal.activity), reward=_reward(t.reward),
                    prerequisites=tuple(t.prerequisites), claim=t.claim, repeat=t.repeat, streak_bonus=bonus)


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
