"""Neutral value types shared by every channel wire format.

The format modules translate between these and one store's HTTP dialect; the
channel actors only ever see these. All are frozen so they can cross the
loop/actor boundary without copies or locks.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Literal

import msgspec

PushStatus = Literal["confirmed", "throttled", "retry", "failed"]


class Update(msgspec.Struct, frozen=True):
    """One SKU's sellable quantity for one channel, stamped with the stock version it came from."""

    sku: str
    quantity: int
    version: int


class PushOutcome(msgspec.Struct, frozen=True):
    """What one push did for one SKU.

    - confirmed: the channel now shows `quantity` from `version`.
    - throttled: nothing applied; wait `retry_after` seconds, then resend.
    - retry: nothing applied (or unknown); resend with backoff (`retry_after` is a hint when the
      channel gave one; 0.0 means "resend at once, the failure was caused by another item").
    - failed: permanent for this SKU (bad listing, auth, validation); dead-letter it.
    """

    sku: str
    version: int
    status: PushStatus
    retry_after: float | None = None
    error: str | None = None


class HttpRequest(msgspec.Struct, frozen=True):
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


def outcomes_for_all(
    updates: Sequence[Update],
    status: PushStatus,
    *,
    retry_after: float | None = None,
    error: str | None = None,
) -> list[PushOutcome]:
    """The same outcome for every SKU of a batch (whole-batch answers: 2xx, 429, 5xx, timeouts)."""
    return [
        PushOutcome(sku=u.sku, version=u.version, status=status, retry_after=retry_after, error=error)
        for u in updates
    ]


def outcomes_for_transport_error(updates: Sequence[Update], error: str) -> list[PushOutcome]:
    """No HTTP answer at all (timeout, reset, refused): the channel may or may not have applied it."""
    return outcomes_for_all(updates, "retry", error=f"transport: {error}")


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup that works for plain dicts and aiohttp's CIMultiDict alike."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, candidate in headers.items():
        if key.lower() == wanted:
            return candidate
    return None


def batches(updates: Sequence[Update], limit: int) -> Iterator[list[Update]]:
    """Split updates into channel-sized batches, keeping order."""
    if limit < 1:
        raise ValueError("batch limit must be at least 1")
    for start in range(0, len(updates), limit):
        yield list(updates[start : start + limit])
