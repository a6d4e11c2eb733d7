"""Propagation benchmark: how fast a committed change reaches every channel, and at what cost.

    python -m channels.propagation_benchmark [--channels 40] [--rate 2000] [--duration 10]

Starts the channel simulator (`python -m channels.simulator`, webhook channels with a fixed
latency and no rate limit) and `invsync serve` on a temporary data directory (embedded
PostgreSQL), connects every simulated channel, then posts single-line orders over `--skus` SKUs
at a paced `--rate` for `--duration` seconds and waits until every channel shows the truth.

Measured (not asserted):
- propagation latency per committed order event: from the event's commit (stock_events.created_at,
  the transaction's start, so a little early: the figure is pessimistic by the commit time) to the
  moment the *last* channel applied that version or a newer one of the SKU (simulator log `at`,
  mapped onto the wall clock); p50, p90, p99, max.
- channel requests per order: requests the simulator received during the run / orders accepted.
Everything runs on this machine, so the load generator, the simulator, invsync and PostgreSQL
share its cores; the script prints the CPU count with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import asyncpg
import psutil

from loadtest.server_process import ServerProcess, free_port

TOKEN = "propagation-bench-token"
SECRET = "bench-secret"


def _cpu_by_role() -> dict[str, float]:
    """CPU seconds used so far by invsync, PostgreSQL, the simulator and this load generator."""
    me = os.getpid()
    totals = {"invsync": 0.0, "postgresql": 0.0, "simulator": 0.0, "load generator": 0.0}
    for process in psutil.process_iter(["pid", "name", "cmdline", "cpu_times"]):
        info = process.info
        cmdline = " ".join(info.get("cmdline") or [])
        times = info.get("cpu_times")
        if times is None:
            continue
        used = times.user + times.system
        if info["pid"] == me:
            totals["load generator"] += used
        elif "serve --data-dir" in cmdline and "invsync-propagation" in cmdline:
            totals["invsync"] += used
        elif "channels.simulator" in cmdline:
            totals["simulator"] += used
        elif (info.get("name") or "").startswith("postgres"):
            totals["postgresql"] += used
    return totals


def _server_command(switch_interval: float | None) -> list[str]:
    if switch_interval is None:
        return [sys.executable, "-m", "server"]
    # An experiment: how much of the latency is threads waiting for the GIL?
    code = f"import sys; sys.setswitchinterval({switch_interval}); import server; sys.exit(server.main(sys.argv[1:]))"
    return [sys.executable, "-c", code]


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


async def _start_simulator(workdir: Path, channels: int, latency_ms: float, port: int) -> subprocess.Popen:
    config = {
        "seed": 1,
        "channels": [
            {"id": f"webhook-{i}", "kind": "webhook", "secret": SECRET, "faults": {"latency_ms": latency_ms},
             "log_size": 2_000_000}
            for i in range(1, channels + 1)
        ],
    }
    path = workdir / "simulator.json"
    path.write_text(json.dumps(config))
    log = (workdir / "simulator.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "channels.simulator", "--config", str(path), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=log,
    )
    line = await asyncio.to_thread(process.stdout.readline)
    if not line:
        raise RuntimeError(f"simulator did not start; see {workdir / 'simulator.log'}")
    return process


async def _api(http: aiohttp.ClientSession, base: str, method: str, path: str, body=None):
    async with http.request(method, base + path, json=body, headers={"Authorization": f"Bearer {TOKEN}"}) as r:
        data = await r.json(content_type=None)
        if r.status >= 300:
            raise RuntimeError(f"{method} {path}: {r.status} {data}")
        return data


async def _sim(http: aiohttp.ClientSession, base: str, path: str):
    async with http.get(base + path) as r:
        return await r.json()


async def _drive(
    base: str, skus: list[str], rate: float, duration: float, workers: int, latencies: list[float]
) -> tuple[int, int, float]:
    """Paced single-line orders: order n is due at start + n / rate (sent late if we fall behind)."""
    counter = itertools.count()
    total = int(rate * duration)
    accepted = errors = 0
    body_head = b'{"channel":"bench","order_id":"b-'
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=workers)
    async with aiohttp.ClientSession(connector=connector) as http:
        start = time.perf_counter()

        async def worker() -> None:
            nonlocal accepted, errors
            while True:
                n = next(counter)
                if n >= total:
                    return
                delay = start + n / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                sku = skus[(n * 7919) % len(skus)]
                body = body_head + str(n).encode() + b'","lines":[{"sku":"' + sku.encode() + b'","qty":1}]}'
                sent = time.perf_counter()
                try:
                    async with http.post(base + "/v1/orders", data=body, headers=headers) as r:
                        await r.read()
                        if r.status == 201:
                            accepted += 1
                            latencies.append(time.perf_counter() - sent)
                        else:
                            errors += 1
                except aiohttp.ClientError:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(workers)))
        elapsed = time.perf_counter() - start
    return accepted, errors, elapsed


async def main(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="invsync-propagation-"))
    sim_port, api_port = free_port(), free_port()
    sim_base = f"http://127.0.0.1:{sim_port}"
    skus = [f"SKU-{i:05d}" for i in range(1, args.skus + 1)]
    print(f"workdir {workdir}; {os.cpu_count()} CPUs", flush=True)
    simulator = await _start_simulator(workdir, args.channels, args.latency_ms, sim_port)
    server = ServerProcess(
        "invsync",
        _server_command(args.switch_interval) + ["serve", "--data-dir", str(workdir / "data"), "--port", str(api_port)],
        api_port,
        env={"INVSYNC_API_TOKEN": TOKEN, "INVSYNC_LOG_FORMAT": "json"},
        log_path=workdir / "invsync.log",
    )
    try:
        async with server, aiohttp.ClientSession() as http:
            base = server.base_url
            for sku in skus:
                await _api(http, base, "PUT", f"/v1/stock/{sku}", {"available": 10_000_000})
            for i in range(1, args.channels + 1):
                await _api(http, base, "POST", "/v1/channels", {
                    "id": f"webhook-{i}", "kind": "webhook",
                    "config": {"url": f"{sim_base}/webhook/webhook-{i}", "secret": SECRET},
                })
            if not await _converged(http, base, sim_base, skus, 60):
                print("initial push did not converge", flush=True)
                return 1
            stats_before = await _sim(http, sim_base, "/_sim/stats")
            window_start = time.time()
            cpu_before = _cpu_by_role()
            order_latencies: list[float] = []
            accepted, errors, elapsed = await _drive(base, skus, args.rate, args.duration, args.workers, order_latencies)
            cpu_after = _cpu_by_role()
            cpu = ", ".join(f"{role} {100 * (cpu_after[role] - cpu_before[role]) / elapsed:.0f}%" for role in cpu_after)
            ms = [x * 1000 for x in order_latencies]
            print(f"orders: {accepted} accepted, {errors} errors in {elapsed:.1f} s = {accepted / elapsed:.0f}/s "
                  f"(target {args.rate:.0f}/s, {args.workers} connections); order latency p50 "
                  f"{_percentile(ms, 50):.0f} ms, p99 {_percentile(ms, 99):.0f} ms", flush=True)
            converged_at = await _converged(http, base, sim_base, skus, 60)
            print(f"converged: {bool(converged_at)}", flush=True)
            stats_after = await _sim(http, sim_base, "/_sim/stats")
            state = await _sim(http, sim_base, "/_sim/state")
            offset = time.time() - state["now"]  # simulator elapsed seconds -> wall clock
            logs = {}
            for i in range(1, args.channels + 1):
                document = await _sim(http, sim_base, f"/_sim/channels/webhook-{i}/log")
                logs[i] = document["entries"]
        events = await _events(workdir / "data", window_start)
    finally:
        simulator.terminate()
        simulator.wait(10)

    requests = sum(stats_after[c]["requests"] - stats_before[c]["requests"] for c in stats_after)
    stale = sum(stats_after[c]["stale_writes"] for c in stats_after)
    items = sum(stats_after[c]["items_applied"] - stats_before[c]["items_applied"] for c in stats_after)
    latencies = _latencies(events, logs, offset)
    print(f"channels {args.channels}, simulator latency {args.latency_ms} ms, {args.skus} SKUs")
    print(f"CPU during the load (100% = one core of {os.cpu_count()}): {cpu}")
    print(f"channel requests: {requests} = {requests / max(1, accepted):.2f} per order "
          f"({items / max(1, requests):.1f} SKU updates per request); stale writes: {stale}")
    if latencies:
        ms = [x * 1000 for x in latencies]
        print(f"propagation commit -> confirmed by all {args.channels} channels, over {len(ms)} order events: "
              f"p50 {_percentile(ms, 50):.0f} ms, p90 {_percentile(ms, 90):.0f} ms, "
              f"p99 {_percentile(ms, 99):.0f} ms, max {max(ms):.0f} ms")
    return 0


async def _converged(http, base, sim_base, skus, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        truth = {}
        for sku in skus:
            stock = await _api(http, base, "GET", f"/v1/stock/{sku}")
            truth[sku] = stock["available"]
        state = await _sim(http, sim_base, "/_sim/state")
        if all(
            {s: v["quantity"] for s, v in channel["skus"].items()} == truth
            for channel in state["channels"].values()
        ):
            return True
        await asyncio.sleep(0.2)
    return False


async def _events(data_dir: Path, since: float) -> list[tuple[str, int, float]]:
    """(sku, version, commit wall time) of the run's order events, from the embedded database."""
    from persistence.embedded import start_embedded_postgres

    server = await asyncio.to_thread(start_embedded_postgres, data_dir)
    try:
        conn = await asyncpg.connect(server.dsn)
        try:
            rows = await conn.fetch(
                "SELECT sku, version, extract(epoch FROM created_at) AS t FROM stock_events "
                "WHERE kind = 'order' AND created_at >= to_timestamp($1)", since,
            )
        finally:
            await conn.close()
    finally:
        await asyncio.to_thread(server.stop)
    return [(r["sku"], r["version"], float(r["t"])) for r in rows]


def _latencies(events, logs, offset: float) -> list[float]:
    # Per channel and SKU: versions in arrival order (they only grow: no stale writes).
    arrivals: dict[int, dict[str, tuple[list[int], list[float]]]] = {}
    for channel, entries in logs.items():
        per_sku: dict[str, tuple[list[int], list[float]]] = {}
        for sku, _quantity, version, at in entries:
            versions, times = per_sku.setdefault(sku, ([], []))
            if not versions or version > versions[-1]:
                versions.append(version)
                times.append(at + offset)
        arrivals[channel] = per_sku
    out = []
    for sku, version, committed in events:
        latest = 0.0
        for per_sku in arrivals.values():
            versions, times = per_sku.get(sku, ([], []))
            i = bisect.bisect_left(versions, version)
            if i == len(versions):
                latest = None
                break
            latest = max(latest, times[i])
        if latest is not None:
            out.append(max(0.0, latest - committed))
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m channels.propagation_benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--channels", type=int, default=40)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--skus", type=int, default=100)
    parser.add_argument("--rate", type=float, default=2000.0, help="orders per second")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=256, help="concurrent order connections")
    parser.add_argument("--switch-interval", type=float, default=None, help="sys.setswitchinterval for invsync (experiment)")
    return parser


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(_parser().parse_args())))
