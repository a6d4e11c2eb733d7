"""Channel simulator: one aiohttp server that plays many webhook, Shopify and WooCommerce channels.

URL scheme (all channels share the server's port; a channel with `port` is also reachable, under
the same paths, on its own listener):

    POST /webhook/{id}                                            invsync webhook format
    POST /shopify/{id}/admin/api/{api_version}/graphql.json       Shopify inventorySetQuantities
    POST /woocommerce/{id}/wp-json/wc/v3/products/batch           WooCommerce products batch

so a Shopify channel's shop_url is `{base}/shopify/{id}`, a WooCommerce channel's site_url is
`{base}/woocommerce/{id}`, and a webhook channel's url is `{base}/webhook/{id}`.

Control API (no authentication; loopback test tool):

    GET  /_sim/channels                        ids, kinds, URLs and credentials (for wiring clients)
    GET  /_sim/state                           {"now": s, "channels": {id: {"kind", "skus": {sku:
                                               {quantity, version, updated_at, version_source}}}}}
    GET  /_sim/stats                           per channel: requests, ok_2xx, throttled_429, errors_5xx,
                                               unauthorized_401, client_errors_4xx, resets,
                                               items_applied, item_errors, stale_writes,
                                               max_requests_1s, plus the recent stale writes
    POST /_sim/reset                           forget quantities, logs, stats; restore spec faults
    GET  /_sim/channels/{id}/faults            current FaultConfig
    POST /_sim/channels/{id}/faults            partial FaultConfig JSON, merged into the current one
    GET  /_sim/channels/{id}/log               received [sku, quantity, version, at] (bounded)
    POST /_sim/channels/{id}/listings          {"sku": "external id", ...} added to the store
    POST /_sim/channels/{id}/orders            {"url", "order_id", "lines": [[sku, qty]], "event"}:
                                               send a signed order webhook as this store would

Times (`at`, `updated_at`, outage windows) are seconds since start(). Fault decisions draw from a
per-channel RNG seeded with (seed, channel id), so runs are reproducible.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from typing import Any

import aiohttp
import msgspec
import structlog
from aiohttp import web

from channels.order_webhook_builder import build_order_webhook
from channels.simulator_faults import (
    FaultConfig,
    decide_after_auth,
    decide_outage,
    merge_faults,
    outage_mode_at,
)
from channels.simulator_state import ChannelKind, ChannelSpec, ChannelState, default_listings
from channels.simulator_stores import (
    StoreReply,
    handle_shopify_push,
    handle_webhook_push,
    handle_woocommerce_push,
    server_error_reply,
    throttled_reply,
    unauthorized_reply,
)

_REFUSE_POLL_S = 0.02
_encoder = msgspec.json.Encoder()


class SimulatorConfig(msgspec.Struct, kw_only=True):
    """The --config file: channel specs plus optional server settings."""

    channels: list[ChannelSpec]
    seed: int = 0
    host: str | None = None
    port: int | None = None


class OrderRequest(msgspec.Struct):
    """Body of POST /_sim/channels/{id}/orders."""

    url: str
    order_id: int | str
    lines: list[tuple[str | None, int]]
    event: str = "created"


def _bound_port(site: web.TCPSite) -> int:
    return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


def _json_response(document: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=_encoder.encode(document), content_type="application/json")


def _reply(reply: StoreReply) -> web.Response:
    headers = {k: v for k, v in reply.headers.items() if k.lower() != "content-type"}
    return web.Response(status=reply.status, body=reply.body, headers=headers, content_type="application/json")


class _DedicatedListener:
    """A channel's own port, closed while a "refuse" fault is in force."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.site: web.TCPSite | None = None


class SimulatorServer:
    def __init__(
        self,
        channels: Sequence[ChannelSpec],
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        *,
        logger: Any = None,
    ) -> None:
        ids = [spec.id for spec in channels]
        if len(set(ids)) != len(ids):
            raise ValueError("channel ids must be unique")
        self._specs = list(channels)
        self._host = host
        self._port = port
        self._seed = seed
        self._log = logger if logger is not None else structlog.get_logger("invsync.simulator")
        self._states: dict[str, ChannelState] = {}
        self._listeners: dict[str, _DedicatedListener] = {}
        self._runner: web.AppRunner | None = None
        self._refuse_task: asyncio.Task | None = None
        self._client: aiohttp.ClientSession | None = None
        self._started_at = 0.0
        self.base_url = ""

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> str:
        """Bind and serve; returns the base URL (http://host:port)."""
        loop = asyncio.get_running_loop()
        self._started_at = loop.time()
        self._states = {spec.id: ChannelState(spec, self._seed, self._started_at) for spec in self._specs}
        # A short shutdown grace: a "slow" fault may hold answers far longer than a test wants to wait.
        self._runner = web.AppRunner(self._build_app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        self._port = _bound_port(site)
        self.base_url = f"http://{self._host}:{self._port}"
        for spec in self._specs:
            if spec.port is not None:
                listener = _DedicatedListener(spec.port)
                self._listeners[spec.id] = listener
                await self._open_listener(listener)
        self._refuse_task = asyncio.create_task(self._enforce_refusals_forever())
        self._log.info("simulator_started", url=self.base_url, channels=len(self._specs), seed=self._seed)
        return self.base_url

    async def stop(self) -> None:
        if self._refuse_task is not None:
            self._refuse_task.cancel()
            try:
                await self._refuse_task
            except asyncio.CancelledError:
                pass
            self._refuse_task = None
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._log.info("simulator_stopped", url=self.base_url)

    async def __aenter__(self) -> SimulatorServer:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def _open_listener(self, listener: _DedicatedListener) -> None:
        assert self._runner is not None
        site = web.TCPSite(self._runner, self._host, listener.port, reuse_address=True)
        await site.start()
        listener.port = _bound_port(site)
        listener.site = site

    async def _enforce_refusals(self) -> None:
        elapsed = self.elapsed()
        for channel_id, listener in self._listeners.items():
            outage = outage_mode_at(self._states[channel_id].faults, elapsed)
            refusing = outage is not None and outage[0] == "refuse"
            if refusing and listener.site is not None:
                await listener.site.stop()
                listener.site = None
                self._log.info("channel_port_closed", channel=channel_id, port=listener.port)
            elif not refusing and listener.site is None:
                await self._open_listener(listener)
                self._log.info("channel_port_reopened", channel=channel_id, port=listener.port)

    async def _enforce_refusals_forever(self) -> None:
        while True:
            await self._enforce_refusals()
            await asyncio.sleep(_REFUSE_POLL_S)

    # --- Python API -----------------------------------------------------------------------------

    def elapsed(self) -> float:
        return asyncio.get_running_loop().time() - self._started_at

    def channel_base_url(self, channel_id: str, *, dedicated: bool = False) -> str:
        """webhook: the push URL; shopify: shop_url; woocommerce: site_url."""
        state = self._state(channel_id)
        base = self.base_url
        if dedicated:
            base = f"http://{self._host}:{self._listeners[channel_id].port}"
        return f"{base}/{state.spec.kind}/{channel_id}"

    def dedicated_port(self, channel_id: str) -> int:
        return self._listeners[channel_id].port

    def describe(self) -> dict:
        channels = {}
        for channel_id, state in self._states.items():
            spec = state.spec
            entry: dict[str, Any] = {"kind": spec.kind, "url": self.channel_base_url(channel_id)}
            if channel_id in self._listeners:
                entry["dedicated_url"] = self.channel_base_url(channel_id, dedicated=True)
            if spec.kind == "webhook":
                entry["secret"] = spec.secret
            elif spec.kind == "shopify":
                entry.update(access_token=spec.secret, location_id=spec.location_id)
            else:
                entry.update(consumer_key=spec.consumer_key, consumer_secret=spec.secret)
            entry["order_webhook_secret"] = spec.webhook_secret or spec.secret
            entry["listings"] = dict(state.listings)
            channels[channel_id] = entry
        return {"url": self.base_url, "seed": self._seed, "channels": channels}

    def state(self) -> dict:
        return {"now": self.elapsed(), "channels": {cid: s.snapshot() for cid, s in self._states.items()}}

    def stats(self) -> dict:
        return {
            cid: {**msgspec.to_builtins(s.stats), "recent_stale_writes": msgspec.to_builtins(list(s.stale))}
            for cid, s in self._states.items()
        }

    def log(self, channel_id: str) -> list:
        return msgspec.to_builtins(list(self._state(channel_id).log))

    def faults(self, channel_id: str) -> FaultConfig:
        return self._state(channel_id).faults

    async def set_faults(self, channel_id: str, **changes: Any) -> FaultConfig:
        """Merge changes into the channel's faults (ValueError on bad fields); applies at once."""
        state = self._state(channel_id)
        faults = merge_faults(state.faults, changes)
        state.set_faults(faults, asyncio.get_running_loop().time())
        await self._enforce_refusals()
        self._log.info("faults_changed", channel=channel_id, changes=changes)
        return faults

    async def reset(self) -> None:
        now = asyncio.get_running_loop().time()
        for state in self._states.values():
            state.reset(now)
        await self._enforce_refusals()
        self._log.info("simulator_reset")

    def add_listings(self, channel_id: str, listings: dict[str, str]) -> None:
        self._state(channel_id).add_listings({str(k): str(v) for k, v in listings.items()})

    async def send_order(
        self,
        channel_id: str,
        url: str,
        order_id: str | int,
        lines: Sequence[tuple[str | None, int]],
        *,
        event: str = "created",
        timeout_s: float = 10.0,
    ) -> tuple[int, bytes]:
        """POST a signed order webhook from this store to `url`; returns (status, body)."""
        spec = self._state(channel_id).spec
        if spec.kind == "webhook":
            raise ValueError("webhook channels do not send order webhooks")
        request = build_order_webhook(spec.kind, order_id, lines, spec.webhook_secret or spec.secret, url, event=event)  # type: ignore[arg-type]
        if self._client is None:
            self._client = aiohttp.ClientSession()
        async with self._client.request(
            request.method, request.url, headers=request.headers, data=request.body, timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as response:
            return response.status, await response.read()

    def _state(self, channel_id: str) -> ChannelState:
        try:
            return self._states[channel_id]
        except KeyError:
            raise KeyError(f"unknown channel {channel_id!r}") from None

    # --- HTTP -----------------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/webhook/{channel_id}", self._webhook)
        app.router.add_post("/shopify/{channel_id}/admin/api/{api_version}/graphql.json", self._shopify)
        app.router.add_post("/woocommerce/{channel_id}/wp-json/wc/v3/products/batch", self._woocommerce)
        app.router.add_get("/_sim/channels", self._get_channels)
        app.router.add_get("/_sim/state", self._get_state)
        app.router.add_get("/_sim/stats", self._get_stats)
        app.router.add_post("/_sim/reset", self._post_reset)
        app.router.add_get("/_sim/channels/{channel_id}/faults", self._get_faults)
        app.router.add_post("/_sim/channels/{channel_id}/faults", self._post_faults)
        app.router.add_get("/_sim/channels/{channel_id}/log", self._get_log)
        app.router.add_post("/_sim/channels/{channel_id}/listings", self._post_listings)
        app.router.add_post("/_sim/channels/{channel_id}/orders", self._post_order)
        return app

    async def _webhook(self, request: web.Request) -> web.StreamResponse:
        return await self._push(request, "webhook")

    async def _shopify(self, request: web.Request) -> web.StreamResponse:
        return await self._push(request, "shopify")

    async def _woocommerce(self, request: web.Request) -> web.StreamResponse:
        return await self._push(request, "woocommerce")

    def _reset_connection(self, request: web.Request, state: ChannelState) -> web.Response:
        state.stats.resets += 1
        if request.transport is not None:
            request.transport.abort()
        # aiohttp finds the transport gone and writes nothing: the client sees a disconnect.
        return web.Response(status=500)

    async def _push(self, request: web.Request, kind: ChannelKind) -> web.StreamResponse:
        state = self._states.get(request.match_info["channel_id"])
        if state is None or state.spec.kind != kind:
            return _json_response({"error": "no such channel"}, status=404)
        body = await request.read()
        loop = asyncio.get_running_loop()
        now = loop.time()
        elapsed = now - self._started_at
        state.note_request(now)

        outage = decide_outage(state.faults, elapsed)
        if outage.kind == "unavailable":
            state.note_status(503)
            return _reply(server_error_reply(state, 503, outage.retry_after_s))
        if outage.kind in ("reset", "refuse"):
            return self._reset_connection(request, state)

        denied = unauthorized_reply(state, request.headers, body, request.query)
        if denied is not None:
            state.note_status(401)
            return _reply(denied)

        decision = decide_after_auth(state.faults, state.bucket, state.rng, now)
        if decision.delay_s > 0:
            await asyncio.sleep(decision.delay_s)
        if decision.kind == "throttle":
            state.note_status(429)
            return _reply(throttled_reply(state, decision.retry_after_s or 0.0))
        if decision.kind == "error":
            state.note_status(state.faults.error_status)
            return _reply(server_error_reply(state, state.faults.error_status))
        if decision.kind == "reset":
            return self._reset_connection(request, state)

        elapsed = loop.time() - self._started_at
        if kind == "webhook":
            reply = handle_webhook_push(state, body, elapsed)
        elif kind == "shopify":
            reply = handle_shopify_push(state, request.headers, body, elapsed)
        else:
            reply = handle_woocommerce_push(state, request.headers, body, elapsed)
        if decision.hold_s > 0:
            # Applied but answered late: the client may time out on a write that did happen.
            await asyncio.sleep(decision.hold_s)
        state.note_status(reply.status)
        return _reply(reply)

    async def _get_channels(self, request: web.Request) -> web.Response:
        return _json_response(self.describe())

    async def _get_state(self, request: web.Request) -> web.Response:
        return _json_response(self.state())

    async def _get_stats(self, request: web.Request) -> web.Response:
        return _json_response(self.stats())

    async def _post_reset(self, request: web.Request) -> web.Response:
        await self.reset()
        return _json_response({"reset": True})

    def _known(self, request: web.Request) -> str | None:
        channel_id = request.match_info["channel_id"]
        return channel_id if channel_id in self._states else None

    async def _get_faults(self, request: web.Request) -> web.Response:
        channel_id = self._known(request)
        if channel_id is None:
            return _json_response({"error": "no such channel"}, status=404)
        return _json_response(msgspec.to_builtins(self.faults(channel_id)))

    async def _post_faults(self, request: web.Request) -> web.Response:
        channel_id = self._known(request)
        if channel_id is None:
            return _json_response({"error": "no such channel"}, status=404)
        try:
            changes = msgspec.json.decode(await request.read())
            if not isinstance(changes, dict):
                raise ValueError("faults must be a JSON object")
            faults = await self.set_faults(channel_id, **changes)
        except (msgspec.DecodeError, ValueError) as exc:
            return _json_response({"error": str(exc)}, status=400)
        return _json_response(msgspec.to_builtins(faults))

    async def _get_log(self, request: web.Request) -> web.Response:
        channel_id = self._known(request)
        if channel_id is None:
            return _json_response({"error": "no such channel"}, status=404)
        return _json_response({"fields": ["sku", "quantity", "version", "at"], "entries": self.log(channel_id)})

    async def _post_listings(self, request: web.Request) -> web.Response:
        channel_id = self._known(request)
        if channel_id is None:
            return _json_response({"error": "no such channel"}, status=404)
        try:
            listings = msgspec.json.decode(await request.read(), type=dict[str, str | int])
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return _json_response({"error": str(exc)}, status=400)
        self.add_listings(channel_id, {k: str(v) for k, v in listings.items()})
        return _json_response({"listings": len(self._states[channel_id].listings)})

    async def _post_order(self, request: web.Request) -> web.Response:
        channel_id = self._known(request)
        if channel_id is None:
            return _json_response({"error": "no such channel"}, status=404)
        try:
            order = msgspec.json.decode(await request.read(), type=OrderRequest)
            status, body = await self.send_order(channel_id, order.url, order.order_id, order.lines, event=order.event)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            return _json_response({"error": str(exc)}, status=400)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return _json_response({"error": f"delivery failed: {exc!r}"}, status=502)
        return _json_response({"status": status, "body": body.decode("utf-8", "replace")})


# --- CLI --------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="invsync simulate-channels", description="Simulate store channels on loopback.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8700)
    parser.add_argument("--webhook", type=int, default=0, metavar="N", help="webhook channels webhook-1..N")
    parser.add_argument("--shopify", type=int, default=0, metavar="N", help="Shopify channels shopify-1..N")
    parser.add_argument("--woocommerce", type=int, default=0, metavar="N", help="WooCommerce channels woocommerce-1..N")
    parser.add_argument("--skus", type=int, default=100, help="catalogue SKU-00001..N listed on every store")
    parser.add_argument("--secret", default="sim-secret", help="credential of every generated channel")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--rate-limit", type=float, default=None, help="requests per second per channel")
    parser.add_argument("--burst", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--config", default=None, help="JSON {channels: [ChannelSpec...], seed, host, port}")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: until signalled)")
    return parser


def specs_from_args(args: argparse.Namespace) -> tuple[list[ChannelSpec], int, str, int]:
    """Channel specs from --config plus the generated --webhook/--shopify/--woocommerce channels."""
    specs: list[ChannelSpec] = []
    seed, host, port = 0, args.host, args.port
    if args.config:
        with open(args.config, "rb") as handle:
            config = msgspec.json.decode(handle.read(), type=SimulatorConfig)
        specs.extend(config.channels)
        seed = config.seed
        host = config.host or host
        port = config.port if config.port is not None else port
    if args.seed is not None:
        seed = args.seed
    faults = FaultConfig(
        latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms,
        error_rate=args.error_rate,
        rate_limit_per_second=args.rate_limit,
        burst=args.burst,
    )
    skus = [f"SKU-{index:05d}" for index in range(1, args.skus + 1)]
    kinds: tuple[tuple[ChannelKind, int], ...] = (("webhook", args.webhook), ("shopify", args.shopify), ("woocommerce", args.woocommerce))
    for kind, count in kinds:
        for number in range(1, count + 1):
            specs.append(
                ChannelSpec(id=f"{kind}-{number}", kind=kind, secret=args.secret, listings=default_listings(kind, skus), faults=faults)
            )
    return specs, seed, host, port


async def _serve(specs: list[ChannelSpec], host: str, port: int, seed: int, duration: float) -> None:
    # stdout carries the one-line channel description for scripts; logs go to stderr.
    logger = structlog.wrap_logger(structlog.PrintLogger(file=sys.stderr)).bind(logger="invsync.simulator")
    server = SimulatorServer(specs, host=host, port=port, seed=seed, logger=logger)
    await server.start()
    sys.stdout.write(msgspec.json.encode(server.describe()).decode() + "\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        if duration > 0:
            await asyncio.wait_for(stop.wait(), timeout=duration)
        else:
            await stop.wait()
    except asyncio.TimeoutError:
        pass
    finally:
        await server.stop()


def run_simulator(argv: Sequence[str] | None = None) -> int:
    """Entry point for `invsync simulate-channels`; prints the channel description as one JSON line."""
    args = _parser().parse_args(argv)
    try:
        specs, seed, host, port = specs_from_args(args)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
        print(f"simulate-channels: {exc}", file=sys.stderr)
        return 2
    if not specs:
        print("simulate-channels: no channels (use --webhook/--shopify/--woocommerce N or --config)", file=sys.stderr)
        return 2
    asyncio.run(_serve(specs, host, port, seed, args.duration))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_simulator())
