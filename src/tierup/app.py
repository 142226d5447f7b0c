"""The Starlette application: /graphql (HTTP and WebSocket), GraphiQL assets, health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from cross_web import HTTPException
from prometheus_client import CONTENT_TYPE_LATEST
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET

from .api.cache import ResponseCache
from .api.context import NOW_HEADER, Context
from .api.graphql_over_http import GRAPHQL_RESPONSE, JSON, answer_media_type, is_request_error
from .api.operations import REQUEST_ID_HEADER, Operation, OperationNames, current_operation
from .api.persisted import PersistedQueries, PersistedQueryError, create_persisted_queries
from .api.schema import build_schema, error_code
from .api.websocket import picks_graphql_transport_ws, serve_graphql_transport_ws
from .auth import TokenError
from .config import Settings
from .events import Broker, MemoryBroker, create_broker
from .graphiql import AssetError, GraphiQLAssets
from .observability import WEBSOCKET_CONNECTIONS, exposition
from .domain.clock import utcnow
from .services.jobs import run_periodically
from .services.webhooks import run_deliveries
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
    persisted_queries: PersistedQueries = field(default_factory=lambda: PersistedQueries(0))
    operation_names: OperationNames = field(default_factory=OperationNames)
    started_at: datetime = field(default_factory=utcnow)


HTTP_ERROR_CODES = {400: "BAD_REQUEST", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}
# GET answers may be kept by the browser but never by a shared cache (each is one caller's), and are
# asked for again before reuse: points and tiers change with every report the shop sends.
GET_ANSWER_HEADERS = {"Cache-Control": "private, no-cache", "Vary": "Authorization"}


class TierupGraphQL(GraphQL):
    def __init__(self, services: Services, **options):
        self.services = services
        super().__init__(build_schema(services.settings), **options)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "websocket":
            return await self._serve_websocket(scope, receive, send)
        if scope["type"] != "http":
            return await super().__call__(scope, receive, send)
        headers = Headers(scope=scope)
        operation = Operation.begin(headers.get(REQUEST_ID_HEADER))
        try:
            response = await self._answer(scope, receive, answer_media_type(headers.get("accept")), operation)
        finally:
            operation.end()
        response.headers[REQUEST_ID_HEADER] = operation.request_id
        if response.media_type in (JSON, GRAPHQL_RESPONSE):  # a GraphQL answer, not the GraphiQL page
            operation.record(self.services.operation_names)
        await response(scope, receive, send)

    async def _answer(self, scope, receive, media_type: str, operation: Operation) -> Response:
        try:
            request = Request(scope, receive=self._bounded(scope, receive))
            request.state.media_type = media_type
            response = await self.run(request)
        except HTTPException as exc:
            code = HTTP_ERROR_CODES.get(exc.status_code, "BAD_REQUEST")
            operation.failed(code)
            response = self._errors(exc.status_code, code, exc.reason)
        except PersistedQueryError as exc:
            operation.failed(exc.code)
            response = self._errors(200, exc.code, exc.message)  # 200: what Apollo's link expects to retry on
        if response.media_type == JSON:  # every GraphQL-shaped answer, refusals too, as the client asked
            response.media_type = media_type
            response.headers["content-type"] = media_type
        if scope["method"] == "GET":
            response.headers.update(GET_ANSWER_HEADERS)
        return response

    async def _serve_websocket(self, scope, receive, send) -> None:
        handshake = WebSocket(scope, receive, send)
        # A browser page sends its Origin: one not listed in TIERUP_CORS_ORIGINS (nor this server's own) is
        # refused before any handler runs, whichever protocol it asks for. Clients sending none pass.
        if not self._check_websocket_origin(handshake):
            return await self.reject_websocket(handshake)
        with WEBSOCKET_CONNECTIONS.track_inprogress():
            if picks_graphql_transport_ws(scope, self.protocols):
                # Our own handler keeps far less per socket than Strawberry's; legacy graphql-ws stays with Strawberry.
                return await serve_graphql_transport_ws(self, scope, receive, send)
            return await super().__call__(scope, receive, send)

    def _errors(self, status: int, code: str, message: str) -> Response:
        # The same shape as any GraphQL error, so clients read one format.
        return Response(self.encode_json({"errors": [{"message": message, "extensions": {"code": code}}]}),
                        status_code=status, media_type=JSON)

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

    def encode_json(self, data: object) -> bytes:
        """UTF-8 as it is, not \\u escapes: 银卡会员 takes 12 bytes, not 24."""
        try:
            return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        except UnicodeEncodeError:  # a lone surrogate echoed from the request: only an escape can carry it
            return json.dumps(data, separators=(",", ":")).encode()

    def decode_json(self, data: str | bytes) -> object:
        value = super().decode_json(data)
        if not isinstance(value, dict):
            raise HTTPException(400, "The request body must be a JSON object: {\"query\": …, \"variables\": {…}}.")
        return value

    async def parse_http_body(self, request) -> GraphQLRequestData | list[GraphQLRequestData]:
        data = await super().parse_http_body(request)
        if isinstance(data, GraphQLRequestData):  # a batch was already refused: batching is off
            data.query = await self.services.persisted_queries.query_for(data.query, data.extensions)
            current_operation().describe(data.query, data.operation_name, self.services.settings.max_tokens)
        return data

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        answer = await super().process_result(request, result)
        codes = [error_code(error) for error in result.errors or ()]
        current_operation().failed(*codes)
        if request.state.media_type == GRAPHQL_RESPONSE and is_request_error(result, codes):
            del answer["data"]  # the spec's mark of a request error; create_response makes it a 400
        return answer

    def create_response(self, response_data: GraphQLHTTPResponse, sub_response: Response) -> Response:
        response = super().create_response(response_data, sub_response)
        if isinstance(response_data, dict) and "data" not in response_data:
            response.status_code = 400
        return response

    def should_render_graphql_ide(self, request) -> bool:
        # A GET naming its query by hash carries no `query` either, yet asks for an answer, not the page.
        return super().should_render_graphql_ide(request) and "extensions" not in request.query_params

    async def get_context(self, request, response) -> Context:
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
    broker = broker or create_broker(settings.broker_url)
    services = Services(settings=settings, db=db or Database(settings.database_url), clock=clock or utcnow,
                        assets=GraphiQLAssets(settings.asset_cache_dir, settings.npm_registry, settings.graphiql_cdn),
                        broker=broker,
                        response_cache=ResponseCache(settings.response_cache_members)
                        if settings.response_cache_members > 0 else None,
                        persisted_queries=create_persisted_queries(settings.persisted_queries, broker))
    protocols = (GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL) if settings.legacy_graphql_ws else (
        GRAPHQL_TRANSPORT_WS_PROTOCOL,)
    graphql = TierupGraphQL(services, graphql_ide=None if settings.production else "graphiql",
                            subscription_protocols=protocols,
                            connection_init_wait_timeout=CONNECTION_INIT_TIMEOUT,
                            max_subscriptions_per_connection=MAX_SUBSCRIPTIONS_PER_CONNECTION,
                            keep_alive=True, keep_alive_interval=15, allowed_origins=settings.cors_origins)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            await asyncio.wait_for(services.db.ping(), timeout=5)
        except Exception as exc:  # any failure to reach the database means not ready
            return JSONResponse({"status": "unavailable", "database": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ok", "database": services.db.dialect})

    async def metrics(request: Request) -> Response:
        refusal = _metrics_refusal(settings, request.headers.get("authorization"))
        if refusal is not None:
            return refusal
        return Response(await asyncio.to_thread(exposition), media_type=CONTENT_TYPE_LATEST)

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
            jobs = asyncio.create_task(run_periodically(
                services.db, services.broker, settings.jobs_interval, services.clock,
                deliveries_kept_days=settings.webhook_retention_days,
                private_targets=settings.webhooks_reach_private), name="tierup-jobs")
        # Webhooks go out as soon as their transaction commits, whether or not the other jobs run here.
        deliveries = asyncio.create_task(run_deliveries(
            services.db, services.clock, private_targets=settings.webhooks_reach_private), name="tierup-webhooks")
        prefetch = None
        if not settings.production and not settings.graphiql_cdn and not services.assets.ready():
            prefetch = asyncio.create_task(asyncio.to_thread(_prefetch, services.assets))
        try:
            yield
        finally:
            for task in (prefetch, jobs):
                if task is not None:
                    task.cancel()
            deliveries.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await deliveries  # out of the database before it is disposed
            await services.persisted_queries.close()
            await services.broker.close()
            await services.db.dispose()

    app = TierupApp(graphql=graphql, routes=[
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
        Route("/graphiql/assets/{asset:path}", graphiql_asset),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
    ], middleware=_middleware(settings), lifespan=lifespan)
    app.state.services = services
    return app


class TierupApp(Starlette):
    """Starlette, with the /graphql WebSocket handed straight to the GraphQL view: none of the middleware acts
    on a WebSocket (CORS and gzip are HTTP only; the view checks the origin and answers its own errors), and
    each of its frames would stay alive for the socket's whole life (~3 KiB a socket, subscribers_bench)."""

    def __init__(self, *, graphql: TierupGraphQL, **options):
        super().__init__(**options)
        self.graphql = graphql

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "websocket" and scope["path"].removeprefix(scope.get("root_path", "")) == "/graphql":
            scope["app"] = self
            return await self.graphql(scope, receive, send)
        await super().__call__(scope, receive, send)


def _metrics_refusal(settings: Settings, authorization: str | None) -> Response | None:
    """/metrics asks for TIERUP_METRICS_TOKEN as a bearer token when one is set; production serves it only then
    (the figures name operations and show traffic)."""
    if settings.metrics_token is None:
        if settings.production:
            return PlainTextResponse("/metrics is closed: set TIERUP_METRICS_TOKEN to open it to its bearer",
                                     status_code=403)
        return None
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return PlainTextResponse("send 'Authorization: Bearer <TIERUP_METRICS_TOKEN>'", status_code=401,
                                 headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    if not hmac.compare_digest(token.strip().encode(), settings.metrics_token.encode()):
        return PlainTextResponse("wrong metrics token", status_code=403)
    return None


# What browser clients send besides the safelisted headers: the token, a tester's clock, Apollo's client name.
CORS_HEADERS = ("Authorization", "Content-Type", NOW_HEADER, "apollographql-client-name",
                "apollographql-client-version")


def _middleware(settings: Settings) -> list[Middleware]:
    """CORS outermost, so a preflight is answered before anything runs; then gzip for large answers."""
    # Level 6, not Starlette's 9: on the 150 KB introspection answer 9 took twice the CPU for 1.5 % fewer bytes.
    middleware = [Middleware(GZipMiddleware, minimum_size=settings.gzip_min_bytes, compresslevel=6)]
    if settings.cors_origins:
        middleware.insert(0, Middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                                        allow_methods=("GET", "POST"), allow_headers=CORS_HEADERS))
    return middleware


def _prefetch(assets: GraphiQLAssets) -> None:
    try:
        assets.fetch_all()
    except AssetError as exc:
        log.warning("GraphiQL assets not available yet (%s); run `tierup assets fetch` when online", exc)


def create_app_from_env() -> Starlette:
    """Factory for `uvicorn --factory` and `tierup serve --workers N`."""
    return create_app(Settings.from_env())
