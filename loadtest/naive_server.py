"""The naive baseline that invsync is benchmarked against.

Same routes, same JSON in and out, same bearer-token auth as invsync, but
every order is just a conditional ``UPDATE`` in autocommit (multi-line orders:
one transaction).  No actors, no batching, no audit log, no idempotency
record: it does strictly less work per order than invsync, so a ratio in
invsync's favour is conservative.

Run standalone::

    INVSYNC_API_TOKEN=secret python -m loadtest.naive_server --data-dir /tmp/naive --port 8081
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Annotated

import asyncpg
import msgspec
from aiohttp import web

DEFAULT_POOL_SIZE = 20

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS naive_stock (
    sku       text   PRIMARY KEY,
    available bigint NOT NULL,
    -- Only so the answer has the same shape as invsync's; costs nothing extra
    -- because the row is rewritten by the UPDATE anyway.
    version   bigint NOT NULL DEFAULT 0
)
"""

UPSERT_STOCK_SQL = """
INSERT INTO naive_stock AS s (sku, available, version) VALUES ($1, $2, 1)
ON CONFLICT (sku) DO UPDATE SET available = EXCLUDED.available, version = s.version + 1
RETURNING available, version
"""

TAKE_STOCK_SQL = """
UPDATE naive_stock SET available = available - $2, version = version + 1
WHERE sku = $1 AND available >= $2
RETURNING available, version
"""

READ_AVAILABLE_SQL = "SELECT available FROM naive_stock WHERE sku = $1"

Sku = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class StockPut(msgspec.Struct, forbid_unknown_fields=True):
    available: Annotated[int, msgspec.Meta(ge=0)]


class StockAnswer(msgspec.Struct):
    sku: str
    available: int
    version: int


class OrderLine(msgspec.Struct, forbid_unknown_fields=True):
    sku: Sku
    qty: Annotated[int, msgspec.Meta(gt=0)]


class OrderRequest(msgspec.Struct, forbid_unknown_fields=True):
    order_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    channel: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    lines: Annotated[list[OrderLine], msgspec.Meta(min_length=1, max_length=1000)]


class AcceptedLine(msgspec.Struct):
    sku: str
    qty: int
    available_after: int
    version: int


class OrderAccepted(msgspec.Struct):
    order_id: str
    channel: str
    lines: list[AcceptedLine]
    status: str = "accepted"


class RefusedLine(msgspec.Struct):
    sku: str
    requested: int
    available: int


class OrderRefused(msgspec.Struct):
    lines: list[RefusedLine]
    error: str = "insufficient_stock"


class ErrorAnswer(msgspec.Struct, omit_defaults=True):
    error: str
    detail: str | None = None


class NaiveStockService:
    """The request handlers; holds the pool and the decoders for one app."""

    def __init__(self, database_url: str, token: str, pool_size: int) -> None:
        self._database_url = database_url
        self._expected_auth = f"Bearer {token}".encode()
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._encoder = msgspec.json.Encoder()
        self._stock_decoder = msgspec.json.Decoder(StockPut)
        self._order_decoder = msgspec.json.Decoder(OrderRequest)

    async def pool_lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        self._pool = await asyncpg.create_pool(
            self._database_url, min_size=self._pool_size, max_size=self._pool_size
        )
        async with self._pool.acquire() as conn:
            await conn.execute(SCHEMA_SQL)
        yield
        await self._pool.close()

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "pool is created on app start-up"
        return self._pool

    def _json(self, payload: msgspec.Struct, status: int) -> web.Response:
        return web.Response(
            body=self._encoder.encode(payload), status=status, content_type="application/json"
        )

    def _authorized(self, request: web.Request) -> bool:
        offered = request.headers.get("Authorization", "").encode()
        return hmac.compare_digest(offered, self._expected_auth)

    def _unauthorized(self) -> web.Response:
        return self._json(ErrorAnswer(error="unauthorized"), 401)

    async def ready(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ready"})

    async def put_stock(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        sku = request.match_info["sku"]
        try:
            body = self._stock_decoder.decode(await request.read())
        except msgspec.ValidationError as exc:
            return self._json(ErrorAnswer(error="invalid_request", detail=str(exc)), 400)
        except msgspec.DecodeError as exc:
            return self._json(ErrorAnswer(error="invalid_json", detail=str(exc)), 400)
        row = await self.pool.fetchrow(UPSERT_STOCK_SQL, sku, body.available)
        return self._json(StockAnswer(sku=sku, available=row[0], version=row[1]), 200)

    async def post_order(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        try:
            order = self._order_decoder.decode(await request.read())
        except msgspec.ValidationError as exc:
            return self._json(ErrorAnswer(error="invalid_request", detail=str(exc)), 400)
        except msgspec.DecodeError as exc:
            return self._json(ErrorAnswer(error="invalid_json", detail=str(exc)), 400)
        if len(order.lines) == 1:
            return await self._single_line_order(order)
        return await self._multi_line_order(order)

    async def _single_line_order(self, order: OrderRequest) -> web.Response:
        # The baseline proper: one autocommit statement per order.
        line = order.lines[0]
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(TAKE_STOCK_SQL, line.sku, line.qty)
            if row is None:
                available = await conn.fetchval(READ_AVAILABLE_SQL, line.sku)
                refused = RefusedLine(sku=line.sku, requested=line.qty, available=available or 0)
                return self._json(OrderRefused(lines=[refused]), 409)
        accepted = AcceptedLine(sku=line.sku, qty=line.qty, available_after=row[0], version=row[1])
        return self._json(
            OrderAccepted(order_id=order.order_id, channel=order.channel, lines=[accepted]), 201
        )

    async def _multi_line_order(self, order: OrderRequest) -> web.Response:
        wanted: dict[str, int] = {}
        for line in order.lines:
            wanted[line.sku] = wanted.get(line.sku, 0) + line.qty
        after: dict[str, tuple[int, int]] = {}
        short: dict[str, int] = {}
        async with self.pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            try:
                # Sorted so two concurrent orders lock their rows in the same
                # order and cannot deadlock.
                for sku in sorted(wanted):
                    row = await conn.fetchrow(TAKE_STOCK_SQL, sku, wanted[sku])
                    if row is None:
                        short[sku] = await conn.fetchval(READ_AVAILABLE_SQL, sku) or 0
                    else:
                        after[sku] = (row[0], row[1])
            except BaseException:
                await tx.rollback()
                raise
            if short:
                await tx.rollback()
            else:
                await tx.commit()
        if short:
            refused = [
                RefusedLine(sku=sku, requested=wanted[sku], available=available)
                for sku, available in short.items()
            ]
            return self._json(OrderRefused(lines=refused), 409)
        accepted = [
            AcceptedLine(
                sku=line.sku,
                qty=line.qty,
                available_after=after[line.sku][0],
                version=after[line.sku][1],
            )
            for line in order.lines
        ]
        return self._json(
            OrderAccepted(order_id=order.order_id, channel=order.channel, lines=accepted), 201
        )


def build_naive_app(database_url: str, token: str, pool_size: int = DEFAULT_POOL_SIZE) -> web.Application:
    service = NaiveStockService(database_url, token, pool_size)
    app = web.Application()
    app.cleanup_ctx.append(service.pool_lifecycle)
    app.router.add_get("/internal/ready", service.ready)
    app.router.add_put("/v1/stock/{sku}", service.put_stock)
    app.router.add_post("/v1/orders", service.post_order)
    return app


async def start_naive(
    database_url: str,
    host: str,
    port: int,
    token: str,
    pool_size: int = DEFAULT_POOL_SIZE,
) -> web.AppRunner:
    """Start the baseline and return its runner; ``await runner.cleanup()`` stops it."""
    # No access log: invsync is benchmarked without one too, and formatting a
    # log line per request would dominate a handler this small.
    runner = web.AppRunner(build_naive_app(database_url, token, pool_size), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def _serve_until_signalled(database_url: str, host: str, port: int, token: str, pool_size: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = await start_naive(database_url, host, port, token, pool_size)
    print(f"naive server listening on http://{host}:{port}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="naive_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                        help="PostgreSQL URL; without it an embedded PostgreSQL is started in --data-dir")
    parser.add_argument("--data-dir", type=Path, help="directory for the embedded PostgreSQL")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--pool-size", type=int, default=DEFAULT_POOL_SIZE)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    token = os.environ.get("INVSYNC_API_TOKEN")
    if not token:
        print("INVSYNC_API_TOKEN must be set", file=sys.stderr)
        return 2
    embedded = None
    database_url = args.database_url
    if not database_url:
        # The service's own helper, so both sides of the benchmark run the
        # same PostgreSQL build with the same settings.
        from persistence.embedded import start_embedded_postgres

        data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="naive-"))
        embedded = start_embedded_postgres(data_dir)
        database_url = embedded.dsn
    try:
        asyncio.run(_serve_until_signalled(database_url, args.host, args.port, token, args.pool_size))
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
