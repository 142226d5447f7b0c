"""The caller's program and its ladder."""

from __future__ import annotations

from typing import Iterable

import strawberry
from strawberry import relay
from strawberry.types import Info

from ..services.programs import ActiveProgram
from .errors import forbidden
from .permissions import SignedIn
from .tiers import TierLadder


@strawberry.type(description="A member program (会员计划): one brand's tiers, rules and catalogue.")
class Program(relay.Node):
    program_id: relay.NodeID[int] = strawberry.field(description="Internal id.")
    code: str = strawberry.field(description="Stable code, e.g. classic.")
    name: str = strawberry.field(description="Display name.")
    currency: str = strawberry.field(description="ISO 4217 currency of every amount, e.g. CNY.")
    time_zone: str = strawberry.field(description="IANA zone days and months are counted in, e.g. Asia/Shanghai.")
    version: int = strawberry.field(description="The definition version in force; each publication adds one.")
    welcome_points: int = strawberry.field(description="Points a new member receives on enrolment.")
    ladder: TierLadder = strawberry.field(description="The tier ladder.")

    @classmethod
    def of(cls, program: ActiveProgram) -> "Program":
        d = program.definition
        return cls(program_id=program.id, code=program.code, name=d.name, currency=d.currency,
                   time_zone=d.time_zone, version=program.version, welcome_points=d.welcome_points,
                   ladder=TierLadder.of(d))

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        program = await info.context.program()
        result = []
        for node_id in node_ids:
            if node_id != str(program.id):
                raise forbidden("that program is not the caller's")
            result.append(cls.of(program))
        return result


@strawberry.type
class ProgramQueries:
    @strawberry.field(permission_classes=[SignedIn], description="The caller's program.")
    async def program(self, info: Info) -> Program:
        return Program.of(await info.context.program())
