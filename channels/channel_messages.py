"""Messages between the loop, the channel actors and the dead-letter actor.

Loop -> actor always by `tell`; actor -> loop through the `ChannelIO` port (call_soon_threadsafe).
`reply` fields carry an `actors.replies.Reply` the loop awaits.
"""

from __future__ import annotations

from typing import Any

import msgspec

from actors.messages import StockChanged
from channels.delivery_book import DeadEntry


class InitChannel(msgspec.Struct, frozen=True):
    stock: tuple[tuple[str, int, int], ...]  # (sku, available, version)
    confirmed: dict[str, tuple[int, int]]  # sku -> (quantity, version) last confirmed
    dead: tuple[str, ...]  # SKUs with an open dead letter
    resend_all: bool  # the last run did not stop cleanly


class StockChanges(msgspec.Struct, frozen=True):
    changes: tuple[StockChanged, ...]


class PushDone(msgspec.Struct, frozen=True):
    request_id: int
    status: int
    headers: dict[str, str]
    body: bytes
    error: str | None  # transport error (timeout, reset, refused): no answer at all
    # Stock changes the loop held back while the request was in flight (the actor could not
    # have sent them anyway): one wake-up per push instead of one per committed batch.
    changes: tuple[tuple[StockChanged, ...], ...] = ()


class Wake(msgspec.Struct, frozen=True):
    at: float


class ListingsChanged(msgspec.Struct, frozen=True):
    listings: dict[str, str]


class RetryDeadLetters(msgspec.Struct, frozen=True):
    skus: tuple[str, ...]


class ForgetDead(msgspec.Struct, frozen=True):
    sku: str


class Describe(msgspec.Struct, frozen=True):
    reply: Any


# --- to the dead-letter actor -------------------------------------------------------------


class DeadLettered(msgspec.Struct, frozen=True):
    channel: str
    entries: tuple[DeadEntry, ...]


class Drained(msgspec.Struct, frozen=True):
    channel: str
    items: tuple[tuple[str, int], ...]  # (sku, version delivered)


class DeadLetterTick(msgspec.Struct, frozen=True):
    pass


class ManualRetry(msgspec.Struct, frozen=True):
    channel: str
    sku: str
    reply: Any


class Discard(msgspec.Struct, frozen=True):
    channel: str
    sku: str
    reply: Any


class ChannelRemoved(msgspec.Struct, frozen=True):
    channel: str
