"""The Starlette application: /graphql (HTTP and WebSocket), GraphiQL assets, health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from cross_web import HTTPException
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.types.unset import UNSET

from .api.cache import ResponseCache
from .api.context import NOW_HEADER, Context, utcnow
from .api.schema import build_schema
from .api.websocket import picks_graphql_transport_ws, serve_graphql_transport_ws
from .auth import TokenError
from .config import Settings
from .events import Broker, MemoryBroker, create_broker
from .graphiql import AssetError, GraphiQLAssets
from .services.jobs import run_periodically
from .store.db import Database

log = logging.getLogger("tierup")


@dataclass
class Services:
    """What every request can reach: settings, the database, the clock."""

    settings: Settings
    db: Database
    clock: Callable[[], datetime] = utcnow
    assets: GraphiQLAssets | None = None
    broker: Broker = field(default_factory=MemoryBroker)
    response_cache: ResponseCache | None = None
    requests_total: int = 0
    started_at: datetime = field(default_factory=utcnow)


HTTP_ERROR_CODES = {400: "BAD_REQUEST", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}


class TierupGraphQL(GraphQL):
    def __init__(self, services: Services, **options):
        self.services = services
        super().__init__(build_schema(services.settings), **options)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "websocket" and picks_graphql_transport_ws(scope, self.protocols):
            # Our own handler keeps far less per socket than Strawberry's; legacy graphql-ws stays with Strawberry.
            return await serve_graphql_transport_ws(self, scope, receive, send)
        if scope["type"] != "http":
            return await super().__call__(scope, receive, send)
        try:
            response = await self.run(Request(scope, receive=self._bounded(scope, receive)))
        except HTTPException as exc:
            # The same shape as any GraphQL error, so clients read one format.
            code = HTTP_ERROR_CODES.get(exc.status_code, "BAD_REQUEST")
            response = JSONResponse({"errors": [{"message": exc.reason, "extensions": {"code": code}}]},
                                    status_code=exc.status_code)
        await response(scope, receive, send)

    def _bounded(self, scope, receive):
        """Refuse a body above the limit (413) as its length is announced, or as it arrives."""
        limit = self.services.settings.max_body_bytes
        too_large = HTTPException(413, f"The request body is larger than {limit:,} bytes.")
        announced = dict(scope["headers"]).get(b"content-length", b"")
        if announced.isdigit() and int(announced) > limit:
            raise too_large
        received = 0

        async def bounded_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise too_large
            return message

        return bounded_receive

    def decode_json(self, data: str | bytes) -> object:
        value = super().decode_json(data)
        if not isinstance(value, dict):
            raise HTTPException(400, "The request body must be a JSON object: {\"query\": …, \"variables\": {…}}.")
        return value

    async def get_context(self, request, response) -> Context:
        self.services.requests_total += 1
        headers = request.headers
        return Context(self.services, authorization=headers.get("authorization"),
                       now_header=headers.get(NOW_HEADER), request=request, response=response)

    async def on_ws_connect(self, context: Context):
        try:
            context.sign_in_from_connection_params()
        except TokenError as exc:
            log.info("refused a WebSocket connection: %s", exc)
            raise ConnectionRejectionError() from exc
        return UNSET

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(self.services.assets.page(self.graphql_ide_html))


MAX_SUBSCRIPTIONS_PER_CONNECTION = 20
CONNECTION_INIT_TIMEOUT = timedelta(seconds=10)


def create_app(settings: Settings | None = None, *, db: Database | None = None,
               clock: Callable[[], datetime] | None = None, broker: Broker | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    services = Services(settings=settings, db=db or Database(settings.database_url), clock=clock or utcnow,
                        assets=GraphiQLAssets(settings.asset_cache_dir, settings.npm_registry, settings.graphiql_cdn),
                        broker=broker or create_broker(settings.broker_url),
                        response_cache=ResponseCache(settings.response_cache_members)
                        if settings.response_cache_members > 0 else None)
    protocols = (GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL) if settings.legacy_graphql_ws else (
        GRAPHQL_TRANSPORT_WS_PROTOCOL,)
    graphql = TierupGraphQL(services, graphql_ide=None if settings.production else "graphiql",
                            subscription_protocols=protocols,
                            connection_init_wait_timeout=CONNECTION_INIT_TIMEOUT,
                            max_subscriptions_per_connection=MAX_SUBSCRIPTIONS_PER_CONNECTION,
                            keep_alive=True, keep_alive_interval=15)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            await asyncio.wait_for(services.db.ping(), timeout=5)
        except Exception as exc:  # any failure to reach the database means not ready
            return JSONResponse({"status": "unavailable", "database": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ok", "database": services.db.dialect})

    async def metrics(request: Request) -> Response:
        lines = [
            "# HELP tierup_graphql_requests_total GraphQL requests and WebSocket connections served.",
            "# TYPE tierup_graphql_requests_total counter",
            f"tierup_graphql_requests_total {services.requests_total}",
            "# HELP tierup_sql_statements_total SQL statements sent to the database.",
            "# TYPE tierup_sql_statements_total counter",
            f"tierup_sql_statements_total {services.db.statements_total}",
        ]
        return PlainTextResponse("\n".join(lines) + "\n")

    async def graphiql_asset(request: Request) -> Response:
        path = services.assets.path_of(request.path_params["asset"])
        if path is None:
            return PlainTextResponse("not found", status_code=404)
        if not path.exists():
            try:
                await asyncio.to_thread(services.assets.fetch_all)
            except AssetError as exc:
                return PlainTextResponse(f"GraphiQL assets are not cached and cannot be fetched: {exc}",
                                         status_code=503)
        return FileResponse(path, headers={"Cache-Control": "public, max-age=31536000, immutable"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        await services.broker.start()
        jobs = None
        if settings.jobs_interval:
            jobs = asyncio.create_task(run_periodically(services.db, services.broker, settings.jobs_interval,
                                                        services.clock), name="tierup-jobs")
        prefetch = None
        if not settings.production and not settings.graphiql_cdn and not services.assets.ready():
            prefetch = asyncio.create_task(asyncio.to_thread(_prefetch, services.assets))
        try:
            yield
        finally:
            for task in (prefetch, jobs):
                if task is not None:
                    task.cancel()
            await services.broker.close()
            await services.db.dispose()

    app = Starlette(routes=[
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
        Route("/graphiql/assets/{asset:path}", graphiql_asset),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
    ], lifespan=lifespan)
    app.state.services = services
    return app


def _prefetch(assets: GraphiQLAssets) -> None:
    try:
        assets.fetch_all()
    except AssetError as exc:
        log.warning("GraphiQL assets not available yet (%s); run `tierup assets fetch` when online", exc)


def create_app_from_env() -> Starlette:
    """Factory for `uvicorn --factory` and `tierup serve --workers N`."""
    return create_app(Settings.from_env())
