"""The service's Prometheus metrics, in a registry of its own.

Counters and histograms are fed where things happen (the committer, the
gateway, the supervisor's callbacks); gauges about actors are read when
scraped, from values that are safe to read without asking an actor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from actors.batch_builder import Batch

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


class _ActorGauges:
    """Mailbox depth per actor kind and live hot-SKU actors, read at scrape time."""

    def __init__(self, owners: Callable[[], Iterable[tuple[str, object]]]) -> None:
        self._owners = owners

    def collect(self):
        depth = GaugeMetricFamily("invsync_mailbox_depth", "Messages waiting in actor mailboxes", labels=["kind"])
        hot = GaugeMetricFamily("invsync_hot_sku_actors", "SKUs that have an actor of their own")
        totals: dict[str, int] = {}
        alive_hot = 0
        for kind, ref in self._owners():
            if not ref.is_alive():
                continue
            totals[kind] = totals.get(kind, 0) + ref.actor_inbox.qsize()
            alive_hot += kind == "sku"
        for kind, n in sorted(totals.items()):
            depth.add_metric([kind], n)
        hot.add_metric([], alive_hot)
        yield depth
        yield hot


class _ChannelGauges:
    """Per-channel pushes and open dead letters, from the rows of the last scrape."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def collect(self):
        pushes = CounterMetricFamily(
            "invsync_channel_pushes", "SKU updates pushed to channels by outcome", labels=["channel", "outcome"]
        )
        dead = GaugeMetricFamily("invsync_dead_letters_open", "Dead letters waiting per channel", labels=["channel"])
        for row in self.rows:
            counters = row.get("counters") or {}
            pushes.add_metric([row["id"], "success"], counters.get("confirmed", 0))
            pushes.add_metric([row["id"], "throttled"], counters.get("throttled", 0))
            pushes.add_metric([row["id"], "failed"], counters.get("failed", 0) + counters.get("retried", 0))
            dead.add_metric([row["id"]], row.get("dead_letters", 0))
        yield pushes
        yield dead


class _PropagationHistograms:
    """invsync_propagation_seconds by channel, from the tracker's own bucket counts.

    Tens of thousands of confirmations a second are cheaper to count into
    buckets as they come than to observe one by one.
    """

    # every fourth bound of the tracker: ~1 ms, 1.6 ms, 2.5 ms ... 60 s
    _EVERY = 4

    def __init__(self, tracker) -> None:
        self._tracker = tracker

    def collect(self):
        from channels.propagation import BOUNDS

        family = HistogramMetricFamily(
            "invsync_propagation_seconds", "From commit to confirmation by a channel", labels=["channel"]
        )
        for channel, latencies in sorted(self._tracker.channels.items()):
            buckets, running = [], 0
            for i, (bound, count) in enumerate(zip(BOUNDS, latencies.cumulative)):
                running += count
                if i % self._EVERY == 0 or bound == float("inf"):
                    buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
            family.add_metric([channel], buckets, latencies.sum)
        yield family


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.orders = Counter(
            "invsync_orders", "Orders by outcome", ["channel", "outcome"], registry=registry
        )
        self.order_latency = Histogram(
            "invsync_order_latency_seconds", "Time from request to answer of POST /v1/orders",
            buckets=_LATENCY_BUCKETS, registry=registry,
        )
        self.commit_batch_size = Histogram(
            "invsync_commit_batch_size", "Requests committed per transaction", buckets=_BATCH_BUCKETS, registry=registry
        )
        self.commit_latency = Histogram(
            "invsync_commit_latency_seconds", "Duration of one group commit", buckets=_LATENCY_BUCKETS, registry=registry
        )
        self.actor_restarts = Counter("invsync_actor_restarts", "Actors restarted after a crash", ["kind"], registry=registry)
        self.started = Gauge("invsync_start_time_seconds", "Unix time the service started", registry=registry)
        self._channels = _ChannelGauges()
        registry.register(self._channels)
        self.channel_rows: Callable[[], Awaitable[list[dict]]] | None = None
        self.started.set_to_current_time()

    def watch_actors(self, owners: Callable[[], Iterable[tuple[str, object]]]) -> None:
        self.registry.register(_ActorGauges(owners))

    def observe_commit(self, batch: Batch, seconds: float) -> None:
        self.commit_batch_size.observe(len(batch.entries))
        self.commit_latency.observe(seconds)
        for entry in batch.entries:
            if entry.record is not None:
                self.orders.labels(entry.record.channel, entry.record.status).inc()

    def watch_propagation(self, tracker) -> None:
        self.registry.register(_PropagationHistograms(tracker))

    async def exposition(self) -> bytes:
        if self.channel_rows is not None:
            self._channels.rows = await self.channel_rows()
        return generate_latest(self.registry)
