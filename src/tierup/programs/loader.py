"""Turn a program document (TOML, or the same structure as JSON) into a ProgramDefinition.

Validation collects every problem before failing, each naming the key path and what is wrong,
so an operator fixes a broken file in one pass.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..domain.money import MoneyError, to_fen
from ..domain.program import Condition, ProgramDefinition, StageRule, TierRule
from ..domain.tiers import METRICS

PROGRAM_CODE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
RULE_CODE = re.compile(r"^[A-Z][A-Z0-9_]{0,39}$")
MAX_TIERS = 50


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
        return value


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


TOP_KEYS = {"code", "name", "currency", "currency_symbol", "time_zone", "point_value", "enrolment", "orders", "ladder",
            "description"}


def parse_program(doc: Any, source: str = "program") -> ProgramDefinition:
    """Validate a program document and build its definition, or raise ProgramError with every problem."""
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
    r.known_keys(enrolment, "enrolment", {"welcome_points"})
    welcome = r.integer(enrolment, "enrolment", "welcome_points", default=0, low=0, high=1_000_000)

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
    tiers = _tiers(r, ladder, {s.code for s in stages}, symbol or "¥")

    if r.problems:
        raise ProgramError(r.problems, source)
    return ProgramDefinition(
        code=code, name=name, currency=currency, currency_symbol=symbol, time_zone=time_zone,
        tiers=tuple(tiers), stages=tuple(stages), tier_validity_months=validity_months,
        welcome_points=welcome, max_order_fen=max_order_fen, point_value=point_value, source=doc,
    )


def _fen(r: _Reader, path: str, amount: Decimal | None) -> int:
    if amount is None:
        return 0
    try:
        return to_fen(amount)
    except MoneyError as exc:
        r.fail(path, str(exc))
        return 0


def _stages(r: _Reader, ladder: dict) -> list[StageRule]:
    stages: list[StageRule] = []
    for i, raw in enumerate(r.array(ladder, "ladder", "stages")):
        path = _join("ladder.stages", i)
        raw = r.table(raw, path)
        r.known_keys(raw, path, {"code", "name", "description"})
        code = r.text(raw, path, "code", pattern=RULE_CODE)
        if code and code in {s.code for s in stages}:
            r.fail(_join(path, "code"), f"duplicate stage code {code!r}")
        stages.append(StageRule(code or "", r.text(raw, path, "name") or "",
                                r.text(raw, path, "description", required=False, default="", max_length=2000)))
    return stages


def _tiers(r: _Reader, ladder: dict, stage_codes: set[str], symbol: str) -> list[TierRule]:
    raw_tiers = r.array(ladder, "ladder", "tiers")
    if not raw_tiers:
        r.fail("ladder.tiers", "at least one tier is required")
    if len(raw_tiers) > MAX_TIERS:
        r.fail("ladder.tiers", f"at most {MAX_TIERS} tiers")
    tiers: list[TierRule] = []
    for rank, raw in enumerate(raw_tiers):
        path = _join("ladder.tiers", rank)
        raw = r.table(raw, path)
        r.known_keys(raw, path, {"code", "name", "points_multiplier", "stage", "conditions", "description"})
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


def parse_program_text(text: str, source: str = "program") -> ProgramDefinition:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
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
