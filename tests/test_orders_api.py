"""The HTTP API end to end: real service, real PostgreSQL, real HTTP."""

from __future__ import annotations

from tests.conftest import query
from tests.http_client import Client, run


def test_set_order_cancel_and_read_back(service):
    async def scenario():
        async with Client(service.url, service.headers) as c:
            assert await c.set_stock("tee-red-m", 10) == {"sku": "tee-red-m", "available": 10, "version": 1}
            status, body, _ = await c.order("A-1", [("tee-red-m", 3)])
            assert status == 201
            assert body == {
                "order_id": "A-1",
                "channel": "web",
                "status": "accepted",
                "lines": [{"sku": "tee-red-m", "qty": 3, "available_after": 7, "version": 2}],
            }
            stock = await c.stock("tee-red-m")
            assert (stock["available"], stock["version"]) == (7, 2)

            status, order, _ = await c.request("GET", "/v1/orders/web/A-1")
            assert status == 200 and order["status"] == "accepted"
            assert order["lines"] == [{"sku": "tee-red-m", "qty": 3}]

            status, body, _ = await c.request("POST", "/v1/orders/web/A-1/cancel")
            assert status == 200 and body["status"] == "cancelled"
            assert body["lines"][0]["available_after"] == 10
            status, again, headers = await c.request("POST", "/v1/orders/web/A-1/cancel")
            assert status == 200 and again == body and headers["Idempotent-Replayed"] == "true"
            assert (await c.stock("tee-red-m"))["available"] == 10

            status, history, _ = await c.request("GET", "/v1/stock/tee-red-m/history?limit=2")
            assert [e["kind"] for e in history["events"]] == ["cancel", "order"]
            assert history["next_before_version"] == 2
            status, rest, _ = await c.request("GET", "/v1/stock/tee-red-m/history?before_version=2")
            assert [e["kind"] for e in rest["events"]] == ["set"]

    run(scenario())


def test_refused_order_is_all_or_nothing_and_replayed(service):
    async def scenario():
        async with Client(service.url, service.headers) as c:
            await c.set_stock("a", 5)
            await c.set_stock("b", 1)
            status, body, _ = await c.order("R-1", [("a", 2), ("b", 1), ("b", 1), ("ghost", 1)])
            assert status == 409
            assert body["error"] == "insufficient_stock"
            assert body["lines"] == [
                {"sku": "b", "requested": 2, "available": 1},
                {"sku": "ghost", "requested": 1, "available": 0},
            ]
            assert (await c.stock("a"))["available"] == 5
            assert (await c.stock("b"))["available"] == 1
            # Restock: a replay still gets the first answer, not a new decision.
            await c.set_stock("b", 50)
            status2, body2, headers = await c.order("R-1", [("a", 2), ("b", 1), ("b", 1), ("ghost", 1)])
            assert (status2, body2) == (409, body)
            assert headers["Idempotent-Replayed"] == "true"
            status, body, _ = await c.request("POST", "/v1/orders/web/R-1/cancel")
            assert status == 409 and body["error"] == "order_not_cancellable"
            status, body, _ = await c.request("POST", "/v1/orders/web/nope/cancel")
            assert status == 404 and body["error"] == "unknown_order"

    run(scenario())


def test_same_order_id_with_other_body_is_a_conflict(service):
    async def scenario():
        async with Client(service.url, service.headers) as c:
            await c.set_stock("x", 9)
            assert (await c.order("C-1", [("x", 1)]))[0] == 201
            status, body, _ = await c.order("C-1", [("x", 2)])
            assert status == 422 and body["error"] == "idempotency_conflict" and body["field"] == "order_id"
            # Another channel may use the same order id.
            assert (await c.order("C-1", [("x", 2)], channel="ebay"))[0] == 201
            assert (await c.stock("x"))["available"] == 6

    run(scenario())


def test_if_match_and_adjust(service):
    async def scenario():
        async with Client(service.url, service.headers) as c:
            status, body, headers = await c.request("PUT", "/v1/stock/s1", {"available": 4}, headers={"If-Match": '"0"'})
            assert status == 200 and headers["ETag"] == '"1"'
            status, body, _ = await c.request("PUT", "/v1/stock/s1", {"available": 9}, headers={"If-Match": '"0"'})
            assert status == 412 and body["error"] == "version_mismatch" and body["current_version"] == 1
            status, body, _ = await c.request("POST", "/v1/stock/s1/adjust", {"delta": -5, "reason": "damage"})
            assert status == 409 and body["error"] == "insufficient_stock"
            status, body, _ = await c.request(
                "POST", "/v1/stock/s1/adjust", {"delta": 6, "reason": "received"}, headers={"If-Match": '"1"'}
            )
            assert status == 200 and body == {"sku": "s1", "available": 10, "version": 2}
            # Setting what is already there changes nothing and keeps the version.
            status, body, _ = await c.request("PUT", "/v1/stock/s1", {"available": 10})
            assert body["version"] == 2
            status, page, _ = await c.request("GET", "/v1/stock?limit=1")
            assert status == 200 and [i["sku"] for i in page["items"]] == ["s1"] and page["next_after"] == "s1"
            status, page, _ = await c.request("GET", "/v1/stock?after=s1")
            assert page == {"items": [], "next_after": None}
            status, body, _ = await c.request("GET", "/v1/stock/none")
            assert status == 404 and body["error"] == "unknown_sku"

    run(scenario())
    rows = run(query(service.dsn, "SELECT kind, delta, reason FROM stock_events WHERE sku='s1' ORDER BY version"))
    assert [tuple(r) for r in rows] == [("set", 4, None), ("adjust", 6, "received")]


def test_multi_owner_order_and_cancel(make_service):
    service = make_service(shards=8)

    async def scenario():
        async with Client(service.url, service.headers) as c:
            skus = [f"multi-{i}" for i in range(12)]
            for sku in skus:
                await c.set_stock(sku, 2)
            status, body, _ = await c.order("M-1", [(s, 1) for s in skus])
            assert status == 201, body
            assert all(line["available_after"] == 1 for line in body["lines"])
            status, body, _ = await c.request("POST", "/v1/orders/web/M-1/cancel")
            assert status == 200 and all(line["available_after"] == 2 for line in body["lines"])
            status, body, _ = await c.order("M-2", [(s, 2) for s in skus] + [("multi-0", 1)])
            assert status == 409
            assert body["lines"] == [{"sku": "multi-0", "requested": 3, "available": 2}]
            assert [(await c.stock(s))["available"] for s in skus] == [2] * 12

    run(scenario())


def test_openapi_and_health(service):
    async def scenario():
        async with Client(service.url, {}) as c:
            status, doc, _ = await c.request("GET", "/openapi.json")
            assert status == 200 and doc["openapi"].startswith("3.1")
            assert {"/v1/orders", "/v1/stock/{sku}", "/v1/stock/{sku}/adjust", "/v1/stock", "/v1/stock/{sku}/history",
                    "/v1/orders/{channel}/{order_id}/cancel", "/v1/orders/{channel}/{order_id}"} <= set(doc["paths"])
            order_schema = doc["components"]["schemas"]["OrderIn"]
            assert set(order_schema["required"]) == {"order_id", "channel", "lines"}
            assert (await c.request("GET", "/internal/health"))[0] == 200
            assert (await c.request("GET", "/internal/ready"))[0] == 200
            status, body, _ = await c.request("GET", "/v1/stock")
            assert status == 401 and body["error"] == "unauthorized"

    run(scenario())
