"""Coupons (优惠券): templates, validity in program time, discounts and who may use what."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from zoneinfo import ZoneInfo

from .activity import midnight
from .clock import local_date
from .program import CouponTemplateRule

THRESHOLD_REDUCTION, PERCENT_OFF, FREE_SHIPPING = "THRESHOLD_REDUCTION", "PERCENT_OFF", "FREE_SHIPPING"
COUPON_KINDS = (THRESHOLD_REDUCTION, PERCENT_OFF, FREE_SHIPPING)
END_OF_DAY = timedelta(seconds=1)


def validity(template: CouponTemplateRule, issued_at: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """(valid from, valid until): a coupon lasts to the end of its last day in program time."""
    if template.valid_days is not None:
        last_day = local_date(issued_at, tz) + timedelta(days=template.valid_days)
        return issued_at, midnight(last_day + timedelta(days=1), tz) - END_OF_DAY
    start = max(issued_at, midnight(template.valid_from, tz))
    return start, midnight(template.valid_until + timedelta(days=1), tz) - END_OF_DAY


def discount_fen(template: CouponTemplateRule, amount_fen: int) -> int:
    """What the coupon takes off an order of `amount_fen` (before discount); 0 below its minimum spend."""
    if template.min_spend_fen is not None and amount_fen < template.min_spend_fen:
        return 0
    if template.kind == THRESHOLD_REDUCTION:
        return min(int(template.value * 100), amount_fen)
    if template.kind == PERCENT_OFF:
        off = Decimal(amount_fen) * (Decimal(100) - template.value) / 100
        return int(off.to_integral_value(rounding=ROUND_FLOOR))
    return 0


def amount_before(template: CouponTemplateRule, paid_fen: int) -> int:
    """The order's amount before this coupon, from what was paid (reports carry the paid amount)."""
    if template.kind == THRESHOLD_REDUCTION:
        return paid_fen + int(template.value * 100)
    if template.kind == PERCENT_OFF:
        before = Decimal(paid_fen) * 100 / template.value
        return int(before.to_integral_value(rounding=ROUND_FLOOR))
    return paid_fen


# A coupon is still usable at its valid_until instant and expired from the next one.
EXPIRED_AFTER = timedelta(microseconds=1)


def coupon_status(stored: str, valid_until: datetime, at: datetime) -> str:
    """ISSUED coupons past their last day read as EXPIRED."""
    return "EXPIRED" if stored == "ISSUED" and at > valid_until else stored
