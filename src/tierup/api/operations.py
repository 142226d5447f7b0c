"""What each GraphQL request over HTTP leaves behind: a sample in the latency histogram by operation
name and type, its error codes counted, and one log line carrying its request id."""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextvars import ContextVar, Token
from dataclasses import dataclass, field

from graphql import GraphQLError, get_operation_ast
from strawberry.extensions import SchemaExtension

from ..observability import GRAPHQL_ERRORS, OPERATION_SECONDS
from .limits import parsed

REQUEST_ID_HEADER = "x-request-id"
OTHER = "other"
UNKNOWN_TYPE = "unknown"
MAX_OPERATION_NAMES = 100

log = logging.getLogger("tierup.operations")
_current: ContextVar["Operation | None"] = ContextVar("tierup_operation", default=None)
# An id a proxy in front already gave the request is kept, so its logs and ours line up.
_FORWARDED_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class OperationNames:
    """The label values of operation names. Clients choose the names and every label value is a time
    series of its own, so the first `limit` distinct names keep theirs and later ones share OTHER."""

    def __init__(self, limit: int = MAX_OPERATION_NAMES):
        self.limit = limit
        self._known: set[str] = set()

    def label(self, name: str | None) -> str:
        if name is None:
            return OTHER
        if name not in self._known and len(self._known) < self.limit:
            self._known.add(name)
        return name if name in self._known else OTHER


@dataclass
class Operation:
    """One request being answered; the current one is reachable from the code answering it."""

    request_id: str
    name: str | None = None  # as the document names it; None when unnamed or not parsed
    type: str = UNKNOWN_TYPE
    error_codes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    _token: Token | None = None

    @classmethod
    def begin(cls, forwarded_id: str | None) -> "Operation":
        request_id = forwarded_id if forwarded_id and _FORWARDED_ID.fullmatch(forwarded_id) else uuid.uuid4().hex[:16]
        operation = cls(request_id)
        operation._token = _current.set(operation)
        return operation

    def end(self) -> None:
        _current.reset(self._token)

    def describe(self, query: str | None, operation_name: str | None, max_tokens: int) -> None:
        """Learn the name and type of the operation the request runs, from its (cached) parsed document."""
        try:
            document = parsed(query, max_tokens) if query else None
        except GraphQLError:  # the answer will say why
            return
        node = get_operation_ast(document, operation_name) if document else None
        if node is not None:
            self.name = node.name.value if node.name else None
            self.type = node.operation.value

    def failed(self, *codes: str) -> None:
        self.error_codes.extend(code for code in codes if code not in self.error_codes)

    def record(self, names: OperationNames) -> None:
        """Its sample in the histogram, its error codes counted once each, and its log line."""
        seconds = time.perf_counter() - self.started
        OPERATION_SECONDS.labels(operation=names.label(self.name), type=self.type).observe(seconds)
        for code in self.error_codes:
            GRAPHQL_ERRORS.labels(code=code).inc()
        duration_ms = round(seconds * 1000, 1)
        log.info("%s %s %.1f ms request_id=%s%s", self.type, self.name or "(unnamed)", duration_ms, self.request_id,
                 f" errors={','.join(self.error_codes)}" if self.error_codes else "",
                 extra={"request_id": self.request_id, "operation": self.name, "operation_type": self.type,
                        "duration_ms": duration_ms, "error_codes": self.error_codes})


def current_operation() -> Operation | None:
    return _current.get()


def current_request_id() -> str | None:
    """The id of the request being answered over HTTP, to quote in errors and logs; None elsewhere."""
    operation = _current.get()
    return operation.request_id if operation is not None else None


def tracing_extension() -> SchemaExtension:
    """Strawberry's OpenTelemetry spans for one operation (TIERUP_OTEL_TRACING; the `otel` extra). Spans
    name fields but carry no argument values: those may be a member's phone number or birthday."""
    from strawberry.extensions.tracing import OpenTelemetryExtension

    return OpenTelemetryExtension(arg_filter=lambda arguments, info: {})
