"""Identity: HS256 bearer tokens carrying sub, program, role and exp."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum

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


class TokenError(Exception):
    """The token is missing, expired, forged or malformed; the message says which."""


def mint_token(secret: str, *, sub: str, program: str, role: Role, ttl_seconds: int = DEFAULT_TTL_SECONDS,
               now: float | None = None) -> str:
    issued = int(now if now is not None else time.time())
    claims = {"sub": sub, "program": program, "role": role.value, "iat": issued, "exp": issued + ttl_seconds}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_token(secret: str, token: str) -> Principal:
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "program", "role", "exp"]})
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("the token has expired") from exc
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
    return Principal(sub=claims["sub"], program=claims["program"], role=role)


def principal_from_header(secret: str, authorization: str | None) -> Principal | None:
    """None when no credentials were sent; TokenError when they were sent and are bad."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenError("the Authorization header must be 'Bearer <token>'")
    return decode_token(secret, token.strip())
