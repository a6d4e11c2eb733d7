"""The wrk-driven load client against the naive baseline (skipped without wrk)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator

import aiohttp
import asyncpg
import pytest

from loadtest.load_client import LoadResult, LoadSpec
from loadtest.naive_server import start_naive
from loadtest.server_process import free_port
from loadtest.wrk_client import run_wrk_load
from persistence.embedded import EmbeddedPostgres, start_embedded_postgres

TOKEN = "wrk-test-token"

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed (loadtest/install_wrk.sh)")


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    db = start_embedded_postgres(tmp_path_factory.mktemp("wrk-db"))
    try:
        yield db
    finally:
        db.stop()


async def _wrk_against_naive(database_url: str, stock: dict[str, int]) -> tuple[LoadResult, int]:
    port = free_port()
    runner = await start_naive(database_url, "127.0.0.1", port, TOKEN, pool_size=5)
    try:
        base_url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
            for sku, available in stock.items():
                async with session.put(f"{base_url}/v1/stock/{sku}", json={"available": available}) as response:
                    assert response.status == 200
        spec = LoadSpec(base_url=base_url, token=TOKEN, skus=sorted(stock), connections=8, duration_s=1, seed=3)
        result = await run_wrk_load(spec)
        conn = await asyncpg.connect(database_url)
        try:
            remaining = await conn.fetchval(
                "SELECT sum(available) FROM naive_stock WHERE sku = ANY($1)", sorted(stock)
            )
        finally:
            await conn.close()
        return result, remaining
    finally:
        await runner.cleanup()


def test_wrk_counts_match_the_stock_taken(database: EmbeddedPostgres) -> None:
    # Little stock, so both answers occur.  wrk drops responses still in
    # flight when its time is up, so the database may have taken up to one
    # order per connection more than wrk counted.
    stock = {f"wrk-{i}": 20 for i in range(5)}
    result, remaining = asyncio.run(_wrk_against_naive(database.dsn, stock))

    assert result.errors == 0, result.errors_by_kind
    taken = sum(stock.values()) - remaining
    assert 0 <= taken - result.accepted <= 8
    assert result.refused > 0
    assert result.p50_ms > 0 and result.orders_per_s > 0
