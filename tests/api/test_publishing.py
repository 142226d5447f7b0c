"""Operators publish program versions through GraphQL; reports record the version they ran under."""

from pathlib import Path

from sqlalchemy import select

from helpers import enroll, row_counts
from tierup.store.models import Report

PUBLISH = """mutation($input: PublishProgramInput!) { publishProgram(input: $input) {
  changed version { version current publishedBy } userErrors { field message code } } }"""
VERSIONS = "{ program { version welcomePoints versions { version current publishedBy } } }"
CLASSIC = (Path(__file__).resolve().parents[2] / "fixtures" / "programs" / "classic.toml").read_text(encoding="utf-8")


async def test_publishing_makes_a_new_version_that_reports_follow(api, db):
    await enroll(api, "alice")
    richer = CLASSIC.replace("welcome_points = 100", "welcome_points = 150")
    result = (await api.as_operator(PUBLISH, {"input": {"definition": richer}}))["data"]["publishProgram"]
    assert result == {"changed": True, "version": {"version": 2, "current": True, "publishedBy": "ops"},
                      "userErrors": []}
    same = (await api.as_operator(PUBLISH, {"input": {"definition": richer}}))["data"]["publishProgram"]
    assert (same["changed"], same["version"]["version"]) == (False, 2)
    program = (await api.as_operator(VERSIONS))["data"]["program"]
    assert (program["version"], program["welcomePoints"]) == (2, 150)
    assert program["versions"] == [{"version": 2, "current": True, "publishedBy": "ops"},
                                   {"version": 1, "current": False, "publishedBy": "test"}]
    bob = await enroll(api, "bob")
    assert bob["member"]["points"]["balance"] == 150
    async with db.read() as session:
        versions = dict((await session.execute(select(Report.external_id, Report.program_version))).all())
    assert versions == {"alice": 1, "bob": 2}


async def test_every_problem_is_a_user_error_naming_its_path(api, db):
    broken = CLASSIC.replace('points_multiplier = "2"', 'points_multiplier = "-2"').replace(
        'metric = "orders", target = 1 }', 'metric = "vibes", target = 1 }')
    before = await row_counts(db)
    errors = (await api.as_operator(PUBLISH, {"input": {"definition": broken}}))["data"]["publishProgram"]["userErrors"]
    assert [(e["field"], e["code"]) for e in errors] == [
        (["input", "definition", "ladder", "tiers", "1", "points_multiplier"], "INVALID"),
        (["input", "definition", "tasks", "0", "goal", "metric"], "INVALID"),
    ]
    assert await row_counts(db) == before


async def test_a_definition_for_another_program_is_refused(api):
    other = CLASSIC.replace('code = "classic"', 'code = "other"')
    errors = (await api.as_operator(PUBLISH, {"input": {"definition": other}}))["data"]["publishProgram"]["userErrors"]
    assert [e["code"] for e in errors] == ["NOT_ELIGIBLE"]


async def test_json_definitions_are_accepted_and_only_operators_publish(api):
    result = (await api.as_operator(PUBLISH, {"input": {"definition": "{", "format": "JSON"}}))["data"]["publishProgram"]
    assert result["userErrors"][0]["message"].startswith("not valid JSON")
    denied = await api.as_service(PUBLISH, {"input": {"definition": CLASSIC}})
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
