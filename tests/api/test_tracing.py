"""TIERUP_OTEL_TRACING=1: each operation leaves OpenTelemetry spans (Strawberry's extension) with the
tracer provider the process runs with. Skipped where OpenTelemetry's SDK is not installed."""

from dataclasses import replace

import httpx
import pytest

from tierup.app import create_app
from tierup.auth import Role
from tierup.config import ConfigError, Settings

sdk = pytest.importorskip("opentelemetry.sdk.trace")


@pytest.fixture(scope="module")
def spans():
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = trace.get_tracer_provider()
    if not isinstance(provider, sdk.TracerProvider):  # the provider is set once per process
        provider = sdk.TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


TRACED = "query Traced($search: String) { program { code } members(first: 1, search: $search) { edges { node { id } } } }"


async def ask(settings, db, clock, api) -> None:
    app = create_app(settings, db=db, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        answered = await client.post("/graphql", json={"query": TRACED, "variables": {"search": "13800138000"}},
                                     headers={"Authorization": f"Bearer {api.token(Role.OPERATOR, 'ops')}"})
    assert answered.json() == {"data": {"program": {"code": "classic"}, "members": {"edges": []}}}


async def test_an_operation_leaves_spans_when_tracing_is_on(spans, settings, db, clock, program, api):
    spans.clear()
    await ask(replace(settings, otel_tracing=True), db, clock, api)
    finished = spans.get_finished_spans()
    assert {"GraphQL Query: Traced", "GraphQL Parsing", "GraphQL Validation"} <= {span.name for span in finished}
    assert "members" in {span.attributes.get("graphql.path") for span in finished}
    # a member's phone number searched for stays out of the traces
    assert not [key for span in finished for key in span.attributes if key.startswith("graphql.param.")]


async def test_tracing_is_off_by_default(spans, settings, db, clock, program, api):
    spans.clear()
    await ask(settings, db, clock, api)
    assert spans.get_finished_spans() == ()


def test_tracing_without_opentelemetry_installed_is_refused(monkeypatch):
    import importlib.util

    assert Settings.from_env({"TIERUP_OTEL_TRACING": "1"}).otel_tracing
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"tierup\[otel\]"):
        Settings.from_env({"TIERUP_OTEL_TRACING": "1"})
