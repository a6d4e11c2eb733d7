"""Channel wire formats: builders, interpreters, inbound parsers, and round trips through the simulator."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import msgspec
import pytest

from channels import shopify_format, webhook_format, woocommerce_format
from channels.http_outcomes import parse_retry_after
from channels.inbound_orders import (
    InboundPayloadError,
    OrderLine,
    parse_order_webhook,
    verify_inbound_signature,
)
from channels.order_webhook_builder import build_order_webhook
from channels.signatures import sign_base64, sign_hex, verify_base64, verify_hex
from channels.simulator_state import ChannelSpec
from channels.wire_types import Update, batches, outcomes_for_transport_error
from tests.channel_sim_helpers import get_json, run_with_simulator, send

UPDATES = [Update("SKU-A", 5, 10), Update("SKU-B", 0, 11), Update("SKU-C", 12, 12)]


def _by_sku(outcomes):
    return {o.sku: o for o in outcomes}


# --- signatures ---------------------------------------------------------------------------------


def test_signatures_match_an_independent_hmac_and_reject_tampering():
    body = b"The quick brown fox jumps over the lazy dog"
    known_hex = "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"  # RFC-style test vector
    assert sign_hex("key", body) == "sha256=" + known_hex
    assert sign_base64("key", body) == base64.b64encode(bytes.fromhex(known_hex)).decode()
    assert verify_hex("key", body, "sha256=" + known_hex.upper())
    assert verify_base64("key", body, sign_base64("key", body))
    assert not verify_hex("key", body + b"!", "sha256=" + known_hex)
    assert not verify_base64("other", body, sign_base64("key", body))
    assert not verify_hex("key", body, None)
    assert not verify_base64("key", body, "")
    assert not verify_base64("key", body, "sïgnature")  # non-ASCII must not raise


def test_retry_after_accepts_seconds_and_http_dates():
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    assert parse_retry_after("7", now=now) == 7.0
    assert parse_retry_after("1.5", now=now) == 1.5
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now=now) == pytest.approx(30.0)
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None


def test_batches_keep_order_and_respect_the_limit():
    chunks = list(batches([Update(f"S{i}", i, i) for i in range(7)], 3))
    assert [len(c) for c in chunks] == [3, 3, 1]
    assert [u.sku for c in chunks for u in c] == [f"S{i}" for i in range(7)]
    assert outcomes_for_transport_error(UPDATES[:1], "timeout")[0].status == "retry"


# --- invsync webhook ------------------------------------------------------------------------------

WEBHOOK = webhook_format.WebhookChannelConfig(channel_id="wh-1", url="http://127.0.0.1:9/hook", secret="s3cret")


def test_webhook_request_is_signed_json_with_versions():
    request = webhook_format.build_webhook_request(WEBHOOK, UPDATES)
    assert request.method == "POST" and request.url == WEBHOOK.url
    assert msgspec.json.decode(request.body) == {
        "channel": "wh-1",
        "updates": [
            {"sku": "SKU-A", "quantity": 5, "version": 10},
            {"sku": "SKU-B", "quantity": 0, "version": 11},
            {"sku": "SKU-C", "quantity": 12, "version": 12},
        ],
    }
    expected = "sha256=" + hmac.new(b"s3cret", request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Invsync-Signature"] == expected
    with pytest.raises(ValueError):
        webhook_format.build_webhook_request(
            webhook_format.WebhookChannelConfig("wh-1", "http://x", "s", max_batch=2), UPDATES
        )


def test_webhook_response_interpretation():
    interpret = webhook_format.interpret_webhook_response
    assert {o.status for o in interpret(UPDATES, 204, {}, b"")} == {"confirmed"}
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    throttled = interpret(UPDATES, 429, {"retry-after": "Wed, 01 Jan 2025 12:00:04 GMT"}, b"", now=now)
    assert [(o.status, o.retry_after) for o in throttled] == [("throttled", 4.0)] * 3
    assert {o.retry_after for o in interpret(UPDATES, 429, {}, b"")} == {1.0}
    assert {o.status for o in interpret(UPDATES, 503, {}, b"down")} == {"retry"}
    failed = interpret(UPDATES, 400, {}, b"bad body")
    assert {o.status for o in failed} == {"failed"} and "bad body" in failed[0].error
    assert [o.version for o in failed] == [10, 11, 12]


# --- Shopify ------------------------------------------------------------------------------------

SHOPIFY = shopify_format.ShopifyChannelConfig(
    channel_id="shop-1", shop_url="https://example.myshopify.com", access_token="shpat_x", location_id="655441491"
)
ITEM_IDS = {"SKU-A": "30322695", "SKU-B": "gid://shopify/InventoryItem/30322696", "SKU-C": "30322697"}


def test_shopify_request_matches_inventory_set_quantities_shape():
    request = shopify_format.build_set_quantities_request(SHOPIFY, UPDATES, ITEM_IDS)
    assert request.url == "https://example.myshopify.com/admin/api/2025-10/graphql.json"
    assert request.headers["X-Shopify-Access-Token"] == "shpat_x"
    assert request.headers["X-Invsync-Version"] == "10,11,12"
    document = msgspec.json.decode(request.body)
    assert "inventorySetQuantities(input: $input)" in document["query"]
    assert "userErrors { code field message }" in document["query"]
    assert document["variables"]["input"] == {
        "name": "available",
        "reason": "correction",
        "ignoreCompareQuantity": True,
        "quantities": [
            {"inventoryItemId": "gid://shopify/InventoryItem/30322695", "locationId": "gid://shopify/Location/655441491", "quantity": 5},
            {"inventoryItemId": "gid://shopify/InventoryItem/30322696", "locationId": "gid://shopify/Location/655441491", "quantity": 0},
            {"inventoryItemId": "gid://shopify/InventoryItem/30322697", "locationId": "gid://shopify/Location/655441491", "quantity": 12},
        ],
    }
    with pytest.raises(ValueError, match="SKU-Z"):
        shopify_format.build_set_quantities_request(SHOPIFY, [Update("SKU-Z", 1, 1)], ITEM_IDS)
    too_many = [Update(f"S{i}", 1, 1) for i in range(shopify_format.MAX_BATCH + 1)]
    with pytest.raises(ValueError, match="250"):
        shopify_format.build_set_quantities_request(SHOPIFY, too_many, {u.sku: "1" for u in too_many})


def _shopify_payload(user_errors, group=True):
    return msgspec.json.encode(
        {"data": {"inventorySetQuantities": {"inventoryAdjustmentGroup": {"reason": "correction"} if group else None, "userErrors": user_errors}}}
    )


def test_shopify_user_errors_fail_only_the_indexed_sku():
    error = {"code": "INVALID_INVENTORY_ITEM", "field": ["input", "quantities", "1", "inventoryItemId"], "message": "The specified inventory item could not be found."}
    applied = _by_sku(shopify_format.interpret_set_quantities_response(UPDATES, 200, {}, _shopify_payload([error], group=True)))
    assert applied["SKU-B"].status == "failed" and "INVALID_INVENTORY_ITEM" in applied["SKU-B"].error
    assert applied["SKU-A"].status == applied["SKU-C"].status == "confirmed"
    # Null group: Shopify applied nothing, so the innocent SKUs must be resent, not assumed confirmed.
    rejected = _by_sku(shopify_format.interpret_set_quantities_response(UPDATES, 200, {}, _shopify_payload([error], group=False)))
    assert rejected["SKU-B"].status == "failed"
    assert (rejected["SKU-A"].status, rejected["SKU-A"].retry_after) == ("retry", 0.0)
    batch_wide = {"code": "INVALID_REASON", "field": ["input", "reason"], "message": "The specified reason is invalid."}
    outcomes = shopify_format.interpret_set_quantities_response(UPDATES, 200, {}, _shopify_payload([batch_wide], group=False))
    assert {o.status for o in outcomes} == {"failed"}


def test_shopify_throttled_uses_throttle_status_for_the_delay():
    throttled = {
        "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
        "extensions": {"cost": {"requestedQueryCost": 10, "actualQueryCost": None, "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 4, "restoreRate": 2.0}}},
    }
    outcomes = shopify_format.interpret_set_quantities_response(UPDATES, 200, {}, msgspec.json.encode(throttled))
    assert {(o.status, o.retry_after) for o in outcomes} == {("throttled", 3.0)}
    bare = {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]}
    assert {o.retry_after for o in shopify_format.interpret_set_quantities_response(UPDATES, 200, {}, msgspec.json.encode(bare))} == {1.0}


def test_shopify_http_level_outcomes():
    interpret = shopify_format.interpret_set_quantities_response
    assert {(o.status, o.retry_after) for o in interpret(UPDATES, 429, {"Retry-After": "2.0"}, b"")} == {("throttled", 2.0)}
    assert {o.status for o in interpret(UPDATES, 502, {}, b"<html>")} == {"retry"}
    unauthorized = interpret(UPDATES, 401, {}, b'{"errors":"[API] Invalid API key or access token (unrecognized login or wrong password)"}')
    assert {o.status for o in unauthorized} == {"failed"}
    internal = {"errors": [{"message": "Internal error. Looks like something went wrong on our end.", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]}
    assert {o.status for o in interpret(UPDATES, 200, {}, msgspec.json.encode(internal))} == {"retry"}
    access = {"errors": [{"message": "Access denied for inventorySetQuantities field.", "extensions": {"code": "ACCESS_DENIED"}}]}
    assert {o.status for o in interpret(UPDATES, 200, {}, msgspec.json.encode(access))} == {"failed"}
    assert {o.status for o in interpret(UPDATES, 200, {}, b"not json")} == {"retry"}
    assert {o.status for o in interpret(UPDATES, 200, {}, _shopify_payload([]))} == {"confirmed"}


# --- WooCommerce ----------------------------------------------------------------------------------

WOO = woocommerce_format.WooCommerceChannelConfig(channel_id="woo-1", site_url="https://shop.example.com/", consumer_key="ck_1", consumer_secret="cs_1")
PRODUCT_IDS = {"SKU-A": "799", "SKU-B": "800", "SKU-C": "801"}


def test_woocommerce_request_is_a_basic_auth_batch_update():
    request = woocommerce_format.build_batch_update_request(WOO, UPDATES, PRODUCT_IDS)
    assert request.url == "https://shop.example.com/wp-json/wc/v3/products/batch"
    scheme, token = request.headers["Authorization"].split(" ")
    assert scheme == "Basic" and base64.b64decode(token) == b"ck_1:cs_1"
    assert msgspec.json.decode(request.body) == {
        "update": [
            {"id": 799, "stock_quantity": 5, "manage_stock": True},
            {"id": 800, "stock_quantity": 0, "manage_stock": True},
            {"id": 801, "stock_quantity": 12, "manage_stock": True},
        ]
    }
    with pytest.raises(ValueError, match="100"):
        many = [Update(f"S{i}", 1, 1) for i in range(101)]
        woocommerce_format.build_batch_update_request(WOO, many, {u.sku: str(i) for i, u in enumerate(many)})
    with pytest.raises(ValueError, match="same"):
        woocommerce_format.build_batch_update_request(WOO, UPDATES[:2], {"SKU-A": "1", "SKU-B": "1"})


def test_woocommerce_per_item_errors():
    body = msgspec.json.encode(
        {
            "update": [
                {"id": 799, "sku": "SKU-A", "stock_quantity": 5, "manage_stock": True},
                {"id": 800, "error": {"code": "woocommerce_rest_product_invalid_id", "message": "Invalid ID.", "data": {"status": 400}}},
                {"id": 801, "error": {"code": "db_busy", "message": "Try again.", "data": {"status": 503}}},
            ]
        }
    )
    outcomes = _by_sku(woocommerce_format.interpret_batch_update_response(UPDATES, PRODUCT_IDS, 200, {}, body))
    assert outcomes["SKU-A"].status == "confirmed"
    assert outcomes["SKU-B"].status == "failed" and "woocommerce_rest_product_invalid_id" in outcomes["SKU-B"].error
    assert outcomes["SKU-C"].status == "retry"
    missing = woocommerce_format.interpret_batch_update_response(UPDATES, PRODUCT_IDS, 200, {}, b'{"update": []}')
    assert {o.status for o in missing} == {"retry"}
    too_large = b'{"code":"woocommerce_rest_request_entity_too_large","message":"Unable to accept more than 100 items for this request.","data":{"status":413}}'
    assert {o.status for o in woocommerce_format.interpret_batch_update_response(UPDATES, PRODUCT_IDS, 413, {}, too_large)} == {"failed"}


# --- round trips through the simulator -----------------------------------------------------------


def test_all_three_formats_round_trip_through_the_simulator():
    specs = [
        ChannelSpec(id="wh-1", kind="webhook", secret="whsec"),
        ChannelSpec(id="shop-1", kind="shopify", secret="shpat_sim", location_id="42", listings={"SKU-A": "1001", "SKU-B": "1002", "SKU-C": "1003"}),
        ChannelSpec(id="woo-1", kind="woocommerce", consumer_key="ck_sim", secret="cs_sim", listings={"SKU-A": "11", "SKU-B": "12", "SKU-C": "13"}),
    ]

    async def scenario(sim, http):
        results = {}
        webhook_config = webhook_format.WebhookChannelConfig("wh-1", sim.channel_base_url("wh-1"), "whsec")
        status, headers, body = await send(http, webhook_format.build_webhook_request(webhook_config, UPDATES))
        results["wh-1"] = webhook_format.interpret_webhook_response(UPDATES, status, headers, body)

        shop_config = shopify_format.ShopifyChannelConfig("shop-1", sim.channel_base_url("shop-1"), "shpat_sim", "42")
        item_ids = sim.describe()["channels"]["shop-1"]["listings"]
        status, headers, body = await send(http, shopify_format.build_set_quantities_request(shop_config, UPDATES, item_ids))
        results["shop-1"] = shopify_format.interpret_set_quantities_response(UPDATES, status, headers, body)

        woo_config = woocommerce_format.WooCommerceChannelConfig("woo-1", sim.channel_base_url("woo-1"), "ck_sim", "cs_sim")
        product_ids = {"SKU-A": "11", "SKU-B": "12", "SKU-C": "13"}
        status, headers, body = await send(http, woocommerce_format.build_batch_update_request(woo_config, UPDATES, product_ids))
        results["woo-1"] = woocommerce_format.interpret_batch_update_response(UPDATES, product_ids, status, headers, body)
        return results, await get_json(http, sim.base_url + "/_sim/state")

    results, state = run_with_simulator(specs, scenario)
    for channel_id in ("wh-1", "shop-1", "woo-1"):
        assert {o.status for o in results[channel_id]} == {"confirmed"}, results[channel_id]
        shown = state["channels"][channel_id]["skus"]
        assert {sku: (s["quantity"], s["version"]) for sku, s in shown.items()} == {"SKU-A": (5, 10), "SKU-B": (0, 11), "SKU-C": (12, 12)}


def test_unknown_listings_fail_only_their_sku_in_the_store_dialect():
    listings = {"SKU-A": "1001", "SKU-C": "1003"}
    specs = [
        ChannelSpec(id="shop-atomic", kind="shopify", secret="t", location_id="42", listings=listings),
        ChannelSpec(id="shop-partial", kind="shopify", secret="t", location_id="42", listings=listings, partial_apply=True),
        ChannelSpec(id="woo-1", kind="woocommerce", consumer_key="ck", secret="cs", listings={"SKU-A": "11", "SKU-C": "13"}),
    ]
    mapping = {"SKU-A": "1001", "SKU-B": "999999", "SKU-C": "1003"}  # SKU-B's item does not exist in the store

    async def scenario(sim, http):
        outcomes = {}
        for channel_id in ("shop-atomic", "shop-partial"):
            config = shopify_format.ShopifyChannelConfig(channel_id, sim.channel_base_url(channel_id), "t", "42")
            status, headers, body = await send(http, shopify_format.build_set_quantities_request(config, UPDATES, mapping))
            outcomes[channel_id] = _by_sku(shopify_format.interpret_set_quantities_response(UPDATES, status, headers, body))
            outcomes[channel_id + "/raw"] = msgspec.json.decode(body)
        woo = woocommerce_format.WooCommerceChannelConfig("woo-1", sim.channel_base_url("woo-1"), "ck", "cs")
        product_ids = {"SKU-A": "11", "SKU-B": "12", "SKU-C": "13"}
        status, headers, body = await send(http, woocommerce_format.build_batch_update_request(woo, UPDATES, product_ids))
        outcomes["woo-1"] = _by_sku(woocommerce_format.interpret_batch_update_response(UPDATES, product_ids, status, headers, body))
        return outcomes, sim.state()["channels"]

    outcomes, state = run_with_simulator(specs, scenario)
    user_errors = outcomes["shop-atomic/raw"]["data"]["inventorySetQuantities"]["userErrors"]
    assert user_errors == [
        {"code": "INVALID_INVENTORY_ITEM", "field": ["input", "quantities", "1", "inventoryItemId"], "message": "The specified inventory item could not be found."}
    ]
    atomic = outcomes["shop-atomic"]
    assert atomic["SKU-B"].status == "failed"
    assert atomic["SKU-A"].status == atomic["SKU-C"].status == "retry"
    assert state["shop-atomic"]["skus"] == {}
    partial = outcomes["shop-partial"]
    assert (partial["SKU-A"].status, partial["SKU-B"].status, partial["SKU-C"].status) == ("confirmed", "failed", "confirmed")
    assert set(state["shop-partial"]["skus"]) == {"SKU-A", "SKU-C"}
    woo = outcomes["woo-1"]
    assert (woo["SKU-A"].status, woo["SKU-B"].status, woo["SKU-C"].status) == ("confirmed", "failed", "confirmed")
    assert "Invalid ID." in woo["SKU-B"].error
    assert {sku: s["quantity"] for sku, s in state["woo-1"]["skus"].items()} == {"SKU-A": 5, "SKU-C": 12}


def test_wrong_credentials_are_rejected_with_401_and_fail_permanently():
    specs = [
        ChannelSpec(id="wh-1", kind="webhook", secret="right"),
        ChannelSpec(id="shop-1", kind="shopify", secret="right", listings={"SKU-A": "1"}),
        ChannelSpec(id="woo-1", kind="woocommerce", consumer_key="ck", secret="right", listings={"SKU-A": "1"}),
    ]
    one = [UPDATES[0]]

    async def scenario(sim, http):
        answers = {}
        request = webhook_format.build_webhook_request(webhook_format.WebhookChannelConfig("wh-1", sim.channel_base_url("wh-1"), "wrong"), one)
        status, headers, body = await send(http, request)
        answers["wh-1"] = (status, webhook_format.interpret_webhook_response(one, status, headers, body))
        config = shopify_format.ShopifyChannelConfig("shop-1", sim.channel_base_url("shop-1"), "wrong", "1")
        status, headers, body = await send(http, shopify_format.build_set_quantities_request(config, one, {"SKU-A": "1"}))
        answers["shop-1"] = (status, shopify_format.interpret_set_quantities_response(one, status, headers, body))
        assert b"Invalid API key or access token" in body
        woo = woocommerce_format.WooCommerceChannelConfig("woo-1", sim.channel_base_url("woo-1"), "ck", "wrong")
        status, headers, body = await send(http, woocommerce_format.build_batch_update_request(woo, one, {"SKU-A": "1"}))
        answers["woo-1"] = (status, woocommerce_format.interpret_batch_update_response(one, {"SKU-A": "1"}, status, headers, body))
        assert msgspec.json.decode(body)["code"] == "woocommerce_rest_authentication_error"
        return answers, sim.state()["channels"], sim.stats()

    answers, state, stats = run_with_simulator(specs, scenario)
    for channel_id, (status, outcomes) in answers.items():
        assert status == 401
        assert [o.status for o in outcomes] == ["failed"]
        assert state[channel_id]["skus"] == {}
        assert stats[channel_id]["unauthorized_401"] == 1


# --- inbound order webhooks -----------------------------------------------------------------------

# Shaped like the orders/create example in Shopify's webhook reference (trimmed, unknown fields kept).
SHOPIFY_ORDER = {
    "id": 820982911946154508,
    "admin_graphql_api_id": "gid://shopify/Order/820982911946154508",
    "app_id": None,
    "browser_ip": None,
    "buyer_accepts_marketing": True,
    "cancel_reason": None,
    "cancelled_at": None,
    "confirmed": False,
    "contact_email": "jon@example.com",
    "created_at": "2021-12-31T19:00:00-05:00",
    "currency": "USD",
    "current_subtotal_price_set": {"shop_money": {"amount": "398.00", "currency_code": "USD"}},
    "financial_status": "voided",
    "fulfillment_status": "pending",
    "name": "#9999",
    "note_attributes": [],
    "total_price": "403.00",
    "customer": {"id": 115310627314723954, "email": "john@example.com", "first_name": "John"},
    "line_items": [
        {
            "id": 866550311766439020,
            "admin_graphql_api_id": "gid://shopify/LineItem/866550311766439020",
            "fulfillable_quantity": 1,
            "fulfillment_service": "manual",
            "gift_card": False,
            "grams": 567,
            "name": "IPod Nano - 8GB",
            "price": "199.00",
            "price_set": {"shop_money": {"amount": "199.00", "currency_code": "USD"}},
            "product_exists": True,
            "product_id": 632910392,
            "properties": [],
            "quantity": 1,
            "requires_shipping": True,
            "sku": "IPOD2008PINK",
            "taxable": True,
            "title": "IPod Nano - 8GB",
            "variant_id": 808950810,
            "vendor": None,
            "tax_lines": [],
            "discount_allocations": [{"amount": "3.33", "discount_application_index": 0}],
        },
        {
            "id": 141249953214522974,
            "admin_graphql_api_id": "gid://shopify/LineItem/141249953214522974",
            "name": "IPod Nano - 8GB",
            "price": "199.00",
            "product_id": 632910392,
            "quantity": 1,
            "sku": "IPOD2008PINK",
            "variant_id": 808950810,
        },
        {"id": 9001, "name": "Gift wrapping", "price": "5.00", "quantity": 1, "sku": None, "variant_id": None},
    ],
    "shipping_lines": [{"id": 271878346596884015, "title": "Generic Shipping", "price": "10.00"}],
}

# Shaped like the order in WooCommerce's REST API v3 documentation.
WOO_ORDER = {
    "id": 727,
    "parent_id": 0,
    "number": "727",
    "order_key": "wc_order_58d2d042d1d",
    "created_via": "rest-api",
    "version": "3.0.0",
    "status": "processing",
    "currency": "USD",
    "date_created": "2017-03-22T16:28:02",
    "date_created_gmt": "2017-03-22T19:28:02",
    "total": "29.35",
    "customer_id": 0,
    "billing": {"first_name": "John", "last_name": "Doe", "email": "john.doe@example.com"},
    "shipping": {"first_name": "John", "last_name": "Doe"},
    "payment_method": "bacs",
    "meta_data": [{"id": 13106, "key": "_download_permissions_granted", "value": "yes"}],
    "line_items": [
        {
            "id": 315,
            "name": "Woo Single #1",
            "product_id": 93,
            "variation_id": 0,
            "quantity": 2,
            "tax_class": "",
            "subtotal": "6.00",
            "total": "6.00",
            "taxes": [{"id": 75, "total": "0.45", "subtotal": "0.45"}],
            "meta_data": [],
            "sku": "woo-single-1",
            "price": 3,
        },
        {"id": 316, "name": "Ship Your Idea &ndash; Color: Black, Size: M Test", "product_id": 22, "variation_id": 23, "quantity": 1, "sku": "", "price": 12},
    ],
    "shipping_lines": [{"id": 317, "method_title": "Flat Rate", "method_id": "flat_rate", "total": "10.00"}],
}


def test_shopify_documented_order_payloads_parse():
    body = msgspec.json.encode(SHOPIFY_ORDER)
    order = parse_order_webhook("shopify", {"x-shopify-topic": "orders/create"}, body)
    assert (order.kind, order.order_id) == ("order", "820982911946154508")
    assert order.lines == (OrderLine(sku="IPOD2008PINK", quantity=2),)  # two lines of one SKU merged
    assert [(s.line_id, s.reason) for s in order.skipped] == [("9001", "no SKU")]
    cancelled = parse_order_webhook("shopify", {"X-Shopify-Topic": "orders/cancelled"}, body)
    assert cancelled.kind == "cancel" and cancelled.lines == order.lines
    assert parse_order_webhook("shopify", {"X-Shopify-Topic": "products/update"}, b"{}").kind == "ignore"


def test_woocommerce_documented_order_payloads_parse():
    created = parse_order_webhook("woocommerce", {"X-WC-Webhook-Topic": "order.created"}, msgspec.json.encode(WOO_ORDER))
    assert (created.kind, created.order_id, created.lines) == ("order", "727", (OrderLine("woo-single-1", 2),))
    assert [s.line_id for s in created.skipped] == ["316"]
    cancelled = parse_order_webhook("woocommerce", {"X-WC-Webhook-Topic": "order.updated"}, msgspec.json.encode({**WOO_ORDER, "status": "cancelled"}))
    assert cancelled.kind == "cancel" and cancelled.lines == created.lines
    completed = parse_order_webhook("woocommerce", {"X-WC-Webhook-Topic": "order.updated"}, msgspec.json.encode({**WOO_ORDER, "status": "completed"}))
    assert completed.kind == "ignore" and "completed" in completed.reason
    draft = parse_order_webhook("woocommerce", {"X-WC-Webhook-Topic": "order.created"}, msgspec.json.encode({**WOO_ORDER, "status": "checkout-draft"}))
    assert draft.kind == "ignore"
    ping = parse_order_webhook("woocommerce", {}, b"webhook_id=3")
    assert (ping.kind, ping.reason) == ("ignore", "webhook ping")


@pytest.mark.parametrize(
    ("source", "headers", "body", "field"),
    [
        ("shopify", {"X-Shopify-Topic": "orders/create"}, b'{"id": 1, "line_items": [{"sku": "A", "quantity": "two"}]}', "$.line_items[0].quantity"),
        ("shopify", {"X-Shopify-Topic": "orders/create"}, b'{"line_items": []}', "$.id"),
        ("shopify", {"X-Shopify-Topic": "orders/create"}, b'{"id": 1, "line_items": [{"sku": "A", "quantity": -1}]}', "$.line_items[0].quantity"),
        ("shopify", {}, b"{}", "X-Shopify-Topic"),
        ("woocommerce", {"X-WC-Webhook-Topic": "order.created"}, b'{"id": 5, "line_items": []}', "$.status"),
        ("woocommerce", {"X-WC-Webhook-Topic": "order.created"}, b"<html>not json</html>", "$"),
    ],
)
def test_malformed_inbound_payloads_name_the_offending_field(source, headers, body, field):
    with pytest.raises(InboundPayloadError) as caught:
        parse_order_webhook(source, headers, body)
    assert caught.value.field == field
    assert isinstance(caught.value, ValueError) and field in str(caught.value)


@pytest.mark.parametrize("kind", ["shopify", "woocommerce"])
@pytest.mark.parametrize("event", ["created", "cancelled"])
def test_built_order_webhooks_are_signed_and_parse_back(kind, event):
    request = build_order_webhook(kind, 4321, [("SKU-A", 2), (None, 1), ("SKU-B", 3)], "whsec", "http://127.0.0.1:1/in", event=event)
    assert verify_inbound_signature(kind, request.headers, request.body, "whsec")
    assert not verify_inbound_signature(kind, request.headers, request.body + b" ", "whsec")
    assert not verify_inbound_signature(kind, request.headers, request.body, "other")
    order = parse_order_webhook(kind, request.headers, request.body)
    assert order.kind == ("order" if event == "created" else "cancel")
    assert order.order_id == "4321"
    assert order.lines == (OrderLine("SKU-A", 2), OrderLine("SKU-B", 3))
    assert len(order.skipped) == 1
    again = build_order_webhook(kind, 4321, [("SKU-A", 2), (None, 1), ("SKU-B", 3)], "whsec", "http://127.0.0.1:1/in", event=event, now=datetime(2025, 1, 1, tzinfo=UTC))
    same = build_order_webhook(kind, 4321, [("SKU-A", 2), (None, 1), ("SKU-B", 3)], "whsec", "http://127.0.0.1:1/in", event=event, now=datetime(2025, 1, 1, tzinfo=UTC))
    assert again.body == same.body and again.headers == same.headers  # reproducible for load runs
