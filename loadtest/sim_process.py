"""The channel simulator as the load harness runs it: a subprocess with a few extra routes.

    python -m loadtest.sim_process --config channels.json [--port 0]

prints one JSON line: the simulator's description plus `started_monotonic` (the simulator's clock
origin on the machine-wide monotonic clock, so arrival times `at` in its logs map onto the
harness's `time.monotonic()` exactly).

Extra routes (loopback test tool, no authentication):

    POST /_lt/buy         {"order_id", "channel", "lines": [[sku, want]], "url"}: a buyer on that
                          store buys what the store shows (min(want, shown) per line), the store
                          lowers its own shown quantity at once (as a real store does) and sends the
                          sale to `url` as a signed order webhook; answers {"sold": [[sku, qty]],
                          "status", "body"} ("sold" empty and status 0: nothing was shown)
    POST /_lt/redeliver   {"order_id", "url"}: send that order's webhook again (a store retry)
    GET  /_lt/shown       {channel: {sku: quantity}}
    GET  /_lt/logs        {"started_monotonic", "channels": {channel: [[sku, quantity, version, at]]}}
    GET  /_lt/requests    {channel: requests received}
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time

import aiohttp
import msgspec
from aiohttp import web

from channels.simulator import SimulatorConfig, SimulatorServer

_encoder = msgspec.json.Encoder()


class BuyRequest(msgspec.Struct):
    order_id: str
    channel: str
    lines: list[tuple[str, int]]
    url: str


class RedeliverRequest(msgspec.Struct):
    order_id: str
    url: str


def _json(document: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=_encoder.encode(document), content_type="application/json")


class HarnessSimulator(SimulatorServer):
    """SimulatorServer plus store-side sales for the marketplace scenario."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sold_orders: dict[str, tuple[str, list[tuple[str, int]]]] = {}

    def _build_app(self) -> web.Application:
        app = super()._build_app()
        app.router.add_post("/_lt/buy", self._lt_buy)
        app.router.add_post("/_lt/redeliver", self._lt_redeliver)
        app.router.add_get("/_lt/shown", self._lt_shown)
        app.router.add_get("/_lt/logs", self._lt_logs)
        app.router.add_get("/_lt/requests", self._lt_requests)
        return app

    @property
    def started_monotonic(self) -> float:
        return self._started_at

    def sell(self, channel_id: str, lines: list[tuple[str, int]]) -> list[tuple[str, int]]:
        """What the store sells of `lines` and its shown quantities lowered accordingly."""
        state = self._state(channel_id)
        sold = []
        for sku, want in lines:
            current = state.skus.get(sku)
            shown = current.quantity if current is not None else 0
            take = min(want, shown)
            if take > 0:
                state.skus[sku] = msgspec.structs.replace(current, quantity=shown - take)
                sold.append((sku, take))
        return sold

    async def _deliver(self, channel_id: str, url: str, order_id: str, lines) -> tuple[int, str]:
        try:
            status, body = await self.send_order(channel_id, url, order_id, lines, timeout_s=60.0)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            return 0, f"{type(exc).__name__}: {exc}"
        return status, body.decode("utf-8", "replace")

    async def _lt_buy(self, request: web.Request) -> web.Response:
        buy = msgspec.json.decode(await request.read(), type=BuyRequest)
        sold = self.sell(buy.channel, buy.lines)
        if not sold:
            return _json({"sold": [], "status": 0, "body": ""})
        self.sold_orders[buy.order_id] = (buy.channel, sold)
        status, body = await self._deliver(buy.channel, buy.url, buy.order_id, sold)
        return _json({"sold": sold, "status": status, "body": body})

    async def _lt_redeliver(self, request: web.Request) -> web.Response:
        again = msgspec.json.decode(await request.read(), type=RedeliverRequest)
        known = self.sold_orders.get(again.order_id)
        if known is None:
            return _json({"sold": [], "status": 0, "body": "never sold"})
        channel, sold = known
        status, body = await self._deliver(channel, again.url, again.order_id, sold)
        return _json({"sold": sold, "status": status, "body": body})

    async def _lt_shown(self, request: web.Request) -> web.Response:
        return _json({cid: {sku: s.quantity for sku, s in state.skus.items()} for cid, state in self._states.items()})

    async def _lt_logs(self, request: web.Request) -> web.Response:
        return _json(
            {
                "started_monotonic": self._started_at,
                "channels": {cid: list(state.log) for cid, state in self._states.items()},
            }
        )

    async def _lt_requests(self, request: web.Request) -> web.Response:
        return _json({cid: state.stats.requests for cid, state in self._states.items()})


async def _serve(config: SimulatorConfig, host: str, port: int) -> None:
    import structlog

    logger = structlog.wrap_logger(structlog.PrintLogger(file=sys.stderr)).bind(logger="invsync.simulator")
    server = HarnessSimulator(config.channels, host=host, port=port, seed=config.seed, logger=logger)
    await server.start()
    # asyncio's loop clock is time.monotonic(): the same clock as the harness's.
    assert abs(asyncio.get_running_loop().time() - time.monotonic()) < 1.0
    description = server.describe()
    description["started_monotonic"] = server.started_monotonic
    sys.stdout.write(_encoder.encode(description).decode() + "\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.sim_process")
    parser.add_argument("--config", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    with open(args.config, "rb") as handle:
        config = msgspec.json.decode(handle.read(), type=SimulatorConfig)
    asyncio.run(_serve(config, args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
