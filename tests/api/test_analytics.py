"""RFM, lifecycle stages and the silent-member list on fixtures/data/sample-history.json.

Hand-computed, as of 2026-07-01 00:00 Shanghai. Quintile score = 1 + floor(5 × percent rank)
(capped at 5; ties share a rank). With six members the percent ranks are 0, .2, .4, .6, .8, 1:

    member  last order   orders/12m  spend/12m   R  F  M  FM  segment          stage
    ana     2026-06-25   5           ¥3,500      5  5  5  5   Champions        MATURE (5 orders)
    ben     2026-06-20   1           ¥100        5  3  3  3   Loyal            GROWING
    cai     2025-09-01   2           ¥2,500      3  5  5  5   Loyal            CHURNED (303 days)
    dan     2024-12-01   0           ¥0          2  1  1  1   Hibernating      CHURNED
    eve     —            0           ¥0          1  1  1  1   Lost             NEW (joined 11 days ago)
    fay     2026-03-15   1           ¥400        4  3  4  4   Loyal            DECLINING (108 days)
"""

from datetime import datetime

import pytest

from helpers import load_sample_history

AS_OF = "2026-07-01T00:00:00+08:00"
REFRESH = "mutation($asOf: DateTime) { refreshRfm(input: {asOf: $asOf}) { scored userErrors { code } } }"
MEMBERS = """query($segment: String, $stage: LifecycleStage, $silent: Int) {
  members(first: 100, segment: $segment, lifecycleStage: $stage, silentForDays: $silent) {
    totalCount edges { node { externalId lifecycleStage rfm { recency frequency monetary segment orders spend { amount } } } } } }"""


@pytest.fixture
async def history(api, db, program, clock):
    clock.now = datetime.fromisoformat(AS_OF)
    await load_sample_history(db, program)
    result = await api.as_operator(REFRESH, {"asOf": AS_OF})
    assert result["data"]["refreshRfm"] == {"scored": 6, "userErrors": []}


async def listed(api, **filters) -> tuple[int, list[str]]:
    result = (await api.as_operator(MEMBERS, filters))["data"]["members"]
    return result["totalCount"], [e["node"]["externalId"] for e in result["edges"]]


async def test_rfm_scores_and_segments_by_hand(api, history):
    rows = {e["node"]["externalId"]: e["node"] for e in
            (await api.as_operator(MEMBERS))["data"]["members"]["edges"]}
    scores = {name: (r["rfm"]["recency"], r["rfm"]["frequency"], r["rfm"]["monetary"], r["rfm"]["segment"])
              for name, r in rows.items()}
    assert scores == {
        "ana": (5, 5, 5, "Champions"), "ben": (5, 3, 3, "Loyal"), "cai": (3, 5, 5, "Loyal"),
        "dan": (2, 1, 1, "Hibernating"), "eve": (1, 1, 1, "Lost"), "fay": (4, 3, 4, "Loyal"),
    }
    assert (rows["ana"]["rfm"]["orders"], rows["ana"]["rfm"]["spend"]) == (5, {"amount": "3500.00"})
    stages = {name: r["lifecycleStage"] for name, r in rows.items()}
    assert stages == {"ana": "MATURE", "ben": "GROWING", "cai": "CHURNED", "dan": "CHURNED", "eve": "NEW",
                      "fay": "DECLINING"}


async def test_operators_filter_by_segment_stage_and_silence(api, history):
    assert await listed(api, segment="Loyal") == (3, ["ben", "cai", "fay"])
    assert await listed(api, stage="CHURNED") == (2, ["cai", "dan"])
    assert await listed(api, silent=90) == (3, ["cai", "dan", "fay"])  # 沉默预警: no order for 90 days
    assert await listed(api, silent=90, stage="DECLINING") == (1, ["fay"])
    bad = await api.as_operator(MEMBERS, {"segment": "VIPs"})
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_refresh_replaces_the_previous_scores(api, db, history):
    from sqlalchemy import func, select

    from tierup.store.models import RfmScore

    await api.as_operator(REFRESH, {"asOf": AS_OF})
    async with db.read() as session:
        assert (await session.execute(select(func.count()).select_from(RfmScore))).scalar_one() == 6


async def test_members_do_not_see_their_own_rfm(api, history):
    result = await api.as_member("ana", "{ viewer { rfm { segment } lifecycleStage } }")
    assert result["data"]["viewer"] == {"rfm": None, "lifecycleStage": "MATURE"}


async def test_the_value_map_and_its_members(api, history):
    """Monetary ≥ 4 is high value, recency ≥ 3 active: ana (5,5), cai (3,5), fay (4,4) are high-value active;
    ben (5,3) low-value active; dan (2,1) and eve (1,1) low-value silent."""
    result = await api.as_operator("{ program { valueMap { quadrant members } } }")
    assert result["data"]["program"]["valueMap"] == [
        {"quadrant": "HIGH_VALUE_ACTIVE", "members": 3}, {"quadrant": "HIGH_VALUE_SILENT", "members": 0},
        {"quadrant": "LOW_VALUE_ACTIVE", "members": 1}, {"quadrant": "LOW_VALUE_SILENT", "members": 2}]
    query = "query($q: ValueQuadrant) { members(first: 10, quadrant: $q) { totalCount edges { node { externalId } } } }"
    silent = (await api.as_operator(query, {"q": "LOW_VALUE_SILENT"}))["data"]["members"]
    assert [e["node"]["externalId"] for e in silent["edges"]] == ["dan", "eve"]


async def test_the_csv_export_writes_the_same_selection(api, db, program, history):
    import csv
    import io

    from tierup.services.export import export_members

    out = io.StringIO()
    seen = []
    written = await export_members(db, program, out, at=datetime.fromisoformat(AS_OF),
                                   progress=lambda done, total: seen.append((done, total)), segment="Loyal")
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert written == 3 and seen[-1] == (3, 3)
    assert [(r["external_id"], r["tier"], r["orders_12m"], r["spend_12m"], r["rfm_segment"], r["lifecycle_stage"])
            for r in rows] == [("ben", "REGULAR", "1", "100.00", "Loyal", "GROWING"),
                               ("cai", "GOLD", "2", "2500.00", "Loyal", "CHURNED"),
                               ("fay", "SILVER", "1", "400.00", "Loyal", "DECLINING")]
