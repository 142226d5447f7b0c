"""Scenario steps shared by tests: enrol, order, refund, read rows."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import func, select

from documents import ENROLL, MEMBER_BY_EXTERNAL_ID, RECORD_ORDER, REFUND_ORDER
from tierup.store.models import Base

# GraphiQL's npm packages, fetched and verified once, kept between runs (git-ignored).
SECRET = "test-secret-of-at-least-thirty-two-bytes"
ASSET_CACHE = Path(os.environ.get("TIERUP_TEST_ASSET_CACHE", Path(__file__).parent / ".asset-cache"))


async def enroll(api, external_id: str, **fields) -> dict:
    result = await api.as_service(ENROLL, {"input": {"externalId": external_id, **fields}})
    assert "errors" not in result, result
    return result["data"]["enrollMember"]


async def order(api, external_id: str, member: str, amount: str, paid_at: str, **fields) -> dict:
    result = await api.as_service(RECORD_ORDER, {"input": {
        "externalId": external_id, "memberExternalId": member, "amount": amount, "paidAt": paid_at, **fields}})
    assert "errors" not in result, result
    return result["data"]["recordOrder"]


async def refund(api, external_id: str, order_id: str, amount: str, refunded_at: str) -> dict:
    result = await api.as_service(REFUND_ORDER, {"input": {
        "externalId": external_id, "orderExternalId": order_id, "amount": amount, "refundedAt": refunded_at}})
    assert "errors" not in result, result
    return result["data"]["refundOrder"]


async def member_view(api, external_id: str) -> dict:
    result = await api.as_operator(MEMBER_BY_EXTERNAL_ID, {"externalId": external_id})
    assert "errors" not in result, result
    return result["data"]["member"]


async def row_counts(db) -> dict[str, int]:
    """Rows per table: a rejected request must leave every count unchanged."""
    async with db.read() as session:
        return {table.name: (await session.execute(select(func.count()).select_from(table))).scalar_one()
                for table in Base.metadata.sorted_tables}


async def publish_classic(db, now, edit, source: str):
    """Publish the bundled classic program after `edit(document)` changed its document."""
    import copy

    from tierup.programs import bundled_program_path, load_program_file, parse_program
    from tierup.services.programs import publish_program

    document = copy.deepcopy(load_program_file(bundled_program_path("classic")).source)
    edit(document)
    return (await publish_program(db, parse_program(document, source), published_by="test", now=now)).program


async def publish_classic_ladder_only(db, now):
    """The classic program without its growth tree and quests: the tier and points rules alone,
    so figures like the foundation scenario's are not mixed with task rewards."""
    return await publish_classic(db, now, lambda doc: (doc.pop("tasks"), doc.pop("quests")), "classic (ladder only)")


async def publish_variant(db, now, *, quest_level_points: int):
    """The classic program with SPRING_QUEST's first level also paying points."""
    def edit(document):
        document["quests"][0]["levels"][0]["reward"]["points"] = quest_level_points

    return await publish_classic(db, now, edit, "classic variant")


async def load_sample_history(db, program, name: str = "sample-history") -> dict:
    """Replay fixtures/data/NAME.json through the use cases, as the shop would have reported it."""
    import json
    from datetime import datetime
    from decimal import Decimal

    from tierup.services.members import EnrolmentInput, enroll_member
    from tierup.services.orders import OrderInput, record_order

    history = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "data" / f"{name}.json").read_text())
    for member in history["members"]:
        joined = datetime.fromisoformat(member["joinedAt"])
        await enroll_member(db, program, EnrolmentInput(member["externalId"], joined_at=joined), now=joined)
        for external_id, amount, paid_at in member["orders"]:
            when = datetime.fromisoformat(paid_at)
            await record_order(db, program, OrderInput(external_id, member["externalId"], Decimal(amount), when),
                               now=when)
    return history
