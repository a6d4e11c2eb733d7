"""End-of-run verification of one system: pure functions over what the client saw and what is stored.

Nothing here does I/O: the harness collects a `ClientRecord` (every answer the load client got), a
`StoredState` (the database, or the API, read after the run) and the channels' shown quantities,
then `verify` lists every violation.  A run passes when the list is empty.

Checks (names as they appear in the report and the JSON):

- `no_negative_stock`: no SKU is stored below zero.
- `accepted_within_supply`: per SKU, the units of the orders the client saw acknowledged (2xx)
  never exceed the initial stock plus the restocks (acknowledged, or unanswered and maybe applied).
- `acknowledged_orders_stored` (systems with an order record): every order the client got a
  definite answer for is stored with that outcome and those units.
- `nothing_unacknowledged_counted` (systems with an order record): every stored order that took
  stock was acknowledged to the client, or its request had no definite answer (timeout, reset).
- `stock_conservation`: per SKU, final = initial + restocks - units taken by the acknowledged orders
  (each acknowledgement counts once per order id for an idempotent system, once per answer for
  one that is not) - units taken by unanswered orders (read from the order record; a range when
  the system keeps none).  An order applied twice, or applied without acknowledgement, breaks it.
- `invsync_check`: `persistence.check.check_database` found nothing (invsync systems).
- `channels_converged`: every channel shows, for every SKU it lists, exactly the stored quantity
  (after the settle time).
- `dead_letters_accounted`: per channel, every dead letter made during the run is drained,
  discarded or still open, and the open ones are the ones `GET /v1/dead-letters` lists.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping

import msgspec

OUTCOMES_TAKING = ("accepted", "oversold")
DEFINITE = ("accepted", "oversold", "refused")
MAX_DETAILS_PER_CHECK = 50


class Violation(msgspec.Struct, frozen=True):
    check: str
    subject: str
    detail: str


class ClientOrder(msgspec.Struct, kw_only=True):
    """What the load client knows of one order id (all of its sends together)."""

    channel: str
    order_id: str
    requested: dict[str, int]
    # accepted | oversold | refused | unknown (never a definite answer) | conflict (4xx other than 409)
    outcome: str
    taken: dict[str, int] = {}  # from the (first) 2xx answer
    acks: int = 0  # 2xx answers for this id: 1 + duplicates answered 2xx
    sends: int = 0
    unanswered: int = 0  # sends that got no definite answer (timeout, reset, 5xx)

    @property
    def key(self) -> str:
        return f"{self.channel}/{self.order_id}"


class ClientRecord(msgspec.Struct, kw_only=True):
    orders: dict[str, ClientOrder]  # key "channel/order_id"
    restocks_acked: dict[str, int] = {}  # SKU -> units acknowledged
    restocks_unknown: dict[str, int] = {}  # SKU -> units sent without a definite answer


class StoredOrder(msgspec.Struct, frozen=True, array_like=True):
    status: str  # accepted | oversold | refused | cancelled
    taken: dict[str, int]


class StoredState(msgspec.Struct, kw_only=True):
    stock: dict[str, int]  # the workload's SKUs -> stored available
    orders: dict[str, StoredOrder] | None = None  # None: the system keeps no order record
    check_violations: list[Violation] | None = None  # None: `invsync check` not run


class ChannelsView(msgspec.Struct, kw_only=True):
    shown: dict[str, dict[str, int]]  # channel -> SKU -> quantity shown
    listed: dict[str, list[str] | None] = {}  # channel -> SKUs it lists (None/absent: all)
    buffer: dict[str, int] = {}  # channel -> units held back


class DeadLetters(msgspec.Struct, kw_only=True):
    counts: dict[str, dict[str, int]]  # per channel: open, dead_lettered, retried, drained, discarded
    listed: list[tuple[str, str]]  # (channel, SKU) of every open dead letter GET /v1/dead-letters lists
    counts_before: dict[str, dict[str, int]] = {}


def _add(target: dict[str, int], units: Mapping[str, int], times: int = 1) -> None:
    for sku, qty in units.items():
        target[sku] = target.get(sku, 0) + qty * times


class _Collector:
    def __init__(self) -> None:
        self.violations: list[Violation] = []
        self._per_check: Counter[str] = Counter()

    def add(self, check: str, subject: str, detail: str) -> None:
        self._per_check[check] += 1
        if self._per_check[check] <= MAX_DETAILS_PER_CHECK:
            self.violations.append(Violation(check, subject, detail))

    def finish(self) -> list[Violation]:
        for check, count in self._per_check.items():
            if count > MAX_DETAILS_PER_CHECK:
                self.violations.append(
                    Violation(check, "(more)", f"{count - MAX_DETAILS_PER_CHECK} more violations not listed")
                )
        return self.violations


def verify_stock(
    initial: Mapping[str, int], client: ClientRecord, stored: StoredState, *, idempotent: bool, out: _Collector
) -> None:
    for sku, available in sorted(stored.stock.items()):
        if available < 0:
            out.add("no_negative_stock", sku, f"stored available {available}")
    missing = sorted(set(initial) - set(stored.stock))
    for sku in missing[:MAX_DETAILS_PER_CHECK]:
        out.add("stock_conservation", sku, "SKU of the workload is not stored at all")

    acked: dict[str, int] = {}
    unknown_max: dict[str, int] = {}
    unknown_taken: dict[str, int] = {}
    for order in client.orders.values():
        if order.outcome in OUTCOMES_TAKING:
            _add(acked, order.taken, 1 if idempotent else max(order.acks, 1))
        if stored.orders is not None:
            if order.outcome == "unknown":  # no definite answer: the order record tells
                found = stored.orders.get(order.key)
                if found is not None and found.status in OUTCOMES_TAKING:
                    _add(unknown_taken, found.taken)
        elif order.unanswered:  # no record to ask: each unanswered send may have taken its units
            _add(unknown_max, order.requested, order.unanswered)
    supply_ceiling = dict(initial)
    _add(supply_ceiling, client.restocks_acked)
    _add(supply_ceiling, client.restocks_unknown)
    for sku, units in sorted(acked.items()):
        ceiling = supply_ceiling.get(sku, 0)
        if units > ceiling:
            out.add("accepted_within_supply", sku, f"{units} units acknowledged, only {ceiling} ever supplied")

    for sku in sorted(initial):
        if sku not in stored.stock:
            continue
        base = initial[sku] + client.restocks_acked.get(sku, 0) - acked.get(sku, 0) - unknown_taken.get(sku, 0)
        low = base - unknown_max.get(sku, 0)
        high = base + client.restocks_unknown.get(sku, 0)
        final = stored.stock[sku]
        if not low <= final <= high:
            expected = f"{base}" if low == high else f"between {low} and {high}"
            out.add(
                "stock_conservation", sku,
                f"stored {final}, expected {expected} (initial {initial[sku]}, restocked "
                f"{client.restocks_acked.get(sku, 0)}, acknowledged orders took {acked.get(sku, 0)})",
            )


def verify_orders(client: ClientRecord, stored: StoredState, out: _Collector) -> None:
    if stored.orders is None:
        return
    for key, order in sorted(client.orders.items()):
        if order.outcome not in DEFINITE:
            continue
        found = stored.orders.get(key)
        if found is None:
            out.add("acknowledged_orders_stored", key, f"answered {order.outcome} but not stored")
            continue
        status = "accepted" if found.status == "cancelled" else found.status
        if status != order.outcome:
            out.add("acknowledged_orders_stored", key, f"answered {order.outcome}, stored {found.status}")
        elif order.outcome in OUTCOMES_TAKING and found.taken != order.taken:
            out.add("acknowledged_orders_stored", key, f"answered taking {order.taken}, stored {found.taken}")
    for key, found in sorted(stored.orders.items()):
        if found.status not in OUTCOMES_TAKING:
            continue
        order = client.orders.get(key)
        if order is None:
            out.add("nothing_unacknowledged_counted", key, f"stored {found.status} but never sent by the client")
        elif order.outcome not in (*OUTCOMES_TAKING, "unknown"):
            out.add("nothing_unacknowledged_counted", key, f"stored {found.status} but answered {order.outcome}")


def verify_channels(truth: Mapping[str, int], channels: ChannelsView, out: _Collector) -> None:
    for channel, shown in sorted(channels.shown.items()):
        listed = channels.listed.get(channel)
        buffer = channels.buffer.get(channel, 0)
        wrong: list[str] = []
        for sku in (listed if listed is not None else sorted(truth)):
            if sku not in truth:
                continue
            expected = max(truth[sku] - buffer, 0)
            if shown.get(sku) != expected:
                wrong.append(f"{sku} shows {shown.get(sku)} instead of {expected}")
        if wrong:
            more = f" (+{len(wrong) - 3} more)" if len(wrong) > 3 else ""
            out.add("channels_converged", channel, f"{len(wrong)} SKUs differ: " + "; ".join(wrong[:3]) + more)


def verify_dead_letters(dead: DeadLetters, out: _Collector) -> None:
    listed = Counter(channel for channel, _ in dead.listed)
    for channel in sorted(set(dead.counts) | set(listed)):
        now = dead.counts.get(channel, {})
        before = dead.counts_before.get(channel, {})

        def delta(name: str) -> int:
            return now.get(name, 0) - before.get(name, 0)

        made = delta("dead_lettered")
        ended = delta("drained") + delta("discarded")
        opened = delta("open")
        if made != ended + opened:
            out.add(
                "dead_letters_accounted", channel,
                f"{made} dead-lettered, but {delta('drained')} drained + {delta('discarded')} discarded + {opened} newly open",
            )
        if listed.get(channel, 0) != now.get("open", 0):
            out.add("dead_letters_accounted", channel, f"{now.get('open', 0)} open by count, {listed.get(channel, 0)} listed")


def verify(
    *,
    initial: Mapping[str, int],
    client: ClientRecord,
    stored: StoredState,
    idempotent: bool,
    channels: ChannelsView | None = None,
    dead_letters: DeadLetters | None = None,
) -> list[Violation]:
    """Every violation found; empty when the run kept every invariant."""
    out = _Collector()
    verify_stock(initial, client, stored, idempotent=idempotent, out=out)
    verify_orders(client, stored, out)
    for v in stored.check_violations or ():
        out.add("invsync_check", v.subject, f"{v.check}: {v.detail}")
    if channels is not None:
        verify_channels(stored.stock, channels, out)
    if dead_letters is not None:
        verify_dead_letters(dead_letters, out)
    return out.finish()


CHECK_NAMES = (
    "no_negative_stock",
    "accepted_within_supply",
    "acknowledged_orders_stored",
    "nothing_unacknowledged_counted",
    "stock_conservation",
    "invsync_check",
    "channels_converged",
    "dead_letters_accounted",
)


def summarize(violations: Iterable[Violation], applicable: Iterable[str]) -> dict[str, str]:
    """check -> "pass" | "fail" | "skipped" for the report."""
    failed = {v.check for v in violations}
    applicable = set(applicable)
    return {name: ("fail" if name in failed else "pass" if name in applicable else "skipped") for name in CHECK_NAMES}


def taken_from_lines(lines: Iterable[Mapping[str, object]]) -> dict[str, int]:
    """[{"sku", "qty"}, ...] (an answer's or the order record's lines) -> SKU -> units."""
    taken: dict[str, int] = defaultdict(int)
    for line in lines:
        taken[str(line["sku"])] += int(line["qty"])  # type: ignore[call-overload]
    return dict(taken)
