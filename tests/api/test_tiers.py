"""Tier validity and re-evaluation (升降级), and rolling windows counted in program time."""

import pytest
from datetime import datetime, timezone

from documents import EVALUATE_TIERS
from helpers import publish_classic_ladder_only, enroll, member_view, order, refund, row_counts


@pytest.fixture
async def program(db, clock):
    """These rules are the ladder's and the ledger's: the growth tree stays out of the figures."""
    return await publish_classic_ladder_only(db, clock())



async def test_evaluation_keeps_renews_or_moves_members_down(api, db, clock):
    """Judged on the qualification period: from enrolment up to this first evaluation, rolling windows ending at it."""
    clock.now = datetime(2026, 3, 2, tzinfo=timezone.utc)
    for name in ("alice", "bob", "carol", "dave", "erin"):
        await enroll(api, name, joinedAt="2025-01-01T10:00:00+08:00")
    assert (await order(api, "A-1", "alice", "250", "2025-03-01T10:00:00+08:00"))["member"]["tier"]["code"] == "SILVER"
    await order(api, "B-1", "bob", "600", "2025-03-01T10:00:00+08:00")
    await order(api, "B-2", "bob", "300", "2026-01-15T10:00:00+08:00")
    assert (await order(api, "C-1", "carol", "1200", "2025-03-01T10:00:00+08:00"))["member"]["tier"]["code"] == "GOLD"
    await order(api, "C-2", "carol", "250", "2025-12-01T10:00:00+08:00")
    await order(api, "D-1", "dave", "250", "2025-06-01T10:00:00+08:00")  # valid until 2026-06-01: not due
    await order(api, "E-1", "erin", "250", "2025-03-01T10:00:00+08:00")
    refunded = await refund(api, "E-R1", "E-1", "250", "2025-04-01T10:00:00+08:00")
    assert refunded["member"]["tier"]["code"] == "SILVER"  # a refund takes the tier only at the evaluation

    as_of = {"input": {"asOf": "2026-03-02T00:00:00+08:00"}}
    result = await api.as_operator(EVALUATE_TIERS, as_of)
    assert result["data"]["evaluateTiers"] == {"evaluated": 4, "upgraded": 0, "downgraded": 2, "userErrors": []}

    alice, bob, carol, dave, erin = [await member_view(api, n) for n in ("alice", "bob", "carol", "dave", "erin")]
    # Alice's ¥250 order lies in her first qualification period (it began at enrolment): Silver is kept.
    assert (alice["tier"]["code"], alice["tierValidUntil"]) == ("SILVER", "2027-03-01T10:00:00+08:00")
    assert (bob["tier"]["code"], bob["tierValidUntil"]) == ("SILVER", "2027-03-01T10:00:00+08:00")
    # Carol's ¥1,450 in the period is short of ¥2,000 and her ¥1,200 fell out of the 12-month window.
    assert (carol["tier"]["code"], carol["tierValidUntil"]) == ("SILVER", "2027-03-02T00:00:00+08:00")
    assert (dave["tier"]["code"], dave["tierValidUntil"]) == ("SILVER", "2026-06-01T10:00:00+08:00")
    assert (erin["tier"]["code"], erin["tierValidUntil"]) == ("REGULAR", None)  # her period nets ¥0

    before = await row_counts(db)
    again = await api.as_operator(EVALUATE_TIERS, as_of)
    assert again["data"]["evaluateTiers"] == {"evaluated": 0, "upgraded": 0, "downgraded": 0, "userErrors": []}
    assert await row_counts(db) == before

    # Every outcome opened a new period at the evaluation: a year without orders takes the kept Silver away.
    clock.now = datetime(2027, 3, 2, tzinfo=timezone.utc)
    result = await api.as_operator(EVALUATE_TIERS, {"input": {"asOf": "2027-03-02T00:00:00+08:00"}})
    assert result["data"]["evaluateTiers"] == {"evaluated": 4, "upgraded": 0, "downgraded": 3, "userErrors": []}
    assert [(await member_view(api, n))["tier"]["code"] for n in ("alice", "bob", "carol", "dave")] == [
        "REGULAR", "REGULAR", "REGULAR", "SILVER"]


async def test_evaluation_is_for_operators(api):
    result = await api.as_service(EVALUATE_TIERS)
    assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_the_rolling_window_is_counted_on_the_program_calendar(api, clock):
    """12 months before 2025-03-01 07:00 Shanghai is 2024-03-01 07:00 Shanghai. Counted in UTC
    (2025-02-28 23:00Z minus 12 months = 2024-02-28 23:00Z) the leap-day order would be inside."""
    clock.now = datetime(2025, 3, 2, tzinfo=timezone.utc)
    await enroll(api, "alice", joinedAt="2024-01-01T10:00:00+08:00")
    await order(api, "O-1", "alice", "900", "2024-02-29T12:00:00+08:00")
    second = await order(api, "O-2", "alice", "200", "2025-03-01T07:00:00+08:00")
    assert second["member"]["tier"]["code"] == "SILVER"
    clock.now = datetime(2025, 2, 28, 23, 0, tzinfo=timezone.utc)  # the same instant as O-2
    window = (await member_view(api, "alice"))["nextTier"]["conditions"][1]
    assert window == {"description": "≥ ¥1,000 spent in the past 12 months", "current": "200.00",
                      "target": "1000.00", "met": False}


async def test_permanent_tiers_never_lapse(db, clock):
    from dataclasses import replace

    from tierup.programs import bundled_program_path, load_program_file
    from tierup.services.tiers import validity_end

    definition = replace(load_program_file(bundled_program_path("classic")), tier_validity_months=None)
    assert validity_end(definition, definition.tier("GOLD"), clock()) is None
