"""How long a committed stock change takes to be confirmed by each channel.

Runs on the loop: the hub tells it when a change is committed and when a
channel confirms a version. With coalescing, a channel confirms the newest
version of a SKU; the latency measured is from that version's commit to the
channel's confirmation.

Confirmations come by the tens of thousands per second with many channels,
so samples are only counted into fixed buckets (cumulative, for Prometheus,
and per second for the last minute, for p50/p99 in /internal/status).
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from collections.abc import Callable, Sequence

from actors.messages import StockChanged

WINDOW_S = 60

# Upper bounds in seconds: 1 ms .. 60 s, about 12% apart.
BOUNDS: tuple[float, ...] = tuple(round(0.001 * 1.12**i, 6) for i in range(98)) + (float("inf"),)


class ChannelLatencies:
    def __init__(self) -> None:
        self.cumulative = [0] * len(BOUNDS)
        self.sum = 0.0
        self.count = 0
        self.recent: deque[tuple[int, list[int]]] = deque()  # (second, counts)

    def add(self, second: int, latencies: Sequence[float]) -> None:
        if not self.recent or self.recent[-1][0] != second:
            self.recent.append((second, [0] * len(BOUNDS)))
            while self.recent[0][0] <= second - WINDOW_S:
                self.recent.popleft()
        now_counts = self.recent[-1][1]
        cumulative = self.cumulative
        for latency in latencies:
            i = bisect.bisect_left(BOUNDS, latency)
            cumulative[i] += 1
            now_counts[i] += 1
        self.sum += sum(latencies)
        self.count += len(latencies)

    def quantiles_ms(self, second: int, qs: Sequence[float]) -> list[float | None]:
        totals = [0] * len(BOUNDS)
        for at, counts in self.recent:
            if at > second - WINDOW_S:
                totals = [a + b for a, b in zip(totals, counts)]
        n = sum(totals)
        if n == 0:
            return [None for _ in qs]
        out = []
        for q in qs:
            rank, seen = q * n, 0
            for i, c in enumerate(totals):
                seen += c
                if seen >= rank and c:
                    bound = BOUNDS[i] if BOUNDS[i] != float("inf") else BOUNDS[-2]
                    out.append(round(bound * 1000, 1))
                    break
        return out


class PropagationTracker:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._committed: dict[str, tuple[int, float]] = {}  # sku -> (newest version, commit time)
        self.channels: dict[str, ChannelLatencies] = {}
        self.last_success: dict[str, float] = {}  # wall-clock time
        self.last_error: dict[str, tuple[float, str]] = {}

    def committed(self, changes: Sequence[StockChanged]) -> None:
        now = self._clock()
        committed = self._committed
        for change in changes:
            committed[change.sku] = (change.version, now)

    def confirmed(self, channel_id: str, rows: Sequence[tuple[str, int, int]]) -> None:
        now = self._clock()
        self.last_success[channel_id] = time.time()
        committed = self._committed
        latencies = []
        for sku, _quantity, version in rows:
            known = committed.get(sku)
            if known is not None and known[0] == version:
                latencies.append(now - known[1])
        if latencies:
            channel = self.channels.get(channel_id)
            if channel is None:
                channel = self.channels[channel_id] = ChannelLatencies()
            channel.add(int(now), latencies)

    def failed(self, channel_id: str, error: str) -> None:
        self.last_error[channel_id] = (time.time(), error)

    def latency_ms(self, channel_id: str) -> tuple[float | None, float | None]:
        """p50 and p99 over the last minute, in milliseconds (bucket upper bounds)."""
        channel = self.channels.get(channel_id)
        if channel is None:
            return None, None
        p50, p99 = channel.quantiles_ms(int(self._clock()), (0.5, 0.99))
        return p50, p99
