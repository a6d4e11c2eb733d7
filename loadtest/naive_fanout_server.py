"""The `naive-db` baseline of `invsync loadtest`: loadtest/naive_server.py plus a synchronous fan-out.

Each order is one conditional UPDATE in autocommit (naive_server.py, unchanged); once it is
committed, the handler pushes the new quantity of every SKU it touched to every channel, all
channels at once, one attempt each, and answers only when every push has answered (or failed).
Restocks (`POST /v1/stock/{sku}/adjust`) fan out the same way.  No retries, no ordering between
concurrent pushes of one SKU, no record of what a channel shows: what a naive integration does.

    INVSYNC_API_TOKEN=t python -m loadtest.naive_fanout_server --database-url URL --port 8081 \\
        --channels-file channels.json   # [ChannelTarget, ...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from typing import Annotated

import msgspec
from aiohttp import web

from channels.wire_types import Update
from loadtest.naive_server import DEFAULT_POOL_SIZE, ErrorAnswer, NaiveStockService, OrderAccepted, StockAnswer
from loadtest.pusher import ChannelTarget, Pusher

ADJUST_SQL = """
UPDATE naive_stock SET available = available + $2, version = version + 1
WHERE sku = $1 AND available + $2 >= 0
RETURNING available, version
"""


class AdjustIn(msgspec.Struct, forbid_unknown_fields=True):
    delta: int
    reason: Annotated[str, msgspec.Meta(max_length=500)] | None = None


class StockPage(msgspec.Struct):
    items: list[StockAnswer]
    next_after: str | None


class FanoutService(NaiveStockService):
    def __init__(self, database_url: str, token: str, pool_size: int, targets: list[ChannelTarget]) -> None:
        super().__init__(database_url, token, pool_size)
        self._targets = targets
        self._pusher: Pusher | None = None
        self._accepted_decoder = msgspec.json.Decoder(OrderAccepted)
        self._adjust_decoder = msgspec.json.Decoder(AdjustIn)

    async def pusher_lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        async with Pusher(self._targets) as pusher:
            self._pusher = pusher
            yield

    async def _fan_out(self, updates: list[Update]) -> None:
        if self._pusher is not None and updates:
            await self._pusher.push_all(updates)

    async def _single_line_order(self, order) -> web.Response:
        response = await super()._single_line_order(order)
        await self._after(response)
        return response

    async def _multi_line_order(self, order) -> web.Response:
        response = await super()._multi_line_order(order)
        await self._after(response)
        return response

    async def _after(self, response: web.Response) -> None:
        if response.status == 201:
            accepted = self._accepted_decoder.decode(response.body)
            await self._fan_out([Update(line.sku, line.available_after, line.version) for line in accepted.lines])

    async def adjust_stock(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        sku = request.match_info["sku"]
        try:
            body = self._adjust_decoder.decode(await request.read())
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            return self._json(ErrorAnswer(error="invalid_request", detail=str(exc)), 400)
        row = await self.pool.fetchrow(ADJUST_SQL, sku, body.delta)
        if row is None:
            return self._json(ErrorAnswer(error="insufficient_stock"), 409)
        await self._fan_out([Update(sku, row[0], row[1])])
        return self._json(StockAnswer(sku=sku, available=row[0], version=row[1]), 200)

    async def list_stock(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        limit = min(int(request.query.get("limit", "100")), 1000)
        after = request.query.get("after") or ""
        rows = await self.pool.fetch(
            "SELECT sku, available, version FROM naive_stock WHERE sku > $1 ORDER BY sku LIMIT $2", after, limit
        )
        items = [StockAnswer(sku=r[0], available=r[1], version=r[2]) for r in rows]
        return self._json(StockPage(items, items[-1].sku if len(items) == limit else None), 200)


def build_app(database_url: str, token: str, pool_size: int, targets: list[ChannelTarget]) -> web.Application:
    service = FanoutService(database_url, token, pool_size, targets)
    app = web.Application()
    app.cleanup_ctx.append(service.pool_lifecycle)
    app.cleanup_ctx.append(service.pusher_lifecycle)
    app.router.add_get("/internal/ready", service.ready)
    app.router.add_put("/v1/stock/{sku}", service.put_stock)
    app.router.add_post("/v1/stock/{sku}/adjust", service.adjust_stock)
    app.router.add_get("/v1/stock", service.list_stock)
    app.router.add_post("/v1/orders", service.post_order)
    return app


async def _serve(args: argparse.Namespace, token: str, targets: list[ChannelTarget]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(build_app(args.database_url, token, args.pool_size, targets), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, args.host, args.port, backlog=1024).start()
    print(f"naive-db (fan-out to {len(targets)} channels) listening on http://{args.host}:{args.port}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.naive_fanout_server")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--pool-size", type=int, default=DEFAULT_POOL_SIZE)
    parser.add_argument("--channels-file", default=None, help="JSON list of ChannelTarget")
    parser.add_argument("--event-loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = parser.parse_args(argv)
    token = os.environ.get("INVSYNC_API_TOKEN")
    if not token:
        print("INVSYNC_API_TOKEN must be set", file=sys.stderr)
        return 2
    targets: list[ChannelTarget] = []
    if args.channels_file:
        with open(args.channels_file, "rb") as handle:
            targets = msgspec.json.decode(handle.read(), type=list[ChannelTarget])
    if args.event_loop == "uvloop":
        try:
            import uvloop

            uvloop.run(_serve(args, token, targets))
            return 0
        except ImportError:
            pass
    asyncio.run(_serve(args, token, targets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
