"""Concurrency claims, tested with many connections at once."""

from __future__ import annotations

import asyncio
import random

from persistence.check import check_database
from tests.conftest import query
from tests.http_client import Client, run


async def _check(dsn: str):
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return await check_database(conn)
    finally:
        await conn.close()


def test_no_oversell_with_200_concurrent_orders_on_37_units(service):
    async def scenario():
        async with Client(service.url, service.headers, connections=200) as c:
            await c.set_stock("hot", 37)
            results = await asyncio.gather(*(c.order(f"o-{i}", [("hot", 1)]) for i in range(200)))
            statuses = [s for s, _, _ in results]
            assert statuses.count(201) == 37
            assert statuses.count(409) == 163
            assert (await c.stock("hot"))["available"] == 0
            # every accepted answer names a distinct version: no two orders took the same unit
            versions = sorted(b["lines"][0]["version"] for s, b, _ in results if s == 201)
            assert versions == list(range(2, 39))

    run(scenario())
    report = run(_check(service.dsn))
    assert report.ok, report.violations
    assert report.orders == {"accepted": 37, "refused": 163}


def test_group_commit_takes_far_fewer_transactions_than_orders(service):
    async def scenario():
        async with Client(service.url, service.headers, connections=256) as c:
            await c.set_stock("flash", 100_000)
            before = service.service.committer.transactions
            results = await asyncio.gather(*(c.order(f"g-{i}", [("flash", 1)]) for i in range(1000)))
            assert all(s == 201 for s, _, _ in results)
            return service.service.committer.transactions - before

    transactions = run(scenario())
    # Each transaction is one batch; 1,000 orders arriving at once share them.
    assert transactions < 250, transactions
    rows = run(query(service.dsn, "SELECT available, version FROM stock WHERE sku = 'flash'"))
    assert tuple(rows[0]) == (99_000, 1001)


def test_concurrent_multi_line_orders_never_apply_partially(make_service):
    service = make_service(shards=8)
    skus = [f"k{i}" for i in range(10)]
    rng = random.Random(7)
    orders = []
    for i in range(300):
        lines = [(sku, rng.randint(1, 3)) for sku in rng.sample(skus, rng.randint(1, 4))]
        orders.append((f"m-{i}", lines))

    async def scenario():
        async with Client(service.url, service.headers, connections=100) as c:
            for sku in skus:
                await c.set_stock(sku, 40)
            return await asyncio.gather(*(c.order(oid, lines) for oid, lines in orders))

    results = run(scenario())
    assert {s for s, _, _ in results} <= {201, 409}
    accepted = {oid for (oid, _), (s, _, _) in zip(orders, results) if s == 201}
    assert 0 < len(accepted) < len(orders)
    expected = {sku: 40 for sku in skus}
    for oid, lines in orders:
        if oid in accepted:
            for sku, qty in lines:
                expected[sku] -= qty
    rows = run(query(service.dsn, "SELECT sku, available FROM stock"))
    assert {r["sku"]: r["available"] for r in rows} == expected
    # each accepted order has exactly one event per line, each refused none
    events = run(query(service.dsn, "SELECT order_id, count(*) AS n FROM stock_events WHERE kind='order' GROUP BY order_id"))
    counts = {r["order_id"]: r["n"] for r in events}
    assert counts == {oid: len(lines) for oid, lines in orders if oid in accepted}
    report = run(_check(service.dsn))
    assert report.ok, report.violations


def test_duplicate_storm_decrements_once(service):
    async def scenario():
        async with Client(service.url, service.headers, connections=60) as c:
            await c.set_stock("dup", 10)
            results = await asyncio.gather(*(c.order("same-order", [("dup", 3)]) for _ in range(50)))
            conflict = await asyncio.gather(*(c.order("other", [("dup", 1)]) for _ in range(5)),
                                            *(c.order("other", [("dup", 2)]) for _ in range(5)))
            return results, conflict

    results, conflict = run(scenario())
    assert {s for s, _, _ in results} == {201}
    bodies = {str(b) for _, b, _ in results}
    assert len(bodies) == 1
    replayed = sum(1 for _, _, h in results if h.get("Idempotent-Replayed") == "true")
    assert replayed == 49
    statuses = sorted(s for s, _, _ in conflict)
    assert 201 in statuses and 422 in statuses
    rows = run(query(service.dsn, "SELECT available FROM stock WHERE sku='dup'"))
    stored = run(query(service.dsn, "SELECT sum((l->>'qty')::int) AS q FROM orders, jsonb_array_elements(lines::jsonb) l WHERE order_id='other'"))
    assert rows[0]["available"] == 10 - 3 - stored[0]["q"]


def test_replay_after_restart_returns_first_answer(make_service):
    first = make_service()

    async def place(svc):
        async with Client(svc.url, svc.headers) as c:
            if await c.stock("r") is None:
                await c.set_stock("r", 1)
            return await c.order("keep-me", [("r", 1)]), await c.order("too-late", [("r", 1)])

    (s1, b1, _), (s2, b2, _) = run(place(first))
    assert (s1, s2) == (201, 409)
    first.stop()
    second = make_service()

    async def replay(svc):
        async with Client(svc.url, svc.headers) as c:
            await c.request("POST", "/v1/stock/r/adjust", {"delta": 5})
            different = await c.order("keep-me", [("r", 2)])  # answered by the database's record
            return await c.order("keep-me", [("r", 1)]), await c.order("too-late", [("r", 1)]), different

    (r1, rb1, h1), (r2, rb2, h2), (r3, rb3, _) = run(replay(second))
    assert (r1, rb1, h1["Idempotent-Replayed"]) == (201, b1, "true")
    assert (r2, rb2, h2["Idempotent-Replayed"]) == (409, b2, "true")
    assert (r3, rb3["error"]) == (422, "idempotency_conflict")
    assert run(query(second.dsn, "SELECT available FROM stock WHERE sku = 'r'"))[0]["available"] == 5


def test_conditional_writes_never_lose_an_update(service):
    """20 clients read-modify-write one SKU with If-Match; every success counts."""

    async def scenario():
        async with Client(service.url, service.headers, connections=20) as c:
            await c.set_stock("counter", 0)
            conflicts = 0

            async def incrementer(times: int) -> None:
                nonlocal conflicts
                done = 0
                while done < times:
                    status, body, headers = await c.request("GET", "/v1/stock/counter")
                    etag = headers["ETag"]
                    status, body, _ = await c.request(
                        "PUT", "/v1/stock/counter", {"available": body["available"] + 1}, headers={"If-Match": etag}
                    )
                    if status == 200:
                        done += 1
                    else:
                        assert status == 412 and body["error"] == "version_mismatch"
                        conflicts += 1

            await asyncio.gather(*(incrementer(10) for _ in range(20)))
            return await c.stock("counter"), conflicts

    stock, conflicts = run(scenario())
    assert stock["available"] == 200
    assert stock["version"] == 201
    assert conflicts > 0  # the writers really did race


def test_concurrent_cancels_give_back_once(service):
    async def scenario():
        async with Client(service.url, service.headers, connections=30) as c:
            await c.set_stock("cx", 10)
            assert (await c.order("to-cancel", [("cx", 4)]))[0] == 201
            results = await asyncio.gather(*(c.request("POST", "/v1/orders/web/to-cancel/cancel") for _ in range(30)))
            return results, await c.stock("cx")

    results, stock = run(scenario())
    assert {s for s, _, _ in results} == {200}
    assert sum(1 for _, _, h in results if h.get("Idempotent-Replayed") != "true") == 1
    assert (stock["available"], stock["version"]) == (10, 3)
