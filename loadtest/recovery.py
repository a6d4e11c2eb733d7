"""`invsync loadtest --scenario recovery`: load a large catalogue, then time start-up and restart.

1. an embedded PostgreSQL in a temporary directory gets `--skus` SKUs (one stock row and one `set`
   event each, by COPY: what `PUT /v1/stock` would have written);
2. `invsync serve --data-dir` starts on it (it owns the embedded PostgreSQL, as in production);
   time to ready and the server's RSS once ready;
3. optionally `--channels N` webhook channels are registered and their initial push timed;
4. a clean restart (SIGINT, start again) and a crash restart (SIGKILL, start again): time to
   ready and RSS each time;
5. `invsync check` on the database.

Figures go to stdout and, with --json, to a file ({"format": "invsync-loadtest-recovery", "version": 1, ...}).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

TOKEN = "loadtest-recovery-token"


async def _start(data_dir: Path, port: int, log: Path, server_args: list[str]):
    from loadtest.server_process import ServerProcess
    from loadtest.systems import python_env, server_env

    server = ServerProcess(
        "invsync", [sys.executable, "-m", "server", "serve", "--data-dir", str(data_dir), "--port", str(port), *server_args],
        port, env={**server_env(TOKEN), **python_env()}, log_path=log,
    )
    started = time.monotonic()
    await server.start()
    return server, time.monotonic() - started


def _rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


async def _recovery(args: argparse.Namespace) -> dict:
    from loadtest import workload as wl
    from loadtest.server_process import free_port
    from loadtest.systems import Simulator, seed_invsync_database
    from persistence.embedded import start_embedded_postgres

    skus = args.skus or 1_000_000
    stock = args.stock if args.stock is not None else 100
    workdir = Path(tempfile.mkdtemp(prefix="invsync-loadtest-recovery-"))
    data_dir = workdir / "data"
    figures: dict = {"format": "invsync-loadtest-recovery", "version": 1, "skus": skus, "channels": args.channels or 0}
    simulator = None
    server = None
    try:
        spec = wl.WorkloadSpec(scenario="catalog", skus=skus, stock=stock, orders=1)
        initial = wl.initial_stock(spec)
        t = time.monotonic()
        embedded = await asyncio.to_thread(start_embedded_postgres, data_dir)
        await seed_invsync_database(embedded.dsn, initial)
        await asyncio.to_thread(embedded.stop)
        figures["seed_s"] = round(time.monotonic() - t, 2)
        del initial
        port = free_port()
        server, ready = await _start(data_dir, port, workdir / "server.log", args.server_arg)
        figures["first_start"] = {"ready_s": round(ready, 2), "rss_mb": round(_rss_mb(server.pid), 1)}
        if args.channels:
            import aiohttp

            from loadtest.harness import _register_channels
            from loadtest.systems import RssSampler as RssPeak
            from loadtest.systems import converge

            simulator = Simulator(workdir, [f"ch{i + 1:03d}" for i in range(args.channels)], ["webhook"] * args.channels,
                                  [], {}, 1)
            await simulator.start()
            async with aiohttp.ClientSession() as http:
                t = time.monotonic()
                peak = RssPeak(server.pid)
                peak.start()
                await _register_channels(http, server.base_url, TOKEN, simulator, enabled=True)
                # truth does not change: compare once per poll against the seeded quantity
                async def truth():
                    return {s: stock for s in wl.sku_names(spec)}
                ok, waited, _, _ = await converge(http, simulator, truth, args.settle)
                figures["initial_push"] = {"converged": ok, "seconds": round(time.monotonic() - t, 2),
                                           "peak_rss_mb": round(await peak.stop() / 2**20, 1)}
        await server.stop()
        server, ready = await _start(data_dir, port, workdir / "server.log", args.server_arg)
        figures["clean_restart"] = {"ready_s": round(ready, 2), "rss_mb": round(_rss_mb(server.pid), 1)}
        os.kill(server.pid, signal.SIGKILL)
        await asyncio.to_thread(server._process.wait)  # type: ignore[union-attr]
        server, ready = await _start(data_dir, port, workdir / "server.log", args.server_arg)
        figures["crash_restart"] = {"ready_s": round(ready, 2), "rss_mb": round(_rss_mb(server.pid), 1)}
        await asyncio.sleep(2)
        figures["crash_restart"]["rss_mb_after_2s"] = round(_rss_mb(server.pid), 1)
        await server.stop()
        check = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "server", "check", "--data-dir", str(data_dir)],
            capture_output=True, text=True, env={**os.environ, "INVSYNC_LOG_FORMAT": "json"},
        )
        figures["check"] = {"exit": check.returncode, "output": check.stdout.strip().splitlines()[-1:] }
        figures["ok"] = check.returncode == 0 and figures.get("initial_push", {}).get("converged", True)
        return figures
    finally:
        if server is not None:
            await server.stop()
        if simulator is not None:
            await simulator.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def run_recovery(args: argparse.Namespace) -> int:
    figures = asyncio.run(_recovery(args))
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if figures.get("ok") else 1
