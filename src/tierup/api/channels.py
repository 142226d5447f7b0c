"""Channels and stores (线上线下融合): where a report comes from."""

from __future__ import annotations

from enum import Enum
from typing import Optional

import strawberry

from ..domain.program import StoreRule


@strawberry.enum(description="Where a report comes from. STORE reports name the store (storeCode).")
class Channel(Enum):
    ONLINE = strawberry.enum_value("ONLINE", description="The online shop (web, H5); the default.")
    APP = strawberry.enum_value("APP", description="The shop's own app.")
    MINI_PROGRAM = strawberry.enum_value("MINI_PROGRAM", description="A mini-program (小程序).")
    STORE = strawberry.enum_value("STORE", description="A physical store the program lists.")


@strawberry.type(description="A physical store of the program (线下门店).")
class Store:
    code: str = strawberry.field(description="The store's code, e.g. SH-001; STORE reports name it as storeCode.")
    name: str = strawberry.field(description="Display name.")
    city: Optional[str] = strawberry.field(description="City, if the program names it.")

    @classmethod
    def of(cls, rule: StoreRule) -> "Store":
        return cls(code=rule.code, name=rule.name, city=rule.city)


def channel_value(channel: Optional[Channel]) -> str:
    """The channel a request names, ONLINE when it names none."""
    return (channel or Channel.ONLINE).value
