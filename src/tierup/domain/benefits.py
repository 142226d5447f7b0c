"""The benefit catalogue (权益): eligibility by tier, quotas per period, windows and early access."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from .activity import midnight
from .clock import local_date
from .program import BenefitRule

PERIODS = ("day", "week", "month", "quarter", "year", "lifetime")


def benefit_period(period: str, at: datetime, tz: ZoneInfo) -> tuple[str, datetime | None]:
    """(key, end) of the quota period containing `at`, in program time; lifetime has no end."""
    day = local_date(at, tz)
    if period == "lifetime":
        return "", None
    if period == "day":
        return day.isoformat(), midnight(day + timedelta(days=1), tz)
    if period == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02}", midnight(day - timedelta(days=day.weekday()) + timedelta(days=7), tz)
    if period == "month":
        following = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
        return f"{day.year}-{day.month:02}", midnight(following, tz)
    if period == "quarter":
        quarter = (day.month - 1) // 3
        following = date(day.year + (quarter == 3), (quarter * 3 + 3) % 12 + 1, 1)
        return f"{day.year}-Q{quarter + 1}", midnight(following, tz)
    return str(day.year), midnight(date(day.year + 1, 1, 1), tz)


def available_from(benefit: BenefitRule, tier_code: str, tz: ZoneInfo) -> datetime | None:
    """When the window opens for this tier: early access opens it N days sooner for the tiers named."""
    if benefit.starts is None:
        return None
    opens = benefit.starts - timedelta(days=benefit.early_days) if tier_code in benefit.early_tiers else benefit.starts
    return midnight(opens, tz)


def window_end(benefit: BenefitRule, tz: ZoneInfo) -> datetime | None:
    return midnight(benefit.ends + timedelta(days=1), tz) if benefit.ends is not None else None


@dataclass(frozen=True)
class BenefitStanding:
    """Where one member stands with one benefit at one moment; `refusal` is why they cannot claim now."""

    benefit: BenefitRule
    remaining: int | None
    period_ends_at: datetime | None
    available_from: datetime | None
    refusal: tuple[str, str] | None  # (UserErrorCode, message)

    @property
    def can_claim(self) -> bool:
        return self.refusal is None


def standing(benefit: BenefitRule, *, tier_code: str, held: bool, birthday: date | None,
             claims_in_period: int, at: datetime, tz: ZoneInfo) -> BenefitStanding:
    """`held`: the member holds the benefit (through the tier, or a paid membership's plan)."""
    _, period_end = benefit_period(benefit.period, at, tz)
    remaining = None if benefit.quota is None else max(benefit.quota - claims_in_period, 0)
    opens = available_from(benefit, tier_code, tz)
    closes = window_end(benefit, tz)
    refusal = None
    if not held:
        refusal = ("NOT_ELIGIBLE", f"{benefit.name} is not a benefit of the member's tier")
    elif opens is not None and at < opens:
        refusal = ("NOT_ELIGIBLE", f"{benefit.name} opens at {opens.astimezone(tz).isoformat()}")
    elif closes is not None and at >= closes:
        refusal = ("EXPIRED", f"{benefit.name} ended at {closes.astimezone(tz).isoformat()}")
    elif benefit.birthday_month and (birthday is None or birthday.month != local_date(at, tz).month):
        refusal = ("NOT_ELIGIBLE", f"{benefit.name} can be claimed in the member's birthday month")
    elif remaining == 0:
        refusal = ("LIMIT_REACHED", f"{benefit.name} was already claimed {benefit.quota}× this {benefit.period}")
    return BenefitStanding(benefit, remaining, period_end, opens, refusal)



def unlocked_by(definition, old_tier: str, new_tier: str) -> list[str]:
    """Names of the benefits a move from one tier to another opens (BENEFIT_UNLOCKED)."""
    return [b.name for b in definition.benefits if new_tier in b.tiers and old_tier not in b.tiers]
