"""The systems under test and everything around them: database, simulator, server, poller, snapshots.

- `invsync`: `invsync serve` as a subprocess on an embedded PostgreSQL in a temporary directory,
  the simulated channels registered through `POST /v1/channels`.
- `polling`: the same server with no channel pushing (marketplace: channels registered disabled,
  so their order webhooks are still accepted), plus a poller here that reads the stock table every
  `poll_interval` seconds and pushes what changed to every channel.
- `naive-db`: `loadtest/naive_fanout_server.py` (one conditional UPDATE per order, then a
  synchronous fan-out to every channel) on its own embedded PostgreSQL.

Or `target`: a running invsync (`--target URL --token T`), with this harness's own simulated
channels registered there.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import asyncpg
import msgspec
import psutil

from channels.simulator_state import default_listings
from channels.wire_types import Update
from loadtest.pusher import ChannelTarget, Pusher
from loadtest.verify import ChannelsView, DeadLetters, StoredOrder, StoredState, Violation, taken_from_lines

SIM_SECRET = "loadtest-sim-secret"
SIM_LOG_SIZE = 5_000_000
SEED_CHUNK = 50_000


# --- database ---------------------------------------------------------------------------------


async def seed_invsync_database(dsn: str, stock: dict[str, int]) -> None:
    """Migrate and load the initial stock as `PUT /v1/stock` would: one row and one `set` event per SKU."""
    from persistence.migrate import apply_migrations

    conn = await asyncpg.connect(dsn)
    try:
        await apply_migrations(conn)
        items = list(stock.items())
        for i in range(0, len(items), SEED_CHUNK):
            chunk = items[i : i + SEED_CHUNK]
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "stock", records=[(sku, qty, 1) for sku, qty in chunk], columns=["sku", "available", "version"]
                )
                await conn.copy_records_to_table(
                    "stock_events",
                    records=[(sku, 1, qty, qty, "set", "loadtest seed") for sku, qty in chunk],
                    columns=["sku", "version", "delta", "available_after", "kind", "reason"],
                )
    finally:
        await conn.close()


async def seed_naive_database(dsn: str, stock: dict[str, int]) -> None:
    from loadtest.naive_server import SCHEMA_SQL

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(SCHEMA_SQL)
        await conn.copy_records_to_table(
            "naive_stock", records=[(sku, qty, 1) for sku, qty in stock.items()], columns=["sku", "available", "version"]
        )
    finally:
        await conn.close()


async def read_stock(dsn: str, system: str, skus: list[str] | None = None) -> dict[str, tuple[int, int]]:
    table = "naive_stock" if system == "naive-db" else "stock"
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(f"SELECT sku, available, version FROM {table}")
    finally:
        await conn.close()
    wanted = set(skus) if skus is not None else None
    return {r[0]: (r[1], r[2]) for r in rows if wanted is None or r[0] in wanted}


async def snapshot_database(dsn: str, system: str, skus: list[str]) -> StoredState:
    stock = {sku: a for sku, (a, _) in (await read_stock(dsn, system, skus)).items()}
    if system == "naive-db":
        return StoredState(stock=stock)
    from persistence.check import check_database

    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT channel, order_id, status, lines FROM orders")
        report = await check_database(conn)
    finally:
        await conn.close()
    orders = {
        f"{r[0]}/{r[1]}": StoredOrder(r[2], taken_from_lines(json.loads(r[3]))) for r in rows
    }
    violations = [Violation(v.check, v.subject, v.detail) for v in report.violations]
    return StoredState(stock=stock, orders=orders, check_violations=violations)


async def snapshot_api(http: aiohttp.ClientSession, base: str, token: str, skus: list[str], order_keys: list[str]) -> StoredState:
    """The same snapshot through the API only (a `--target` without `--database-url`)."""
    headers = {"Authorization": f"Bearer {token}"}
    stock = await api_stock(http, base, token, skus)
    orders: dict[str, StoredOrder] = {}
    semaphore = asyncio.Semaphore(32)

    async def one(key: str) -> None:
        channel, order_id = key.split("/", 1)
        async with semaphore, http.get(f"{base}/v1/orders/{channel}/{order_id}", headers=headers) as r:
            if r.status == 200:
                doc = await r.json()
                orders[key] = StoredOrder(doc["status"], taken_from_lines(doc["lines"]))

    await asyncio.gather(*(one(k) for k in order_keys))
    return StoredState(stock={s: a for s, (a, _) in stock.items()}, orders=orders, check_violations=None)


async def api_stock(http: aiohttp.ClientSession, base: str, token: str, skus: list[str]) -> dict[str, tuple[int, int]]:
    headers = {"Authorization": f"Bearer {token}"}
    wanted = set(skus)
    found: dict[str, tuple[int, int]] = {}
    after = min(skus)
    # Pages start just before the first wanted SKU ("after" is exclusive).
    after = after[:-1] + chr(ord(after[-1]) - 1) if after else ""
    while True:
        async with http.get(f"{base}/v1/stock", params={"limit": "1000", "after": after}, headers=headers) as r:
            r.raise_for_status()
            page = await r.json()
        for item in page["items"]:
            if item["sku"] in wanted:
                found[item["sku"]] = (item["available"], item["version"])
        after = page.get("next_after")
        if not after or after > max(skus):
            return found


# --- simulator --------------------------------------------------------------------------------


class Simulator:
    """`python -m loadtest.sim_process` as a subprocess."""

    def __init__(self, workdir: Path, channel_ids: list[str], kinds: list[str], skus: list[str], faults: dict, seed: int) -> None:
        self.workdir = workdir
        self.channel_ids = channel_ids
        self.kinds = kinds
        self.skus = skus
        self.faults = faults
        self.seed = seed
        self.process: subprocess.Popen | None = None
        self.description: dict = {}
        self.url = ""
        self.started_monotonic = 0.0

    async def start(self) -> None:
        specs = []
        for cid, kind in zip(self.channel_ids, self.kinds):
            specs.append({
                "id": cid, "kind": kind, "secret": SIM_SECRET, "listings": default_listings(kind, self.skus),  # type: ignore[arg-type]
                "faults": self.faults, "log_size": SIM_LOG_SIZE,
            })
        config = self.workdir / "simulator.json"
        config.write_text(json.dumps({"seed": self.seed, "channels": specs}))
        log = (self.workdir / "simulator.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "loadtest.sim_process", "--config", str(config)],
            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        line = await asyncio.to_thread(self.process.stdout.readline)  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"the channel simulator did not start; see {self.workdir / 'simulator.log'}")
        self.description = json.loads(line)
        self.url = self.description["url"]
        self.started_monotonic = self.description["started_monotonic"]

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                await asyncio.to_thread(self.process.wait, 10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def targets(self) -> list[ChannelTarget]:
        """How a system reaches each channel: POST /v1/channels bodies plus listings."""
        out = []
        for cid, entry in self.description["channels"].items():
            kind = entry["kind"]
            if kind == "webhook":
                config = {"url": entry["url"], "secret": entry["secret"]}
            elif kind == "shopify":
                config = {"shop_url": entry["url"], "access_token": entry["access_token"],
                          "location_id": entry["location_id"], "webhook_secret": entry["order_webhook_secret"]}
            else:
                config = {"site_url": entry["url"], "consumer_key": entry["consumer_key"],
                          "consumer_secret": entry["consumer_secret"], "webhook_secret": entry["order_webhook_secret"]}
            out.append(ChannelTarget(cid, kind, config, dict(entry.get("listings") or {})))
        return out

    async def _get(self, http: aiohttp.ClientSession, path: str):
        async with http.get(self.url + path, timeout=aiohttp.ClientTimeout(total=120)) as r:
            r.raise_for_status()
            return msgspec.json.decode(await r.read())

    async def shown(self, http: aiohttp.ClientSession) -> dict[str, dict[str, int]]:
        return await self._get(http, "/_lt/shown")

    async def requests(self, http: aiohttp.ClientSession) -> dict[str, int]:
        return await self._get(http, "/_lt/requests")

    async def logs(self, http: aiohttp.ClientSession) -> dict:
        return await self._get(http, "/_lt/logs")

    async def stats(self, http: aiohttp.ClientSession) -> dict:
        return await self._get(http, "/_sim/stats")


# --- the poller of the polling baseline -------------------------------------------------------


class Poller:
    """Every `interval` s: read the stock table, push every SKU whose version changed to every channel.

    By version, not by quantity: a store lowers what it shows when it sells, so a SKU sold there
    and restocked back to the same quantity between two polls must be pushed again."""

    def __init__(self, dsn: str, targets: list[ChannelTarget], interval: float, skus: list[str]) -> None:
        self.dsn = dsn
        self.targets = targets
        self.interval = interval
        self.skus = set(skus)
        self.pushed: dict[str, dict[str, int]] = {t.id: {} for t in targets}  # version each channel confirmed
        self.polls = 0
        self._task: asyncio.Task | None = None
        self._pusher: Pusher | None = None

    async def sync_once(self) -> None:
        assert self._pusher is not None
        stock = await read_stock(self.dsn, "polling")
        self.polls += 1

        async def one(channel_id: str) -> None:
            known = self.pushed[channel_id]
            updates = [Update(sku, a, v) for sku, (a, v) in stock.items() if sku in self.skus and known.get(sku) != v]
            if updates:
                confirmed = await self._pusher.push(channel_id, updates)  # type: ignore[union-attr]
                for u in updates:
                    if u.sku in confirmed:
                        known[u.sku] = u.version

        await asyncio.gather(*(one(t.id) for t in self.targets))

    async def start(self) -> None:
        self._pusher = await Pusher(self.targets).__aenter__()
        await self.sync_once()  # the initial full sync
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.sync_once()
            except (OSError, asyncpg.PostgresError) as exc:
                print(f"poller: {exc!r}", file=sys.stderr)
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._pusher is not None:
            await self._pusher.__aexit__(None, None, None)


# --- measurements -----------------------------------------------------------------------------


class RssSampler:
    """Peak resident memory of one process, sampled every `interval` s."""

    def __init__(self, pid: int | None, interval: float = 0.25) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._task: asyncio.Task | None = None

    def sample(self) -> None:
        if self.pid is None:
            return
        try:
            self.peak = max(self.peak, psutil.Process(self.pid).memory_info().rss)
        except psutil.Error:
            pass

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> int:
        if self._task is not None:
            self._task.cancel()
        self.sample()
        return self.peak


def propagation_latencies(
    acks: list[tuple[str, int, float, str]], logs: dict, channel_ids: list[str]
) -> tuple[list[float], int]:
    """Seconds from each acknowledged change to the moment the last channel (other than its origin)
    applied that version or a newer one; and how many changes some channel never confirmed."""
    origin_t = logs["started_monotonic"]
    # channel -> sku -> (running max version, arrival time) in arrival order
    arrivals: dict[str, dict[str, tuple[list[int], list[float]]]] = {}
    for cid, entries in logs["channels"].items():
        per_sku: dict[str, tuple[list[int], list[float]]] = {}
        for sku, _quantity, version, at in entries:
            versions, times = per_sku.setdefault(sku, ([], []))
            if not versions or version > versions[-1]:
                versions.append(version)
                times.append(at + origin_t)
        arrivals[cid] = per_sku
    out: list[float] = []
    missing = 0
    for sku, version, acked, origin in acks:
        last = 0.0
        for cid in channel_ids:
            if cid == origin:
                continue
            versions, times = arrivals.get(cid, {}).get(sku, ([], []))
            i = bisect.bisect_left(versions, version)
            if i == len(versions):
                last = -1.0
                break
            last = max(last, times[i])
        if last < 0:
            missing += 1
        elif channel_ids:
            out.append(max(0.0, last - acked))
    return out, missing


async def converge(
    http: aiohttp.ClientSession, simulator: Simulator, truth_fn, timeout: float
) -> tuple[bool, float, dict[str, dict[str, int]], dict[str, int]]:
    """Wait until every channel shows the truth (or `timeout`); (converged, seconds, shown, truth)."""
    started = time.monotonic()
    while True:
        truth = await truth_fn()
        shown = await simulator.shown(http)
        ok = all(all(channel.get(sku) == qty for sku, qty in truth.items()) for channel in shown.values())
        waited = time.monotonic() - started
        if ok or waited >= timeout:
            return ok, waited, shown, truth
        await asyncio.sleep(0.25)


def channels_view(shown: dict[str, dict[str, int]]) -> ChannelsView:
    return ChannelsView(shown=shown)


async def dead_letters(http: aiohttp.ClientSession, base: str, token: str) -> DeadLetters:
    headers = {"Authorization": f"Bearer {token}"}
    listed: list[tuple[str, str]] = []
    counts: dict = {}
    after = None
    while True:
        params = {"limit": "1000"} | ({"after": str(after)} if after is not None else {})
        async with http.get(f"{base}/v1/dead-letters", params=params, headers=headers) as r:
            r.raise_for_status()
            page = await r.json()
        listed.extend((item["channel"], item["sku"]) for item in page["items"])
        counts = page["counts"]
        after = page["next_after"]
        if after is None:
            return DeadLetters(counts=counts, listed=listed)


def server_env(token: str) -> dict[str, str]:
    return {"INVSYNC_API_TOKEN": token, "INVSYNC_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"}


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def python_env() -> dict[str, str]:
    root = str(repo_root())
    path = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": f"{root}:{path}" if path else root}
