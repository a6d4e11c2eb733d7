"""Every message that crosses between the event loop and the actors, defined once.

Commands are in the imperative, events and replies in the past tense. All are
frozen msgspec Structs; `reply` fields carry a `actors.replies.Reply` (or a
pykka ref) and are never serialized.
"""

from __future__ import annotations

from typing import Any

import msgspec


class OrderLine(msgspec.Struct, frozen=True, gc=False):
    sku: str
    qty: int


class SkuState(msgspec.Struct, frozen=True, gc=False):
    """What an owner knows of one SKU: committed available units and version."""

    sku: str
    available: int
    version: int


class StockEvent(msgspec.Struct, frozen=True, gc=False):
    """One row of the audit log."""

    sku: str
    version: int
    delta: int
    available_after: int
    kind: str  # order | cancel | set | adjust
    order_id: str | None = None
    channel: str | None = None
    reason: str | None = None


# --- commands: loop -> supervisor -> owner -------------------------------------------


class _OrderRequest(msgspec.Struct, frozen=True):
    channel: str
    order_id: str
    lines: tuple[OrderLine, ...]

    @property
    def skus(self) -> frozenset[str]:
        return frozenset(line.sku for line in self.lines)


class _SkuRequest(msgspec.Struct, frozen=True):
    sku: str

    @property
    def skus(self) -> frozenset[str]:
        return frozenset((self.sku,))


class PlaceOrder(_OrderRequest, frozen=True):
    body_hash: str
    reply: Any
    # Orders that a channel already sold cannot be refused: they take what
    # there is and are recorded as oversold (see issue 3).
    take_available: bool = False


class CancelOrder(_OrderRequest, frozen=True):
    # `lines` are what the order took, as stored with it.
    from_status: str  # the status it had when read; the commit is fenced on it
    reply: Any


class SetStock(_SkuRequest, frozen=True):
    available: int
    reason: str | None
    if_match: int | None
    reply: Any


class AdjustStock(_SkuRequest, frozen=True):
    delta: int
    reason: str | None
    if_match: int | None
    reply: Any


class HoldSku(_SkuRequest, frozen=True):
    """Pause a SKU for an order that spans owners; answered with SkuHeld."""

    reply: Any


class ReleaseSku(msgspec.Struct, frozen=True):
    """End a hold; `state` is the newly committed state, or None if unchanged."""

    sku: str
    state: SkuState | None


class HandOffSku(_SkuRequest, frozen=True):
    """Give a SKU (state and all) to another owner once nothing of it is in flight."""

    to: Any


class ExpectSku(msgspec.Struct, frozen=True):
    """Hold back operations on a SKU until its TakeOverSku arrives."""

    sku: str


class TakeOverSku(msgspec.Struct, frozen=True):
    sku: str
    state: SkuState | None


class HandleRequests(msgspec.Struct, frozen=True):
    """Several requests in one message: one thread wake-up instead of one each."""

    requests: tuple[Any, ...]


class Crash(msgspec.Struct, frozen=True):
    """Fault injection: make an owner raise, so supervision can be exercised."""

    reason: str = "injected crash"


class Tick(msgspec.Struct, frozen=True):
    """Sent by the loop once a second: rate windows, promotion, passivation."""


# --- events: loop -> owner after a commit ------------------------------------------


class BatchCommitted(msgspec.Struct, frozen=True):
    batch_id: int
    states: tuple[SkuState, ...]


class BatchFailed(msgspec.Struct, frozen=True):
    """The batch was not committed, or its outcome is unknown: reload these SKUs."""

    batch_id: int
    skus: tuple[str, ...]


class BatchConflicted(msgspec.Struct, frozen=True):
    """Some orders of the batch already exist; they were answered, retry the rest."""

    batch_id: int
    retry: tuple[Any, ...]


class OwnerCrashed(msgspec.Struct, frozen=True):
    owner: Any
    kind: str
    index: int
    sku: str | None


# --- replies: owner/supervisor -> loop ---------------------------------------------


class SkuHeld(msgspec.Struct, frozen=True):
    sku: str
    state: SkuState | None
    owner: Any


class NeedsCoordination(msgspec.Struct, frozen=True):
    """The order spans several owners: the gateway runs the hold protocol."""


class Unavailable(msgspec.Struct, frozen=True):
    detail: str


class StockChanged(msgspec.Struct, frozen=True, gc=False):
    """A committed change of a SKU, offered to every channel but its origin."""

    sku: str
    available: int
    version: int
    origin_channel: str | None
