"""Settings, read once from TIERUP_* environment variables into a typed object."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./tierup.db"
DEV_JWT_SECRET = "tierup-development-secret-do-not-use-in-production"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")  # uvicorn's
LOG_FORMATS = ("text", "json")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def _int(env: dict[str, str], name: str, default: int | None) -> int | None:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from exc


def _days(env: dict[str, str], name: str, default: int) -> int:
    days = _int(env, name, default)
    if not 1 <= days <= 36_500:
        raise ConfigError(f"{name} must be between 1 and 36,500 days, got {days}")
    return days


_ON, _OFF = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def _flag(env: dict[str, str], name: str) -> bool:
    """On or off; anything else is refused rather than read as off (a flag mistyped would be silently ignored)."""
    value = env.get(name, "").strip().lower()
    if value not in _ON + _OFF:
        raise ConfigError(f"{name} must be on or off (1/0, true/false, yes/no, on/off), got {env[name]!r}")
    return value in _ON


def _choice(env: dict[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = (env.get(name) or default).lower()
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {env[name]!r}")
    return value


def _seconds(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from exc
    if not 0 < value < 3600:
        raise ConfigError(f"{name} must lie between 0 and 3600 seconds, got {raw!r}")
    return value


def _origins(env: dict[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list of origins, written as browsers send them (lowercase, no default port),
    since the CORS and WebSocket checks compare the Origin header with them as text."""
    raw = env.get(name, "")
    if not raw.strip():
        return ()  # without importing Strawberry, which costs a command of the CLI a fifth of a second
    from strawberry.http.websocket_origin import normalize_allowed_origins  # here: the CLI stays light

    try:
        return tuple(sorted(normalize_allowed_origins([part.strip() for part in raw.split(",") if part.strip()])))
    except ValueError as exc:
        raise ConfigError(f"{name} must list origins such as https://shop.example.com (scheme, host, optional "
                          f"port, no path) separated by commas, or '*'; got {raw!r}") from exc


@dataclass(frozen=True)
class Settings:
    """Everything the server and the CLI can be told. See the README for each variable."""

    env: str = "development"
    database_url: str = DEFAULT_DATABASE_URL
    jwt_secret: str = DEV_JWT_SECRET
    broker_url: str = "memory://"
    graphiql_cdn: str | None = None  # a mirror serving npm package files, or None to serve them ourselves
    npm_registry: str = "https://registry.npmjs.org"
    asset_cache_dir: str = field(default_factory=lambda: os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tierup", "assets"))
    jobs_interval: int | None = None
    webhook_retention_days: int = 30  # finished webhook deliveries are kept this long, then the jobs remove them
    webhook_private_targets: bool = False  # production delivers to private addresses too (development always does)
    legacy_graphql_ws: bool = False
    max_query_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 2000
    max_query_cost: int = 5000
    execution_deadline: float = 10.0  # seconds
    max_body_bytes: int = 1024 * 1024
    max_member_token_days: int = 30
    max_staff_token_days: int = 365  # OPERATOR and SERVICE tokens
    ws_deflate: bool = False  # permessage-deflate on WebSockets: zlib state per socket, ~40 KiB each
    response_cache_members: int = 10_000  # members whose own reads are kept answered; 0 turns it off
    persisted_queries: int = 1000  # query texts kept for automatic persisted queries; 0 turns them off
    cors_origins: tuple[str, ...] = ()  # pages on these origins may call the API and open sockets; "*" for any
    gzip_min_bytes: int = 1024  # answers at least this large are gzipped when the client accepts it
    metrics_token: str | None = None  # when set, /metrics asks for it as a bearer token; production needs one
    log_level: str = "info"
    log_format: str = "text"  # or "json": one JSON object per line
    otel_tracing: bool = False  # OpenTelemetry spans per operation (the `otel` extra)

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def webhooks_reach_private(self) -> bool:
        """Whether webhooks may go to private addresses: outside production (a receiver on this machine), or
        when TIERUP_WEBHOOK_PRIVATE_TARGETS says so (a shop's systems on the server's own network)."""
        return self.webhook_private_targets or not self.production

    @property
    def token_lifetimes(self) -> dict[str, float]:
        """The longest a token may be minted to live, in seconds, by role."""
        staff = self.max_staff_token_days * 86400.0
        return {"MEMBER": self.max_member_token_days * 86400.0, "OPERATOR": staff, "SERVICE": staff}

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if environ is None else environ)
        mode = env.get("TIERUP_ENV", "development")
        if mode not in ("development", "production"):
            raise ConfigError(f"TIERUP_ENV must be 'development' or 'production', got {mode!r}")
        secret = env.get("TIERUP_JWT_SECRET", "")
        if mode == "production" and not secret:
            raise ConfigError("TIERUP_JWT_SECRET is required when TIERUP_ENV=production")
        defaults = cls()
        return cls(
            env=mode,
            database_url=env.get("TIERUP_DATABASE_URL") or DEFAULT_DATABASE_URL,
            jwt_secret=secret or DEV_JWT_SECRET,
            broker_url=env.get("TIERUP_BROKER_URL") or "memory://",
            graphiql_cdn=env.get("TIERUP_GRAPHIQL_CDN") or None,
            npm_registry=(env.get("TIERUP_NPM_REGISTRY") or defaults.npm_registry).rstrip("/"),
            asset_cache_dir=env.get("TIERUP_ASSET_CACHE_DIR") or defaults.asset_cache_dir,
            jobs_interval=_int(env, "TIERUP_JOBS_INTERVAL", None),
            webhook_retention_days=_days(env, "TIERUP_WEBHOOK_RETENTION_DAYS", defaults.webhook_retention_days),
            webhook_private_targets=_flag(env, "TIERUP_WEBHOOK_PRIVATE_TARGETS"),
            legacy_graphql_ws=_flag(env, "TIERUP_LEGACY_GRAPHQL_WS"),
            max_query_depth=_int(env, "TIERUP_MAX_QUERY_DEPTH", defaults.max_query_depth),
            max_aliases=_int(env, "TIERUP_MAX_ALIASES", defaults.max_aliases),
            max_tokens=_int(env, "TIERUP_MAX_TOKENS", defaults.max_tokens),
            max_query_cost=_int(env, "TIERUP_MAX_QUERY_COST", defaults.max_query_cost),
            execution_deadline=_seconds(env, "TIERUP_EXECUTION_DEADLINE", defaults.execution_deadline),
            max_body_bytes=_int(env, "TIERUP_MAX_BODY_BYTES", defaults.max_body_bytes),
            max_member_token_days=_int(env, "TIERUP_MAX_MEMBER_TOKEN_DAYS", defaults.max_member_token_days),
            max_staff_token_days=_int(env, "TIERUP_MAX_STAFF_TOKEN_DAYS", defaults.max_staff_token_days),
            ws_deflate=_flag(env, "TIERUP_WS_DEFLATE"),
            response_cache_members=_int(env, "TIERUP_RESPONSE_CACHE_MEMBERS", defaults.response_cache_members),
            persisted_queries=_int(env, "TIERUP_PERSISTED_QUERIES", defaults.persisted_queries),
            cors_origins=_origins(env, "TIERUP_CORS_ORIGINS"),
            gzip_min_bytes=_int(env, "TIERUP_GZIP_MIN_BYTES", defaults.gzip_min_bytes),
            metrics_token=env.get("TIERUP_METRICS_TOKEN") or None,
            log_level=_choice(env, "TIERUP_LOG_LEVEL", LOG_LEVELS, defaults.log_level),
            log_format=_choice(env, "TIERUP_LOG_FORMAT", LOG_FORMATS, defaults.log_format),
            otel_tracing=_otel_tracing(env),
        )


def _otel_tracing(env: dict[str, str]) -> bool:
    if not _flag(env, "TIERUP_OTEL_TRACING"):
        return False
    if importlib.util.find_spec("opentelemetry") is None:
        raise ConfigError("TIERUP_OTEL_TRACING needs OpenTelemetry: pip install 'tierup[otel]'")
    return True
