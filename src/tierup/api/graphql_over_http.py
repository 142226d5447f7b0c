"""GraphQL over HTTP (the GraphQL Foundation's spec): which media type an answer takes, and which
answers are request errors.

A client asking for `application/graphql-response+json` learns from the status code whether its
request was refused before execution (400, and the answer has no `data`) or executed (200, even with
field errors). A client asking for `application/json`, or for anything (`*/*`, no Accept), gets the
classic behaviour: 200 with `data` for every GraphQL answer, as the spec keeps for those clients.
"""

from __future__ import annotations

from strawberry.types import ExecutionResult

from .limits import DEADLINE_EXCEEDED, INTERNAL_SERVER_ERROR

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
# Errors outside any field that are the server's doing, not the request's: the answer keeps `"data": null`.
SERVER_FAILURES = frozenset({DEADLINE_EXCEEDED, INTERNAL_SERVER_ERROR})


def answer_media_type(accept: str | None) -> str:
    """GRAPHQL_RESPONSE when the Accept header ranks it at least as high as application/json, else JSON."""
    quality = _qualities(accept or "")
    wanted = quality.get(GRAPHQL_RESPONSE, 0.0)
    return GRAPHQL_RESPONSE if wanted > 0 and wanted >= quality.get(JSON, 0.0) else JSON


def _qualities(accept: str) -> dict[str, float]:
    qualities: dict[str, float] = {}
    for item in accept.split(","):
        media_type, *parameters = (part.strip() for part in item.split(";"))
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media_type = media_type.lower()
        qualities[media_type] = max(quality, qualities.get(media_type, 0.0))
    return qualities


def is_request_error(result: ExecutionResult, codes: list[str]) -> bool:
    """Refused before execution: the document did not parse or validate, a limit refused it, or its
    variables did not coerce. Such errors stand outside every field (no `path`) and leave no data;
    field errors always carry a path."""
    return (result.data is None and bool(result.errors) and all(error.path is None for error in result.errors)
            and SERVER_FAILURES.isdisjoint(codes))
