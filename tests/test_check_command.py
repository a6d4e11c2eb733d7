"""`invsync check` passes on a healthy database and names every kind of violation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import query
from tests.http_client import Client, run

ROOT = Path(__file__).resolve().parent.parent


def check(database_url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "server", "check", "--database-url", database_url],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )


@pytest.fixture
def healthy(service):
    async def fill():
        async with Client(service.url, service.headers) as c:
            await c.set_stock("a", 10)
            await c.set_stock("b", 3)
            assert (await c.order("o1", [("a", 2), ("b", 1)]))[0] == 201
            assert (await c.order("o2", [("a", 1)]))[0] == 201
            assert (await c.request("POST", "/v1/orders/web/o2/cancel"))[0] == 200
            assert (await c.order("o3", [("b", 5)]))[0] == 409

    run(fill())
    return service.dsn


def test_check_passes_on_a_healthy_database(healthy):
    result = check(healthy)
    assert result.returncode == 0, result.stdout
    assert "2 SKUs, 6 stock events, orders: 1 accepted, 1 cancelled, 1 refused" in result.stdout


TAMPERING = {
    # an order applied twice: one more event for o1, with the snapshot following it
    "orders_applied_exactly_once": [
        "INSERT INTO stock_events VALUES ('a', 6, -2, 6, 'order', 'o1', 'web', NULL, now())",
        "UPDATE stock SET available = 6, version = 6 WHERE sku = 'a'",
    ],
    "available_equals_sum_of_events": ["UPDATE stock SET available = available + 1 WHERE sku = 'b'"],
    "version_equals_last_event": ["UPDATE stock SET version = 99 WHERE sku = 'b'"],
    "each_event_follows_the_previous": [
        "ALTER TABLE stock_events DISABLE TRIGGER stock_events_no_update",
        "UPDATE stock_events SET available_after = 5 WHERE sku = 'b' AND version = 2",
    ],
    "events_belong_to_orders": ["DELETE FROM orders WHERE order_id = 'o1'"],
}


@pytest.mark.parametrize("broken", sorted(TAMPERING))
def test_check_names_the_violation(healthy, broken):
    for sql in TAMPERING[broken]:
        run(query(healthy, sql))
    result = check(healthy)
    assert result.returncode == 1
    assert f"VIOLATION {broken}:" in result.stdout
    assert "FAILED" in result.stdout


def test_the_audit_log_refuses_updates_and_deletes(healthy):
    import asyncpg

    with pytest.raises(asyncpg.CheckViolationError):
        run(query(healthy, "DELETE FROM stock_events WHERE sku = 'a'"))
    with pytest.raises(asyncpg.CheckViolationError):
        run(query(healthy, "UPDATE stock SET available = -1 WHERE sku = 'a'"))
