"""/v1/channels and /v1/dead-letters: validation, persistence, and secrets that never come back."""

from __future__ import annotations

import asyncio

from tests.http_client import Client


def test_channel_crud_validation_and_secrets_are_never_returned_or_logged(make_service, capfd):
    svc = make_service()
    secret_values = ["wh-SECRET-1", "shpat-SECRET-2", "hook-SECRET-3"]

    async def scenario():
        async with Client(svc.url, svc.headers) as c:
            out = {}
            out["created"] = await c.request("POST", "/v1/channels", {
                "id": "wh-a", "kind": "webhook", "config": {"url": "http://127.0.0.1:9/x", "secret": secret_values[0]},
                "rate_limit": {"per_second": 2.5, "burst": 3}, "buffer": 1, "enabled": False,
            })
            out["shop"] = await c.request("POST", "/v1/channels", {
                "id": "shop-a", "kind": "shopify", "enabled": False,
                "config": {"shop_url": "https://x.myshopify.com", "access_token": secret_values[1],
                           "location_id": "5", "webhook_secret": secret_values[2]},
            })
            out["duplicate"] = await c.request("POST", "/v1/channels", {
                "id": "wh-a", "kind": "webhook", "config": {"url": "http://127.0.0.1:9/x", "secret": "s"}})
            out["missing"] = await c.request("POST", "/v1/channels", {
                "id": "wh-b", "kind": "webhook", "config": {"url": "http://127.0.0.1:9/x"}})
            out["unknown_config"] = await c.request("POST", "/v1/channels", {
                "id": "wh-b", "kind": "webhook", "config": {"url": "http://127.0.0.1:9/x", "secret": "s", "colour": 1}})
            out["unknown_field"] = await c.request("POST", "/v1/channels", {
                "id": "wh-b", "kind": "fax", "config": {}})
            out["negative_buffer"] = await c.request("POST", "/v1/channels", {
                "id": "wh-b", "kind": "webhook", "config": {"url": "http://127.0.0.1:9/x", "secret": "s"}, "buffer": -1})
            out["list"] = await c.request("GET", "/v1/channels")
            out["get"] = await c.request("GET", "/v1/channels/shop-a")
            out["patch"] = await c.request("PATCH", "/v1/channels/wh-a", {"buffer": 4, "config": {"max_attempts": 3}, "rate_limit": None})
            out["patch_bad"] = await c.request("PATCH", "/v1/channels/wh-a", {"config": {"max_attempts": 0}})
            out["woo_listing_bad"] = await c.request("PUT", "/v1/channels/shop-a/listings", [{"sku": "A", "external_id": "1"}, {"sku": "A", "external_id": "2"}])
            out["listings"] = await c.request("PUT", "/v1/channels/shop-a/listings", [{"sku": "A", "external_id": "gid://shopify/InventoryItem/1"}])
            out["no_token"] = await Client(svc.url, {}).__aenter__()
            out["unauth"] = await out["no_token"].request("GET", "/v1/channels")
            await out["no_token"].__aexit__()
            out["delete"] = await c.request("DELETE", "/v1/channels/wh-a")
            out["delete_again"] = await c.request("DELETE", "/v1/channels/wh-a")
            out["get_deleted"] = await c.request("GET", "/v1/channels/wh-a")
            return out

    out = asyncio.run(scenario())
    status, created, _ = out["created"]
    assert status == 201, created
    assert created["config"]["url"] == "http://127.0.0.1:9/x" and created["secrets_set"] == ["secret"]
    assert created["rate_limit"] == {"per_second": 2.5, "burst": 3} and created["buffer"] == 1
    assert out["duplicate"][0] == 409 and out["duplicate"][1]["error"] == "channel_exists"
    assert out["missing"][:2] == (400, out["missing"][1]) and out["missing"][1]["field"] == "config.secret"
    assert out["unknown_config"][0] == 400 and out["unknown_config"][1]["field"] == "config.colour"
    assert out["unknown_field"][0] == 400 and out["unknown_field"][1]["field"] == "kind"
    assert out["negative_buffer"][0] == 400 and out["negative_buffer"][1]["field"] == "buffer"
    assert [ch["id"] for ch in out["list"][1]["items"]] == ["shop-a", "wh-a"]
    status, shop, _ = out["get"]
    assert status == 200 and shop["secrets_set"] == ["access_token", "webhook_secret"]
    status, patched, _ = out["patch"]
    assert status == 200, patched
    assert patched["buffer"] == 4 and patched["config"]["max_attempts"] == 3 and patched["rate_limit"] is None
    assert patched["secrets_set"] == ["secret"]  # a partial config keeps the stored secret
    assert out["patch_bad"][0] == 400 and out["patch_bad"][1]["field"] == "config.max_attempts"
    assert out["woo_listing_bad"][0] == 400
    assert out["listings"][0] == 200 and out["listings"][1]["listings"] == 1
    assert out["unauth"][0] == 401
    assert out["delete"][0] == 204 and out["delete_again"][0] == 404 and out["get_deleted"][0] == 404
    everything_returned = repr(out)
    captured = capfd.readouterr()
    for value in secret_values:
        assert value not in everything_returned
        assert value not in captured.out + captured.err


def test_dead_letter_endpoints_validate_ids(make_service):
    svc = make_service()

    async def scenario():
        async with Client(svc.url, svc.headers) as c:
            return (
                await c.request("GET", "/v1/dead-letters"),
                await c.request("POST", "/v1/dead-letters/12345/retry"),
                await c.request("POST", "/v1/dead-letters/abc/discard"),
                await c.request("GET", "/v1/dead-letters?limit=0"),
            )

    page, retry_unknown, discard_bad, bad_limit = asyncio.run(scenario())
    assert page[0] == 200 and page[1]["items"] == [] and page[1]["next_after"] is None
    assert retry_unknown[0] == 404 and retry_unknown[1]["error"] == "unknown_dead_letter"
    assert discard_bad[0] == 400 and bad_limit[0] == 400


def test_openapi_describes_the_channel_endpoints(make_service):
    svc = make_service()

    async def scenario():
        async with Client(svc.url, {}) as c:
            return await c.request("GET", "/openapi.json")

    status, document, _ = asyncio.run(scenario())
    assert status == 200
    paths = document["paths"]
    for path in ("/v1/channels", "/v1/channels/{channel_id}", "/v1/channels/{channel_id}/listings", "/v1/dead-letters",
                 "/v1/dead-letters/{letter_id}/retry", "/v1/dead-letters/{letter_id}/discard",
                 "/v1/webhooks/shopify/{channel_id}", "/v1/webhooks/woocommerce/{channel_id}"):
        assert path in paths, path
    schemas = document["components"]["schemas"]
    assert schemas["ChannelIn"]["additionalProperties"] is False
    assert "secret" not in schemas["ChannelView"]["properties"]
    assert paths["/v1/webhooks/shopify/{channel_id}"]["post"]["security"] == []
