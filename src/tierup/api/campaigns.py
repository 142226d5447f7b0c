"""Campaigns: launchCampaign and what each campaign reached and converted. OPERATOR only."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Iterable, Optional

import strawberry
from strawberry import relay
from strawberry.types import Info

from ..auth import Role
from ..domain.errors import Rejected
from ..services import campaigns as campaign_service
from ..services.campaigns import CampaignView
from ..services.programs import ActiveProgram
from ..services.tags import Audience
from .connections import Connection, connection, page_args
from .errors import UserError, user_errors
from .loaders import Page
from .nodes import row_ids
from .permissions import OperatorOnly
from .tags import AudienceInput


@strawberry.enum(description="Where a campaign's run is.")
class CampaignStatus(Enum):
    RUNNING = strawberry.enum_value("RUNNING", description="Members of its audience are still being given the gift.")
    DONE = strawberry.enum_value("DONE", description="Everyone in its audience has been given the gift.")


@strawberry.type(description="A gift (a coupon and/or points) to an audience, once per member.")
class Campaign(relay.Node):
    campaign_id: relay.NodeID[int] = strawberry.field(description="Internal id.")
    external_id: str = strawberry.field(description="The launch's idempotency key.")
    name: str = strawberry.field(description="Display name.")
    status: CampaignStatus = strawberry.field(description="RUNNING while members are being given the gift, then DONE.")
    launched_at: datetime = strawberry.field(description="When it was first launched.")
    audience: str = strawberry.field(description="The audience, in words.")
    coupon_template: Optional[str] = strawberry.field(description="The coupon template code given, if any.")
    points: Optional[int] = strawberry.field(description="The points given, if any.")
    converts_until: datetime = strawberry.field(description="Orders before this (launch + conversionDays) count as "
                                                            "conversions.")
    audience_size: int = strawberry.field(description="Members the campaign is aimed at: its audience at launch, "
                                                      "and those a re-launch added.")
    reached: int = strawberry.field(description="Members who received what the campaign gives.")
    converted: int = strawberry.field(description="Reached members who ordered within the conversion window after "
                                                  "launch (after they were reached, before convertsUntil).")

    @classmethod
    def of(cls, context, program: ActiveProgram, view: CampaignView) -> "Campaign":
        row = view.row
        status = CampaignStatus(row.status)
        return cls(campaign_id=row.id, external_id=row.external_id, name=row.name, status=status,
                   launched_at=context.local_time(row.launched_at),
                   audience=Audience.from_json(row.audience).describe(program.definition),
                   coupon_template=row.coupon_template, points=row.points,
                   converts_until=context.local_time(row.converts_until), audience_size=view.audience_size,
                   reached=view.reached, converted=view.converted)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        context = info.context
        context.require(Role.OPERATOR)
        program = await context.program()
        ids = row_ids(node_ids, "Campaign")
        views = await campaign_service.campaign_views(context.db, program, [i for i in ids if i is not None])
        return [cls.of(context, program, views[i]) if i in views else None for i in ids]


@strawberry.type(description="A page of campaigns, newest first.")
class CampaignConnection(Connection[Campaign]):
    pass


async def program_campaigns(context, first: Optional[int], after: Optional[str]) -> CampaignConnection:
    size, after_id = page_args(first, after)
    program = await context.program()
    views, has_next, total = await campaign_service.campaign_page(context.db, program, first=size, after=after_id)
    page = Page([view.row for view in views], has_next, total)
    by_id = {view.row.id: view for view in views}
    return connection(page, lambda row: Campaign.of(context, program, by_id[row.id]), after_id, CampaignConnection)


@strawberry.input(description="A campaign to launch: an audience and what each of its members is given, once.")
class LaunchCampaignInput:
    external_id: str = strawberry.field(description="Idempotency key: launching it again with the same content "
                                                    "gives only members not reached yet.")
    name: str = strawberry.field(description="Display name; also the reason on the points ledger.")
    audience: AudienceInput = strawberry.field(description="Who is given the gift.")
    coupon_template: Optional[str] = strawberry.field(default=None, description="Coupon template code.")
    points: Optional[int] = strawberry.field(default=None, description="Points each member is given, 1–100,000.")
    conversion_days: Optional[int] = strawberry.field(
        default=None, description="Orders this many days after launch count as conversions (default 30, at most 365).")
    dry_run: Optional[bool] = strawberry.field(default=False, description="Only count the audience; nothing is stored.")


@strawberry.type(description="Result of launchCampaign.")
class LaunchCampaignPayload:
    campaign: Optional[Campaign] = strawberry.field(default=None, description="The campaign; null for a dry run.")
    audience_size: int = strawberry.field(default=0, description="Members the audience selects now.")
    duplicate: bool = strawberry.field(default=False, description="True when this externalId was launched before: "
                                                                  "only members not reached yet were given anything.")
    user_errors: list[UserError] = strawberry.field(default_factory=list, description="Why nothing was done, if so.")


@strawberry.type
class CampaignMutations:
    @strawberry.mutation(permission_classes=[OperatorOnly], description=(
        "Give an audience a coupon and/or points, once per member; idempotent on externalId. dryRun only counts. "
        "Answers after the first batch of members; a larger audience carries on in the background (status "
        "RUNNING). OPERATOR only."))
    async def launch_campaign(self, info: Info, input: LaunchCampaignInput) -> LaunchCampaignPayload:
        context = info.context
        program = await context.program()
        request = campaign_service.Launch(
            external_id=input.external_id, name=input.name, audience=input.audience.audience(),
            coupon_template=input.coupon_template, points=input.points, conversion_days=input.conversion_days,
            dry_run=bool(input.dry_run))
        try:
            launched = await campaign_service.launch_campaign(context.db, program, request,
                                                              operator=context.principal.sub, now=context.now)
        except Rejected as rejection:
            return LaunchCampaignPayload(user_errors=user_errors(rejection))
        if launched.campaign_id is None:
            return LaunchCampaignPayload(audience_size=launched.audience_size)
        campaign_id = launched.campaign_id
        first = await campaign_service.run_campaign(context.db, program, campaign_id, now=context.now,
                                                    broker=context.broker, batches=1)
        context.reset_loaders()
        view = (await campaign_service.campaign_views(context.db, program, [campaign_id]))[campaign_id]
        if not first.finished:  # the answer shows the first batch; the rest follows
            campaign_service.continue_in_background(context.db, program, campaign_id, now=context.now,
                                                    broker=context.broker)
        return LaunchCampaignPayload(campaign=Campaign.of(context, program, view),
                                     audience_size=launched.audience_size, duplicate=launched.duplicate)
