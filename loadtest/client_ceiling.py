"""How many orders/s the load client can drive at all.

Starts a trivial aiohttp server in its own process (answers every order with
a fixed 201, no database) and points the load client at it with 1..N
generator processes.  If the client's ceiling is not well above what a real
system reaches, the benchmark measures the client, not the system.

    python -m loadtest.client_ceiling --connections 64 --duration 5 --processes 1 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence

from aiohttp import web
from rich.console import Console
from rich.table import Table

from loadtest.load_client import LoadSpec, run_load
from loadtest.server_process import ServerProcess, free_port
from loadtest.wrk_client import WrkNotInstalled, run_wrk_load

TRIVIAL_ANSWER = (
    b'{"order_id":"x","channel":"loadtest","status":"accepted",'
    b'"lines":[{"sku":"s","qty":1,"available_after":1,"version":1}]}'
)


async def _accept_order(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=TRIVIAL_ANSWER, status=201, content_type="application/json")


async def _ready(request: web.Request) -> web.Response:
    return web.Response(text="ready")


async def _serve_trivial(host: str, port: int) -> None:
    app = web.Application()
    app.router.add_post("/v1/orders", _accept_order)
    app.router.add_get("/internal/ready", _ready)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()


async def measure_ceiling(connections: int, duration_s: float, process_counts: Sequence[int]) -> None:
    port = free_port()
    command = [sys.executable, "-m", "loadtest.client_ceiling", "--serve-trivial", "--port", str(port)]
    console = Console()
    table = Table(title=f"load client vs trivial handler ({connections} connections, {os.cpu_count()} cores)")
    for column in ("generator", "orders/s", "p50 ms", "p99 ms", "client CPU %", "machine CPU %"):
        table.add_column(column, justify="right")
    async with ServerProcess("trivial", command, port, env={}) as server:
        for processes in process_counts:
            spec = LoadSpec(
                base_url=server.base_url, token="unused", skus=["sku"], connections=connections,
                duration_s=duration_s, warmup_s=1.0, processes=processes,
            )
            result = await run_load(spec)
            table.add_row(
                f"python × {processes}", f"{result.orders_per_s:,.0f}", f"{result.p50_ms:.2f}",
                f"{result.p99_ms:.2f}", f"{result.client_cpu_percent:.0f}", f"{result.machine_cpu_percent:.0f}",
            )
        try:
            spec = LoadSpec(base_url=server.base_url, token="unused", skus=["sku"], connections=connections,
                            duration_s=duration_s, warmup_s=1.0)
            result = await run_wrk_load(spec)
            table.add_row(
                "wrk, 1 thread", f"{result.orders_per_s:,.0f}", f"{result.p50_ms:.2f}",
                f"{result.p99_ms:.2f}", f"{result.client_cpu_percent:.0f}", f"{result.machine_cpu_percent:.0f}",
            )
        except WrkNotInstalled:
            table.add_row("wrk (not installed)", "-", "-", "-", "-", "-")
    console.print(table)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="client_ceiling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--serve-trivial", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_trivial:
        asyncio.run(_serve_trivial(args.host, args.port))
    else:
        asyncio.run(measure_ceiling(args.connections, args.duration, args.processes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
