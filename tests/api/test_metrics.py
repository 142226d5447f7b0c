"""Metrics and logs an operator reads: /metrics in Prometheus text (request latency by operation,
errors by code, SQL statements, jobs, open sockets), closed in production without its token, and
one log line per operation carrying the request id the client and the masked error see."""

import json
import logging
from dataclasses import replace

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tierup.api.operations import OTHER, OperationNames
from tierup.app import create_app
from tierup.auth import Role
from tierup.config import ConfigError, Settings
from tierup.observability import JsonFormatter, log_config
from tierup.services.jobs import run_jobs

PROGRAM_CODE = "query ProgramCode { program { code } }"
METRICS_TOKEN = "scrape-me-0123456789"


async def scrape(client: httpx.AsyncClient, **headers) -> dict[tuple, float]:
    """Every sample of /metrics, parsed by prometheus_client, as {(name, labels…): value}."""
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    return {(sample.name, *sorted(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def requests(operation: str, type: str) -> tuple:
    return ("tierup_graphql_request_duration_seconds_count", ("operation", operation), ("type", type))


def errors(code: str) -> tuple:
    return ("tierup_graphql_errors_total", ("code", code))


def grew(before: dict, after: dict, key: tuple) -> float:
    return after.get(key, 0) - before.get(key, 0)


async def test_an_operation_shows_in_the_latency_histogram_with_its_statements(api):
    before = await scrape(api.client)
    assert (await api.as_operator(PROGRAM_CODE)) == {"data": {"program": {"code": "classic"}}}
    after = await scrape(api.client)
    assert grew(before, after, requests("ProgramCode", "query")) == 1
    assert grew(before, after, ("tierup_sql_statements_total",)) >= 1
    buckets = [key for key in after if key[0] == "tierup_graphql_request_duration_seconds_bucket"
               and ("operation", "ProgramCode") in key]
    assert len(buckets) > 10  # a histogram, not a counter


async def test_the_statement_count_reads_as_an_integer_as_the_bench_reads_it(api):
    await api.as_operator(PROGRAM_CODE)
    text = (await api.client.get("/metrics")).text
    # bench/api_bench.py: the line starting with the name, its second field, as an int
    assert int(next(line.split()[1] for line in text.splitlines() if line.startswith("tierup_sql_statements_total")))


async def test_errors_are_counted_by_code_and_broken_documents_share_one_label(api):
    before = await scrape(api.client)
    await api.post(PROGRAM_CODE)  # no token
    await api.post("query Broken { program {")
    after = await scrape(api.client)
    assert grew(before, after, errors("UNAUTHENTICATED")) == 1
    assert grew(before, after, errors("GRAPHQL_PARSE_FAILED")) == 1
    assert grew(before, after, requests(OTHER, "unknown")) == 1


async def test_an_http_refusal_counts_as_a_request_with_its_code(api):
    before = await scrape(api.client)
    response = await api.client.post("/graphql", content=b"{ not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    after = await scrape(api.client)
    assert grew(before, after, errors("BAD_REQUEST")) == 1
    assert grew(before, after, requests(OTHER, "unknown")) == 1


def test_operation_names_beyond_the_limit_and_unnamed_ones_share_a_label():
    names = OperationNames(limit=2)
    assert [names.label(n) for n in ("Home", "Ledger", "Home", "Spam1", None, "Ledger")] == [
        "Home", "Ledger", "Home", OTHER, OTHER, "Ledger"]


async def test_the_server_keeps_the_first_names_it_sees(app, api):
    app.state.services.operation_names = OperationNames(limit=1)
    before = await scrape(api.client)
    await api.as_operator(PROGRAM_CODE)
    await api.as_operator("query ProgramAgain { program { code } }")
    after = await scrape(api.client)
    assert grew(before, after, requests("ProgramCode", "query")) == 1
    assert grew(before, after, requests(OTHER, "query")) == 1
    assert requests("ProgramAgain", "query") not in after


async def test_scheduled_jobs_are_timed_and_failures_counted(settings, db, program, clock, monkeypatch):
    from tierup.services import jobs

    def runs(job: str) -> tuple:
        return ("tierup_job_duration_seconds_count", ("job", job))

    app = create_app(settings, db=db, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        before = await scrape(client)
        await run_jobs(db, as_of=clock(), deliveries_kept_days=30, private_targets=True)

        async def broken(*args, **kwargs):
            raise RuntimeError("the database went away")

        monkeypatch.setattr(jobs, "refresh_rfm", broken)
        with pytest.raises(RuntimeError):
            await run_jobs(db, as_of=clock(), deliveries_kept_days=30, private_targets=True)
        after = await scrape(client)
    assert grew(before, after, runs("expire-points")) == 2
    assert grew(before, after, runs("evaluate-tiers")) == 2
    assert grew(before, after, runs("refresh-rfm")) == 2
    assert grew(before, after, ("tierup_job_failures_total", ("job", "refresh-rfm"))) == 1


@pytest.fixture
async def production(settings, db, clock, program):
    def client(token: str | None) -> httpx.AsyncClient:
        app = create_app(replace(settings, env="production", metrics_token=token), db=db, clock=clock)
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tierup.test")

    return client


async def test_production_serves_metrics_only_to_the_bearer_of_the_token(production):
    async with production(METRICS_TOKEN) as client:
        missing = await client.get("/metrics")
        assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
        assert (await client.get("/metrics", headers={"Authorization": "Bearer guess"})).status_code == 403
        served = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert served.status_code == 200 and "tierup_sql_statements_total" in served.text


async def test_production_without_a_token_keeps_metrics_closed(production):
    async with production(None) as client:
        refused = await client.get("/metrics", headers={"Authorization": "Bearer anything"})
    assert refused.status_code == 403 and "TIERUP_METRICS_TOKEN" in refused.text


async def test_a_token_protects_metrics_outside_production_too(settings, db, clock, program):
    app = create_app(replace(settings, metrics_token=METRICS_TOKEN), db=db, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})).status_code == 200


def operation_lines(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "tierup.operations"]


async def test_each_operation_logs_one_line_with_its_request_id(api, caplog):
    caplog.set_level(logging.INFO, logger="tierup.operations")
    answered = await api.client.post("/graphql", json={"query": PROGRAM_CODE})  # no token: an error
    [line] = operation_lines(caplog)
    assert line.request_id == answered.headers["x-request-id"] and len(line.request_id) == 16
    assert (line.operation, line.operation_type, line.error_codes) == ("ProgramCode", "query", ["UNAUTHENTICATED"])
    assert line.duration_ms >= 0
    assert line.getMessage().startswith(f"query ProgramCode {line.duration_ms:.1f} ms request_id={line.request_id}")


async def test_a_request_id_from_a_proxy_is_kept(api, caplog):
    caplog.set_level(logging.INFO, logger="tierup.operations")
    answered = await api.client.post("/graphql", json={"query": "{ __typename }"}, headers={"X-Request-Id": "lb-42.a"})
    assert answered.headers["x-request-id"] == "lb-42.a"
    [line] = operation_lines(caplog)
    assert (line.request_id, line.operation, line.error_codes) == ("lb-42.a", None, [])


async def test_the_graphiql_page_is_no_operation(api, caplog):
    caplog.set_level(logging.INFO, logger="tierup.operations")
    await api.client.get("/graphql", headers={"Accept": "text/html"})
    assert operation_lines(caplog) == []


async def test_a_masked_error_quotes_the_request_id_of_the_log_line(settings, db, clock, program, api, caplog,
                                                                    monkeypatch):
    from tierup.api import members

    async def broken(*args, **kwargs):
        raise RuntimeError("secret database detail")

    monkeypatch.setattr(members.member_service, "enroll_member", broken)
    caplog.set_level(logging.INFO, logger="tierup.operations")
    app = create_app(replace(settings, env="production"), db=db, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        answered = await client.post("/graphql", headers={"Authorization": f"Bearer {api.token(Role.SERVICE, 'shop')}"},
                                     json={"query": 'mutation { enrollMember(input: {externalId: "x"}) { duplicate } }'})
    [error] = answered.json()["errors"]
    [line] = operation_lines(caplog)
    assert error["extensions"]["requestId"] == answered.headers["x-request-id"] == line.request_id
    assert line.error_codes == ["INTERNAL_SERVER_ERROR"]


def test_json_lines_carry_the_operation_fields():
    record = logging.makeLogRecord({"name": "tierup.operations", "levelno": logging.INFO, "levelname": "INFO",
                                    "msg": "query Home 3.2 ms", "request_id": "abc", "operation": "Home",
                                    "operation_type": "query", "duration_ms": 3.2, "error_codes": []})
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "query Home 3.2 ms" and line["level"] == "INFO" and line["logger"] == "tierup.operations"
    assert {key: line[key] for key in ("request_id", "operation", "operation_type", "duration_ms", "error_codes")} == {
        "request_id": "abc", "operation": "Home", "operation_type": "query", "duration_ms": 3.2, "error_codes": []}


def test_log_settings_reach_uvicorn_and_tierup_loggers():
    settings = Settings.from_env({"TIERUP_LOG_FORMAT": "json", "TIERUP_LOG_LEVEL": "WARNING"})
    config = log_config(settings.log_level, settings.log_format)
    assert config["loggers"]["tierup"]["level"] == "WARNING"
    assert {formatter["()"] for formatter in config["formatters"].values()} == {"tierup.observability.JsonFormatter"}
    assert log_config("info", "text")["formatters"]["default"]["()"] == "uvicorn.logging.DefaultFormatter"
    with pytest.raises(ConfigError, match="TIERUP_LOG_FORMAT"):
        Settings.from_env({"TIERUP_LOG_FORMAT": "xml"})
    with pytest.raises(ConfigError, match="TIERUP_LOG_LEVEL"):
        Settings.from_env({"TIERUP_LOG_LEVEL": "loud"})
