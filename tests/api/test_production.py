"""Production: a JWT secret is required, GraphiQL and introspection are off, unexpected errors are masked."""

import httpx
import pytest

from tierup.app import create_app
from tierup.config import ConfigError, Settings
from tierup.auth import Role


def test_production_refuses_to_start_without_a_secret():
    with pytest.raises(ConfigError, match="TIERUP_JWT_SECRET is required"):
        Settings.from_env({"TIERUP_ENV": "production"})


def test_unknown_environment_is_refused():
    with pytest.raises(ConfigError, match="TIERUP_ENV"):
        Settings.from_env({"TIERUP_ENV": "staging"})


@pytest.mark.parametrize("days", ["0", "-3", "36501", "a month"])
def test_a_webhook_retention_that_is_no_number_of_days_is_refused(days):
    with pytest.raises(ConfigError, match="TIERUP_WEBHOOK_RETENTION_DAYS"):
        Settings.from_env({"TIERUP_WEBHOOK_RETENTION_DAYS": days})


def test_finished_webhook_deliveries_are_kept_30_days_unless_told():
    assert Settings.from_env({}).webhook_retention_days == 30
    assert Settings.from_env({"TIERUP_WEBHOOK_RETENTION_DAYS": "7"}).webhook_retention_days == 7


@pytest.mark.parametrize("value, on", [("1", True), ("on", True), ("Yes", True), ("0", False), ("off", False),
                                       ("", False)])
def test_a_flag_is_on_or_off(value, on):
    assert Settings.from_env({"TIERUP_WEBHOOK_PRIVATE_TARGETS": value}).webhook_private_targets is on


def test_a_flag_neither_on_nor_off_is_refused_rather_than_read_as_off():
    with pytest.raises(ConfigError, match="TIERUP_WEBHOOK_PRIVATE_TARGETS must be on or off"):
        Settings.from_env({"TIERUP_WEBHOOK_PRIVATE_TARGETS": "banana"})


@pytest.fixture
async def production(settings, db, clock, program, monkeypatch):
    from dataclasses import replace

    app = create_app(replace(settings, env="production"), db=db, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tierup.test") as client:
        yield client


async def test_graphiql_and_introspection_are_off(production):
    page = await production.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 404
    result = (await production.post("/graphql", json={"query": "{ __schema { types { name } } }"})).json()
    assert "introspection" in result["errors"][0]["message"].lower()


async def test_unexpected_errors_show_a_request_id_only(production, api, monkeypatch):
    from tierup.api import members

    async def broken(*args, **kwargs):
        raise RuntimeError("secret database detail")

    monkeypatch.setattr(members.member_service, "enroll_member", broken)
    token = api.token(Role.SERVICE, "shop")
    response = await production.post("/graphql", headers={"Authorization": f"Bearer {token}"}, json={
        "query": 'mutation { enrollMember(input: {externalId: "x"}) { duplicate } }'})
    error = response.json()["errors"][0]
    assert "secret" not in response.text and "Traceback" not in response.text
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert len(error["extensions"]["requestId"]) == 16


async def test_expected_errors_are_not_masked(production):
    result = (await production.post("/graphql", json={"query": "{ program { code } }"})).json()
    assert result["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_the_tester_clock_is_ignored_in_production(production, api):
    token = api.token(Role.SERVICE, "shop")
    result = (await production.post("/graphql", headers={"Authorization": f"Bearer {token}", "X-Tierup-Now": "bad"},
                                    json={"query": 'mutation { enrollMember(input: {externalId: "x"}) { duplicate } }'})).json()
    assert result == {"data": {"enrollMember": {"duplicate": False}}}
