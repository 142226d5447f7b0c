"""Who may call what, as Strawberry permission classes."""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission
from strawberry.types import Info

from ..auth import Role


class _Roles(BasePermission):
    roles: tuple[Role, ...] = ()

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        # Raises UNAUTHENTICATED or FORBIDDEN with a message saying what is missing.
        info.context.require(*self.roles)
        return True


class SignedIn(_Roles):
    roles = ()


class MemberOnly(_Roles):
    roles = (Role.MEMBER,)


class OperatorOnly(_Roles):
    roles = (Role.OPERATOR,)


class ServiceOnly(_Roles):
    roles = (Role.SERVICE,)


class OperatorOrService(_Roles):
    roles = (Role.OPERATOR, Role.SERVICE)
