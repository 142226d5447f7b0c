"""Tables. Reports and ledger entries are append-only; members carry derived state (tier)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .types import UtcDateTime

ID_LENGTH = 200


class Base(DeclarativeBase):
    pass


class Program(Base):
    __tablename__ = "programs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    current_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Goes up whenever the program's webhook endpoints change (created, deleted, disabled, enabled). Read with
    # the version on every request, it tells each process when the endpoints it keeps in memory are outdated;
    # 0 means the program never had one, so its events cost no statement to check.
    webhooks_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ProgramVersion(Base):
    """Each publication of a program definition; reports record the version they were applied under."""

    __tablename__ = "program_versions"
    __table_args__ = (UniqueConstraint("program_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[str] = mapped_column(Text)  # the validated document, as JSON
    published_at: Mapped[datetime] = mapped_column(UtcDateTime)
    published_by: Mapped[str] = mapped_column(String(ID_LENGTH))


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (
        UniqueConstraint("program_id", "external_id"),
        Index("ix_members_program_tier", "program_id", "tier_code"),
        Index("ix_members_tier_valid_until", "program_id", "tier_valid_until"),
        Index("ix_members_membership_until", "program_id", "membership_until"),
        # A member's state counts the first orders of the members they referred (growth.load_states).
        Index("ix_members_referred_by", "referred_by_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    external_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    display_name: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    birthday: Mapped[date | None] = mapped_column(Date)
    phone: Mapped[str | None] = mapped_column(String(40))
    referral_code: Mapped[str] = mapped_column(String(16), unique=True)
    referred_by_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    joined_at: Mapped[datetime] = mapped_column(UtcDateTime)
    tier_code: Mapped[str] = mapped_column(String(40))
    tier_since: Mapped[datetime] = mapped_column(UtcDateTime)
    tier_valid_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The current qualification period began after this instant: the member's latest tier
    # evaluation. None until the first one: the period then runs from enrolment.
    qualification_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    growth_value: Mapped[int] = mapped_column(Integer, default=0)
    # Goes up by one in every write transaction that changes anything of the member's (see
    # store.db.member_changed): answers kept about the member carry the version they were read at.
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    enrolled_via: Mapped[str] = mapped_column(String(16), default="ONLINE", server_default="ONLINE")
    # The paid membership (PLUS) held or last held: its plan and the run of continuous membership.
    membership_plan: Mapped[str | None] = mapped_column(String(40))
    membership_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    membership_until: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Report(Base):
    """What the shop reported, stored as received. The UNIQUE key makes a repeat a no-op.

    kind: ENROLMENT, ORDER, REFUND, ADJUSTMENT, REVIEW, CHECK_IN, COUPON_GRANT, CUSTOMER_COUNT, TOP_UP,
    VALUE_ADJUSTMENT, MEMBERSHIP. amount_fen is money (orders, refunds, top-ups, plans bought); points is
    what the report moved by itself: an adjustment's signed amount, the points an order was paid with;
    order_id ties a refund (or a review) to its order.
    """

    __tablename__ = "reports"
    __table_args__ = (
        UniqueConstraint("program_id", "kind", "external_id", name="uq_reports_program_kind_external_id"),
        Index("ix_reports_member_kind_occurred", "member_id", "kind", "occurred_at"),
        Index("ix_reports_order", "order_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    program_version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id"))
    amount_fen: Mapped[int | None] = mapped_column(BigInteger)
    points: Mapped[int | None] = mapped_column(Integer)
    with_photos: Mapped[bool | None] = mapped_column(Boolean)
    quantity: Mapped[int | None] = mapped_column(BigInteger)  # CUSTOMER_COUNT: the shop's customers
    channel: Mapped[str] = mapped_column(String(16), default="ONLINE", server_default="ONLINE")
    store_code: Mapped[str | None] = mapped_column(String(40))  # STORE reports: the program's store
    lines: Mapped[str | None] = mapped_column(Text)  # ORDER reports that name them: [[sku, unit fen, quantity, categories]]
    reference: Mapped[str | None] = mapped_column(String(40))  # what else it names: a MEMBERSHIP's plan code
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    payload_hash: Mapped[str] = mapped_column(String(64))


class PointsEntry(Base):
    """One change of a member's points. The balance is the sum of these, never a stored number."""

    __tablename__ = "points_entries"
    __table_args__ = (
        Index("ix_points_entries_member", "member_id", "id"),
        Index("ix_points_entries_member_kind_occurred", "member_id", "kind", "occurred_at"),
        Index("ix_points_entries_report", "report_id"),
        # The expiry job finds the lots due in its range of time by it, not by a scan of the whole ledger.
        Index("ix_points_entries_expiring", "program_id", "expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    kind: Mapped[str] = mapped_column(String(10))  # EARN SPEND EXPIRE REVERSE ADJUST RETURN
    # What caused it: WELCOME ORDER REFUND ADJUSTMENT TASK QUEST. Quests count EARN entries but not their own.
    source: Mapped[str] = mapped_column(String(20))
    amount: Mapped[int] = mapped_column(Integer)
    balance_after: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(300))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    report_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id"))
    # A reversal that found the points already spent takes what is there and records the rest here.
    shortfall: Mapped[int] = mapped_column(Integer, default=0)


class TierChange(Base):
    """Every upgrade, downgrade and renewal, for history and notifications."""

    __tablename__ = "tier_changes"
    __table_args__ = (Index("ix_tier_changes_member", "member_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    from_tier: Mapped[str | None] = mapped_column(String(40))
    to_tier: Mapped[str] = mapped_column(String(40))
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    valid_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    reason: Mapped[str] = mapped_column(String(40))  # ENROLMENT, ORDER, EVALUATION
    report_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id"))


class TaskCompletion(Base):
    """A task done by a member in one period ('' for one-off tasks). The UNIQUE key makes
    completing twice impossible, even when two reports race."""

    __tablename__ = "task_completions"
    __table_args__ = (UniqueConstraint("member_id", "task_code", "period_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    task_code: Mapped[str] = mapped_column(String(40))
    period_key: Mapped[str] = mapped_column(String(12))
    completed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # when the reward was delivered
    points: Mapped[int] = mapped_column(Integer, default=0)
    growth_value: Mapped[int] = mapped_column(Integer, default=0)


class QuestPass(Base):
    __tablename__ = "quest_passes"
    __table_args__ = (UniqueConstraint("member_id", "quest_code", "level"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    quest_code: Mapped[str] = mapped_column(String(40))
    level: Mapped[int] = mapped_column(Integer)
    passed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    points: Mapped[int] = mapped_column(Integer, default=0)
    growth_value: Mapped[int] = mapped_column(Integer, default=0)


class MemberBadge(Base):
    __tablename__ = "member_badges"
    __table_args__ = (UniqueConstraint("member_id", "code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    earned_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Coupon(Base):
    """A coupon issued to a member. EXPIRED is not stored: an ISSUED coupon past valid_until reads so."""

    __tablename__ = "coupons"
    __table_args__ = (Index("ix_coupons_member_status", "member_id", "status", "valid_until"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    template_code: Mapped[str] = mapped_column(String(40))
    code: Mapped[str] = mapped_column(String(24), unique=True)
    status: Mapped[str] = mapped_column(String(10))  # ISSUED USED VOID
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    valid_from: Mapped[datetime] = mapped_column(UtcDateTime)
    valid_until: Mapped[datetime] = mapped_column(UtcDateTime)
    # ENROLMENT BENEFIT TASK QUEST REDEMPTION, or OPERATOR:<report id> for a hand-issued one
    source: Mapped[str] = mapped_column(String(40))
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id"))


class BenefitClaim(Base):
    """One use of a benefit by a member, in the quota period it counts against."""

    __tablename__ = "benefit_claims"
    __table_args__ = (Index("ix_benefit_claims_member", "member_id", "benefit_code", "period_key"),
                      Index("ix_benefit_claims_program", "program_id", "benefit_code"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    benefit_code: Mapped[str] = mapped_column(String(40))
    period_key: Mapped[str] = mapped_column(String(12))
    claimed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    coupon_id: Mapped[int | None] = mapped_column(ForeignKey("coupons.id"))


class LotDraw(Base):
    """Which earned lot a spend, expiry, reversal or deduction took its points from."""

    __tablename__ = "lot_draws"
    __table_args__ = (Index("ix_lot_draws_member", "member_id"), Index("ix_lot_draws_lot", "lot_entry_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    entry_id: Mapped[int] = mapped_column(ForeignKey("points_entries.id"))  # the negative entry
    lot_entry_id: Mapped[int] = mapped_column(ForeignKey("points_entries.id"))  # the positive entry drawn from
    amount: Mapped[int] = mapped_column(Integer)


class RewardStock(Base):
    """Stock left of a points-mall item with limited stock; decremented by a conditional UPDATE."""

    __tablename__ = "reward_stock"
    __table_args__ = (UniqueConstraint("program_id", "reward_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    reward_code: Mapped[str] = mapped_column(String(40))
    remaining: Mapped[int] = mapped_column(Integer)


class Redemption(Base):
    """A member's redemption in the points mall."""

    __tablename__ = "redemptions"
    __table_args__ = (Index("ix_redemptions_member", "member_id", "reward_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    reward_code: Mapped[str] = mapped_column(String(40))
    quantity: Mapped[int] = mapped_column(Integer)
    points: Mapped[int] = mapped_column(Integer)
    entry_id: Mapped[int] = mapped_column(ForeignKey("points_entries.id"))
    redeemed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Notification(Base):
    """A reminder sent once: (member, kind, key) is unique, so a job run twice reminds once."""

    __tablename__ = "notifications"
    __table_args__ = (UniqueConstraint("member_id", "kind", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    kind: Mapped[str] = mapped_column(String(20))  # POINTS_EXPIRING TIER_EXPIRING
    key: Mapped[str] = mapped_column(String(40))
    sent_at: Mapped[datetime] = mapped_column(UtcDateTime)


class RfmScore(Base):
    """The latest RFM refresh of a program: one row per member, replaced as a whole by each refresh."""

    __tablename__ = "rfm_scores"
    __table_args__ = (UniqueConstraint("member_id"), Index("ix_rfm_scores_program_segment", "program_id", "segment"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    as_of: Mapped[datetime] = mapped_column(UtcDateTime)
    last_order_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    frequency: Mapped[int] = mapped_column(Integer)  # orders in the past 12 months
    monetary_fen: Mapped[int] = mapped_column(BigInteger)  # net spend in the past 12 months
    r: Mapped[int] = mapped_column(Integer)
    f: Mapped[int] = mapped_column(Integer)
    m: Mapped[int] = mapped_column(Integer)
    segment: Mapped[str] = mapped_column(String(40))


class StoredValueEntry(Base):
    """One change of a member's stored value (储值), in fen. The balance is the sum of these."""

    __tablename__ = "stored_value_entries"
    __table_args__ = (Index("ix_stored_value_entries_member", "member_id", "id"),
                      Index("ix_stored_value_entries_report", "report_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    kind: Mapped[str] = mapped_column(String(10))  # TOP_UP BONUS SPEND REFUND ADJUST
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    balance_after_fen: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(300))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    report_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id"))


class MemberTag(Base):
    """A tag (标签) of a program. A MANUAL tag is on the members operators put it on (TagAssignment);
    a RULE tag keeps its audience (JSON) and never a member list: who holds it is found when read."""

    __tablename__ = "member_tags"
    __table_args__ = (UniqueConstraint("program_id", "code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(10))  # MANUAL RULE
    rule: Mapped[str | None] = mapped_column(Text)  # RULE tags: the audience, as JSON
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class TagAssignment(Base):
    """A MANUAL tag on a member: (tag, member) is unique, so tagging twice changes nothing."""

    __tablename__ = "tag_assignments"
    __table_args__ = (UniqueConstraint("tag_id", "member_id"), Index("ix_tag_assignments_member", "member_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("member_tags.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    tagged_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Campaign(Base):
    """An operator's gift (a coupon and/or points) to an audience, once per member; idempotent on
    external_id, the request's content fingerprinted in payload_hash like a report's."""

    __tablename__ = "campaigns"
    __table_args__ = (UniqueConstraint("program_id", "external_id"),
                      Index("ix_campaigns_program_status", "program_id", "status"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    external_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    name: Mapped[str] = mapped_column(String(200))
    audience: Mapped[str] = mapped_column(Text)  # as JSON, the names AudienceInput gives them
    coupon_template: Mapped[str | None] = mapped_column(String(40))
    points: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(10))  # RUNNING DONE
    launched_at: Mapped[datetime] = mapped_column(UtcDateTime)
    converts_until: Mapped[datetime] = mapped_column(UtcDateTime)  # orders before this count as conversions
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    launched_by: Mapped[str] = mapped_column(String(ID_LENGTH))
    payload_hash: Mapped[str] = mapped_column(String(64))


class CampaignRecipient(Base):
    """A member a campaign is aimed at. reached_at is set in the transaction that gives the gift, and
    (campaign, member) is unique: nobody is given twice, whatever crashes or runs at the same time."""

    __tablename__ = "campaign_recipients"
    __table_args__ = (UniqueConstraint("campaign_id", "member_id"), Index("ix_campaign_recipients_member", "member_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    reached_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class WebhookEndpoint(Base):
    """A shop's URL that receives the member events it chose, signed with its secret (Standard Webhooks).

    Never deleted: deleteWebhook sets deleted_at, so deliveries already written keep their endpoint.
    events: the MemberEventKind names it receives, comma-separated. failing_since: the first failed attempt
    since the last success; a day of failures disables it (active false, disabled_at and disabled_reason).
    """

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_program", "program_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(100))  # whsec_ and the key in base64: needed to sign every message
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(ID_LENGTH))
    failing_since: Mapped[datetime | None] = mapped_column(UtcDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    disabled_reason: Mapped[str | None] = mapped_column(String(500))
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class WebhookDelivery(Base):
    """The outbox: one event for one endpoint, written in the transaction of the event, sent after commit.

    message_id is the webhook-id header, the same on every attempt. payload is the body exactly as sent.
    status: PENDING (next_attempt_at says when; a claimed row is leased by moving it ahead), DELIVERED,
    FAILED (a day of attempts failed), CANCELLED (its endpoint was deleted or disabled first). A new row is
    due at once: its next_attempt_at is the epoch, whatever clock the use case that wrote it ran on.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
                      Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
                      Index("ix_webhook_deliveries_finished", "finished_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"))
    message_id: Mapped[str] = mapped_column(String(40), unique=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(10))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    first_attempted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # delivered, failed or cancelled


class WebhookAttempt(Base):
    """One try at sending a delivery: the HTTP status the endpoint answered, or why there was none."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery", "delivery_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id"))
    attempted_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(300))
    duration_ms: Mapped[int] = mapped_column(Integer)
