"""One `invsync loadtest` invocation: every system, every round, verified, summarized.

`run(config)` returns the report document (see loadtest/README.md for its shape).  Systems run
one after another (never side by side: they would share the CPU), alternating round by round,
each on a fresh database with a fresh simulator, driven by the same seeded workload.
"""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import msgspec
from hdrh.histogram import HdrHistogram

from loadtest import workload as wl
from loadtest.driver import DriveResult, Driver, Recorder, Target
from loadtest.process_cpu import ServerCpuMeter
from loadtest.server_process import ServerProcess, free_port
from loadtest.systems import (
    Poller,
    RssSampler,
    Simulator,
    api_stock,
    converge,
    dead_letters,
    propagation_latencies,
    python_env,
    read_stock,
    seed_invsync_database,
    seed_naive_database,
    server_env,
    snapshot_api,
    snapshot_database,
)
from loadtest.verify import ChannelsView, summarize, verify

REPORT_FORMAT = "invsync-loadtest"
REPORT_VERSION = 1
SYSTEMS = ("invsync", "naive-db", "polling")
INITIAL_SYNC_TIMEOUT_S = 600.0


class Config(msgspec.Struct, kw_only=True):
    scenario: str
    workload: wl.WorkloadSpec
    systems: list[str]
    connections: int = 64
    rate: float | None = None
    rounds: int = 1
    channels: int = 0
    channel_kind: str = "webhook"  # webhook | shopify | woocommerce | stores (shopify/woocommerce alternating)
    channel_latency_ms: float = 0.0
    channel_jitter_ms: float = 0.0
    channel_error_rate: float = 0.0
    channel_rate_limit: float | None = None  # requests/s per channel; the simulator answers 429 beyond
    settle_s: float = 30.0
    poll_interval_s: float = 5.0
    target: str | None = None
    token: str | None = None
    database_url: str | None = None
    server_args: list[str] = []
    keep: bool = False
    allow_baseline_violations: bool = False
    run_tag: str = ""


def _ms(histogram: HdrHistogram, percentile: float) -> float:
    return histogram.get_value_at_percentile(percentile) / 1000 if histogram.get_total_count() else 0.0


def _percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def channel_kinds(config: Config) -> list[str]:
    if config.channel_kind == "stores":
        return ["shopify" if i % 2 == 0 else "woocommerce" for i in range(config.channels)]
    return [config.channel_kind] * config.channels


def _faults(config: Config) -> dict:
    faults: dict = {
        "latency_ms": config.channel_latency_ms,
        "jitter_ms": config.channel_jitter_ms,
        "error_rate": config.channel_error_rate,
    }
    if config.channel_rate_limit is not None:
        faults["rate_limit_per_second"] = config.channel_rate_limit
        # Shopify's own throttle style is 200 + THROTTLED; "http" makes every store answer 429.
        faults["shopify_throttle_style"] = "http"
    return faults


class _Progress:
    """The rich live progress bar (only on a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress = None
        self._task = None

    def begin(self, label: str, total: float, by_time: bool) -> None:
        if not self.enabled:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._by_time = by_time
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(label, total=total, stats="")

    def update(self, rec: Recorder, elapsed: float) -> None:
        if self._progress is None:
            return
        c = rec.counts
        rate = rec.histogram.get_total_count() / elapsed if elapsed > 0 else 0.0
        stats = (
            f"{rate:,.0f} op/s  ok {c['accepted']:,}  refused {c['refused']:,}  oversold {c['oversold']:,}  "
            f"errors {sum(rec.errors.values()):,}  p99 {_ms(rec.histogram, 99):.1f} ms"
        )
        self._progress.update(self._task, completed=elapsed if self._by_time else rec.sent, stats=stats)

    def note(self, text: str) -> None:
        if self.enabled:
            from rich.console import Console

            Console(stderr=True).print(text)

    def end(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


async def _register_channels(http: aiohttp.ClientSession, base: str, token: str, simulator: Simulator, enabled: bool) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    for target in simulator.targets():
        async with http.post(f"{base}/v1/channels", json=target.registration(enabled), headers=headers) as r:
            if r.status != 201:
                raise RuntimeError(f"registering channel {target.id}: {r.status} {await r.text()}")
        if target.listings:
            listings = [{"sku": s, "external_id": e} for s, e in target.listings.items()]
            async with http.put(f"{base}/v1/channels/{target.id}/listings", json=listings, headers=headers) as r:
                if r.status != 200:
                    raise RuntimeError(f"listing channel {target.id}: {r.status} {await r.text()}")


async def _seed_via_api(http: aiohttp.ClientSession, base: str, token: str, stock: dict[str, int]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    semaphore = asyncio.Semaphore(64)

    async def one(sku: str, qty: int) -> None:
        async with semaphore, http.put(f"{base}/v1/stock/{sku}", json={"available": qty}, headers=headers) as r:
            if r.status != 200:
                raise RuntimeError(f"seeding {sku}: {r.status} {await r.text()}")

    await asyncio.gather(*(one(s, q) for s, q in stock.items()))


async def run_system(config: Config, system: str, round_no: int, progress: _Progress) -> dict:
    """One system, one round: start, seed, connect channels, drive, settle, verify, stop."""
    spec = config.workload
    skus = wl.sku_names(spec)
    initial = wl.initial_stock(spec)
    marketplace = spec.scenario == "marketplace"
    workdir = Path(tempfile.mkdtemp(prefix=f"invsync-loadtest-{system}-"))
    token = config.token or "loadtest-token"
    remote = config.target is not None
    notes: list[str] = []
    embedded = None
    server: ServerProcess | None = None
    simulator: Simulator | None = None
    poller: Poller | None = None
    dsn = config.database_url
    result: dict = {"system": system, "round": round_no, "scenario": spec.scenario, "workdir": str(workdir)}
    timings: dict[str, float] = {}
    try:
        if not remote:
            from persistence.embedded import start_embedded_postgres

            t = time.monotonic()
            embedded = await asyncio.to_thread(start_embedded_postgres, workdir)
            dsn = embedded.dsn
            if system == "naive-db":
                await seed_naive_database(dsn, initial)
            else:
                await seed_invsync_database(dsn, initial)
            timings["database_and_seed_s"] = time.monotonic() - t

        channel_ids = [f"{config.run_tag + '-' if config.run_tag else ''}ch{i + 1:03d}" for i in range(config.channels)]
        if config.channels:
            simulator = Simulator(workdir, channel_ids, channel_kinds(config), skus, _faults(config), spec.seed)
            await simulator.start()

        if remote:
            base = config.target.rstrip("/")  # type: ignore[union-attr]
        else:
            port = free_port()
            if system == "naive-db":
                channels_file = workdir / "channels.json"
                channels_file.write_bytes(msgspec.json.encode(simulator.targets() if simulator else []))
                command = [sys.executable, "-m", "loadtest.naive_fanout_server", "--database-url", dsn,
                           "--port", str(port), "--channels-file", str(channels_file)]
            else:
                command = [sys.executable, "-m", "server", "serve", "--database-url", dsn, "--port", str(port),
                           *config.server_args]
            server = ServerProcess(system, command, port, env={**server_env(token), **python_env()},
                                   log_path=workdir / "server.log")
            t = time.monotonic()
            await server.start()
            timings["server_startup_s"] = time.monotonic() - t
            base = server.base_url

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as http:
            if remote:
                await _seed_via_api(http, base, token, initial)

            async def truth() -> dict[str, int]:
                if dsn is not None:
                    return {s: a for s, (a, _) in (await read_stock(dsn, system, skus)).items()}
                return {s: a for s, (a, _) in (await api_stock(http, base, token, skus)).items()}

            dead_before = None
            if simulator is not None:
                t = time.monotonic()
                if system == "invsync":
                    await _register_channels(http, base, token, simulator, enabled=True)
                elif system == "polling":
                    if marketplace:  # their order webhooks must be accepted; pushing is the poller's
                        await _register_channels(http, base, token, simulator, enabled=False)
                    poller = Poller(dsn, simulator.targets(), config.poll_interval_s, skus)  # type: ignore[arg-type]
                    await poller.start()
                else:  # naive-db: one full sync before the load, as an integration would at set-up
                    from channels.wire_types import Update
                    from loadtest.pusher import Pusher

                    async with Pusher(simulator.targets()) as pusher:
                        await pusher.push_all([Update(s, q, 1) for s, q in initial.items()])
                ok, waited, _, _ = await converge(http, simulator, truth, INITIAL_SYNC_TIMEOUT_S)
                timings["initial_sync_s"] = time.monotonic() - t
                if not ok:
                    raise RuntimeError(f"{system}: the channels did not show the initial stock within {INITIAL_SYNC_TIMEOUT_S:.0f} s")
                if system != "naive-db":
                    dead_before = await dead_letters(http, base, token)

            requests_before = await simulator.requests(http) if simulator else {}
            target = Target(
                base_url=base, token=token,
                simulator_url=simulator.url if simulator else None,
                channel_ids=channel_ids,
                webhook_urls=[f"{base}/v1/webhooks/{kind}/{cid}" for cid, kind in zip(channel_ids, channel_kinds(config))],
            )
            recorder = Recorder()
            driver = Driver(target, recorder)
            rss = RssSampler(server.pid if server else None)
            rss.start()
            cpu = ServerCpuMeter(server.pid, workdir) if server and server.pid else None
            if cpu:
                cpu.start()
            label = f"{system} r{round_no}"
            progress.begin(label, spec.duration_s or spec.orders or 1, by_time=spec.duration_s is not None)
            try:
                drive: DriveResult = await driver.run(
                    wl.operations(spec, config.run_tag), connections=config.connections, rate=config.rate,
                    limit=spec.orders, duration_s=spec.duration_s, on_progress=progress.update,
                )
            finally:
                progress.end()
            split = cpu.stop() if cpu else None

            converged, settle_waited, shown = True, 0.0, {}
            if simulator is not None:
                converged, settle_waited, shown, _ = await converge(http, simulator, truth, config.settle_s)
            requests_after = await simulator.requests(http) if simulator else {}
            logs = await simulator.logs(http) if simulator else None
            dead = await dead_letters(http, base, token) if (simulator and system != "naive-db") else None
            if dead is not None and dead_before is not None:
                dead.counts_before = dead_before.counts
            peak_rss = await rss.stop()
            if poller is not None:
                await poller.stop()
                poller_polls = poller.polls
            else:
                poller_polls = None

            if not remote or dsn is not None:
                if server is not None:
                    # Stop first: what was acknowledged must be stored after a clean stop too.
                    code = await server.stop()
                    if code not in (0, None):
                        notes.append(f"server exited with {code}")
                stored = await snapshot_database(dsn, system, skus)  # type: ignore[arg-type]
            else:
                stored = await snapshot_api(http, base, token, skus, list(recorder.orders))
                notes.append("no database access: `invsync check` skipped, orders read through the API")

        client = recorder.client_record()
        idempotent = system != "naive-db"
        violations = verify(
            initial=initial, client=client, stored=stored, idempotent=idempotent,
            channels=ChannelsView(shown={c: {s: q for s, q in v.items() if s in initial} for c, v in shown.items()}) if simulator else None,
            dead_letters=dead,
        )
        applicable = ["no_negative_stock", "accepted_within_supply", "stock_conservation"]
        if stored.orders is not None:
            applicable += ["acknowledged_orders_stored", "nothing_unacknowledged_counted"]
        if stored.check_violations is not None:
            applicable.append("invsync_check")
        if simulator is not None:
            applicable.append("channels_converged")
        if dead is not None:
            applicable.append("dead_letters_accounted")

        histogram = HdrHistogram.decode(drive.histogram)
        counts = drive.counts
        accepted = counts.get("accepted", 0)
        oversold_orders = counts.get("oversold", 0)
        if stored.orders is not None:
            oversold_orders = sum(1 for o in stored.orders.values() if o.status == "oversold")
        oversold_units = sum(
            max(0, sum(o.requested.values()) - sum(o.taken.values())) for o in client.orders.values() if o.outcome == "oversold"
        )
        taking = accepted + counts.get("oversold", 0)
        propagation = None
        if logs is not None:
            latencies, missing = propagation_latencies(recorder.acks, logs, channel_ids)
            ms = [x * 1000 for x in latencies]
            propagation = {
                "p50_ms": _percentile(ms, 50), "p90_ms": _percentile(ms, 90), "p99_ms": _percentile(ms, 99),
                "max_ms": max(ms) if ms else None, "changes_measured": len(ms), "changes_unconfirmed": missing,
            }
        channel_requests = sum(requests_after.get(c, 0) - requests_before.get(c, 0) for c in requests_after)
        elapsed = drive.elapsed_s
        result.update(
            ok=not violations,
            violations=[msgspec.to_builtins(v) for v in violations],
            checks=summarize(violations, applicable),
            throughput={
                "operations": drive.operations,
                "answered": drive.answered,
                "elapsed_s": round(elapsed, 3),
                "operations_per_s": round(drive.answered / elapsed, 1) if elapsed > 0 else 0.0,
                "accepted": accepted,
                "refused": counts.get("refused", 0),
                "oversold": oversold_orders,
                "oversold_units": oversold_units,
                "restocks": counts.get("restocks", 0),
                "nothing_shown": counts.get("nothing_shown", 0),
                "skipped": counts.get("skipped", 0),
                "errors": sum(drive.errors.values()),
                "errors_by_kind": drive.errors,
            },
            latency_ms={
                "p50": _ms(histogram, 50), "p90": _ms(histogram, 90), "p99": _ms(histogram, 99),
                "p999": _ms(histogram, 99.9), "max": histogram.get_max_value() / 1000 if histogram.get_total_count() else 0.0,
                "mean": histogram.get_mean_value() / 1000 if histogram.get_total_count() else 0.0,
            },
            duplicates={
                "sent": counts.get("duplicates", 0),
                "absorbed": counts.get("duplicates_absorbed", 0),
                "applied_again": 0 if idempotent else counts.get("duplicate_accepted", 0),
            },
            propagation=propagation,
            channels={
                "count": config.channels,
                "kinds": sorted(set(channel_kinds(config))),
                "requests": channel_requests,
                "requests_per_order": round(channel_requests / taking, 3) if taking else None,
                "converged": converged,
                "settle_s": round(settle_waited, 3),
                "poller_polls": poller_polls,
            },
            server={
                "peak_rss_mb": round(peak_rss / 2**20, 1) if peak_rss else None,
                "cpu_percent": round(100 * split.server_s / elapsed, 1) if split and elapsed else None,
                "database_cpu_percent": round(100 * split.database_s / elapsed, 1) if split and elapsed else None,
                "client_cpu_percent": round(drive.client_cpu_percent, 1),
                **{k: round(v, 3) for k, v in timings.items()},
            },
            dead_letters=dead.counts if dead is not None else None,
            timeline=[list(row) for row in drive.timeline],
            notes=notes,
        )
        return result
    except BaseException:
        if server is not None:
            result["server_log_tail"] = server.log_tail()
        raise
    finally:
        if poller is not None:
            await poller.stop()
        if server is not None:
            await server.stop()
        if simulator is not None:
            await simulator.stop()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        if not config.keep:
            shutil.rmtree(workdir, ignore_errors=True)


SUMMARY_FIGURES = {
    "operations_per_s": ("throughput", "operations_per_s"),
    "latency_p50_ms": ("latency_ms", "p50"),
    "latency_p99_ms": ("latency_ms", "p99"),
    "latency_p999_ms": ("latency_ms", "p999"),
    "refused": ("throughput", "refused"),
    "oversold": ("throughput", "oversold"),
    "duplicates_absorbed": ("duplicates", "absorbed"),
    "propagation_p50_ms": ("propagation", "p50_ms"),
    "propagation_p99_ms": ("propagation", "p99_ms"),
    "channel_requests_per_order": ("channels", "requests_per_order"),
    "peak_rss_mb": ("server", "peak_rss_mb"),
}


def summarize_runs(runs: list[dict], systems: list[str]) -> tuple[dict, dict]:
    summary: dict[str, dict] = {}
    for system in systems:
        mine = [r for r in runs if r["system"] == system]
        figures = {}
        for name, (section, key) in SUMMARY_FIGURES.items():
            values = [r[section][key] for r in mine if r.get(section) and r[section].get(key) is not None]
            figures[name] = statistics.median(values) if values else None
        figures["runs"] = len(mine)
        figures["ok"] = all(r["ok"] for r in mine)
        summary[system] = figures
    ratios: dict[str, dict] = {}
    if "invsync" in summary:
        for other in systems:
            if other == "invsync":
                continue
            pair = {}
            for name in SUMMARY_FIGURES:
                a, b = summary["invsync"].get(name), summary[other].get(name)
                pair[name] = round(a / b, 4) if a is not None and b not in (None, 0) else None
            ratios[f"invsync/{other}"] = pair
    return summary, ratios


async def run(config: Config, progress_enabled: bool = False) -> dict:
    wl.validate(config.workload)
    progress = _Progress(progress_enabled)
    started = time.time()
    runs = []
    for round_no in range(1, config.rounds + 1):
        order = config.systems if round_no % 2 == 1 else list(reversed(config.systems))
        for system in order:
            progress.note(f"[bold]{config.workload.scenario}[/]: {system}, round {round_no} of {config.rounds}")
            runs.append(await run_system(config, system, round_no, progress))
            if not runs[-1]["ok"]:
                progress.note(f"[red]{system}: {len(runs[-1]['violations'])} violations")
    summary, ratios = summarize_runs(runs, config.systems)
    baseline_ok = all(r["ok"] for r in runs if r["system"] != "invsync")
    invsync_ok = all(r["ok"] for r in runs if r["system"] == "invsync")
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_s": round(time.time() - started, 1),
        "command": "invsync loadtest " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["loadtest"] else " ".join(sys.argv),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "config": msgspec.to_builtins(config),
        "runs": runs,
        "summary": summary,
        "ratios": ratios,
        "ok": invsync_ok and (baseline_ok or config.allow_baseline_violations),
    }
