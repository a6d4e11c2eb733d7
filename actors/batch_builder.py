"""Turning an owner's queue of requests into one group commit, as a pure function.

An owner commits at most one batch at a time. Everything that queued up while
the previous batch was in flight is decided here, in arrival order, against
the committed state plus the effects of the earlier requests of the same
batch; the result is one transaction's worth of rows, the answers to send
once it is durable, and the requests that must wait (their SKU is held by an
order spanning owners, or is being handed to another owner).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from actors import stock_rules
from actors.answers import (
    AcceptedLine,
    Answer,
    OrderView,
    Shortfall,
    error_answer,
    json_answer,
    stock_answer,
)
from actors.messages import (
    AdjustStock,
    CancelOrder,
    HandOffSku,
    HoldSku,
    OrderLine,
    PlaceOrder,
    SetStock,
    SkuState,
    StockChanged,
    StockEvent,
)

_encode = msgspec.json.Encoder().encode


class OrderRecord(msgspec.Struct, frozen=True, gc=False):
    """The idempotency record of an order: its first answer, stored with it."""

    channel: str
    order_id: str
    body_hash: str
    status: str
    http_status: int
    response: bytes
    lines: bytes  # JSON list of what the order took: [{"sku", "qty"}]


class OrderStatusChange(msgspec.Struct, frozen=True, gc=False):
    channel: str
    order_id: str
    from_status: str
    to_status: str
    response: bytes


class BatchEntry(msgspec.Struct, frozen=True):
    op: Any
    answer: Answer
    record: OrderRecord | None = None
    status_change: OrderStatusChange | None = None


class StockRow(msgspec.Struct, frozen=True, gc=False):
    sku: str
    expected_version: int  # 0: the SKU is new
    available: int
    version: int


class Batch(msgspec.Struct, frozen=True):
    batch_id: int
    stock_rows: list[StockRow]
    events: list[StockEvent]
    entries: list[BatchEntry]
    changes: list[StockChanged]
    # Decided on state reloaded after a failure, not on batches still in flight.
    fresh_base: bool = False

    @property
    def skus(self) -> tuple[str, ...]:
        return tuple(row.sku for row in self.stock_rows)


class Plan(msgspec.Struct):
    batch: Batch | None
    immediate: list[tuple[Any, Answer]]
    holds: list[tuple[HoldSku, SkuState | None]]
    handoffs: list[tuple[HandOffSku, SkuState | None]]
    deferred: deque


def _lines_json(events: Iterable[StockEvent]) -> bytes:
    return _encode([{"sku": e.sku, "qty": abs(e.delta)} for e in events])


def _order_view(op, status: str, events, shortfall=None) -> OrderView:
    lines = [AcceptedLine(e.sku, abs(e.delta), e.available_after, e.version) for e in events]
    return OrderView(op.order_id, op.channel, status, lines, shortfall)


def _decide_order(op: PlaceOrder, current) -> tuple[stock_rules.Applied | None, BatchEntry]:
    result = stock_rules.take_order(
        {sku: current(sku) for sku in op.skus}, op.channel, op.order_id, op.lines, op.take_available
    )
    if isinstance(result, stock_rules.Refused):
        shortfalls = [Shortfall(*s) for s in result.shortfalls]
        answer = error_answer(
            409, "insufficient_stock", "not enough stock for every line", lines=shortfalls
        )
        record = OrderRecord(
            op.channel, op.order_id, op.body_hash, "refused", 409, answer.body, b"[]"
        )
        return None, BatchEntry(op, answer, record)
    requested = stock_rules.requested_per_sku(op.lines)
    shortfalls = None
    if op.take_available:
        taken: dict[str, int] = {}
        for e in result.events:
            taken[e.sku] = taken.get(e.sku, 0) - e.delta
        shortfalls = [
            Shortfall(sku, qty, taken.get(sku, 0))
            for sku, qty in requested.items()
            if taken.get(sku, 0) < qty
        ] or None
    status = "oversold" if shortfalls else "accepted"
    answer = json_answer(201, _order_view(op, status, result.events, shortfalls))
    record = OrderRecord(
        op.channel, op.order_id, op.body_hash, status, 201, answer.body, _lines_json(result.events)
    )
    return result, BatchEntry(op, answer, record)


def _decide_cancel(op: CancelOrder, current) -> tuple[stock_rules.Applied, BatchEntry]:
    result = stock_rules.return_order(
        {sku: current(sku) for sku in op.skus}, op.channel, op.order_id, op.lines
    )
    answer = json_answer(200, _order_view(op, "cancelled", result.events))
    change = OrderStatusChange(op.channel, op.order_id, op.from_status, "cancelled", answer.body)
    return result, BatchEntry(op, answer, status_change=change)


def _decide_stock(op: SetStock | AdjustStock, current) -> tuple[stock_rules.Applied | None, Answer]:
    state = current(op.sku)
    if isinstance(op, SetStock):
        result = stock_rules.set_stock(state, op.sku, op.available, op.if_match, op.reason)
    else:
        result = stock_rules.adjust_stock(state, op.sku, op.delta, op.if_match, op.reason)
    if isinstance(result, stock_rules.Applied):
        after = result.states[op.sku]
        return result, stock_answer(op.sku, after.available, after.version)
    if isinstance(result, stock_rules.Unchanged):
        return None, stock_answer(op.sku, result.state.available, result.state.version)
    if isinstance(result, stock_rules.VersionMismatch):
        return None, error_answer(
            412,
            "version_mismatch",
            f"If-Match does not match the current version {result.current_version}",
            "If-Match",
            current_version=result.current_version,
        )
    (_, requested, available), = result.shortfalls
    return None, error_answer(
        409,
        "insufficient_stock",
        f"adjusting by {-requested} would take available ({available}) below zero",
        "delta",
        lines=[Shortfall(op.sku, requested, available)],
    )


def plan_batch(
    committed: Mapping[str, SkuState],
    queue: Iterable[Any],
    blocked: Iterable[str],
    batch_id: int,
    busy: Iterable[str] = (),
) -> Plan:
    """Decide every queued request that can be decided now.

    `committed` is the owner's view: durable state plus the effects of its
    batches still being committed (`busy` SKUs). A request may build on those
    effects, but its answer then waits for this batch to be durable, and holds
    and hand-overs of a busy SKU wait until nothing of it is in flight.
    `blocked` are SKUs held for a multi-owner order or awaiting a hand-over:
    requests on them, and every later request sharing a SKU with a deferred
    one, wait (so each SKU's requests keep their arrival order).
    """
    busy = frozenset(busy)
    working: dict[str, SkuState] = {}
    expected: dict[str, int] = {}
    blocked = set(blocked)
    events: list[StockEvent] = []
    entries: list[BatchEntry] = []
    immediate: list[tuple[Any, Answer]] = []
    holds: list[tuple[HoldSku, SkuState | None]] = []
    handoffs: list[tuple[HandOffSku, SkuState | None]] = []
    deferred: deque = deque()
    origins: dict[str, set[str | None]] = {}

    def current(sku: str) -> SkuState | None:
        return working.get(sku) or committed.get(sku)

    def apply(result: stock_rules.Applied) -> None:
        for sku, state in result.states.items():
            if sku not in expected:
                before = committed.get(sku)
                expected[sku] = before.version if before is not None else 0
            working[sku] = state
        events.extend(result.events)
        for e in result.events:
            origins.setdefault(e.sku, set()).add(e.channel)

    unavailable = set(blocked)  # held or not here yet: nothing may touch them
    for op in queue:
        skus = op.skus
        if isinstance(op, HoldSku) and op.sku not in unavailable and op.sku not in working and op.sku not in busy:
            # A hold may pass requests that wait: they may be waiting for
            # another hold of the same multi-owner order, and holding them
            # back behind it would deadlock.
            holds.append((op, committed.get(op.sku)))
            unavailable.add(op.sku)
            blocked.add(op.sku)
            continue
        if not blocked.isdisjoint(skus):
            deferred.append(op)
            blocked |= skus
            continue
        if isinstance(op, (HoldSku, HandOffSku)):
            blocked.add(op.sku)
            if op.sku in working or op.sku in busy:
                # Its state is not durable yet: grant after it is.
                deferred.append(op)
            else:
                handoffs.append((op, committed.get(op.sku)))
            continue
        depends_on_batch = not skus.isdisjoint(working) or not skus.isdisjoint(busy)
        if isinstance(op, PlaceOrder):
            result, entry = _decide_order(op, current)
        elif isinstance(op, CancelOrder):
            result, entry = _decide_cancel(op, current)
        else:
            result, answer = _decide_stock(op, current)
            if result is None and not depends_on_batch:
                immediate.append((op.reply, answer))
                continue
            entry = BatchEntry(op, answer)
        if result is not None:
            apply(result)
        entries.append(entry)

    batch = None
    if entries:
        rows = [StockRow(sku, expected[sku], working[sku].available, working[sku].version) for sku in expected]
        changes = [
            StockChanged(
                row.sku,
                row.available,
                row.version,
                next(iter(origins[row.sku])) if len(origins[row.sku]) == 1 else None,
            )
            for row in rows
        ]
        batch = Batch(batch_id, rows, events, entries, changes)
    return Plan(batch, immediate, holds, handoffs, deferred)


def merge_batches(batches: Iterable[Batch]) -> Batch:
    """Batches, in order, as one transaction.

    Batches of different owners touch different SKUs; later batches of one
    owner build on its earlier ones, so per SKU the merged row expects the
    first batch's version and leaves the last one's state.
    """
    batches = list(batches)
    rows: dict[str, StockRow] = {}
    changes: dict[str, StockChanged] = {}
    for batch in batches:
        for row in batch.stock_rows:
            first = rows.get(row.sku)
            rows[row.sku] = row if first is None else StockRow(row.sku, first.expected_version, row.available, row.version)
        for change in batch.changes:
            before = changes.get(change.sku)
            if before is not None and (before.origin_channel is None or before.origin_channel != change.origin_channel):
                change = StockChanged(change.sku, change.available, change.version, None)
            changes[change.sku] = change
    return Batch(
        batches[0].batch_id,
        list(rows.values()),
        [event for b in batches for event in b.events],
        [entry for b in batches for entry in b.entries],
        list(changes.values()),
    )


def single_order_batch(
    op: PlaceOrder | CancelOrder, states: Mapping[str, SkuState | None], batch_id: int
) -> Batch:
    """The batch of one order spanning several owners, decided on held states."""
    committed = {sku: s for sku, s in states.items() if s is not None}
    plan = plan_batch(committed, [op], (), batch_id)
    assert plan.batch is not None
    return plan.batch


__all__ = [
    "Batch",
    "BatchEntry",
    "OrderLine",
    "OrderRecord",
    "OrderStatusChange",
    "Plan",
    "StockRow",
    "merge_batches",
    "plan_batch",
    "single_order_batch",
]
