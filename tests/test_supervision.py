"""Supervision: crashed owners restart from durable state, hot SKUs move between
owners under load, and a database outage answers 503 and heals by itself."""

from __future__ import annotations

import asyncio
import time

from actors.messages import Crash
from persistence.embedded import start_embedded_postgres
from tests.conftest import RunningService, query
from tests.http_client import Client, run
from tests.test_concurrency import _check


def _owners(service):
    # The test thread is not the event loop: it may wait on an actor.
    return service.service.supervisor.proxy().owners().get(timeout=10)


def test_crashed_owner_answers_everything_and_restarts(make_service):
    # A request that waited for the timeout was lost by the actors: make that visible.
    service = make_service(shards=2, request_timeout=8.0)
    crashes = []

    async def scenario():
        async with Client(service.url, service.headers, connections=64) as c:
            for i in range(20):
                await c.set_stock(f"c{i}", 1000)

            async def crash_repeatedly():
                for _ in range(8):
                    await asyncio.sleep(0.03)
                    for kind, name, ref in _owners(service):
                        ref.tell(Crash("test crash"))
                        crashes.append(name)

            orders = [c.order(f"x-{i}", [(f"c{i % 20}", 1)]) for i in range(2000)]
            results = await asyncio.gather(crash_repeatedly(), *orders)
            return results[1:]

    results = run(scenario())
    statuses = [s for s, _, _ in results]
    assert set(statuses) <= {201, 503}, set(statuses)
    assert statuses.count(201) > 0
    unavailable = [b for s, b, _ in results if s == 503]
    assert all(b["error"] == "unavailable" for b in unavailable)
    assert not [b for b in unavailable if "no decision in time" in b["detail"]]
    assert service.service.supervisor.proxy().restarts.get(timeout=5) >= len(crashes) > 0

    # After the restart the same SKUs work, and every acknowledged order is there.
    async def after():
        async with Client(service.url, service.headers) as c:
            return await c.order("after-crash", [("c0", 1), ("c1", 1)])

    assert run(after())[0] == 201
    accepted = {f"x-{i}" for i, (s, _, _) in enumerate(results) if s == 201} | {"after-crash"}
    stored = {r["order_id"] for r in run(query(service.dsn, "SELECT order_id FROM orders WHERE status = 'accepted'"))}
    assert accepted <= stored
    total = run(query(service.dsn, "SELECT sum(available) AS s FROM stock"))[0]["s"]
    assert total == 20 * 1000 - len(stored) - 1  # after-crash took two units
    assert run(_check(service.dsn)).ok


def test_hot_sku_is_promoted_and_passivated_without_losing_anything(make_service):
    service = make_service(shards=2, hot_threshold=50, hot_idle_seconds=1)
    supervisor = service.service.supervisor.proxy()

    async def burst(c, prefix, n):
        return await asyncio.gather(*(c.order(f"{prefix}-{i}", [("hot", 1)]) for i in range(n)))

    async def scenario():
        async with Client(service.url, service.headers, connections=32) as c:
            await c.set_stock("hot", 100_000)
            await c.set_stock("cold", 5)
            results = []
            deadline = time.monotonic() + 10
            while supervisor.promotions.get(timeout=5) == 0 and time.monotonic() < deadline:
                results += await burst(c, f"p{len(results)}", 200)
            promoted = supervisor.hot_skus().get(timeout=5)
            # orders spanning the hot actor and a shard are coordinated across owners
            results += [await c.order("mixed", [("hot", 1), ("cold", 1)])]
            results += await burst(c, "during", 300)
            deadline = time.monotonic() + 10
            while supervisor.hot_skus().get(timeout=5) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            passivated = not supervisor.hot_skus().get(timeout=5)
            results += await burst(c, "after", 200)
            return promoted, passivated, results, await c.stock("hot")

    promoted, passivated, results, stock = run(scenario())
    assert promoted == ["hot"]
    assert passivated
    assert {s for s, _, _ in results} == {201}
    assert stock["available"] == 100_000 - len(results)
    assert stock["version"] == 1 + len(results)
    assert run(_check(service.dsn)).ok


def test_database_outage_answers_503_and_heals(tmp_path):
    pg = start_embedded_postgres(tmp_path / "outage")
    service = RunningService(pg.dsn, shards=2)
    try:
        async def before():
            async with Client(service.url, service.headers) as c:
                await c.set_stock("o", 10)
                return await c.order("before", [("o", 1)])

        assert run(before())[0] == 201
        pg.stop()

        async def during():
            async with Client(service.url, service.headers) as c:
                return (
                    await c.order("during", [("o", 1)]),
                    await c.request("PUT", "/v1/stock/o", {"available": 3}),
                    await c.request("GET", "/v1/stock/o"),
                    await c.request("GET", "/internal/ready"),
                )

        placed, set_, read, ready = run(during())
        assert (placed[0], placed[1]["error"]) == (503, "unavailable")
        assert (set_[0], read[0], ready[0]) == (503, 503, 503)

        pg = start_embedded_postgres(tmp_path / "outage")

        async def after():
            async with Client(service.url, service.headers) as c:
                for _ in range(50):  # the pool reconnects on its own
                    if (await c.request("GET", "/internal/ready"))[0] == 200:
                        break
                    await asyncio.sleep(0.1)
                return await c.order("during", [("o", 1)]), await c.stock("o")

        placed, stock = run(after())
        assert placed[0] == 201
        assert stock["available"] == 8  # only the two acknowledged orders
        assert {r["order_id"] for r in run(query(pg.dsn, "SELECT order_id FROM orders"))} == {"before", "during"}
        assert run(_check(pg.dsn)).ok
    finally:
        service.stop()
        pg.stop()
