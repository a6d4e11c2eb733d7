"""The state transitions of SKUs, as pure functions.

No I/O, no actors: given the current states and a request, say what happens.
Every function returns either the events to append (with the new states) or
the reason for refusal. The owners call these; the tests drive them directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec

from actors.messages import OrderLine, SkuState, StockEvent


class Applied(msgspec.Struct, frozen=True):
    events: tuple[StockEvent, ...]
    states: dict[str, SkuState]


class Refused(msgspec.Struct, frozen=True):
    """Not enough stock: per SKU, what was asked and what there is."""

    shortfalls: tuple[tuple[str, int, int], ...]


class VersionMismatch(msgspec.Struct, frozen=True):
    current_version: int


class Unchanged(msgspec.Struct, frozen=True):
    state: SkuState | None


def _available(state: SkuState | None) -> int:
    return state.available if state is not None else 0


def _version(state: SkuState | None) -> int:
    return state.version if state is not None else 0


def requested_per_sku(lines: Iterable[OrderLine]) -> dict[str, int]:
    """Lines of one SKU add up; insertion order follows first appearance."""
    totals: dict[str, int] = {}
    for line in lines:
        totals[line.sku] = totals.get(line.sku, 0) + line.qty
    return totals


def _append(
    states: dict[str, SkuState],
    sku: str,
    delta: int,
    kind: str,
    order_id: str | None = None,
    channel: str | None = None,
    reason: str | None = None,
) -> StockEvent:
    before = states.get(sku)
    after = SkuState(sku, _available(before) + delta, _version(before) + 1)
    states[sku] = after
    return StockEvent(sku, after.version, delta, after.available, kind, order_id, channel, reason)


def take_order(
    states: Mapping[str, SkuState | None],
    channel: str,
    order_id: str,
    lines: tuple[OrderLine, ...],
    take_available: bool = False,
) -> Applied | Refused:
    """All lines or none (invariant 2), never below zero (invariant 1).

    With `take_available` (an order a channel already sold), a short line takes
    what there is instead, and the shortfall is reported alongside the events.
    """
    requested = requested_per_sku(lines)
    shortfalls = tuple(
        (sku, qty, _available(states.get(sku)))
        for sku, qty in requested.items()
        if qty > _available(states.get(sku))
    )
    if shortfalls and not take_available:
        return Refused(shortfalls)
    working = {sku: s for sku, s in states.items() if s is not None}
    events = []
    for line in lines:
        qty = min(line.qty, _available(working.get(line.sku)))
        if qty == 0 and take_available:
            continue
        events.append(_append(working, line.sku, -qty, "order", order_id, channel))
    return Applied(tuple(events), {e.sku: working[e.sku] for e in events})


def return_order(
    states: Mapping[str, SkuState | None],
    channel: str,
    order_id: str,
    lines: Iterable[OrderLine],
) -> Applied:
    """A cancel gives back exactly what its order took."""
    working = {sku: s for sku, s in states.items() if s is not None}
    events = tuple(
        _append(working, line.sku, line.qty, "cancel", order_id, channel)
        for line in lines
        if line.qty > 0
    )
    return Applied(events, {e.sku: working[e.sku] for e in events})


def set_stock(
    state: SkuState | None, sku: str, available: int, if_match: int | None, reason: str | None
) -> Applied | VersionMismatch | Unchanged:
    if if_match is not None and if_match != _version(state):
        return VersionMismatch(_version(state))
    if state is not None and state.available == available:
        return Unchanged(state)
    working = {sku: state} if state is not None else {}
    event = _append(working, sku, available - _available(state), "set", reason=reason)
    return Applied((event,), working)


def adjust_stock(
    state: SkuState | None, sku: str, delta: int, if_match: int | None, reason: str | None
) -> Applied | VersionMismatch | Refused | Unchanged:
    if if_match is not None and if_match != _version(state):
        return VersionMismatch(_version(state))
    if _available(state) + delta < 0:
        return Refused(((sku, -delta, _available(state)),))
    if delta == 0 and state is not None:
        return Unchanged(state)
    working = {sku: state} if state is not None else {}
    event = _append(working, sku, delta, "adjust", reason=reason)
    return Applied((event,), working)
