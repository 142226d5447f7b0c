"""The tierup command as an operator uses it."""

import subprocess
import sys
from pathlib import Path


from helpers import row_counts
from tierup.auth import decode_token
from tierup.cli import main

ROOT = Path(__file__).resolve().parents[2]

BROKEN = """
code = "Shop One"
name = "Broken"
currency = "CNY"
time_zone = "Mars/Olympus"

[ladder]
validity_months = 0

[[ladder.tiers]]
code = "REGULAR"
name = "普通会员"
points_multiplier = "1"

[[ladder.tiers]]
code = "SILVER"
name = "银卡会员"
points_multiplier = "-2"
conditions = [{ metric = "vibes", at_least = "500" }, { metric = "spend_in_months", at_least = "10" }]
"""


def test_a_broken_program_file_lists_every_problem_and_loads_nothing(tmp_path, capsys, monkeypatch, database_url):
    monkeypatch.setenv("TIERUP_DATABASE_URL", database_url)
    path = tmp_path / "broken.toml"
    path.write_text(BROKEN, encoding="utf-8")
    assert main(["program", "load", str(path)]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"{path}: code: 'Shop One' does not match ^[a-z][a-z0-9_-]{{0,39}}$",
        f"{path}: time_zone: unknown time zone 'Mars/Olympus'",
        f"{path}: ladder.validity_months: must be between 1 and 120, got 0",
        f"{path}: ladder.tiers[1].conditions[0].metric: unknown metric 'vibes' (known: average_monthly_orders, "
        "cumulative_spend, growth_value, order_count, single_order_amount, spend_in_months)",
        f"{path}: ladder.tiers[1].conditions[1].months: spend_in_months needs a window in months",
        f"{path}: ladder.tiers[1].points_multiplier: must be at least 0 and at most 100, got -2",
        "6 problem(s); nothing was loaded",
    ]


async def test_loading_creates_then_versions_a_program(tmp_path, capsys, monkeypatch, database_url, db):
    monkeypatch.setenv("TIERUP_DATABASE_URL", database_url)
    source = ROOT / "fixtures" / "programs" / "nine-levels.toml"
    assert await _cli(["program", "load", str(source)]) == 0
    assert await _cli(["program", "load", str(source)]) == 0
    changed = tmp_path / "nine.toml"
    changed.write_text(source.read_text(encoding="utf-8").replace("welcome_points = 200", "welcome_points = 300"),
                       encoding="utf-8")
    assert await _cli(["program", "load", str(changed)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["program nine-levels created (version 1)", "program nine-levels unchanged (version 1)",
                   "program nine-levels updated (version 2)"]
    assert (await row_counts(db))["program_versions"] == 2


async def _cli(argv):
    import asyncio

    return await asyncio.to_thread(main, argv)


async def test_serve_offers_the_demo_members_header_only_where_there_is_one(settings, capsys):
    """An import prepares a database with a shop's own members and no demo member: a header for it would
    answer `viewer: null`. A database serve prepares itself gets the demo member and its header."""
    from tierup.cli import _prepare, _print_headers

    assert await _prepare(settings, demo_member=False) is False  # as `tierup import` prepares a database
    _print_headers(settings, "127.0.0.1", 8000, False)
    out = capsys.readouterr().out
    assert out.count("Bearer ") == 2 and "no demo member in this database" in out
    assert await _prepare(settings) is False  # the program was loaded: serve adds no member to a shop's data


async def test_serve_enrolls_the_demo_member_into_a_database_it_prepares(settings, capsys):
    from tierup.cli import _prepare, _print_headers

    assert await _prepare(settings) is True
    _print_headers(settings, "127.0.0.1", 8000, True)
    out = capsys.readouterr().out
    assert out.count("Bearer ") == 3 and "no demo member" not in out


def test_token_mints_what_the_server_accepts(capsys, monkeypatch):
    monkeypatch.setenv("TIERUP_JWT_SECRET", "a-secret-long-enough-for-hs256-signing")
    assert main(["token", "--role", "OPERATOR", "--program", "classic", "--sub", "ops", "--ttl", "60"]) == 0
    token = capsys.readouterr().out.strip()
    principal = decode_token("a-secret-long-enough-for-hs256-signing", token)
    assert (principal.sub, principal.program, principal.role.value) == ("ops", "classic", "OPERATOR")


def test_export_schema_writes_the_committed_schema(tmp_path):
    target = tmp_path / "schema.graphql"
    assert main(["export-schema", "--output", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == (ROOT / "schema.graphql").read_text(encoding="utf-8")


def test_the_console_script_is_installed():
    result = subprocess.run([str(Path(sys.executable).parent / "tierup"), "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for command in ("serve", "db", "program", "token", "export-schema", "evaluate-tiers"):
        assert command in result.stdout


async def test_an_export_names_the_tiers_when_given_an_unknown_one(program, tmp_path, capsys, monkeypatch,
                                                                   database_url):
    import asyncio

    monkeypatch.setenv("TIERUP_DATABASE_URL", database_url)
    out = str(tmp_path / "members.csv")
    assert await asyncio.to_thread(main, ["export", "members", "--tier", "silver", "--output", out]) == 2
    assert "--tier must be one of program classic's tiers: REGULAR, SILVER, GOLD, DIAMOND" in capsys.readouterr().err
    assert await asyncio.to_thread(main, ["export", "members", "--tier", "SILVER", "--output", out]) == 0
