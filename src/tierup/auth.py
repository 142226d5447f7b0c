"""Identity: HS256 bearer tokens carrying sub, program, role and exp."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum
from typing import Mapping

import jwt

ALGORITHM = "HS256"
DEFAULT_TTL_SECONDS = 24 * 3600


class Role(str, Enum):
    MEMBER = "MEMBER"
    OPERATOR = "OPERATOR"
    SERVICE = "SERVICE"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a member (sub = member externalId), an operator or a service (sub = their name)."""

    sub: str
    program: str
    role: Role
    expires_at: float = float("inf")  # the token's exp, in seconds since the epoch


class TokenError(Exception):
    """The token is missing, expired, forged or malformed; the message says which."""


def mint_token(secret: str, *, sub: str, program: str, role: Role, ttl_seconds: int = DEFAULT_TTL_SECONDS,
               now: float | None = None) -> str:
    issued = int(now if now is not None else time.time())
    claims = {"sub": sub, "program": program, "role": role.value, "iat": issued, "exp": issued + ttl_seconds}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_token(secret: str, token: str, max_lifetime: Mapping[str, float] | None = None) -> Principal:
    """The token's principal. `max_lifetime` (seconds, by role) refuses tokens minted to live longer."""
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "program", "role", "exp"]})
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("the token has expired") from exc
    except jwt.ImmatureSignatureError as exc:
        raise TokenError("the token is not yet valid (its nbf or iat lies in the future)") from exc
    except jwt.InvalidSignatureError as exc:
        raise TokenError("the token's signature is not valid") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise TokenError(f"the token lacks the {exc.claim!r} claim") from exc
    except jwt.PyJWTError as exc:
        raise TokenError("the token is malformed") from exc
    try:
        role = Role(claims["role"])
    except ValueError as exc:
        raise TokenError(f"unknown role {claims['role']!r}") from exc
    if not isinstance(claims["sub"], str) or not isinstance(claims["program"], str):
        raise TokenError("sub and program must be strings")
    expires_at = _number(claims, "exp")
    issued_at = _number(claims, "iat") if "iat" in claims else time.time()
    longest = (max_lifetime or {}).get(role.value)
    if longest is not None and expires_at - issued_at > longest:
        raise TokenError(f"the token lives longer than the {longest / 86400:g} days allowed for {role.value} tokens")
    return Principal(sub=claims["sub"], program=claims["program"], role=role, expires_at=expires_at)


def _number(claims: dict, name: str) -> float:
    # PyJWT turns "exp": "9999999999" into a number by itself; RFC 7519 says NumericDate.
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TokenError(f"the token's {name!r} claim must be a number of seconds since the epoch")
    return float(value)


def principal_from_header(secret: str, authorization: str | None,
                          max_lifetime: Mapping[str, float] | None = None) -> Principal | None:
    """None when no credentials were sent; TokenError when they were sent and are bad."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenError("the Authorization header must be 'Bearer <token>'")
    return decode_token(secret, token.strip(), max_lifetime)
