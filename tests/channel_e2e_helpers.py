"""Helpers for the channel end-to-end tests: the simulator on its own loop thread, and the
service's channel API driven over real HTTP."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

from channels.simulator import SimulatorServer
from channels.simulator_state import ChannelSpec
from tests.http_client import Client


class SimThread:
    """A SimulatorServer serving on loopback from a background thread."""

    def __init__(self, specs: Sequence[ChannelSpec], seed: int = 7) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="simulator", daemon=True)
        self._thread.start()
        self.server = SimulatorServer(specs, seed=seed)
        self.call(self.server.start())

    def call(self, coro, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def sync(self, fn, *args, **kwargs) -> Any:
        async def run():
            return fn(*args, **kwargs)

        return self.call(run())

    def url(self, channel_id: str) -> str:
        return self.server.channel_base_url(channel_id)

    def state(self) -> dict:
        return self.sync(self.server.state)["channels"]

    def stats(self) -> dict:
        return self.sync(self.server.stats)

    def log(self, channel_id: str) -> list:
        return self.sync(self.server.log, channel_id)

    def set_faults(self, channel_id: str, **changes) -> None:
        self.call(self.server.set_faults(channel_id, **changes))

    def send_order(self, channel_id: str, url: str, order_id: int, lines, event: str = "created"):
        return self.call(self.server.send_order(channel_id, url, order_id, lines, event=event))

    def stop(self) -> None:
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def channel_body(sim: SimThread, spec: ChannelSpec, rate_limit=None, buffer: int = 0, **config) -> dict:
    """The POST /v1/channels body that connects invsync to a simulated channel."""
    if spec.kind == "webhook":
        base = {"url": sim.url(spec.id), "secret": spec.secret}
    elif spec.kind == "shopify":
        base = {"shop_url": sim.url(spec.id), "access_token": spec.secret, "location_id": spec.location_id,
                "webhook_secret": spec.webhook_secret or spec.secret}
    else:
        base = {"site_url": sim.url(spec.id), "consumer_key": spec.consumer_key, "consumer_secret": spec.secret,
                "webhook_secret": spec.webhook_secret or spec.secret}
    base.update(config)
    body = {"id": spec.id, "kind": spec.kind, "config": base, "buffer": buffer}
    if rate_limit is not None:
        body["rate_limit"] = rate_limit
    return body


async def connect(client: Client, sim: SimThread, spec: ChannelSpec, **kwargs) -> dict:
    status, body, _ = await client.request("POST", "/v1/channels", channel_body(sim, spec, **kwargs))
    assert status == 201, body
    if spec.listings:
        listings = [{"sku": sku, "external_id": ext} for sku, ext in spec.listings.items()]
        status, body, _ = await client.request("PUT", f"/v1/channels/{spec.id}/listings", listings)
        assert status == 200, body
    return body


async def truth(client: Client, skus: Sequence[str]) -> dict[str, int]:
    return {sku: (await client.stock(sku))["available"] for sku in skus}


def shown(sim: SimThread, channel_id: str) -> dict[str, int]:
    return {sku: s["quantity"] for sku, s in sim.state()[channel_id]["skus"].items()}


async def wait_until(predicate, timeout: float = 30.0, interval: float = 0.05):
    """Poll an async or sync predicate until it returns a truthy value; returns it (or the last falsy one)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(interval)
