"""Programs managed through GraphQL: publish a definition as a new version, list the versions."""

from __future__ import annotations

import json
from datetime import datetime
from enum import Enum
from typing import Optional

import strawberry
from strawberry.types import Info

from ..domain.errors import ErrorCode, Problem, Rejected
from ..programs import ProgramError, parse_program, parse_program_text
from ..programs.loader import TOO_DEEP
from ..services import programs as program_service
from .errors import UserError, user_errors
from .permissions import OperatorOnly

MAX_DEFINITION_LENGTH = 1_000_000


@strawberry.enum(description="How a program definition is written.")
class DefinitionFormat(Enum):
    TOML = strawberry.enum_value("TOML", description="As in fixtures/programs/*.toml.")
    JSON = strawberry.enum_value("JSON", description="The same structure as JSON.")


@strawberry.input(description="A program definition to publish.")
class PublishProgramInput:
    definition: str = strawberry.field(description="The whole definition, in the same schema as the TOML files.")
    format: DefinitionFormat = strawberry.field(default=DefinitionFormat.TOML, description="TOML (default) or JSON.")


@strawberry.type(description="One published version of the program's definition.")
class ProgramVersion:
    version: int = strawberry.field(description="1 for the first publication.")
    published_at: datetime = strawberry.field(description="When it was published.")
    published_by: str = strawberry.field(description="Who published it (the operator, or cli).")
    current: bool = strawberry.field(description="Whether this version is in force.")


@strawberry.type(description="Result of publishProgram.")
class PublishProgramPayload:
    version: Optional[ProgramVersion] = strawberry.field(default=None, description="The version now in force.")
    changed: bool = strawberry.field(default=False, description="False when the definition equals the one in force (no new version).")
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="One per problem, each naming its path under input.definition.")


def parse_definition(text: str, form: DefinitionFormat):
    """A definition from GraphQL input, or Rejected with one problem per path under input.definition."""
    if len(text) > MAX_DEFINITION_LENGTH:
        raise Rejected.one(ErrorCode.INVALID, "the definition is longer than 1,000,000 characters", "input", "definition")
    try:
        if form is DefinitionFormat.JSON:
            try:
                document = json.loads(text)
            except RecursionError:
                raise Rejected.one(ErrorCode.INVALID, TOO_DEEP, "input", "definition") from None
            except ValueError as exc:  # JSONDecodeError, or a number too long to convert
                raise Rejected.one(ErrorCode.INVALID, f"not valid JSON: {exc}", "input", "definition") from exc
            return parse_program(document, "definition")
        return parse_program_text(text, "definition")
    except ProgramError as error:
        raise Rejected(*[Problem(ErrorCode.INVALID, p.message,
                                 ("input", "definition", *[part for part in p.path.replace("[", ".").replace("]", "")
                                                           .split(".") if part]))
                         for p in error.problems]) from error


@strawberry.type
class PublishingMutations:
    @strawberry.mutation(permission_classes=[OperatorOnly], description=(
        "Publish a new version of the caller's program. Every validation problem is a userError naming its path; "
        "nothing is published unless the whole definition is valid. OPERATOR only."))
    async def publish_program(self, info: Info, input: PublishProgramInput) -> PublishProgramPayload:
        context = info.context
        program = await context.program()
        try:
            definition = parse_definition(input.definition, input.format)
            if definition.code != program.code:
                raise Rejected.one(ErrorCode.NOT_ELIGIBLE, f"the definition is for program {definition.code!r}; "
                                   f"the token is for {program.code!r}", "input", "definition", "code")
        except Rejected as rejection:
            return PublishProgramPayload(user_errors=user_errors(rejection))
        publication = await program_service.publish_program(context.db, definition, published_by=context.principal.sub,
                                                            now=context.now)
        context.refresh()
        versions = await program_versions(context)
        return PublishProgramPayload(version=versions[0], changed=publication.changed)


async def program_versions(context) -> list[ProgramVersion]:
    program = await context.program()
    rows = await program_service.versions_of(context.db, program.id)
    return [ProgramVersion(version=row.version, published_at=context.local_time(row.published_at),
                           published_by=row.published_by, current=row.version == program.version) for row in rows]
