"""GraphQL over HTTP: a client asking for application/graphql-response+json learns from the status
whether its request was refused before execution (400, no `data`) or executed (200); clients asking
for application/json keep 200 with `data` for every GraphQL answer. The e2e audit runs the whole
graphql-http suite; these are the checks it makes, kept here so they run offline too."""

import pytest
from graphql import GraphQLError
from strawberry.types import ExecutionResult

from tierup.api.graphql_over_http import GRAPHQL_RESPONSE, JSON, answer_media_type, is_request_error

WANTS_STATUS = {"Accept": GRAPHQL_RESPONSE}


async def post(api, body: dict, headers: dict | None = None):
    return await api.client.post("/graphql", json=body, headers=headers or {})


async def test_an_executed_operation_answers_200_in_the_media_type_asked_for(api):
    answered = await post(api, {"query": "{ __typename }"}, WANTS_STATUS)
    assert answered.status_code == 200 and answered.headers["content-type"] == GRAPHQL_RESPONSE
    assert answered.json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize("body, code", [
    ({"query": "{"}, "GRAPHQL_PARSE_FAILED"),
    ({"query": "{ noSuchField }"}, "GRAPHQL_VALIDATION_FAILED"),
    ({"query": "query Coerce($id: ID!) { __typename }", "variables": {"id": None}}, None),
])
async def test_a_request_refused_before_execution_answers_400_without_data(api, body, code):
    answered = await post(api, body, WANTS_STATUS)
    assert answered.status_code == 400 and answered.headers["content-type"] == GRAPHQL_RESPONSE
    result = answered.json()
    assert "data" not in result and result["errors"]
    if code:
        assert result["errors"][0]["extensions"]["code"] == code


async def test_field_errors_still_answer_200_with_data(api):
    answered = await post(api, {"query": "{ __typename program { code } }"}, WANTS_STATUS)  # no token
    assert answered.status_code == 200
    result = answered.json()
    assert "data" in result and result["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_body_that_is_no_json_answers_400_in_the_media_type_asked_for(api):
    answered = await api.client.post("/graphql", content=b'{ "not a JSON',
                                     headers={"Content-Type": "application/json", **WANTS_STATUS})
    assert answered.status_code == 400 and answered.headers["content-type"] == GRAPHQL_RESPONSE


@pytest.mark.parametrize("accept", [None, "application/json", "*/*"])
async def test_other_clients_keep_200_with_data_in_application_json(api, accept):
    answered = await post(api, {"query": "{"}, {"Accept": accept} if accept else {})
    assert answered.status_code == 200 and answered.headers["content-type"] == JSON
    assert answered.json()["data"] is None


@pytest.mark.parametrize("accept, chosen", [
    (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
    (f"{GRAPHQL_RESPONSE}, application/json;q=0.9", GRAPHQL_RESPONSE),
    (f"application/json, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
    (f"application/json, {GRAPHQL_RESPONSE};q=0.5", JSON),
    (f"{GRAPHQL_RESPONSE};q=0", JSON),
    (f"{GRAPHQL_RESPONSE};charset=utf-8", GRAPHQL_RESPONSE),
    (f"{GRAPHQL_RESPONSE};q=nonsense, application/json", JSON),
    ("*/*", JSON),
    (None, JSON),
])
def test_the_media_type_follows_the_accept_header(accept, chosen):
    assert answer_media_type(accept) == chosen


def test_the_servers_own_failures_are_no_request_errors():
    deadline = GraphQLError("The operation ran past its deadline", extensions={"code": "DEADLINE_EXCEEDED"})
    assert not is_request_error(ExecutionResult(data=None, errors=[deadline]), ["DEADLINE_EXCEEDED"])
    in_a_field = GraphQLError("sign in", path=["viewer"])
    assert not is_request_error(ExecutionResult(data=None, errors=[in_a_field]), ["UNAUTHENTICATED"])
