"""The load client against the naive baseline on an embedded PostgreSQL.

Checks counting and bookkeeping only; speed is never asserted here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import aiohttp
import asyncpg
import msgspec
import pytest

from loadtest.load_client import LoadResult, LoadSpec, OrderStream, run_load
from loadtest.naive_server import start_naive
from loadtest.server_process import free_port
from persistence.embedded import EmbeddedPostgres, start_embedded_postgres

TOKEN = "test-token"

DOCUMENTED_RESULT_FIELDS = {
    "accepted", "refused", "errors", "sent", "elapsed_s", "orders_per_s",
    "p50_ms", "p90_ms", "p99_ms", "p999_ms",
}


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    db = start_embedded_postgres(tmp_path_factory.mktemp("loadtest-db"))
    try:
        yield db
    finally:
        db.stop()


async def _seed(base_url: str, stock: dict[str, int]) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        for sku, available in stock.items():
            async with session.put(f"{base_url}/v1/stock/{sku}", json={"available": available}) as response:
                assert response.status == 200, await response.text()


async def _stock_levels(database_url: str, skus: list[str]) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT sku, available FROM naive_stock WHERE sku = ANY($1)", skus)
    finally:
        await conn.close()
    return {row["sku"]: row["available"] for row in rows}


async def _load_against_naive(
    database_url: str, stock: dict[str, int], total_orders: int, connections: int, processes: int = 1
) -> tuple[LoadResult, dict[str, int]]:
    port = free_port()
    runner = await start_naive(database_url, "127.0.0.1", port, TOKEN, pool_size=5)
    try:
        base_url = f"http://127.0.0.1:{port}"
        await _seed(base_url, stock)
        spec = LoadSpec(
            base_url=base_url, token=TOKEN, skus=sorted(stock), connections=connections,
            total_orders=total_orders, seed=7, processes=processes,
        )
        result = await run_load(spec)
        return result, await _stock_levels(database_url, sorted(stock))
    finally:
        await runner.cleanup()


def test_hot_sku_counts_every_order_and_stock_drops_by_accepted(database: EmbeddedPostgres) -> None:
    stock = {"hot-test-1": 150}
    result, after = asyncio.run(_load_against_naive(database.dsn, stock, total_orders=200, connections=8))

    assert result.errors == 0, result.errors_by_kind
    assert result.accepted + result.refused == 200
    assert result.sent == 200
    assert result.accepted == 150  # exactly the stock; the rest is refused
    assert after["hot-test-1"] == stock["hot-test-1"] - result.accepted


def test_uniform_skus_stock_drops_by_accepted(database: EmbeddedPostgres) -> None:
    stock = {f"uni-test-{i:02d}": 6 for i in range(20)}
    result, after = asyncio.run(_load_against_naive(database.dsn, stock, total_orders=150, connections=16))

    assert result.errors == 0, result.errors_by_kind
    assert result.accepted + result.refused == 150
    assert sum(stock.values()) - sum(after.values()) == result.accepted
    assert all(level >= 0 for level in after.values())


def test_several_generator_processes_merge_their_counts(database: EmbeddedPostgres) -> None:
    stock = {"multi-proc-1": 1_000}
    result, after = asyncio.run(
        _load_against_naive(database.dsn, stock, total_orders=101, connections=4, processes=2)
    )

    assert result.errors == 0, result.errors_by_kind
    assert result.accepted + result.refused == 101
    assert result.processes == 2
    assert after["multi-proc-1"] == 1_000 - result.accepted


def test_result_has_documented_fields(database: EmbeddedPostgres) -> None:
    result, _ = asyncio.run(_load_against_naive(database.dsn, {"fields-1": 50}, total_orders=30, connections=4))

    encoded = msgspec.to_builtins(result)
    assert DOCUMENTED_RESULT_FIELDS <= set(encoded)
    assert 0 < result.p50_ms <= result.p90_ms <= result.p99_ms <= result.p999_ms <= result.max_ms
    assert result.elapsed_s > 0 and result.orders_per_s > 0


def test_same_seed_gives_same_order_stream() -> None:
    def first_bodies(seed: str) -> list[bytes]:
        stream = OrderStream([f"s{i}" for i in range(100)], seed, "p", "web", 1, limit=50, deadline=None)
        return [body for body in iter(stream.next_body, None)]

    assert first_bodies("1:0") == first_bodies("1:0")
    assert first_bodies("1:0") != first_bodies("2:0")
    assert len(set(first_bodies("1:0"))) == 50  # order ids never repeat
