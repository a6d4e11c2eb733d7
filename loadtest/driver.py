"""The load driver of `invsync loadtest`: sends a workload's operations and records every answer.

Closed loop (no `rate`): `connections` workers send operations back to back.  Open loop (`rate`
operations per second): operation n is due at start + n / rate and is sent as soon as one of the
`connections` slots is free; its latency is measured from when it was *due*, so a server that
falls behind is charged for the queueing it causes (no coordinated omission).

Every answer goes into the `ClientRecord` the verification compares with the database, into an
HDR histogram (µs), and into per-second histograms for the latency-over-time plots.  Acknowledged
changes are kept as (SKU, version, acknowledged at, origin channel) for the propagation figures.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator

import aiohttp
import msgspec
from hdrh.histogram import HdrHistogram

from loadtest.verify import ClientOrder, ClientRecord, taken_from_lines
from loadtest.workload import API_CHANNEL, Buy, Duplicate, Operation, Order, Restock

LOWEST_US = 1
HIGHEST_US = 120_000_000
REQUEST_TIMEOUT_S = 60.0


class _Line(msgspec.Struct):
    sku: str
    qty: int
    available_after: int = 0
    version: int = 0


class _OrderAnswer(msgspec.Struct):
    status: str = "accepted"
    lines: list[_Line] = []


class _StockAnswer(msgspec.Struct):
    sku: str
    available: int
    version: int


class _BuyAnswer(msgspec.Struct):
    sold: list[tuple[str, int]]
    status: int
    body: str


_order_answer = msgspec.json.Decoder(_OrderAnswer)
_stock_answer = msgspec.json.Decoder(_StockAnswer)
_buy_answer = msgspec.json.Decoder(_BuyAnswer)
_encode = msgspec.json.Encoder().encode


class Target(msgspec.Struct, frozen=True):
    """Where operations go."""

    base_url: str
    token: str
    simulator_url: str | None = None  # marketplace: buyers act through the simulator
    channel_ids: list[str] = []  # marketplace: index -> channel id
    webhook_urls: list[str] = []  # marketplace: index -> the system's order-webhook URL for it


class DriveResult(msgspec.Struct):
    started_monotonic: float
    elapsed_s: float
    operations: int
    answered: int  # operations with a definite answer (2xx, 409)
    counts: dict[str, int]  # accepted, refused, oversold, restocks, duplicates, duplicates_absorbed, ...
    errors: dict[str, int]
    histogram: bytes  # HdrHistogram.encode() of every answered operation, µs
    timeline: list[tuple[float, int, float, float, float]]  # (second, answered, p50 ms, p99 ms, max ms)
    client_cpu_percent: float = 0.0  # this process (driver, and the polling baseline's poller), 100 = one core


class Recorder:
    def __init__(self) -> None:
        self.histogram = HdrHistogram(LOWEST_US, HIGHEST_US, 3)
        self.per_second: dict[int, HdrHistogram] = {}
        self.counts: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.orders: dict[str, ClientOrder] = {}
        self.restocks_acked: Counter[str] = Counter()
        self.restocks_unknown: Counter[str] = Counter()
        # (sku, version, acknowledged at (monotonic), origin channel)
        self.acks: list[tuple[str, int, float, str]] = []
        self.start = 0.0
        self.sent = 0

    def latency(self, due: float, now: float) -> None:
        micros = min(max(int((now - due) * 1e6), LOWEST_US), HIGHEST_US)
        self.histogram.record_value(micros)
        second = int(now - self.start)
        bucket = self.per_second.get(second)
        if bucket is None:
            bucket = self.per_second[second] = HdrHistogram(LOWEST_US, HIGHEST_US, 2)
        bucket.record_value(micros)

    def order(self, channel: str, order_id: str, requested: dict[str, int]) -> ClientOrder:
        key = f"{channel}/{order_id}"
        record = self.orders.get(key)
        if record is None:
            record = self.orders[key] = ClientOrder(channel=channel, order_id=order_id, requested=requested, outcome="unknown")
        record.sends += 1
        return record

    def answered(
        self, record: ClientOrder, outcome: str, taken: dict[str, int], duplicate: bool, replayed: bool = False
    ) -> None:
        if outcome in ("accepted", "oversold"):
            record.acks += 1
        if record.outcome == "unknown":
            record.outcome = outcome
            record.taken = taken
        if duplicate and replayed:
            self.counts["duplicates_absorbed"] += 1
        self.counts[outcome if not duplicate else f"duplicate_{outcome}"] += 1

    def client_record(self) -> ClientRecord:
        return ClientRecord(
            orders=self.orders, restocks_acked=dict(self.restocks_acked), restocks_unknown=dict(self.restocks_unknown)
        )

    def timeline(self) -> list[tuple[float, int, float, float, float]]:
        rows = []
        for second in sorted(self.per_second):
            h = self.per_second[second]
            rows.append(
                (float(second), h.get_total_count(), h.get_value_at_percentile(50) / 1000,
                 h.get_value_at_percentile(99) / 1000, h.get_max_value() / 1000)
            )
        return rows


class Driver:
    def __init__(self, target: Target, recorder: Recorder, *, idempotent_replay_header: bool = True) -> None:
        self.target = target
        self.rec = recorder
        self._headers = {"Authorization": f"Bearer {target.token}", "Content-Type": "application/json"}
        self._session: aiohttp.ClientSession | None = None

    async def _post(self, url: str, body: bytes, headers: dict[str, str] | None) -> tuple[int, bytes, bool]:
        assert self._session is not None
        async with self._session.post(url, data=body, headers=headers) as response:
            data = await response.read()
            return response.status, data, response.headers.get("Idempotent-Replayed") == "true"

    async def send(self, op: Operation, due: float) -> None:
        rec = self.rec
        duplicate = isinstance(op, Duplicate)
        if duplicate:
            rec.counts["duplicates"] += 1
            op = op.of  # type: ignore[union-attr]
        try:
            if isinstance(op, Order):
                await self._order(op, due, duplicate)
            elif isinstance(op, Buy):
                await self._buy(op, due, duplicate)
            elif isinstance(op, Restock):
                await self._restock(op, due)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            rec.errors[type(exc).__name__] += 1

    async def _order(self, op: Order, due: float, duplicate: bool) -> None:
        rec = self.rec
        requested = dict(op.lines)
        record = rec.order(API_CHANNEL, op.order_id, requested)
        body = _encode(
            {"order_id": op.order_id, "channel": API_CHANNEL, "lines": [{"sku": s, "qty": q} for s, q in op.lines]}
        )
        try:
            status, data, replayed = await self._post(f"{self.target.base_url}/v1/orders", body, self._headers)
        except BaseException:
            record.unanswered += 1
            raise
        now = time.monotonic()
        if status == 201:
            answer = _order_answer.decode(data)
            taken = {line.sku: line.qty for line in answer.lines}
            rec.answered(record, answer.status, taken, duplicate, replayed)
            if replayed and not duplicate:
                rec.counts["replayed_first_send"] += 1
            if not replayed:
                rec.acks.extend((line.sku, line.version, now, API_CHANNEL) for line in answer.lines)
            rec.latency(due, now)
        elif status == 409:
            rec.answered(record, "refused", {}, duplicate, replayed)
            rec.latency(due, now)
        else:
            record.unanswered += 1
            rec.errors[f"http_{status}"] += 1

    async def _restock(self, op: Restock, due: float) -> None:
        rec = self.rec
        body = _encode({"delta": op.delta, "reason": f"loadtest {op.restock_id}"})
        try:
            status, data, _ = await self._post(f"{self.target.base_url}/v1/stock/{op.sku}/adjust", body, self._headers)
        except BaseException:
            rec.restocks_unknown[op.sku] += op.delta
            raise
        now = time.monotonic()
        if status == 200:
            answer = _stock_answer.decode(data)
            rec.restocks_acked[op.sku] += op.delta
            rec.counts["restocks"] += 1
            rec.acks.append((op.sku, answer.version, now, ""))
            rec.latency(due, now)
        else:
            rec.restocks_unknown[op.sku] += op.delta
            rec.errors[f"restock_http_{status}"] += 1

    async def _buy(self, op: Buy, due: float, duplicate: bool) -> None:
        rec, target = self.rec, self.target
        assert target.simulator_url is not None
        channel = target.channel_ids[op.channel]
        url = target.webhook_urls[op.channel]
        if duplicate:
            key = f"{channel}/{op.order_id}"
            if key not in rec.orders:
                rec.counts["skipped"] += 1  # the buyer found nothing to buy: no order to redeliver
                return
            path, body = "/_lt/redeliver", _encode({"order_id": op.order_id, "url": url})
        else:
            path = "/_lt/buy"
            body = _encode({"order_id": op.order_id, "channel": channel, "lines": op.lines, "url": url})
        status_sim, data, _ = await self._post(target.simulator_url + path, body, None)
        now = time.monotonic()
        if status_sim != 200:
            rec.errors[f"simulator_http_{status_sim}"] += 1
            return
        answer = _buy_answer.decode(data)
        if not answer.sold:
            rec.counts["nothing_shown"] += 1
            rec.latency(due, now)
            return
        record = rec.order(channel, op.order_id, dict(answer.sold))
        if 200 <= answer.status < 300:
            parsed = _order_answer.decode(answer.body)
            taken = {line.sku: line.qty for line in parsed.lines}
            # A store's redelivery answered 2xx by an idempotent system is a replay of the first answer.
            rec.answered(record, parsed.status, taken, duplicate, replayed=duplicate)
            if not duplicate:
                rec.acks.extend((line.sku, line.version, now, channel) for line in parsed.lines)
            rec.latency(due, now)
        elif answer.status == 409:
            rec.answered(record, "refused", {}, duplicate, replayed=duplicate)
            rec.latency(due, now)
        else:
            record.unanswered += 1
            rec.errors[f"webhook_http_{answer.status}"] += 1

    async def run(
        self,
        ops: Iterator[Operation],
        *,
        connections: int,
        rate: float | None,
        limit: int | None,
        duration_s: float | None,
        on_progress: Callable[[Recorder, float], None] | None = None,
    ) -> DriveResult:
        rec = self.rec
        connector = aiohttp.TCPConnector(limit=connections if rate is None else 0, force_close=False)
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()) as session:
            self._session = session
            rec.start = start = time.monotonic()
            cpu_before = time.process_time()
            deadline = start + duration_s if duration_s is not None else None
            progress_task = None
            if on_progress is not None:
                async def progress() -> None:
                    while True:
                        on_progress(rec, time.monotonic() - start)
                        await asyncio.sleep(0.25)

                progress_task = asyncio.create_task(progress())

            def next_op() -> Operation | None:
                if limit is not None and rec.sent >= limit:
                    return None
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                rec.sent += 1
                return next(ops)

            try:
                if rate is None:
                    async def worker() -> None:
                        while (op := next_op()) is not None:
                            await self.send(op, time.monotonic())

                    await asyncio.gather(*(worker() for _ in range(connections)))
                else:
                    slots = asyncio.Semaphore(connections)
                    tasks: set[asyncio.Task] = set()

                    async def one(op: Operation, due: float) -> None:
                        try:
                            await self.send(op, due)
                        finally:
                            slots.release()

                    n = 0
                    while True:
                        due = start + n / rate
                        delay = due - time.monotonic()
                        if delay > 0:
                            await asyncio.sleep(delay)
                        op = next_op()
                        if op is None:
                            break
                        n += 1
                        await slots.acquire()
                        task = asyncio.create_task(one(op, due))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                    if tasks:
                        await asyncio.gather(*tasks)
            finally:
                if progress_task is not None:
                    progress_task.cancel()
                    on_progress(rec, time.monotonic() - start)  # type: ignore[misc]
            elapsed = time.monotonic() - start
            cpu_used = time.process_time() - cpu_before
        self._session = None
        answered = rec.histogram.get_total_count()
        return DriveResult(
            started_monotonic=start,
            elapsed_s=elapsed,
            operations=rec.sent,
            answered=answered,
            counts=dict(rec.counts),
            errors=dict(rec.errors),
            histogram=rec.histogram.encode(),
            timeline=rec.timeline(),
            client_cpu_percent=100 * cpu_used / elapsed if elapsed > 0 else 0.0,
        )


def taken_of(lines: list[dict]) -> dict[str, int]:
    return taken_from_lines(lines)
