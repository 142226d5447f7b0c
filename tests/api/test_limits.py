"""Limits checked before work starts, and a code on every error: what an attacker or a careless
client meets first."""

import base64
import json
import logging
import re
import time
from dataclasses import replace
from pathlib import Path

import httpx
import jwt
import pytest
from graphql import parse

from documents import ENROLL, RECORD_ORDER, VIEWER
from helpers import SECRET, enroll, row_counts
from tierup.api.limits import operation_cost
from tierup.api.schema import build_schema
from tierup.app import create_app
from tierup.auth import Role

ROOT = Path(__file__).resolve().parents[2]

CYCLE = "{ program { ladder { tiers { benefits { tiers { benefits { tiers { benefits { tiers { benefits { tiers " \
        "{ benefits { id } } } } } } } } } } } } }"


def cost(query: str, variables: dict | None = None) -> int:
    return operation_cost(build_schema()._schema, parse(query), None, variables or {})


def codes(result: dict) -> list[str]:
    return [error["extensions"]["code"] for error in result["errors"]]


# Cost ------------------------------------------------------------------------------------------

def test_cost_counts_objects_and_multiplies_nested_lists():
    assert cost("{ __typename }") == 0
    assert cost("{ viewer { externalId tier { name } } }") == 2
    # program, ladder, 10 tiers each holding 10 benefits
    assert cost("{ program { ladder { tiers { code benefits { code } } } } }") == 1 + 1 + 10 * (1 + 10)
    # a connection counts its page: 100 edges, each an edge, a node and its tier
    assert cost("{ members(first: 100) { totalCount edges { node { tier { code } } } } }") == 1 + 100 * 3
    assert cost("query($n: Int) { members(first: $n) { edges { node { id } } } }", {"n": 7}) == 1 + 7 * 2
    assert cost("{ members { edges { node { id } } } }") == 1 + 20 * 2  # the default page
    fragment = "query { viewer { ...T } } fragment T on Member { tier { benefits { code } } }"
    assert cost(fragment) == 1 + 1 + 10


async def test_a_cyclic_query_is_refused_before_it_runs(api, db):
    await enroll(api, "alice")
    result = await api.as_member("alice", CYCLE)
    assert result["data"] is None
    assert codes(result) == ["QUERY_TOO_COMPLEX"]
    error = result["errors"][0]
    assert error["extensions"]["cost"] > error["extensions"]["maximumCost"] == 5000
    assert f"{error['extensions']['cost']:,}" in error["message"]


def _documents() -> list[str]:
    """Every operation a client is shown: the README's, the bench dashboard's and the tests'."""
    import documents

    found = re.findall(r"```graphql\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    bench = (ROOT / "bench" / "api_bench.py").read_text()
    found += re.findall(r'DASHBOARD = """(.*?)"""', bench, re.S)
    found += [value for name, value in vars(documents).items() if name.isupper() and "{" in value
              and name != "MEMBER_FIELDS"]
    operations = []
    for block in found:  # README blocks may hold several operations
        operations += [op for op in re.split(r"\n(?=mutation|query|\{)", block.strip()) if op.strip()]
    return operations


@pytest.mark.parametrize("document", _documents())
def test_the_operations_clients_are_shown_stay_within_the_budget(document):
    assert cost(document, {"first": 100}) <= 5000


# Suggestions -----------------------------------------------------------------------------------

TYPOS = [
    "{ membr { id } }",                                              # a field
    "{ members(frist: 1) { totalCount } }",                          # an argument
    "mutation($i: EnrollMemberInpt!) { enrollMember(input: $i) { duplicate } }",  # an input type
    "{ members(lifecycleStage: NWE) { totalCount } }",                # an enum value
]


@pytest.fixture
async def production(settings, db, clock, program):
    app = create_app(replace(settings, env="production"), db=db, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tierup.test") as client:
        yield client


@pytest.mark.parametrize("query", TYPOS)
async def test_production_suggests_no_names(production, query):
    result = (await production.post("/graphql", json={"query": query})).json()
    assert result["errors"], result
    assert not any("Did you mean" in e["message"] for e in result["errors"]), result
    assert set(codes(result)) == {"GRAPHQL_VALIDATION_FAILED"}


async def test_production_suggests_no_enum_values_in_variables(production, api):
    token = api.token(Role.OPERATOR, "ops")
    result = (await production.post("/graphql", headers={"Authorization": f"Bearer {token}"}, json={
        "query": "query($s: LifecycleStage) { members(lifecycleStage: $s) { totalCount } }",
        "variables": {"s": "NWE"}})).json()
    assert codes(result) == ["BAD_USER_INPUT"]
    assert "Did you mean" not in result["errors"][0]["message"]


async def test_development_keeps_suggestions(api):
    result = await api.as_operator(TYPOS[0])
    assert "Did you mean 'member' or 'members'?" in result["errors"][0]["message"]


# Codes -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("query, variables, code", [
    ("{ viewer { id ", None, "GRAPHQL_PARSE_FAILED"),
    ("{ viewer { nothing } }", None, "GRAPHQL_VALIDATION_FAILED"),
    ("query($at: DateTime!) { members(first: 1) { totalCount } }", None, "GRAPHQL_VALIDATION_FAILED"),
    ("mutation($at: DateTime!) { evaluateTiers(input: {asOf: $at}) { evaluated } }", {"at": "yesterday"},
     "BAD_USER_INPUT"),
    ("mutation($i: EnrollMemberInput!) { enrollMember(input: $i) { duplicate } }",
     {"i": {"externalId": "x", "birthday": "1990-02-31"}}, "BAD_USER_INPUT"),
    ('{ node(id: "") { id } }', None, "BAD_USER_INPUT"),
    ('{ node(id: "8074") { id } }', None, "BAD_USER_INPUT"),
    ('{ node(id: "!!not base64!!") { id } }', None, "BAD_USER_INPUT"),
    ("query($id: ID!) { node(id: $id) { id } }", {"id": "8074"}, "BAD_USER_INPUT"),
])
async def test_every_error_has_a_code(api, caplog, query, variables, code):
    with caplog.at_level(logging.ERROR):
        result = await api.as_operator(query, variables)
    assert codes(result) == [code], result
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "a client's mistake logged as an error"


# Strings the databases cannot store -------------------------------------------------------------

@pytest.mark.parametrize("escaped, in_the_query", [("\\u0000", "BAD_USER_INPUT"),
                                                   ("\\ud800", "GRAPHQL_PARSE_FAILED")])
async def test_nul_and_lone_surrogates_are_refused_on_both_databases(api, db, escaped, in_the_query):
    before = await row_counts(db)
    token = api.token(Role.SERVICE, "shop")
    # As JSON escapes, the way a client's encoder sends them.
    body = '{"query": %s, "variables": {"input": {"externalId": "a%sb"}}}' % (json.dumps(ENROLL), escaped)
    sent = await api.client.post("/graphql", content=body, headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    assert codes(sent.json()) == ["BAD_USER_INPUT"]
    literal = await api.as_service('mutation { enrollMember(input: {externalId: "a%sb"}) { duplicate } }' % escaped)
    assert codes(literal) == [in_the_query]
    assert await row_counts(db) == before


# Request bodies -------------------------------------------------------------------------------

@pytest.mark.parametrize("body", ["null", "123", "[]", '"query"'])
async def test_a_body_that_is_not_a_json_object_is_a_400(api, body):
    response = await api.client.post("/graphql", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_a_body_above_the_limit_is_a_413(api, db):
    await enroll(api, "alice")
    before = await row_counts(db)
    padding = "x" * (1024 * 1024)
    token = api.token(Role.SERVICE, "shop")
    response = await api.client.post("/graphql", headers={"Authorization": f"Bearer {token}"}, json={
        "query": RECORD_ORDER, "variables": {"input": {"externalId": padding, "memberExternalId": "alice",
                                                        "amount": "10.00", "paidAt": "2026-01-05T10:00:00+08:00"}}})
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    assert await row_counts(db) == before


async def test_a_streamed_body_above_the_limit_is_a_413(settings, db, clock, program):
    app = create_app(replace(settings, max_body_bytes=100), db=db, clock=clock)

    async def chunks():  # no Content-Length: the size is only known as the body arrives
        for _ in range(10):
            yield b"{" + b" " * 20

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tierup.test") as client:
        response = await client.post("/graphql", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413


# Tokens ---------------------------------------------------------------------------------------

def _token(**claims) -> str:
    now = int(time.time())
    base = {"sub": "alice", "program": "classic", "role": "MEMBER", "iat": now, "exp": now + 3600}
    return jwt.encode({**base, **claims}, SECRET, algorithm="HS256")


@pytest.mark.parametrize("claims, message", [
    ({"exp": str(int(time.time()) + 3600)}, "'exp' claim must be a number"),
    ({"exp": int(time.time()) + 31 * 86400}, "longer than the 30 days allowed for MEMBER tokens"),
    ({"nbf": int(time.time()) + 600}, "not yet valid"),
    ({"iat": int(time.time()) + 600}, "not yet valid"),
])
async def test_odd_tokens_are_refused(api, claims, message):
    await enroll(api, "alice")
    result = await api.post(VIEWER, token=_token(**claims))
    assert codes(result) == ["UNAUTHENTICATED"]
    assert message in result["errors"][0]["message"]


async def test_staff_tokens_may_live_longer(api):
    token = _token(role="SERVICE", sub="shop", exp=int(time.time()) + 90 * 86400)
    result = await api.post("{ program { code } }", token=token)
    assert result == {"data": {"program": {"code": "classic"}}}


# Deadline -------------------------------------------------------------------------------------

async def test_an_operation_past_the_deadline_stops_with_a_code(settings, db, clock, program, api):
    await enroll(api, "alice")
    before = await row_counts(db)
    app = create_app(replace(settings, execution_deadline=1e-9), db=db, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tierup.test") as client:
        token = api.token(Role.SERVICE, "shop")
        response = await client.post("/graphql", headers={"Authorization": f"Bearer {token}"}, json={
            "query": RECORD_ORDER, "variables": {"input": {
                "externalId": "A-1", "memberExternalId": "alice", "amount": "10.00",
                "paidAt": "2026-01-05T10:00:00+08:00"}}})
    result = response.json()
    assert result["data"] is None and codes(result) == ["DEADLINE_EXCEEDED"]
    assert await row_counts(db) == before


# Odd ranges, cursors and node kinds --------------------------------------------------------------

async def test_a_subscription_over_http_is_a_400(api):
    await enroll(api, "alice")
    token = api.token(Role.MEMBER, "alice")
    response = await api.client.post("/graphql", headers={"Authorization": f"Bearer {token}"},
                                     json={"query": "subscription { memberEvents { kind } }"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


@pytest.mark.parametrize("raw", ["Node:1", "Money:1", "cursor:1"])
async def test_only_node_types_resolve_as_nodes(api, raw):
    result = await api.as_operator("query($id: ID!) { node(id: $id) { id } }",
                                   {"id": base64.b64encode(raw.encode()).decode()})
    assert codes(result) == ["BAD_USER_INPUT"]


@pytest.mark.parametrize("value", ["2147483648", "9" * 30, "１"])
async def test_a_cursor_beyond_any_row_is_refused(api, value):
    cursor = base64.urlsafe_b64encode(f"cursor:{value}".encode()).decode()
    result = await api.as_operator("query($after: String) { members(first: 5, after: $after) { totalCount } }",
                                   {"after": cursor})
    assert codes(result) == ["BAD_USER_INPUT"]


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31"])
async def test_kpi_and_simulation_ranges_stay_in_reportable_years(api, day):
    kpis = await api.as_operator('query($d: Date!) { program { kpis(from: $d, to: "2026-06-30") { members } } }',
                                 {"d": day})
    assert codes(kpis) == ["BAD_USER_INPUT"]
    simulation = await api.as_operator(
        'mutation($d: Date!) { simulateProgram(input: {definition: "x", from: $d, to: "2026-06-30"}) { '
        'userErrors { code } } }', {"d": day})
    assert codes(simulation) == ["BAD_USER_INPUT"]


async def test_a_customer_count_of_year_one_is_invalid(api, db):
    before = await row_counts(db)
    result = await api.as_service('mutation { reportCustomerCount(input: {externalId: "c-1", customers: 10, '
                                  'asOf: "0001-01-01T00:00:00+23:59"}) { userErrors { field code } } }')
    assert result["data"]["reportCustomerCount"]["userErrors"] == [{"field": ["input", "asOf"], "code": "INVALID"}]
    assert await row_counts(db) == before


async def test_a_phone_number_with_a_trailing_newline_is_invalid(api, db):
    before = await row_counts(db)
    result = await api.as_service(ENROLL, {"input": {"externalId": "alice", "phone": "13800138000\n"}})
    assert result["data"]["enrollMember"]["userErrors"][0]["field"] == ["input", "phone"]
    assert await row_counts(db) == before


@pytest.mark.parametrize("amount", ["999999999999999999999999999999", "1000000.01"])
async def test_a_quote_above_the_order_ceiling_is_refused(api, amount):
    await enroll(api, "alice")
    result = await api.as_member("alice", "query($a: Decimal!) { viewer { couponQuotes(amount: $a) { "
                                          "payable { amount } } } }", {"a": amount})
    assert codes(result) == ["BAD_USER_INPUT"]


async def test_several_operations_need_an_operation_name(api):
    document = "query A { __typename } query B { program { code } }"
    assert codes(await api.as_operator(document)) == ["BAD_USER_INPUT"]
    named = (await api.client.post("/graphql", json={"query": document, "operationName": "A"})).json()
    assert named == {"data": {"__typename": "Query"}}
