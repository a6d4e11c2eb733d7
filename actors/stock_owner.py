"""The actor that owns a set of SKUs: a shard, or one hot SKU of its own.

It keeps each owned SKU's quantity and version in memory, decides every
request against it (actors.batch_builder / actors.stock_rules) and hands the
resulting batches to the loop to commit. Its view includes the effects of
batches still being committed, so it can decide the next batch while the
database works on the previous one (the committer sends an owner's batches
one transaction at a time, merging those that waited). Answers wait until
their batch is durable. When a batch fails, the owner stops deciding until
all its batches are settled, then reloads the affected SKUs from the database.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from itertools import count
from typing import Any

import msgspec
import pykka
import structlog

from actors.answers import unavailable_answer
from actors.batch_builder import Batch, plan_batch
from actors.messages import (
    AdjustStock,
    BatchCommitted,
    BatchConflicted,
    BatchFailed,
    CancelOrder,
    Crash,
    ExpectSku,
    HandOffSku,
    HandleRequests,
    HoldSku,
    OwnerCrashed,
    PlaceOrder,
    ReleaseSku,
    SetStock,
    SkuHeld,
    SkuState,
    TakeOverSku,
    Unavailable,
)

log = structlog.get_logger("invsync.owner")

_QUEUED = (PlaceOrder, CancelOrder, SetStock, AdjustStock, HoldSku, HandOffSku)
_batch_ids = count(1)

# Batches an owner may have on their way to the database at once.
MAX_BATCHES_IN_FLIGHT = 8

# Reads the committed state of SKUs from the database, blocking the calling
# actor (never the loop); None means all SKUs this owner should own.
StateLoader = Callable[[Iterable[str] | None], list[SkuState]]


def refuse(op: Any, detail: str) -> None:
    """Answer a request that will not be decided, with a clear 503."""
    reply = getattr(op, "reply", None)
    if reply is None:
        return
    reply.send(Unavailable(detail) if isinstance(op, HoldSku) else unavailable_answer(detail))


class StockOwner(pykka.ThreadingActor):
    def __init__(
        self,
        *,
        kind: str,
        index: int,
        loop: asyncio.AbstractEventLoop,
        submit: Callable[[Batch, Any], None],
        load_states: StateLoader,
        supervisor: Any,
        states: dict[str, SkuState] | None = None,
        expect: Iterable[str] = (),
    ) -> None:
        super().__init__()
        self.kind = kind
        self.index = index
        self._loop = loop
        self._submit = submit
        self._load_states = load_states
        self._supervisor = supervisor
        self._states: dict[str, SkuState] | None = states
        self._queue: deque = deque()
        self._in_flight: dict[int, Batch] = {}
        self._settling = False
        self._fresh_base = False
        self._held: set[str] = set()
        self._awaiting: set[str] = set(expect)
        self._gone: set[str] = set()
        self._stale: set[str] = set()

    def __repr__(self) -> str:
        return f"StockOwner({self.kind}:{self.index})"

    # --- life cycle ----------------------------------------------------------------

    def on_start(self) -> None:
        if self._states is None:
            # A restart after a crash: the durable state is the truth.
            self._states = {s.sku: s for s in self._load_states(None)}
            log.info("owner restarted from database", kind=self.kind, index=self.index, skus=len(self._states))

    def on_stop(self) -> None:
        for op in self._queue:
            refuse(op, "the service is shutting down; nothing was changed")
        self._queue.clear()

    def on_failure(self, exc_type, exc_value, tb) -> None:
        pending = list(self._queue)
        self._queue.clear()
        while True:
            try:
                envelope = self.actor_inbox.get_nowait()
            except Exception:
                break
            message = envelope.message
            if isinstance(message, HandleRequests):
                pending.extend(message.requests)
            elif isinstance(message, BatchConflicted):
                pending.extend(message.retry)  # to be decided again: nobody else will answer them
            else:
                pending.append(message)
        for op in pending:
            if isinstance(op, _QUEUED):
                refuse(op, "the stock owner restarted; retry (orders are idempotent by order_id)")
        log.error("owner crashed", kind=self.kind, index=self.index, error=repr(exc_value), answered=len(pending))
        try:
            self._supervisor.tell(OwnerCrashed(self.actor_ref, self.kind, self.index, self._only_sku()))
        except pykka.ActorDeadError:
            pass

    def _only_sku(self) -> str | None:
        if self.kind != "sku":
            return None
        skus = (self._states or {}).keys() | self._awaiting
        return next(iter(skus), None)

    # --- messages --------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, HandleRequests):
            self._queue.extend(message.requests)
        elif isinstance(message, _QUEUED):
            self._queue.append(message)
        elif isinstance(message, BatchCommitted):
            self._in_flight.pop(message.batch_id, None)
        elif isinstance(message, BatchFailed):
            self._in_flight.pop(message.batch_id, None)
            self._stale.update(message.skus)
            self._settling = True
        elif isinstance(message, BatchConflicted):
            batch = self._in_flight.pop(message.batch_id, None)
            if batch is not None:
                self._stale.update(batch.skus)  # nothing of it was written
            self._settling = True
            self._queue.extendleft(reversed(message.retry))
        elif isinstance(message, ReleaseSku):
            self._held.discard(message.sku)
            if message.state is not None:
                self._states[message.sku] = message.state
            else:
                # The multi-owner commit may or may not have happened.
                self._stale.add(message.sku)
        elif isinstance(message, ExpectSku):
            self._gone.discard(message.sku)
            self._awaiting.add(message.sku)
        elif isinstance(message, TakeOverSku):
            self._awaiting.discard(message.sku)
            if message.state is not None:
                self._states[message.sku] = message.state
        elif isinstance(message, Crash):
            raise RuntimeError(message.reason)
        else:
            log.warning("unknown message", message=type(message).__name__)
            return None
        self._pump()
        return None

    # --- deciding and committing ----------------------------------------------------

    def _reload_stale(self) -> bool:
        skus = sorted(self._stale)
        try:
            fresh = {s.sku: s for s in self._load_states(skus)}
        except Exception as exc:  # the database is away: nothing can be decided
            log.warning("reload failed", kind=self.kind, index=self.index, error=repr(exc))
            return False
        for sku in skus:
            if sku in fresh:
                self._states[sku] = fresh[sku]
            else:
                self._states.pop(sku, None)
        self._stale.clear()
        return True

    def _busy(self) -> set[str]:
        busy: set[str] = set()
        for batch in self._in_flight.values():
            busy.update(batch.skus)
        return busy

    def _pump(self) -> None:
        if not self._queue:
            return
        if self._settling:
            if self._in_flight:
                return  # later batches may have built on a failed one
            self._settling = False
            self._fresh_base = True
        if len(self._in_flight) >= MAX_BATCHES_IN_FLIGHT:
            return
        busy = self._busy()
        if self._stale:
            if not self._stale.isdisjoint(busy):
                return
            if not self._reload_stale():
                pending, self._queue = self._queue, deque()
                for op in pending:
                    refuse(op, "the database is unavailable; nothing was changed")
                return
        plan = plan_batch(self._states, self._queue, self._held | self._awaiting, next(_batch_ids), busy)
        self._queue = plan.deferred
        for reply, answer in plan.immediate:
            reply.send(answer)
        for hold, state in plan.holds:
            self._held.add(hold.sku)
            hold.reply.send(SkuHeld(hold.sku, state, self.actor_ref))
        for handoff, state in plan.handoffs:
            self._states.pop(handoff.sku, None)
            self._gone.add(handoff.sku)
            handoff.to.tell(TakeOverSku(handoff.sku, state))
        if self._gone:
            self._forward_gone()
        if plan.batch is not None:
            if self._fresh_base:
                plan.batch = msgspec.structs.replace(plan.batch, fresh_base=True)
                self._fresh_base = False
            self._in_flight[plan.batch.batch_id] = plan.batch
            for row in plan.batch.stock_rows:
                self._states[row.sku] = SkuState(row.sku, row.available, row.version)
            self._loop.call_soon_threadsafe(self._submit, plan.batch, self.actor_ref)
        if plan.handoffs and self.kind == "sku":
            # A SKU actor owns one SKU; once it is handed back it has no job.
            self.stop()

    def _forward_gone(self) -> None:
        """Requests for SKUs this owner gave away go back to be routed again."""
        keep: deque = deque()
        for op in self._queue:
            if isinstance(op, _QUEUED) and not op.skus.isdisjoint(self._gone):
                self._supervisor.tell(op)
            else:
                keep.append(op)
        self._queue = keep

    # --- introspection (for monitoring) ----------------------------------------------

    def mailbox_depth(self) -> int:
        return self.actor_inbox.qsize() + len(self._queue)
