"""Campaigns: an operator gives an audience a coupon and/or points, once per member.

Launching freezes the audience: one statement writes a recipient row for every member the
audience selects then. Recipients are given their gift in batches; each batch is one transaction
that locks the campaign row, marks its recipients reached and gives them the gift, so whatever
stops a run halfway (a crash, a deploy) leaves every recipient either reached and given, or
neither. Running it again gives only the rest; two runs at once take turns on the campaign's lock.

Launching the same externalId again with the same content is a re-run: members who entered the
audience since are added, and only recipients not yet reached are given anything. The mutation
answers after the first batch (a small audience is then DONE), which a real audience of 100,000
members would not allow in one request; the rest carries on in the background of the serving
process, and the jobs resume any campaign left RUNNING (a crash, a restart).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.errors import Checks, ErrorCode, Rejected
from ..domain.program import ProgramDefinition
from ..events import Broker, Event
from ..store.db import Database, execute_core
from ..store.models import Campaign, CampaignRecipient, Member, Report
from ..store.queries import lock_members
from .activity import insert_once
from .coupons import issue_coupon
from .growth import GrowthTracker, load_states, publish
from .ledger import append_entry
from .programs import ActiveProgram
from .reports import payload_hash
from .tags import Audience, TagIndex, TagSelection, check_audience, count_selected, insert_new, read_tags, selected
from .validation import check_id, check_text
from .webhooks import stage_webhooks

log = logging.getLogger("tierup.campaigns")

RUNNING, DONE = "RUNNING", "DONE"
BATCH = 500  # recipients given per transaction
DEFAULT_CONVERSION_DAYS = 30
MAX_CONVERSION_DAYS = 365
MAX_POINTS = 100_000
NAME_LENGTH = 200


@dataclass(frozen=True)
class Launch:
    external_id: str
    name: str
    audience: Audience
    coupon_template: str | None = None
    points: int | None = None
    conversion_days: int | None = None
    dry_run: bool = False

    @property
    def window_days(self) -> int:
        return self.conversion_days if self.conversion_days is not None else DEFAULT_CONVERSION_DAYS

    def fingerprint(self) -> str:
        """What makes two launches the same campaign (the conversion window as it applies, so leaving
        out the default and sending it are alike)."""
        return payload_hash({"name": self.name, "audience": self.audience.to_json(),
                             "couponTemplate": self.coupon_template, "points": self.points,
                             "conversionDays": self.window_days})


@dataclass(frozen=True)
class Launched:
    campaign_id: int | None  # None for a dry run
    audience_size: int  # members the audience selects now
    duplicate: bool


async def launch_campaign(db: Database, program: ActiveProgram, request: Launch, *, operator: str,
                          now: datetime) -> Launched:
    """Check the launch, then count its audience (dry run) or store the campaign and its recipients.
    The gifts are given by run_campaign."""
    index = await read_tags(db, program)
    _check_launch(program.definition, index, request)
    selection = index.audience_selection(request.audience)
    if request.dry_run:
        async with db.read() as session:
            return Launched(None, (await session.execute(count_selected(program, now, selection))).scalar_one(), False)
    async with db.write() as session:
        campaign_id, duplicate = await _store_campaign(session, program, request, operator=operator, now=now)
        added = await _add_recipients(session, program, campaign_id, selection, now)
        if not duplicate:
            return Launched(campaign_id, added, duplicate=False)
        if added:  # members who entered the audience since: the campaign runs again for them
            await session.execute(update(Campaign).where(Campaign.id == campaign_id)
                                  .values(status=RUNNING, finished_at=None))
        size = (await session.execute(count_selected(program, now, selection))).scalar_one()
    return Launched(campaign_id, size, duplicate=True)


def _check_launch(definition: ProgramDefinition, index: TagIndex, request: Launch) -> None:
    checks = Checks()
    check_id(checks, request.external_id, "input", "externalId")
    check_text(checks, request.name, NAME_LENGTH, "input", "name", required=True)
    check_audience(checks, definition, index, request.audience, "input", "audience")
    if request.coupon_template is None and request.points is None:
        checks.fail(ErrorCode.INVALID, "give a couponTemplate, points or both", "input")
    templates = {template.code for template in definition.coupon_templates}
    if request.coupon_template is not None and request.coupon_template not in templates:
        checks.fail(ErrorCode.NOT_FOUND, f"no coupon template {request.coupon_template[:40]!r} in this program",
                    "input", "couponTemplate")
    if request.points is not None and not 1 <= request.points <= MAX_POINTS:
        checks.fail(ErrorCode.INVALID, f"points must be between 1 and {MAX_POINTS:,}", "input", "points")
    if not 1 <= request.window_days <= MAX_CONVERSION_DAYS:
        checks.fail(ErrorCode.INVALID, f"conversionDays must be between 1 and {MAX_CONVERSION_DAYS}",
                    "input", "conversionDays")
    checks.raise_any()


async def _store_campaign(session: AsyncSession, program: ActiveProgram, request: Launch, *, operator: str,
                          now: datetime) -> tuple[int, bool]:
    """The campaign's id, and whether it had been launched before (then its row is locked, so no
    batch of a run in progress interleaves with adding recipients)."""
    fingerprint = request.fingerprint()
    campaign_id = await insert_once(
        session, Campaign, program_id=program.id, external_id=request.external_id, name=request.name,
        audience=request.audience.to_json(), coupon_template=request.coupon_template, points=request.points,
        status=RUNNING, launched_at=now, converts_until=now + timedelta(days=request.window_days),
        launched_by=operator, payload_hash=fingerprint)
    if campaign_id is not None:
        return campaign_id, False
    existing = (await session.execute(select(Campaign.id, Campaign.payload_hash).where(
        Campaign.program_id == program.id, Campaign.external_id == request.external_id).with_for_update())).one()
    if existing.payload_hash != fingerprint:
        raise Rejected.one(ErrorCode.DUPLICATE, f"externalId {request.external_id!r} was already used for a "
                                                "different campaign", "input", "externalId")
    return existing.id, True


async def _add_recipients(session: AsyncSession, program: ActiveProgram, campaign_id: int, selection: TagSelection,
                          now: datetime) -> int:
    """Members the audience selects now and the campaign does not aim at yet, in one statement."""
    rows = selected(program, now, selection, literal(campaign_id), Member.id)
    statement = insert_new(session, CampaignRecipient, ["campaign_id", "member_id"], rows)
    return (await execute_core(session, statement)).rowcount


# --- giving -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignRun:
    reached: int  # members given the gift by this run
    finished: bool  # False: it stopped after the batches asked for, with recipients left


async def run_campaign(db: Database, program: ActiveProgram, campaign_id: int, *, now: datetime,
                       broker: Broker | None = None, batches: int | None = None) -> CampaignRun:
    """Give unreached recipients their gift, BATCH per transaction, in member order; at most `batches`
    batches (all when None). Events go out after each batch commits."""
    reached, after, done = 0, 0, 0
    while batches is None or done < batches:
        given, after = await _run_batch(db, program, campaign_id, after, at=now, broker=broker)
        reached += given
        done += 1
        if after is None:
            return CampaignRun(reached, finished=True)
    return CampaignRun(reached, finished=False)


async def _run_batch(db: Database, program: ActiveProgram, campaign_id: int, after: int, *, at: datetime,
                     broker: Broker | None) -> tuple[int, int | None]:
    """One batch: (members given, the last member id picked, or None when no recipient is left)."""
    async with db.write() as session:
        # The campaign's lock: batches of two runs, and a re-launch adding recipients, take turns.
        campaign = (await session.execute(select(Campaign).where(Campaign.id == campaign_id)
                                          .with_for_update())).scalar_one()
        picked = await _pick(session, campaign_id, after)
        members = await lock_members(session, program.id, picked.values())
        recipients = [members[picked[i]] for i in sorted(await _claim(session, campaign_id, list(picked), at))]
        events = await _give(session, program, campaign, recipients, at)
        await stage_webhooks(session, program, events, now=at)
        if len(picked) < BATCH:
            await _finish(session, campaign_id, at)
    await publish(broker, events)
    return len(recipients), (max(picked) if len(picked) == BATCH else None)


async def _pick(session: AsyncSession, campaign_id: int, after: int) -> dict[int, str]:
    """The next BATCH unreached recipients after member `after`: member id → external id."""
    return dict((await session.execute(
        select(CampaignRecipient.member_id, Member.external_id).join(Member, Member.id == CampaignRecipient.member_id)
        .where(CampaignRecipient.campaign_id == campaign_id, CampaignRecipient.reached_at.is_(None),
               CampaignRecipient.member_id > after)
        .order_by(CampaignRecipient.member_id).limit(BATCH))).all())


async def _claim(session: AsyncSession, campaign_id: int, member_ids: list[int], at: datetime) -> set[int]:
    """Mark recipients reached in the gift's own transaction, only those nobody marked first: a
    recipient is given exactly when this UPDATE changes their row."""
    if not member_ids:
        return set()
    return set((await execute_core(session, update(CampaignRecipient).where(
        CampaignRecipient.campaign_id == campaign_id, CampaignRecipient.reached_at.is_(None),
        CampaignRecipient.member_id.in_(member_ids)).values(reached_at=at).returning(CampaignRecipient.member_id)
    )).scalars())


async def _give(session: AsyncSession, program: ActiveProgram, campaign: Campaign, members: list[Member],
                at: datetime) -> list[Event]:
    """The gift to each member, under their lock; the events to send once committed."""
    events: list[Event] = []
    if campaign.coupon_template is not None:
        template = program.definition.coupon_template(campaign.coupon_template)
        for member in members:
            await issue_coupon(session, program, member.id, template.code, at, source=f"CAMPAIGN:{campaign.id}",
                               deferred=True)
            events.append(Event(program.id, member.id, "COUPON_RECEIVED",
                                f"Coupon {template.name} received: {campaign.name}", at))
    if campaign.points and members:
        # Points earned like any others: tasks and quests that count them move, and say so.
        growth = GrowthTracker(session, program, await load_states(session, program, [m.id for m in members]))
        for member in members:
            before = await growth.watch(member, at)
            await append_entry(session, program, member.id, "EARN", campaign.points, f"Campaign {campaign.name}",
                               source="CAMPAIGN", occurred_at=at, balance=before.balance)
        await growth.settle(at)
        events += growth.events
    return events


async def _finish(session: AsyncSession, campaign_id: int, at: datetime) -> None:
    """DONE once no recipient is left unreached (a re-run may have just added some)."""
    unreached = select(CampaignRecipient.id).where(CampaignRecipient.campaign_id == campaign_id,
                                                   CampaignRecipient.reached_at.is_(None)).exists()
    await session.execute(update(Campaign).where(Campaign.id == campaign_id, Campaign.status == RUNNING, ~unreached)
                          .values(status=DONE, finished_at=at))


# Runs this process carries on in the background, by campaign id (kept referenced until they end).
_background: dict[int, asyncio.Task] = {}


def continue_in_background(db: Database, program: ActiveProgram, campaign_id: int, *, now: datetime,
                           broker: Broker | None = None) -> None:
    """Carry a run on in the background of this process, once per campaign: the mutation answers
    after the first batch. Should the process stop, the jobs resume it."""
    if campaign_id in _background:
        return
    task = asyncio.create_task(_carry_on(db, program, campaign_id, now, broker), name=f"tierup-campaign-{campaign_id}")
    _background[campaign_id] = task
    task.add_done_callback(lambda _: _background.pop(campaign_id, None))


async def _carry_on(db: Database, program: ActiveProgram, campaign_id: int, now: datetime,
                    broker: Broker | None) -> None:
    try:
        await run_campaign(db, program, campaign_id, now=now, broker=broker)
    except Exception:  # nothing of the failed batch was given; the jobs carry on from there
        log.exception("campaign %s stopped; the jobs will resume it", campaign_id)


async def background_runs_done() -> None:
    """Wait for this process's background runs (tests; a server shutting down cleanly)."""
    while _background:
        await asyncio.gather(*list(_background.values()), return_exceptions=True)


async def resume_campaigns(db: Database, program: ActiveProgram, *, as_of: datetime,
                           broker: Broker | None = None) -> int:
    """The jobs: carry every RUNNING campaign of the program to its end (a run a crash or a restart
    stopped); returns the members reached. A run this process has in the background is left to it.
    One campaign failing (its coupon template gone from a later version) does not stop the others."""
    async with db.read() as session:
        running = (await session.execute(select(Campaign.id).where(
            Campaign.program_id == program.id, Campaign.status == RUNNING).order_by(Campaign.id))).scalars().all()
    reached = 0
    for campaign_id in running:
        if campaign_id in _background:
            continue
        try:
            reached += (await run_campaign(db, program, campaign_id, now=as_of, broker=broker)).reached
        except Exception:
            log.exception("campaign %s could not be resumed", campaign_id)
    return reached


# --- reading ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignView:
    row: Campaign
    audience_size: int  # members the campaign aims at
    reached: int  # of those, given the gift
    converted: int  # of those, who ordered between being reached and the end of the conversion window


async def campaign_views(db: Database, program: ActiveProgram, campaign_ids: list[int]) -> dict[int, CampaignView]:
    async with db.read() as session:
        rows = (await session.execute(select(Campaign).where(Campaign.program_id == program.id,
                                                             Campaign.id.in_(campaign_ids)))).scalars().all()
        return await _with_figures(session, rows)


async def campaign_page(db: Database, program: ActiveProgram, *, first: int,
                        after: int | None) -> tuple[list[CampaignView], bool, int]:
    """Newest first: (the page, whether more follow, how many the program has)."""
    mine = Campaign.program_id == program.id
    query = select(Campaign).where(mine) if after is None else select(Campaign).where(mine, Campaign.id < after)
    async with db.read() as session:
        total = (await session.execute(select(func.count()).where(mine))).scalar_one()
        rows = (await session.execute(query.order_by(Campaign.id.desc()).limit(first + 1))).scalars().all()
        views = await _with_figures(session, rows[:first])
    return [views[row.id] for row in rows[:first]], len(rows) > first, total


async def _with_figures(session: AsyncSession, rows) -> dict[int, CampaignView]:
    """Audience, reached and converted of each campaign, in one statement."""
    recipient = CampaignRecipient
    ordered = select(Report.id).where(Report.member_id == recipient.member_id, Report.kind == "ORDER",
                                      Report.occurred_at >= recipient.reached_at,
                                      Report.occurred_at < Campaign.converts_until).exists()
    figures = {campaign_id: (int(size), int(reached), int(converted or 0)) for campaign_id, size, reached, converted
               in await session.execute(
                   select(recipient.campaign_id, func.count(), func.count(recipient.reached_at),
                          func.sum(case((ordered, 1), else_=0)))
                   .join(Campaign, Campaign.id == recipient.campaign_id)
                   .where(recipient.campaign_id.in_([row.id for row in rows])).group_by(recipient.campaign_id))}
    return {row.id: CampaignView(row, *figures.get(row.id, (0, 0, 0))) for row in rows}
