"""Replaying history against a draft program, side by side with the live one."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Optional

import strawberry
from strawberry.types import Info

from ..domain.activity import midnight
from ..domain.errors import Rejected
from ..services import kpis as kpi_service
from ..services import simulation as simulation_service
from .connections import Connection, list_connection
from .errors import UserError, check_day_range, user_errors
from .money import Money
from .permissions import OperatorOnly
from .publishing import DefinitionFormat, parse_definition


@strawberry.type(description="How many members a tier holds at the end.")
class TierCount:
    tier: str = strawberry.field(description="Tier code.")
    members: int = strawberry.field(description="Members holding it.")


@strawberry.type(description="How often a task was completed in the range.")
class TaskCount:
    task: str = strawberry.field(description="Task code.")
    completions: int = strawberry.field(description="Completions in the range.")


@strawberry.type(description="What one program definition does to the history.")
class SimulationSide:
    members_per_tier: list[TierCount] = strawberry.field(description="Members per tier at the end, ladder order.")
    upgrades: int = strawberry.field(description="Upgrades within the range.")
    downgrades: int = strawberry.field(description="Downgrades within the range (as if evaluation ran when validity ended).")
    points_issued: int = strawberry.field(description="Points earned within the range (orders, welcome, automatic rewards, quests).")
    outstanding_points: int = strawberry.field(description="Points outstanding at the end.")
    liability: Money = strawberry.field(description="Outstanding points at the live program's point value.")
    task_completions: list[TaskCount] = strawberry.field(description="Task completions within the range.")


@strawberry.type(description="A member whose tier at the end would differ under the draft.")
class TierDifference:
    member_external_id: str = strawberry.field(description="The member's externalId.")
    live_tier: str = strawberry.field(description="Tier at the end under the live program.")
    draft_tier: str = strawberry.field(description="Tier at the end under the draft.")


@strawberry.type(description="A page of members whose tier would change.")
class TierDifferenceConnection(Connection[TierDifference]):
    pass


@strawberry.type(description="The draft replayed over the stored reports, side by side with the live program. Nothing was written.")
class SimulationResult:
    reports_replayed: int = strawberry.field(description="Reports replayed (everything up to the end of the range).")
    live: SimulationSide = strawberry.field(description="The live program's definition over the same history.")
    draft: SimulationSide = strawberry.field(description="The draft's.")
    differences: strawberry.Private[list]

    @strawberry.field(description="Members whose tier at the end would change, by externalId.")
    def changed_members(self, first: Optional[int] = None, after: Optional[str] = None) -> TierDifferenceConnection:
        return list_connection(self.differences, first, after,
                               lambda row: TierDifference(member_external_id=row[0], live_tier=row[1],
                                                          draft_tier=row[2]), TierDifferenceConnection)


def _side(program, definition, outcome) -> SimulationSide:
    return SimulationSide(
        members_per_tier=[TierCount(tier=t.code, members=outcome.members_per_tier.get(t.code, 0))
                          for t in definition.tiers],
        upgrades=outcome.upgrades, downgrades=outcome.downgrades, points_issued=outcome.points_issued,
        outstanding_points=outcome.outstanding_points,
        liability=Money(amount=kpi_service.liability(program, outcome.outstanding_points),
                        currency=program.definition.currency),
        task_completions=[TaskCount(task=code, completions=n) for code, n in sorted(outcome.task_completions.items())])


@strawberry.input(description="A draft definition and the range to replay.")
class SimulateProgramInput:
    definition: str = strawberry.field(description="The draft, in the same schema as the TOML files.")
    format: DefinitionFormat = strawberry.field(default=DefinitionFormat.TOML, description="TOML (default) or JSON.")
    from_: date = strawberry.field(name="from", description="First day counted (program time).")
    to: date = strawberry.field(description="Last day replayed and counted (program time).")


@strawberry.type(description="Result of simulateProgram.")
class SimulateProgramPayload:
    result: Optional[SimulationResult] = strawberry.field(default=None, description="Live and draft side by side.")
    user_errors: list[UserError] = strawberry.field(default_factory=list, description="Problems of the draft, naming their paths.")


@strawberry.type
class SimulationMutations:
    @strawberry.mutation(permission_classes=[OperatorOnly], description=(
        "Replay the stored reports up to `to` against a draft definition and the live one, and report both: "
        "members per tier, upgrades and downgrades, points issued, liability, task completions, and the members "
        "whose tier would change. Read in one transaction that is rolled back: nothing persists. OPERATOR only."))
    async def simulate_program(self, info: Info, input: SimulateProgramInput) -> SimulateProgramPayload:
        context = info.context
        program = await context.program()
        check_day_range(input.from_, input.to)
        try:
            draft = parse_definition(input.definition, input.format)
        except Rejected as rejection:
            return SimulateProgramPayload(user_errors=user_errors(rejection))
        tz = program.definition.zone
        outcome = await simulation_service.simulate(context.db, program, draft, start=midnight(input.from_, tz),
                                                    end=midnight(input.to + timedelta(days=1), tz))
        return SimulateProgramPayload(result=SimulationResult(
            reports_replayed=outcome.reports, live=_side(program, program.definition, outcome.live),
            draft=_side(program, draft, outcome.draft), differences=outcome.changed))
