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


def test_a_change_reaches_a_webhook_channel_with_its_version(sims, make_service):
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


DL_FAST = dict(dead_letter_base_s=0.2, dead_letter_cap_s=1.0, dead_letter_tick_s=0.1)


async def drive_orders(c: Client, skus=SKUS, rounds: int = 6) -> None:
    """Concurrent orders, cancels and stock sets from two of our own channels."""
    for sku in skus:
        await c.set_stock(sku, 40)

    async def one(n: int) -> None:
        sku = skus[n % len(skus)]
        status, body, _ = await c.order(f"o-{n}", [(sku, 1 + n % 3)], channel="web" if n % 2 else "pos")
        assert status in (201, 409), body
        if n % 7 == 0 and status == 201:
            status, body, _ = await c.request("POST", f"/v1/orders/{'web' if n % 2 else 'pos'}/o-{n}/cancel")
            assert status == 200, body

    for r in range(rounds):
        await asyncio.gather(*(one(r * 20 + i) for i in range(20)))
        await c.set_stock(skus[r % len(skus)], 25 + r)


def test_every_channel_converges_under_every_fault_kind_without_stale_versions(sims, make_service):
    specs = [
        ChannelSpec(id="wh-latency", kind="webhook", faults=FaultConfig(latency_ms=30, jitter_ms=30)),
        ChannelSpec(id="wh-errors", kind="webhook", faults=FaultConfig(error_rate=0.4)),
        ChannelSpec(id="wh-429", kind="webhook", faults=FaultConfig(rate_limit_per_second=4, burst=1)),
        ChannelSpec(id="wh-outage", kind="webhook", faults=FaultConfig(outages=(Outage(start_s=0, end_s=4, mode="503"),))),
        ChannelSpec(id="wh-reset", kind="webhook", faults=FaultConfig(reset_rate=0.4)),
        ChannelSpec(id="wh-slow", kind="webhook", faults=FaultConfig(slow_rate=0.4, slow_ms=800)),
        ChannelSpec(id="shop-1", kind="shopify", listings=listed("shopify"),
                    faults=FaultConfig(error_rate=0.2, rate_limit_per_second=10, burst=2)),
        ChannelSpec(id="woo-1", kind="woocommerce", listings=listed("woocommerce"),
                    faults=FaultConfig(reset_rate=0.2, latency_ms=10)),
    ]
    sim = sims(specs)
    svc = make_service(**DL_FAST)
    ids = [s.id for s in specs]

    async def scenario():
        async with Client(svc.url, svc.headers) as c:
            for spec in specs:
                await connect(c, sim, spec, **FAST)
            await drive_orders(c)
            ok = await wait_until(lambda: converged(c, sim, ids), timeout=40, interval=0.2)
            statuses = {cid: (await c.request("GET", f"/v1/channels/{cid}"))[1] for cid in ids}
            return ok, await truth(c, SKUS), statuses

    ok, want, statuses = asyncio.run(scenario())
    assert ok, {cid: shown(sim, cid) for cid in ids} | {"truth": want}
    stats = sim.stats()
    assert {cid: stats[cid]["stale_writes"] for cid in ids} == dict.fromkeys(ids, 0)
    counters = {cid: statuses[cid]["status"]["counters"] for cid in ids}
    # Every fault really happened (so convergence was earned) and was classified right.
    assert stats["wh-errors"]["errors_5xx"] > 0 and counters["wh-errors"]["retried"] > 0
    assert stats["wh-429"]["throttled_429"] > 0 and counters["wh-429"]["throttled"] > 0
    assert counters["wh-429"]["retried"] == 0 and counters["wh-429"]["dead_lettered"] == 0  # throttled, not failed
    assert stats["wh-outage"]["errors_5xx"] > 0 and counters["wh-outage"]["retried"] > 0
    assert stats["wh-reset"]["resets"] > 0 and counters["wh-reset"]["retried"] > 0
    assert counters["wh-slow"]["retried"] > 0  # applied, answered after our timeout
    assert stats["shop-1"]["throttled_429"] > 0 and counters["shop-1"]["throttled"] > 0
    assert stats["woo-1"]["resets"] > 0
    # Coalescing: far fewer items pushed than changes made.
    assert stats["wh-latency"]["items_applied"] < 6 * 20 + len(SKUS) * 2


def test_the_rate_limit_is_never_exceeded_at_the_channel(sims, make_service):
    spec = ChannelSpec(id="wh-rl", kind="webhook", faults=FaultConfig(rate_limit_per_second=5, burst=3))
    sim = sims([spec])
    svc = make_service()

    async def scenario():
        async with Client(svc.url, svc.headers) as c:
            await connect(c, sim, spec, rate_limit={"per_second": 5, "burst": 2}, **FAST)
            for n in range(30):
                await c.set_stock(SKUS[n % 2], 100 + n)
                await asyncio.sleep(0.06)
            return await wait_until(lambda: converged(c, sim, ["wh-rl"], SKUS[:2]), timeout=20, interval=0.1)

    assert asyncio.run(scenario())
    stats = sim.stats()["wh-rl"]
    assert stats["throttled_429"] == 0  # the channel's own bucket never had to refuse us
    assert stats["max_requests_1s"] <= 5 + 2  # a bucket of rate 5 and burst 2 allows at most 7 in any second
    assert stats["requests"] >= 5  # and the limit was actually what paced us


def test_a_permanent_item_error_dead_letters_only_that_sku(sims, make_service):
    # The store does not know S-1's inventory item: a per-item userError (permanent).
    store_listings = {sku: ext for sku, ext in listed("shopify").items() if sku != "S-1"}
    spec = ChannelSpec(id="shop-x", kind="shopify", listings=store_listings)
    sim = sims([spec])
    svc = make_service(**DL_FAST)

    async def scenario():
        async with Client(svc.url, svc.headers) as c:
            await connect(c, sim, ChannelSpec(id="shop-x", kind="shopify", listings=listed("shopify")), **FAST)
            for sku in SKUS[:4]:
                await c.set_stock(sku, 9)
            ok = await wait_until(lambda: all(shown(sim, "shop-x").get(s) == 9 for s in ("S-0", "S-2", "S-3")), timeout=10)
            letters = await wait_until(
                lambda: _dead_letters(c, "shop-x"), timeout=10
            )
            missing_before_fix = "S-1" not in shown(sim, "shop-x")
            # The stock changes while the store still refuses it: the dead letter follows it.
            await c.set_stock("S-1", 6)
            updated = await wait_until(
                lambda: _dead_letters_where(c, "shop-x", lambda d: d["quantity"] == 6), timeout=10
            )
            assert updated and updated[0]["id"] == letters[0]["id"], updated
            # The merchant fixes the product in the store and retries by hand.
            sim.sync(sim.server.add_listings, "shop-x", {"S-1": listed("shopify")["S-1"]})
            status, body, _ = await c.request("POST", f"/v1/dead-letters/{letters[0]['id']}/retry")
            assert status == 202 and body["status"] == "retry_scheduled", body
            delivered = await wait_until(lambda: shown(sim, "shop-x").get("S-1") == 6, timeout=10)
            drained = await wait_until(lambda: _len_at_least(c, "shop-x", 0, exact=True), timeout=10)
            return ok, letters, missing_before_fix, delivered, drained

    ok, letters, missing_before_fix, delivered, drained = asyncio.run(scenario())
    assert ok  # the other SKUs of the batch went through
    assert [(d["sku"], d["quantity"]) for d in letters] == [("S-1", 9)]
    assert "shopify" in letters[0]["error"]
    assert missing_before_fix
    assert delivered and drained is True  # the current quantity (6), not the dead-lettered 9


async def _dead_letters_where(c: Client, channel: str, predicate) -> list:
    return [d for d in await _dead_letters(c, channel) if predicate(d)]


async def _dead_letters(c: Client, channel: str) -> list:
    status, body, _ = await c.request("GET", f"/v1/dead-letters?channel={channel}")
    assert status == 200, body
    return body["items"]


def test_dead_letters_survive_a_restart_and_drain_when_the_channel_returns(sims, make_service):
    spec = ChannelSpec(id="wh-down", kind="webhook", faults=FaultConfig(down="503"))
    sim = sims([spec])
    svc = make_service(**DL_FAST)

    async def before():
        async with Client(svc.url, svc.headers) as c:
            await connect(c, sim, spec, max_attempts=2, **FAST)
            for sku in SKUS[:3]:
                await c.set_stock(sku, 5)
            letters = await wait_until(lambda: _len_at_least(c, "wh-down", 3), timeout=15)
            status, body, _ = await c.request("GET", "/v1/channels/wh-down")
            return letters, body

    letters, channel = asyncio.run(before())
    assert sorted(d["sku"] for d in letters) == SKUS[:3]
    assert all(d["attempts"] >= 2 and d["quantity"] == 5 for d in letters)
    assert channel["dead_letters"]["open"] == 3
    svc.stop()

    svc2 = make_service(**DL_FAST)

    async def after():
        async with Client(svc2.url, svc2.headers) as c:
            kept = await _dead_letters(c, "wh-down")
            # Discard one by hand; the others must drain on their own once the channel is back.
            discarded = next(d for d in kept if d["sku"] == "S-2")
            status, body, _ = await c.request("POST", f"/v1/dead-letters/{discarded['id']}/discard")
            assert status == 200 and body["status"] == "discarded", body
            await c.set_stock("S-0", 4)  # the current quantity is what gets delivered
            sim.set_faults("wh-down", down=None)
            drained = await wait_until(lambda: _len_at_least(c, "wh-down", 0, exact=True), timeout=20)
            shown_now = await wait_until(lambda: shown(sim, "wh-down").get("S-0") == 4 and shown(sim, "wh-down").get("S-1") == 5, timeout=10)
            status, body, _ = await c.request("GET", "/v1/dead-letters")
            return kept, drained, shown_now, body

    kept, drained, shown_now, page = asyncio.run(after())
    assert sorted(d["sku"] for d in kept) == SKUS[:3]
    assert drained is True and shown_now
    assert page["items"] == []
    assert page["counts"]["wh-down"]["discarded"] == 1 and page["counts"]["wh-down"]["drained"] >= 1
    assert sim.stats()["wh-down"]["stale_writes"] == 0


async def _len_at_least(c: Client, channel: str, n: int, exact: bool = False):
    items = await _dead_letters(c, channel)
    if exact:
        return len(items) == n
    return items if len(items) >= n else None


def test_a_restart_does_not_push_unchanged_quantities_but_pushes_what_changed(sims, make_service, database_url):
    spec = ChannelSpec(id="wh-r", kind="webhook")
    sim = sims([spec])
    svc = make_service()

    async def first():
        async with Client(svc.url, svc.headers) as c:
            await connect(c, sim, spec, **FAST)
            for sku in SKUS:
                await c.set_stock(sku, 3)
            return await wait_until(lambda: converged(c, sim, ["wh-r"]), timeout=10)

    assert asyncio.run(first())
    svc.stop()
    # While invsync is down, a SKU changes behind the channel's back (as after a crash between
    # commit and push): only that one is pushed at start.
    from tests.conftest import query

    asyncio.run(query(database_url, "UPDATE stock SET available = 1, version = version + 1 WHERE sku = 'S-5'"))
    requests_before = sim.stats()["wh-r"]["requests"]
    log_before = len(sim.log("wh-r"))
    svc2 = make_service()

    async def second():
        async with Client(svc2.url, svc2.headers) as c:
            ok = await wait_until(lambda: converged(c, sim, ["wh-r"]), timeout=10)
            await asyncio.sleep(0.5)  # give a flood the chance to show
            return ok

    assert asyncio.run(second())
    new_items = sim.log("wh-r")[log_before:]
    assert [item[0] for item in new_items] == ["S-5"]
    assert sim.stats()["wh-r"]["requests"] == requests_before + 1


def test_buffer_and_unlisted_skus(sims, make_service):
    shop = ChannelSpec(id="shop-b", kind="shopify", listings={"S-0": "1000001"})
    sim = sims([shop])
    svc = make_service()

    async def scenario():
        async with Client(svc.url, svc.headers) as c:
            await connect(c, sim, shop, buffer=2, **FAST)
            await c.set_stock("S-0", 5)
            await c.set_stock("S-1", 5)  # not listed on the store
            await c.set_stock("S-2", 1)  # not listed either
            ok = await wait_until(lambda: shown(sim, "shop-b").get("S-0") == 3, timeout=10)
            await c.order("b1", [("S-0", 4)])
            zero = await wait_until(lambda: shown(sim, "shop-b").get("S-0") == 0, timeout=10)
            status, body, _ = await c.request("GET", "/v1/channels/shop-b")
            return ok, zero, body

    ok, zero, channel = asyncio.run(scenario())
    assert ok and zero  # 5 - buffer 2, then max(0, 1 - 2)
    assert channel["status"]["unlisted_skus"] == 2
    assert channel["status"]["unlisted_sample"] == ["S-1", "S-2"]
    assert set(shown(sim, "shop-b")) == {"S-0"}


def test_a_crashed_channel_actor_is_restarted_and_the_channel_still_converges(sims, make_service):
    from channels.channel_messages import StockChanges

    spec = ChannelSpec(id="wh-crash", kind="webhook")
    sim = sims([spec])
    svc = make_service()

    async def scenario():
        async with Client(svc.url, svc.headers) as c:
            await connect(c, sim, spec, **FAST)
            await c.set_stock("S-0", 5)
            first = await wait_until(lambda: shown(sim, "wh-crash").get("S-0") == 5, timeout=10)
            hub = svc.service.channels
            old = hub.actors["wh-crash"]
            old.tell(StockChanges(changes=None))  # not iterable: the actor raises and dies
            restarted = await wait_until(lambda: hub.actors.get("wh-crash") not in (None, old), timeout=10)
            await c.set_stock("S-0", 2)
            await c.set_stock("S-1", 7)
            after = await wait_until(lambda: shown(sim, "wh-crash") == {"S-0": 2, "S-1": 7}, timeout=10)
            return first, restarted, after, old.is_alive(), hub.restarts

    first, restarted, after, old_alive, restarts = asyncio.run(scenario())
    assert first and restarted and after
    assert not old_alive and restarts == 1


def test_after_an_unclean_stop_everything_is_resent_with_versions_that_never_go_back(sims, make_service, database_url):
    from tests.conftest import query

    spec = ChannelSpec(id="wh-u", kind="webhook")
    sim = sims([spec])
    svc = make_service()

    async def first():
        async with Client(svc.url, svc.headers) as c:
            await connect(c, sim, spec, **FAST)
            for sku in SKUS[:4]:
                await c.set_stock(sku, 3)
            return await wait_until(lambda: converged(c, sim, ["wh-u"], SKUS[:4]), timeout=10)

    assert asyncio.run(first())
    svc.stop()
    # As if the process had been killed: the clean-shutdown mark is missing.
    asyncio.run(query(database_url, "UPDATE channel_sync_runs SET clean_shutdown = false"))
    log_before = len(sim.log("wh-u"))
    svc2 = make_service()

    async def second():
        async with Client(svc2.url, svc2.headers) as c:
            return await wait_until(lambda: len(sim.log("wh-u")) >= log_before + 4, timeout=10)

    assert asyncio.run(second())
    resent = sim.log("wh-u")[log_before:]
    assert sorted(item[0] for item in resent) == SKUS[:4]
    assert sim.stats()["wh-u"]["stale_writes"] == 0
