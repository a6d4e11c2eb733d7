"""Closed-loop order load generator.

``connections`` workers share one ``ClientSession`` (one keep-alive
connection each) and post single-line orders back to back, for a duration or
for an exact number of orders.  Which SKU each order takes and its order id
follow from the seed alone, so two systems driven with the same seed see the
same order stream.

A single Python process tops out at a few thousand requests per second, so
the load can be split over ``processes`` generator processes whose latency
histograms are merged (see ``python -m loadtest.client_ceiling`` for what one
process can drive on this machine).

Latency is recorded per request in an HDR histogram in microseconds; 201 and
409 are both successful requests (counted apart), anything else is an error
and is left out of the latency figures.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import time
from collections import Counter
from collections.abc import Sequence

import aiohttp
import msgspec
import psutil
from hdrh.histogram import HdrHistogram

LOWEST_LATENCY_US = 1
HIGHEST_LATENCY_US = 60_000_000
SIGNIFICANT_DIGITS = 3
REQUEST_TIMEOUT_S = 60.0


class LoadSpec(msgspec.Struct, frozen=True):
    """What load to apply.  Exactly one of ``duration_s`` / ``total_orders``."""

    base_url: str
    token: str
    skus: list[str]
    connections: int = 64
    duration_s: float | None = None
    total_orders: int | None = None
    warmup_s: float = 0.0
    seed: int = 1
    order_id_prefix: str = "load"
    channel: str = "loadtest"
    qty: int = 1
    processes: int = 1


class LoadResult(msgspec.Struct):
    """What happened.  ``orders_per_s`` counts accepted + refused (both are answers)."""

    accepted: int
    refused: int
    errors: int
    sent: int
    elapsed_s: float
    orders_per_s: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    connections: int
    processes: int
    client_cpu_percent: float  # generator processes together, 100 = one core
    machine_cpu_percent: float  # whole machine, 100 = every core busy
    errors_by_kind: dict[str, int] = {}


class _PartialResult(msgspec.Struct):
    """One generator process's share, shipped back to be merged."""

    accepted: int
    refused: int
    errors_by_kind: dict[str, int]
    elapsed_s: float
    cpu_s: float
    machine_cpu_percent: float
    histogram: bytes  # HdrHistogram.encode()


class _OrderLine(msgspec.Struct):
    sku: str
    qty: int


class _OrderBody(msgspec.Struct):
    order_id: str
    channel: str
    lines: list[_OrderLine]


class OrderStream:
    """The deterministic sequence of orders one generator process sends.

    Shared by that process's workers (single-threaded asyncio, so no lock):
    with a fixed count, the set of orders sent is exactly determined by the
    seed, whatever the interleaving of responses.
    """

    def __init__(
        self,
        skus: Sequence[str],
        rng_seed: str,
        order_id_prefix: str,
        channel: str,
        qty: int,
        limit: int | None,
        deadline: float | None,
    ) -> None:
        self._skus = skus
        self._rng = random.Random(rng_seed)
        self._prefix = order_id_prefix
        self._channel = channel
        self._qty = qty
        self._limit = limit
        self._deadline = deadline
        self._encoder = msgspec.json.Encoder()
        self.issued = 0

    def next_body(self) -> bytes | None:
        """The next order's JSON, or None when the run is over."""
        if self._limit is not None and self.issued >= self._limit:
            return None
        if self._deadline is not None and time.perf_counter() >= self._deadline:
            return None
        sku = self._skus[self._rng.randrange(len(self._skus))]
        order_id = f"{self._prefix}-{self.issued:09d}"
        self.issued += 1
        return self._encoder.encode(
            _OrderBody(order_id=order_id, channel=self._channel, lines=[_OrderLine(sku, self._qty)])
        )


class _Tally:
    def __init__(self) -> None:
        self.accepted = 0
        self.refused = 0
        self.errors: Counter[str] = Counter()
        self.histogram = HdrHistogram(LOWEST_LATENCY_US, HIGHEST_LATENCY_US, SIGNIFICANT_DIGITS)


async def _post_orders(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], stream: OrderStream, tally: _Tally
) -> None:
    histogram = tally.histogram
    while (body := stream.next_body()) is not None:
        started = time.perf_counter_ns()
        try:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            tally.errors[type(exc).__name__] += 1
            continue
        latency_us = (time.perf_counter_ns() - started) // 1000
        if status == 201:
            tally.accepted += 1
        elif status == 409:
            tally.refused += 1
        else:
            tally.errors[f"http_{status}"] += 1
            continue
        histogram.record_value(min(max(latency_us, LOWEST_LATENCY_US), HIGHEST_LATENCY_US))


async def _run_phase(
    session: aiohttp.ClientSession,
    spec: LoadSpec,
    connections: int,
    stream: OrderStream,
) -> tuple[_Tally, float, float]:
    """Run ``connections`` workers until ``stream`` is exhausted: (tally, elapsed s, cpu s)."""
    url = f"{spec.base_url.rstrip('/')}/v1/orders"
    headers = {"Authorization": f"Bearer {spec.token}", "Content-Type": "application/json"}
    tally = _Tally()
    cpu_before = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(_post_orders(session, url, headers, stream, tally) for _ in range(connections)))
    return tally, time.perf_counter() - started, time.process_time() - cpu_before


def _share(total: int, parts: int, index: int) -> int:
    return total // parts + (1 if index < total % parts else 0)


async def _run_generator(spec: LoadSpec, index: int, barrier: object | None) -> _PartialResult:
    """One generator process's work: optional warm-up, then the measured phase."""
    connections = _share(spec.connections, spec.processes, index)
    prefix = f"{spec.order_id_prefix}-p{index}" if spec.processes > 1 else spec.order_id_prefix
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False
    ) as session:
        if spec.warmup_s > 0:
            # A separate order-id space and RNG: warm-up orders must not be
            # replays of measured ones, and the measured SKU sequence must not
            # depend on how many warm-up orders happened to fit.
            warmup = OrderStream(
                spec.skus, f"{spec.seed}:{index}:warmup", f"{prefix}-warm", spec.channel, spec.qty,
                None, time.perf_counter() + spec.warmup_s,
            )
            await _run_phase(session, spec, connections, warmup)
        if barrier is not None:
            await asyncio.to_thread(barrier.wait)  # type: ignore[attr-defined]
        limit = _share(spec.total_orders, spec.processes, index) if spec.total_orders is not None else None
        deadline = time.perf_counter() + spec.duration_s if spec.duration_s is not None else None
        stream = OrderStream(spec.skus, f"{spec.seed}:{index}", prefix, spec.channel, spec.qty, limit, deadline)
        machine = MachineCpu()
        tally, elapsed, cpu = await _run_phase(session, spec, connections, stream)
        machine_cpu_percent = machine.busy_percent()
    return _PartialResult(
        accepted=tally.accepted,
        refused=tally.refused,
        errors_by_kind=dict(tally.errors),
        elapsed_s=elapsed,
        cpu_s=cpu,
        machine_cpu_percent=machine_cpu_percent,
        histogram=tally.histogram.encode(),
    )


def _generator_process_main(spec_json: bytes, index: int, barrier: object, results: object) -> None:
    spec = msgspec.json.decode(spec_json, type=LoadSpec)
    try:
        partial = asyncio.run(_run_generator(spec, index, barrier))
        results.put((index, msgspec.json.encode(partial)))  # type: ignore[attr-defined]
    except BaseException as exc:
        barrier.abort()  # type: ignore[attr-defined]
        results.put((index, repr(exc)))  # type: ignore[attr-defined]
        raise


async def _run_in_processes(spec: LoadSpec) -> list[_PartialResult]:
    # spawn, not fork: the caller usually has a running event loop (and maybe
    # threads), which a forked child must not inherit.
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(spec.processes)
    results = context.Queue()
    spec_json = msgspec.json.encode(spec)
    processes = [
        context.Process(target=_generator_process_main, args=(spec_json, i, barrier, results), daemon=True)
        for i in range(spec.processes)
    ]
    for process in processes:
        process.start()
    try:
        partials: list[_PartialResult] = []
        failures: list[str] = []
        for _ in processes:
            index, payload = await asyncio.to_thread(results.get)
            if isinstance(payload, str):
                failures.append(f"generator {index}: {payload}")
            else:
                partials.append(msgspec.json.decode(payload, type=_PartialResult))
        if failures:
            raise RuntimeError("; ".join(failures))
        return partials
    finally:
        for process in processes:
            await asyncio.to_thread(process.join, 10)
            if process.is_alive():
                process.kill()


def _merge(spec: LoadSpec, partials: list[_PartialResult]) -> LoadResult:
    histogram = HdrHistogram(LOWEST_LATENCY_US, HIGHEST_LATENCY_US, SIGNIFICANT_DIGITS)
    for partial in partials:
        histogram.add(HdrHistogram.decode(partial.histogram))
    errors: Counter[str] = Counter()
    for partial in partials:
        errors.update(partial.errors_by_kind)
    accepted = sum(p.accepted for p in partials)
    refused = sum(p.refused for p in partials)
    # Processes start together (barrier); the slowest one bounds the window.
    elapsed = max(p.elapsed_s for p in partials)
    error_count = sum(errors.values())

    def ms_at(percentile: float) -> float:
        return histogram.get_value_at_percentile(percentile) / 1000 if histogram.get_total_count() else 0.0

    return LoadResult(
        accepted=accepted,
        refused=refused,
        errors=error_count,
        sent=accepted + refused + error_count,
        elapsed_s=elapsed,
        orders_per_s=(accepted + refused) / elapsed if elapsed > 0 else 0.0,
        mean_ms=histogram.get_mean_value() / 1000 if histogram.get_total_count() else 0.0,
        p50_ms=ms_at(50),
        p90_ms=ms_at(90),
        p99_ms=ms_at(99),
        p999_ms=ms_at(99.9),
        max_ms=histogram.get_max_value() / 1000,
        connections=spec.connections,
        processes=spec.processes,
        client_cpu_percent=100 * sum(p.cpu_s for p in partials) / elapsed if elapsed > 0 else 0.0,
        # Every generator sees the same machine over the same window.
        machine_cpu_percent=max(p.machine_cpu_percent for p in partials),
        errors_by_kind=dict(errors),
    )


class MachineCpu:
    """Busy share of all cores between two points in time."""

    def __init__(self) -> None:
        self._before = psutil.cpu_times()

    def busy_percent(self) -> float:
        after = psutil.cpu_times()
        total = sum(after) - sum(self._before)
        idle = (after.idle + getattr(after, "iowait", 0.0)) - (
            self._before.idle + getattr(self._before, "iowait", 0.0)
        )
        return 100 * (total - idle) / total if total > 0 else 0.0


async def run_load(spec: LoadSpec) -> LoadResult:
    """Apply the load described by ``spec`` and return the merged result."""
    if (spec.duration_s is None) == (spec.total_orders is None):
        raise ValueError("give exactly one of duration_s and total_orders")
    if not spec.skus:
        raise ValueError("need at least one SKU")
    if spec.processes < 1 or spec.connections < spec.processes:
        raise ValueError("need 1 <= processes <= connections")
    if spec.processes == 1:
        partials = [await _run_generator(spec, 0, None)]
    else:
        partials = await _run_in_processes(spec)
    return _merge(spec, partials)
