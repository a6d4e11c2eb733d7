"""Response bodies that are read from the database rather than decided by an owner."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class StockDetail(msgspec.Struct, frozen=True):
    sku: str
    available: int
    version: int
    updated_at: datetime


class StockPage(msgspec.Struct, frozen=True):
    items: list[StockDetail]
    next_after: str | None


class HistoryEvent(msgspec.Struct, frozen=True):
    version: int
    delta: int
    available_after: int
    kind: str
    order_id: str | None
    channel: str | None
    reason: str | None
    created_at: datetime


class HistoryPage(msgspec.Struct, frozen=True):
    sku: str
    events: list[HistoryEvent]
    next_before_version: int | None


class OrderLineOut(msgspec.Struct, frozen=True):
    sku: str
    qty: int


class OrderDetail(msgspec.Struct, frozen=True, omit_defaults=True):
    order_id: str
    channel: str
    status: str  # accepted | oversold | refused | cancelled
    lines: list[OrderLineOut]
    first_answer: Any
    created_at: datetime
    updated_at: datetime
    cancel_answer: Any = None
