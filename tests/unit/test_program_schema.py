"""Program files for editors: one model gives the loader's checks and the JSON Schema editors use."""

import json
import tomllib
from datetime import date, datetime, time
from pathlib import Path

import jsonschema
import pytest

from tierup.cli import main
from tierup.programs import ProgramError, parse_program_text
from tierup.programs.document import json_schema

PROGRAMS = sorted((Path(__file__).resolve().parents[2] / "fixtures" / "programs").glob("*.toml"))
CLASSIC = next(p for p in PROGRAMS if p.name == "classic.toml").read_text(encoding="utf-8")
SCHEMA = json_schema()
VALIDATOR = jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


def as_an_editor_sees_it(value):
    """A TOML document as JSON Schema checkers see it: dates and times as ISO text (as in JSON)."""
    if isinstance(value, dict):
        return {key: as_an_editor_sees_it(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_an_editor_sees_it(item) for item in value]
    if isinstance(value, (date, datetime, time)):
        return value.isoformat()
    return value


def schema_errors(text: str) -> list[tuple[str, str]]:
    """(key path, message) of every schema error, paths written as the loader writes them."""
    found = []
    for error in VALIDATOR.iter_errors(as_an_editor_sees_it(tomllib.loads(text))):
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
        found.append((path, error.message))
    return found


def loader_paths(text: str) -> list[str]:
    with pytest.raises(ProgramError) as refused:
        parse_program_text(text, "program.toml")
    return [p.path for p in refused.value.problems]


def test_the_schema_is_a_valid_draft_7_schema_titled_for_editors():
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert SCHEMA["title"] == "tierup program"
    assert set(SCHEMA["required"]) == {"code", "name", "currency", "time_zone", "ladder"}
    assert SCHEMA["additionalProperties"] is False


def test_every_key_has_a_description_for_hover_text():
    tables = [SCHEMA, *SCHEMA["$defs"].values()]
    undescribed = [f"{table['title']}.{key}" for table in tables for key, prop in table.get("properties", {}).items()
                   if not prop.get("description") and "$ref" not in prop]
    assert undescribed == []
    assert all(table.get("description") for table in SCHEMA["$defs"].values())


@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.name)
def test_the_schema_accepts_the_bundled_programs(program):
    assert schema_errors(program.read_text(encoding="utf-8")) == []


# Each broken variant of classic: the schema (what an editor underlines) and the loader refuse it at one path.
BROKEN = [
    ("unknown key", ("[enrolment]\nwelcome_points = 100", "[enrolment]\nwelcome_points = 100\nwelcom_coupon = 'X'"),
     "enrolment"),
    ("program code pattern", ('code = "classic"', 'code = "Classic Program"'), "code"),
    ("tier code pattern", ('code = "SILVER"', 'code = "silver"'), "ladder.tiers[1].code"),
    ("whole number as text", ("welcome_points = 100", 'welcome_points = "100"'), "enrolment.welcome_points"),
    ("out of range", ("points_cap_percent = 50", "points_cap_percent = 150"), "checkout.points_cap_percent"),
    ("unknown choice", ('kind = "PERCENT_OFF"', 'kind = "PERCENT"'), "coupons[1].kind"),
    ("unknown metric", ('metric = "cumulative_spend", at_least = "500"', 'metric = "spend", at_least = "500"'),
     "ladder.tiers[1].conditions[0].metric"),
    ("window the metric needs", ('{ metric = "spend_in_months", months = 12, at_least = "1000" }',
                                 '{ metric = "spend_in_months", at_least = "1000" }'),
     "ladder.tiers[2].conditions[1]"),
    ("money as words", ('value = "10"', 'value = "ten"'), "coupons[0].value"),
    ("money finer than a fen", ('max_amount = "1000000"', 'max_amount = "1000000.001"'), "orders.max_amount"),
    ("not a date", ("valid_from = 2026-05-29", 'valid_from = "next week"'), "coupons[4].valid_from"),
    ("true or false", ("free_shipping = true", 'free_shipping = "yes"'), "membership_plans[0].free_shipping"),
    ("unknown channel", ('multiplier = "2"\nday_of_month = 18', 'multiplier = "2"\nday_of_month = 18\nchannels = ["SHOP"]'),
     "boosts[0].channels"),
    ("required key missing", ('name = "分享"\npoints = 5', "points = 5"), "activities[0]"),
]


@pytest.mark.parametrize("change, path", [(change, path) for _, change, path in BROKEN], ids=[b[0] for b in BROKEN])
def test_the_schema_and_the_loader_refuse_a_broken_program_at_the_same_key(change, path):
    old, new = change
    assert old in CLASSIC
    broken = CLASSIC.replace(old, new, 1)
    editor = [where for where, _ in schema_errors(broken)]
    assert editor and all(where.startswith(path) for where in editor), schema_errors(broken)
    assert any(where.startswith(path) for where in loader_paths(broken))


def test_a_cross_reference_is_the_loaders_alone():
    """The schema checks each table; names that point into another table are checked by the loader."""
    broken = CLASSIC.replace('welcome_coupon = "WELCOME_10_OFF_50"', 'welcome_coupon = "NO_SUCH_COUPON"')
    assert schema_errors(broken) == []
    assert loader_paths(broken) == ["enrolment.welcome_coupon"]


def test_program_schema_prints_the_schema(capsys, tmp_path):
    assert main(["program", "schema"]) == 0
    assert json.loads(capsys.readouterr().out) == SCHEMA
    target = tmp_path / "program.schema.json"
    assert main(["program", "schema", "--output", str(target)]) == 0
    assert json.loads(target.read_text(encoding="utf-8")) == SCHEMA


def test_validating_good_programs_says_ok(capsys):
    assert main(["program", "validate", *map(str, PROGRAMS)]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines() == [f"{p}: ok (program {p.stem}, {len(tomllib.loads(p.read_text('utf-8'))['ladder']['tiers'])} tiers)"
                                    for p in PROGRAMS]
    assert out.err == ""


def test_validating_a_broken_program_lists_every_problem_with_its_key_path(capsys, tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text(CLASSIC.replace('code = "classic"', 'code = "Classic"')
                    .replace("points_cap_percent = 50", "points_cap_percent = 150")
                    .replace('welcome_coupon = "WELCOME_10_OFF_50"', 'welcome_coupon = "NO_SUCH_COUPON"'),
                    encoding="utf-8")
    assert main(["program", "validate", str(path)]) == 1
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.splitlines() == [
        f"{path}: code: 'Classic' does not match ^[a-z][a-z0-9_-]{{0,39}}$",
        f"{path}: checkout.points_cap_percent: must be between 0 and 100, got 150",
        f"{path}: enrolment.welcome_coupon: unknown coupon template 'NO_SUCH_COUPON'",
        f"{path}: 3 problem(s)",
    ]


def test_validating_needs_no_settings(capsys, monkeypatch, tmp_path):
    """An operator's machine in production mode without a JWT secret can still check a file."""
    monkeypatch.setenv("TIERUP_ENV", "production")
    monkeypatch.delenv("TIERUP_JWT_SECRET", raising=False)
    assert main(["program", "validate", str(PROGRAMS[0])]) == 0
    assert main(["program", "validate", str(tmp_path / "missing.toml")]) == 1
    assert "cannot read" in capsys.readouterr().err
