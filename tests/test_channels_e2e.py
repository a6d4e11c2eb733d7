"""Channels end to end: the real service, the real simulator on loopback, real PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from channels.simulator_faults import FaultConfig, Outage
from channels.simulator_state import ChannelSpec
from tests.channel_e2e_helpers import SimThread, connect, shown, truth, wait_until
from tests.http_client import Client

FAST = {"backoff_base_s": 0.02, "backoff_cap_s": 0.2, "timeout_s": 0.5}
SKUS = [f"S-{i}" for i in range(8)]


@pytest.fixture
def sims():
    started: list[SimThread] = []

    def make(specs, seed: int = 7) -> SimThread:
        sim = SimThread(specs, seed)
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


def listed(kind: str, skus=SKUS) -> dict[str, str]:
    base = 1_000_000 if kind == "shopify" else 1000
    return {sku: str(base + i) for i, sku in enumerate(skus, 1)}


async def converged(client: Client, sim: SimThread, channel_ids, skus=SKUS, buffer: int = 0) -> bool:
    want = {sku: max(0, q - buffer) for sku, q in (await truth(client, skus)).items()}
    return all(shown(sim, cid) == want for cid in channel_ids)


def test_a_change_reaches_a_webhook_channel_with_its_version(make_service, sims):
    sim = sims([ChannelSpec(id="wh", kind="webhook", secret="s1")])
    svc = make_service()

    async def scenario():
        async with Client(svc.url, svc.headers) as c:
            await connect(c, sim, ChannelSpec(id="wh", kind="webhook", secret="s1"), **FAST)
            await c.set_stock("A", 10)
            status, body, _ = await c.order("o1", [("A", 3)])
            assert status == 201, body
            ok = await wait_until(lambda: shown(sim, "wh").get("A") == 7, timeout=10)
            return ok, sim.state()["wh"]["skus"]["A"], await c.stock("A")

    ok, state, stock = asyncio.run(scenario())
    assert ok, state
    assert state["version"] == stock["version"]
