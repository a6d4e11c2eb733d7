"""What /internal/status reports: assembled on the loop from non-blocking reads."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from persistence.committer import DATABASE_ERRORS


class OrderRate:
    """Orders per second over the last minute, sampled once a second from the counters."""

    def __init__(self, total: Callable[[], float]) -> None:
        self._total = total
        self._samples: deque[tuple[float, float]] = deque(maxlen=61)

    def sample(self) -> None:
        self._samples.append((time.monotonic(), self._total()))

    def per_second(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._samples[-2], self._samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def history(self) -> list[float]:
        points = list(self._samples)
        return [round((b[1] - a[1]) / (b[0] - a[0]), 1) for a, b in zip(points, points[1:]) if b[0] > a[0]]


class StatusReporter:
    def __init__(
        self,
        *,
        version: str,
        database_kind: str,
        pool: Any,
        owners: Callable[[], Iterable[tuple[str, str, Any]]],
        metrics: Any,
        order_rate: OrderRate,
        channels: Callable[[], Awaitable[list[dict]]] | None = None,
    ) -> None:
        self._version = version
        self._database_kind = database_kind
        self._pool = pool
        self._owners = owners
        self._metrics = metrics
        self._order_rate = order_rate
        self._channels = channels
        self._started = time.time()

    async def _database_reachable(self) -> bool:
        try:
            await asyncio.wait_for(self._pool.fetchval("SELECT 1"), timeout=1)
            return True
        except DATABASE_ERRORS:
            return False

    def _orders(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for metric in self._metrics.orders.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    outcome = sample.labels["outcome"]
                    totals[outcome] = totals.get(outcome, 0) + sample.value
        return totals

    async def report(self) -> dict:
        shards, hot = [], []
        for kind, name, ref in self._owners():
            entry = {"name": name, "alive": ref.is_alive(), "mailbox": ref.actor_inbox.qsize()}
            (shards if kind == "shard" else hot).append(entry)
        channels = await self._channels() if self._channels is not None else []
        return {
            "version": self._version,
            "uptime_s": round(time.time() - self._started, 1),
            "database": {"kind": self._database_kind, "reachable": await self._database_reachable()},
            "orders": {
                "per_second": round(self._order_rate.per_second(), 1),
                "per_second_history": self._order_rate.history(),
                **{k: int(v) for k, v in sorted(self._orders().items())},
            },
            "actors": {"shards": shards, "hot_skus": hot},
            "channels": channels,
        }
