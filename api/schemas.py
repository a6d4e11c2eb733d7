"""The request bodies of the HTTP API, validated by msgspec on decoding.

Unknown fields are refused; every number has bounds (PostgreSQL and clients
agree on 32-bit quantities); SKUs are 1-128 characters without control
characters or slashes (they travel in URL paths).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

MAX_INT = 2**31 - 1
SKU_PATTERN = r"^[^\x00-\x1f\x7f/]+$"
CHANNEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"

Sku = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=SKU_PATTERN)]
Channel = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=CHANNEL_PATTERN)]
OrderId = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=SKU_PATTERN)]
Quantity = Annotated[int, msgspec.Meta(ge=1, le=MAX_INT)]
Available = Annotated[int, msgspec.Meta(ge=0, le=MAX_INT)]
Delta = Annotated[int, msgspec.Meta(ge=-MAX_INT, le=MAX_INT)]
Reason = Annotated[str, msgspec.Meta(max_length=500)]


class OrderLineIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    sku: Sku
    qty: Quantity


class OrderIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    order_id: OrderId
    channel: Channel
    lines: Annotated[list[OrderLineIn], msgspec.Meta(min_length=1, max_length=100)]


class SetStockIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    available: Available
    reason: Reason | None = None


class AdjustStockIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    delta: Delta
    reason: Reason | None = None
