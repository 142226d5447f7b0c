"""The member home screen: at most 12 statements when it runs, whatever the member has done, and one
(the stamp) when the kept answer still holds."""

import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from tierup.services.checkins import check_in
from tierup.services.members import EnrolmentInput, enroll_member
from tierup.services.orders import OrderInput, record_order
from tierup.services.reviews import ReviewInput, record_review
from tierup.store.db import count_statements

sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))
from api_bench import DASHBOARD  # noqa: E402  the bench's home screen is the one held to these counts


async def home_screen_statements(api, external_id: str) -> tuple[int, int, dict]:
    """(statements when it runs, statements when the kept answer is served, the answer)."""
    with count_statements() as first:
        ran = await api.as_member(external_id, DASHBOARD)
    with count_statements() as second:
        kept = await api.as_member(external_id, DASHBOARD)
    assert "errors" not in ran, ran
    assert kept == ran
    return first[0], second[0], ran["data"]["viewer"]


async def test_home_screen_statements_do_not_grow_with_what_the_member_did(api, app, db, program, clock):
    await enroll_member(db, program, EnrolmentInput(external_id="quiet"), now=clock())
    await enroll_member(db, program, EnrolmentInput(external_id="busy"), now=clock())
    await api.as_member("quiet", DASHBOARD)  # the program's definition is read once per process
    start = clock()
    for day in range(40):
        clock.now = start + timedelta(days=day, hours=1)
        await record_order(db, program, OrderInput(f"O-{day}", "busy", Decimal(80 + day), clock.now), now=clock.now)
        await check_in(db, program, "busy", now=clock.now)
        await record_review(db, program, ReviewInput(f"R-{day}", "busy", day % 2 == 0, clock.now, f"O-{day}"),
                            now=clock.now)

    quiet = await home_screen_statements(api, "quiet")
    busy = await home_screen_statements(api, "busy")

    assert busy[2]["orders"]["totalCount"] == 40 and len(busy[2]["points"]["ledger"]["edges"]) == 10
    assert quiet[2]["orders"]["totalCount"] == 0
    # The quiet member's five orders' figures are not read: there are none.
    assert quiet[0] <= busy[0] <= 12
    assert quiet[1] == busy[1] == 1  # the stamp: program and member versions
    assert app.state.services.response_cache.hits == 2
