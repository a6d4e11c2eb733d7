"""The workload of one `invsync loadtest` run: initial stock and a deterministic stream of operations.

Pure: everything follows from the `WorkloadSpec` (seed included), so two systems driven with the
same spec see the same operations in the same order.  With a fixed `orders` count the set of
operations is exactly determined; with a duration the stream is the same prefix, cut where time
runs out.

Operations:
- `Order`: a new order through `POST /v1/orders` (flash-sale, catalog);
- `Buy`: a simulated buyer on channel `channel` wants `want` units of each SKU (marketplace: the
  simulator sells what it shows and reports the sale to the system as a signed order webhook);
- `Restock`: `POST /v1/stock/{sku}/adjust` with a positive delta (catalog);
- `Duplicate`: the same order (or webhook) again, identical, as a client or store retry would.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterator

import msgspec

SCENARIOS = ("flash-sale", "catalog", "marketplace")
API_CHANNEL = "loadtest"
RECENT_FOR_DUPLICATES = 256


class WorkloadSpec(msgspec.Struct, frozen=True, kw_only=True):
    scenario: str
    skus: int
    hot_skus: int = 1
    stock: int = 1000
    orders: int | None = None
    duration_s: float | None = None
    lines_per_order: int = 1
    max_qty: int = 1
    duplicate_rate: float = 0.0
    restock_rate: float = 0.0
    restock_units: int = 10
    zipf: float | None = None  # exponent; None = uniform demand
    hot_share: float = 0.9  # flash-sale: share of orders on the hot SKUs
    channels: int = 0  # marketplace: buyers pick one of these
    seed: int = 1
    prefix: str = "LT"  # SKU prefix (a run tag against a shared service)


class Order(msgspec.Struct, frozen=True, array_like=True):
    order_id: str
    lines: tuple[tuple[str, int], ...]


class Buy(msgspec.Struct, frozen=True, array_like=True):
    order_id: str  # numeric: stores number their orders
    channel: int  # index into the harness's channel list
    lines: tuple[tuple[str, int], ...]  # wanted units


class Restock(msgspec.Struct, frozen=True, array_like=True):
    restock_id: str
    sku: str
    delta: int


class Duplicate(msgspec.Struct, frozen=True, array_like=True):
    of: Order | Buy


Operation = Order | Buy | Restock | Duplicate


def sku_name(prefix: str, index: int) -> str:
    return f"{prefix}-{index:07d}"


def sku_names(spec: WorkloadSpec) -> list[str]:
    return [sku_name(spec.prefix, i) for i in range(1, spec.skus + 1)]


def initial_stock(spec: WorkloadSpec) -> dict[str, int]:
    """Every SKU starts with `stock` units (flash-sale: the hot SKUs too; the rest is the long tail)."""
    return {sku: spec.stock for sku in sku_names(spec)}


def validate(spec: WorkloadSpec) -> None:
    if spec.scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {spec.scenario!r}")
    if (spec.orders is None) == (spec.duration_s is None):
        raise ValueError("give exactly one of orders and duration")
    if spec.skus < 1 or not 1 <= spec.hot_skus <= spec.skus:
        raise ValueError("need 1 <= hot_skus <= skus")
    if spec.lines_per_order < 1 or spec.lines_per_order > spec.skus:
        raise ValueError("need 1 <= lines_per_order <= skus")
    if spec.max_qty < 1 or spec.stock < 0:
        raise ValueError("need max_qty >= 1 and stock >= 0")
    for name in ("duplicate_rate", "restock_rate", "hot_share"):
        if not 0.0 <= getattr(spec, name) <= 1.0:
            raise ValueError(f"{name} must be within [0, 1]")
    if spec.scenario == "marketplace" and spec.channels < 1:
        raise ValueError("marketplace needs at least one channel")


class _Demand:
    """Which SKU a buyer wants: flash-sale hot/tail split, Zipf, or uniform."""

    def __init__(self, spec: WorkloadSpec, rng: random.Random) -> None:
        self._rng = rng
        self._skus = sku_names(spec)
        self._spec = spec
        self._cumulative: list[float] | None = None
        if spec.zipf is not None and spec.scenario != "flash-sale":
            total = 0.0
            cumulative = []
            for rank in range(1, spec.skus + 1):
                total += 1.0 / rank**spec.zipf
                cumulative.append(total)
            self._cumulative = [c / total for c in cumulative]
            # Popularity rank -> SKU: a seeded shuffle, so the popular SKUs are not all at the front.
            self._by_rank = list(self._skus)
            random.Random(f"{spec.seed}:zipf").shuffle(self._by_rank)

    def pick(self) -> str:
        rng, spec = self._rng, self._spec
        if spec.scenario == "flash-sale":
            tail = spec.skus - spec.hot_skus
            if tail == 0 or rng.random() < spec.hot_share:
                return self._skus[rng.randrange(spec.hot_skus)]
            return self._skus[spec.hot_skus + rng.randrange(tail)]
        if self._cumulative is not None:
            index = min(bisect.bisect_left(self._cumulative, rng.random()), len(self._by_rank) - 1)
            return self._by_rank[index]
        return self._skus[rng.randrange(len(self._skus))]

    def lines(self, count: int, max_qty: int) -> tuple[tuple[str, int], ...]:
        chosen: list[str] = []
        attempts = 0
        while len(chosen) < count and attempts < 100 * count:
            sku = self.pick()
            attempts += 1
            if sku not in chosen:
                chosen.append(sku)
        if len(chosen) < count:  # a very skewed distribution: fill up in order
            chosen.extend(s for s in self._skus if s not in chosen)
            chosen = chosen[:count]
        rng = self._rng
        return tuple((sku, 1 if max_qty == 1 else rng.randint(1, max_qty)) for sku in chosen)


def operations(spec: WorkloadSpec, run_tag: str = "") -> Iterator[Operation]:
    """The endless deterministic operation stream (the caller stops it: count or deadline)."""
    rng = random.Random(f"{spec.seed}:{spec.scenario}:ops")
    demand = _Demand(spec, rng)
    recent: list[Order | Buy] = []
    tag = f"{run_tag}-" if run_tag else ""
    for n in itertools.count():
        draw_duplicate, draw_restock = rng.random(), rng.random()
        if recent and draw_duplicate < spec.duplicate_rate:
            yield Duplicate(recent[rng.randrange(len(recent))])
            continue
        if spec.scenario in ("catalog", "marketplace") and draw_restock < spec.restock_rate:
            yield Restock(f"{tag}r{n:09d}", demand.pick(), spec.restock_units)
            continue
        lines = demand.lines(spec.lines_per_order, spec.max_qty)
        op: Order | Buy
        if spec.scenario == "marketplace":
            op = Buy(str(n + 1), rng.randrange(spec.channels), lines)
        else:
            op = Order(f"{tag}o{n:09d}", lines)
        recent.append(op)
        if len(recent) > RECENT_FOR_DUPLICATES:
            recent.pop(0)
        yield op
