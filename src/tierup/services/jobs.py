"""Scheduled jobs: points expiry, tier evaluation, RFM scores, paid-membership reminders, birthday gifts,
campaigns left running, webhook deliveries due and those finished long ago, for every program, from cron or
inside `tierup serve`.

Each job is safe to run twice for the same time and from several servers at once: the work is
found afresh under each member's lock, and reminders are keyed UNIQUE.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Awaitable, Callable, TypeVar

from ..events import Broker
from ..observability import JOB_FAILURES, JOB_SECONDS
from ..store.db import Database
from .analytics import refresh_rfm
from .benefits import give_birthday_benefits
from .campaigns import resume_campaigns
from .expiry import ExpiryRun, expire_points
from .memberships import remind_memberships
from .programs import active_program, program_codes
from .tiers import Evaluation, evaluate_tiers
from .webhooks import DeliveryRun, deliver_due, prune_deliveries

log = logging.getLogger("tierup.jobs")
T = TypeVar("T")


@dataclass(frozen=True)
class JobRun:
    program: str
    expiry: ExpiryRun
    evaluation: Evaluation
    rfm_scored: int
    membership_reminders: int  # events sent
    birthday_gifts: int  # birthday benefits claimed for members
    campaign_members_reached: int  # by campaigns a stop had left running
    webhooks: DeliveryRun
    deliveries_removed: int  # finished before the retention period


async def run_jobs(db: Database, *, as_of: datetime, deliveries_kept_days: int, private_targets: bool,
                   broker: Broker | None = None, program: str | None = None) -> list[JobRun]:
    """`deliveries_kept_days`: how long finished webhook deliveries are kept (TIERUP_WEBHOOK_RETENTION_DAYS);
    `private_targets`: whether they may go to private addresses (Settings.webhooks_reach_private)."""
    runs = []
    for code in [program] if program else await program_codes(db):
        active = await active_program(db, code)
        if active is None:
            raise ValueError(f"no program {code!r}")
        expiry = await _measured("expire-points", expire_points(db, active, as_of=as_of, broker=broker))
        evaluation = await _measured("evaluate-tiers", evaluate_tiers(db, active, as_of=as_of, broker=broker))
        scored = await _measured("refresh-rfm", refresh_rfm(db, active, as_of=as_of))
        reminders = await _measured("remind-memberships", remind_memberships(db, active, as_of=as_of, broker=broker))
        gifts = await _measured("birthdays", give_birthday_benefits(db, active, as_of=as_of, broker=broker))
        reached = await _measured("resume-campaigns", resume_campaigns(db, active, as_of=as_of, broker=broker))
        # Last, so that what the jobs above announced goes out in this run.
        webhooks = await _measured("deliver-webhooks", deliver_due(db, now=as_of, private_targets=private_targets,
                                                                         program_id=active.id))
        removed = await _measured("prune-webhook-deliveries", prune_deliveries(
            db, before=as_of - timedelta(days=deliveries_kept_days), program_id=active.id))
        runs.append(JobRun(code, expiry, evaluation, scored, reminders, gifts, reached, webhooks, removed))
    return runs


async def _measured(job: str, run: Awaitable[T]) -> T:
    """A job's run in tierup_job_duration_seconds, labelled with the job, and in tierup_job_failures_total if it raises."""
    with JOB_SECONDS.labels(job=job).time(), JOB_FAILURES.labels(job=job).count_exceptions():
        return await run


async def run_periodically(db: Database, broker: Broker, interval: int, clock: Callable[[], datetime], *,
                           deliveries_kept_days: int, private_targets: bool) -> None:
    """Inside `tierup serve` when TIERUP_JOBS_INTERVAL is set: run the jobs every `interval` seconds."""
    while True:
        try:
            for run in await run_jobs(db, as_of=clock(), deliveries_kept_days=deliveries_kept_days,
                                      private_targets=private_targets, broker=broker):
                if run.expiry.points_expired or run.evaluation.evaluated:
                    log.info("jobs for %s: %s points of %s members expired; %s tiers evaluated", run.program,
                             run.expiry.points_expired, run.expiry.members_affected, run.evaluation.evaluated)
        except Exception:  # a failed run is logged and tried again next interval
            log.exception("scheduled jobs failed")
        await asyncio.sleep(interval)
