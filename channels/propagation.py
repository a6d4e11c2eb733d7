"""How long a committed stock change takes to be confirmed by each channel.

Runs on the loop: the hub tells it when a change is committed and when a
channel confirms a version. With coalescing, a channel confirms the newest
version of a SKU; the latency measured is from that version's commit to the
channel's confirmation. Samples older than the window are forgotten.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence

from actors.messages import StockChanged

WINDOW_S = 60.0


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


class PropagationTracker:
    def __init__(
        self,
        observe: Callable[[str, float], None] = lambda channel, seconds: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._observe = observe
        self._clock = clock
        self._committed: dict[str, tuple[int, float]] = {}  # sku -> (newest version, commit time)
        self._samples: dict[str, deque[tuple[float, float]]] = {}
        self.last_success: dict[str, float] = {}  # wall-clock time
        self.last_error: dict[str, tuple[float, str]] = {}

    def committed(self, changes: Sequence[StockChanged]) -> None:
        now = self._clock()
        for change in changes:
            self._committed[change.sku] = (change.version, now)

    def confirmed(self, channel_id: str, rows: Sequence[tuple[str, int, int]]) -> None:
        now = self._clock()
        self.last_success[channel_id] = time.time()
        samples = self._samples.setdefault(channel_id, deque())
        for sku, _quantity, version in rows:
            committed = self._committed.get(sku)
            if committed is not None and committed[0] == version:
                latency = now - committed[1]
                samples.append((now, latency))
                self._observe(channel_id, latency)
        while samples and samples[0][0] < now - WINDOW_S:
            samples.popleft()

    def failed(self, channel_id: str, error: str) -> None:
        self.last_error[channel_id] = (time.time(), error)

    def latency_ms(self, channel_id: str) -> tuple[float | None, float | None]:
        """p50 and p99 over the last minute, in milliseconds."""
        now = self._clock()
        values = [lat * 1000 for t, lat in self._samples.get(channel_id, ()) if t >= now - WINDOW_S]
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        return (round(p50, 1) if p50 is not None else None, round(p99, 1) if p99 is not None else None)
