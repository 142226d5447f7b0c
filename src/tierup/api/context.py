"""The request context: who is calling, which program, what time it is, and the loaders."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..auth import Principal, Role, TokenError, principal_from_header
from ..domain.clock import Horizon, local
from ..domain.errors import ErrorCode, Rejected
from ..services.programs import ActiveProgram, active_program
from ..services.validation import as_of_problem
from .errors import bad_input, forbidden, unauthenticated
from .loaders import Loaders

if TYPE_CHECKING:
    from ..app import Services

NOW_HEADER = "x-tierup-now"


def parse_now(raw: str | None) -> datetime | None:
    """The tester's clock (X-Tierup-Now): an ISO time with an offset, within the years jobs may run as of."""
    if raw is None:
        return None
    if not isinstance(raw, str) or len(raw) > 64:
        raise bad_input("X-Tierup-Now must be an ISO 8601 time with an offset, e.g. 2026-03-01T10:00:00+08:00")
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError as exc:
        raise bad_input(f"X-Tierup-Now must be an ISO 8601 time with an offset, got {raw!r}") from exc
    if value.tzinfo is None:
        raise bad_input("X-Tierup-Now needs a UTC offset, e.g. 2026-03-01T10:00:00+08:00")
    problem = as_of_problem(value)
    if problem is not None:
        raise bad_input(f"X-Tierup-Now {problem}")
    return value


class Context:
    def __init__(self, services: "Services", *, authorization: str | None, now_header: str | None,
                 request: Any = None, response: Any = None):
        self.services = services
        self.request = request
        self.response = response
        self.principal: Principal | None = None
        self.token_error: str | None = None
        try:
            self.principal = principal_from_header(services.settings.jwt_secret, authorization,
                                                  services.settings.token_lifetimes)
        except TokenError as exc:
            self.token_error = str(exc)
        self._now_header = None if services.settings.production else now_header
        self._program: ActiveProgram | None = None
        self._loaders: Loaders | None = None
        self._horizon: Horizon | None = None
        self._viewer_row = None  # the signed-in member's row, when the response cache has just read it
        self.connection_params: dict | None = None  # set by Strawberry from the WebSocket connection_init

    def sign_in_from_connection_params(self) -> None:
        """WebSocket: the token travels in connection_init ({"Authorization": "Bearer …"}).

        Raises TokenError when it is missing or bad; the connection is then refused (4403).
        """
        params = self.connection_params or {}
        authorization = params.get("Authorization") or params.get("authorization")
        if not authorization:
            raise TokenError("connection_init carries no Authorization")
        self.principal = principal_from_header(self.services.settings.jwt_secret, authorization,
                                               self.services.settings.token_lifetimes)
        self.token_error = None
        if not self.services.settings.production:
            self._now_header = params.get("X-Tierup-Now") or params.get("x-tierup-now") or self._now_header

    @property
    def db(self):
        return self.services.db

    @property
    def now(self) -> datetime:
        """The server's clock decides; outside production a tester may set it per request."""
        return parse_now(self._now_header) or self.services.clock()

    @property
    def clock_overridden(self) -> bool:
        return self._now_header is not None

    @property
    def horizon(self) -> Horizon:
        """When time alone will change what this request answers (see api.cache)."""
        if self._horizon is None:
            self._horizon = Horizon(self.now)
        return self._horizon

    def changes_at(self, moment: datetime | None) -> None:
        """What a resolver just answered changes by itself at `moment` (a lot expires, a window opens)."""
        self.horizon.changes_at(moment)

    @property
    def program_if_read(self) -> ActiveProgram | None:
        return self._program

    def use_program(self, program: ActiveProgram | None) -> None:
        """The program in force, when the caller has just read which version that is."""
        if program is not None and self._program is None:
            self._program = program

    def use_member(self, row) -> None:
        """The member's row the caller has just read: the loaders start with it."""
        self._viewer_row = row

    def as_of(self, requested: datetime | None) -> datetime:
        """The time a job runs as of: what the operator asked for, or now.

        The future is allowed (operators simulate), but only within 2000-01-01..9000-01-01: year 1 or year
        9999 overflow as soon as a rule converts them to another zone or adds a month."""
        if requested is None:
            return self.now
        problem = as_of_problem(requested)
        if problem is not None:
            raise Rejected.one(ErrorCode.INVALID, f"asOf {problem}", "input", "asOf")
        return requested

    def require(self, *roles: Role) -> Principal:
        if self.principal is None:
            raise unauthenticated(f"sign in: {self.token_error}" if self.token_error else
                                  "sign in: send 'Authorization: Bearer <token>'")
        if roles and self.principal.role not in roles:
            allowed = " or ".join(r.value for r in roles)
            raise forbidden(f"this needs the {allowed} role; the token has {self.principal.role.value}")
        return self.principal

    async def program(self) -> ActiveProgram:
        principal = self.require()
        if self._program is None:
            self._program = await active_program(self.db, principal.program)
            if self._program is None:
                raise forbidden(f"program {principal.program!r} does not exist")
        return self._program

    async def loaders(self) -> Loaders:
        if self._loaders is None:
            self._loaders = Loaders(self.db, await self.program(), self.now, self.horizon)
            row = self._viewer_row
            if row is not None:
                self._loaders.member_by_id.prime(row.id, row)
                self._loaders.member_by_external_id.prime((row.program_id, row.external_id), row)
        return self._loaders

    def reset_loaders(self) -> None:
        """After a write: what the payload reads must be what was just committed."""
        self._loaders = None
        self._viewer_row = None

    def refresh(self) -> None:
        """Before resolving a subscription event: the socket's context outlives any one event, so
        the program and every loader are read afresh."""
        self._program = None
        self._loaders = None
        self._horizon = None
        self._viewer_row = None

    @property
    def broker(self):
        return self.services.broker

    def local_time(self, value: datetime | None) -> datetime | None:
        """Times go out in the program's zone, e.g. 2026-03-01T10:00:00+08:00."""
        if value is None or self._program is None:
            return value
        return local(value, self._program.definition.zone)

    async def check_member_visible(self, member) -> None:
        """A member sees only themself; operators and services only their program's members."""
        principal = self.require()
        program = await self.program()
        if member.program_id != program.id:
            raise forbidden("that member belongs to another program")
        if principal.role is Role.MEMBER and member.external_id != principal.sub:
            raise forbidden("a member can only see their own data")

    async def check_owner_visible(self, row) -> None:
        """A member's row (an order, a coupon) is visible as its member is; the member is read only
        for a member's own token."""
        if row.program_id != (await self.program()).id:
            raise forbidden("that member belongs to another program")
        if self.require().role is Role.MEMBER:
            await self.check_member_visible(await (await self.loaders()).member_by_id.load(row.member_id))

