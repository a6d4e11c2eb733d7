"""How each simulated store answers: authentication, pushes, and its dialect of 401/429/5xx.

Pure request -> reply functions over a ChannelState; the HTTP server, timing and faults live in
simulator.py. Replies imitate the real stores' bodies closely enough that the format interpreters
are tested against the shapes they will meet in production:
- webhook: invsync's own format (see webhook_format.py), HMAC checked.
- Shopify: `inventorySetQuantities` with userErrors {code, field, message} per item, atomic by
  default (any userError -> nothing applied, inventoryAdjustmentGroup null), the GraphQL cost
  limit as 200 + errors[THROTTLED] with extensions.cost.throttleStatus, 401 with Shopify's
  "[API] Invalid API key or access token" body.
- WooCommerce: products/batch with per-item {"id", "error": {code, message, data: {status}}}, 413
  above 100 items, 401 woocommerce_rest_authentication_error.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from channels.shopify_format import ACCESS_TOKEN_HEADER, INVENTORY_ITEM_GID_PREFIX, LOCATION_GID_PREFIX
from channels.signatures import INVSYNC_SIGNATURE_HEADER, verify_hex
from channels.simulator_state import ChannelState, VersionSource
from channels.webhook_format import WebhookBody
from channels.wire_types import header_value
from channels.woocommerce_format import MAX_BATCH as WOO_MAX_BATCH
from channels.woocommerce_format import VERSION_HEADER

# Shopify accounts GraphQL cost in points; one of our mutations is priced at this many, so the
# bucket's requests/s maps onto points/s exactly and throttleStatus arithmetic gives the true wait.
SHOPIFY_POINTS_PER_REQUEST = 10
SHOPIFY_QUANTITY_LIMIT = 1_000_000_000
SHOPIFY_REASONS = frozenset(
    {
        "correction", "cycle_count_available", "damaged", "movement_created", "movement_updated",
        "movement_received", "movement_canceled", "other", "promotion", "quality_control", "received",
        "reservation_created", "reservation_deleted", "reservation_updated", "restock", "safety_stock",
        "shrinkage",
    }
)  # fmt: skip


class StoreReply(msgspec.Struct, frozen=True):
    status: int
    body: bytes
    headers: dict[str, str] = {}


_encoder = msgspec.json.Encoder()


def _json(status: int, document: Any, headers: dict[str, str] | None = None) -> StoreReply:
    return StoreReply(status=status, body=_encoder.encode(document), headers={"Content-Type": "application/json", **(headers or {})})


def retry_after_header(seconds: float | None) -> dict[str, str]:
    # RFC 9110 delay-seconds is an integer; round up so a client that obeys it is never early.
    if seconds is None:
        return {}
    return {"Retry-After": str(max(1, math.ceil(seconds - 1e-9)))}


# --- authentication ---------------------------------------------------------------------------


def _woocommerce_credentials(headers: Mapping[str, str], query: Mapping[str, str]) -> tuple[str, str] | None:
    authorization = header_value(headers, "Authorization") or ""
    if authorization.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        key, _, secret = decoded.partition(":")
        return key, secret
    if "consumer_key" in query and "consumer_secret" in query:  # WooCommerce also accepts these over HTTPS
        return query["consumer_key"], query["consumer_secret"]
    return None


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def unauthorized_reply(state: ChannelState, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]) -> StoreReply | None:
    """None when the request carries the channel's credential, else the store's 401."""
    spec = state.spec
    if spec.kind == "webhook":
        if verify_hex(spec.secret, body, header_value(headers, INVSYNC_SIGNATURE_HEADER)):
            return None
        return _json(401, {"error": "invalid or missing X-Invsync-Signature"})
    if spec.kind == "shopify":
        token = header_value(headers, ACCESS_TOKEN_HEADER)
        if token is not None and _same(token, spec.secret):
            return None
        return _json(401, {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"})
    credentials = _woocommerce_credentials(headers, query)
    if credentials is not None and _same(credentials[0], spec.consumer_key) and _same(credentials[1], spec.secret):
        return None
    return _json(
        401,
        {"code": "woocommerce_rest_authentication_error", "message": "Consumer key is invalid.", "data": {"status": 401}},
    )


# --- fault replies --------------------------------------------------------------------------


def _shopify_cost(state: ChannelState, actual: int | None) -> dict:
    bucket = state.bucket
    if bucket is None:
        throttle = {"maximumAvailable": 2000.0, "currentlyAvailable": 2000.0, "restoreRate": 100.0}
    else:
        throttle = {
            "maximumAvailable": bucket.capacity * SHOPIFY_POINTS_PER_REQUEST,
            "currentlyAvailable": round(bucket.tokens * SHOPIFY_POINTS_PER_REQUEST, 3),
            "restoreRate": bucket.rate * SHOPIFY_POINTS_PER_REQUEST,
        }
    return {"cost": {"requestedQueryCost": SHOPIFY_POINTS_PER_REQUEST, "actualQueryCost": actual, "throttleStatus": throttle}}


def throttled_reply(state: ChannelState, retry_after_s: float) -> StoreReply:
    kind = state.spec.kind
    if kind == "shopify" and state.faults.shopify_throttle_style == "graphql":
        return _json(
            200,
            {
                "errors": [
                    {
                        "message": "Throttled",
                        "extensions": {"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"},
                    }
                ],
                "extensions": _shopify_cost(state, None),
            },
        )
    headers = retry_after_header(retry_after_s)
    if kind == "woocommerce":
        return _json(429, {"code": "rest_too_many_requests", "message": "Too many requests.", "data": {"status": 429}}, headers)
    if kind == "shopify":
        return _json(429, {"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."}, headers)
    return _json(429, {"error": "rate limited"}, headers)


def server_error_reply(state: ChannelState, status: int, retry_after_s: float | None = None) -> StoreReply:
    headers = retry_after_header(retry_after_s)
    if state.spec.kind == "woocommerce":
        return _json(status, {"code": "internal_server_error", "message": "There has been a critical error on this website.", "data": {"status": status}}, headers)
    if state.spec.kind == "shopify":
        return _json(status, {"errors": "Internal Server Error" if status == 500 else "Service Unavailable"}, headers)
    return _json(status, {"error": f"simulated {status}"}, headers)


# --- pushes -----------------------------------------------------------------------------------


def _header_versions(headers: Mapping[str, str], count: int) -> list[int] | None:
    raw = header_value(headers, VERSION_HEADER)
    if not raw:
        return None
    try:
        versions = [int(part) for part in raw.split(",")]
    except ValueError:
        return None
    return versions if len(versions) == count else None


def _versions_for(state: ChannelState, headers: Mapping[str, str], count: int) -> tuple[list[int], VersionSource]:
    versions = _header_versions(headers, count)
    if versions is not None:
        return versions, "header"
    arrival = state.next_arrival()
    return [arrival] * count, "arrival"


def handle_webhook_push(state: ChannelState, body: bytes, elapsed: float) -> StoreReply:
    try:
        document = msgspec.json.decode(body, type=WebhookBody)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return _json(400, {"error": f"invalid body: {exc}"})
    if document.channel != state.spec.id:
        return _json(400, {"error": f"body is for channel {document.channel!r}, this is {state.spec.id!r}"})
    for update in document.updates:
        state.apply(update.sku, update.quantity, update.version, "body", elapsed)
    return _json(200, {"applied": len(document.updates)})


def _shopify_graphql_error(message: str, code: str) -> StoreReply:
    return _json(200, {"errors": [{"message": message, "extensions": {"code": code}}]})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shopify_item_error(state: ChannelState, index: int, item: Any, location_gid: str) -> tuple[dict | None, str | None]:
    """(userError, sku) for one quantities[index]; exactly one of them is None."""
    path = ["input", "quantities", str(index)]
    item_gid = item.get("inventoryItemId") if isinstance(item, dict) else None
    external = item_gid[len(INVENTORY_ITEM_GID_PREFIX):] if isinstance(item_gid, str) and item_gid.startswith(INVENTORY_ITEM_GID_PREFIX) else None
    sku = state.sku_by_external_id.get(external) if external is not None else None
    if sku is None:
        return {"code": "INVALID_INVENTORY_ITEM", "field": [*path, "inventoryItemId"], "message": "The specified inventory item could not be found."}, None
    if item.get("locationId") != location_gid:
        return {"code": "INVALID_LOCATION", "field": [*path, "locationId"], "message": "The specified location could not be found."}, None
    quantity = item.get("quantity")
    if quantity < 0:
        return {"code": "INVALID_QUANTITY_NEGATIVE", "field": [*path, "quantity"], "message": "The quantity can't be negative."}, None
    if quantity > SHOPIFY_QUANTITY_LIMIT:
        return {"code": "INVALID_QUANTITY_TOO_HIGH", "field": [*path, "quantity"], "message": "The total quantity can't be higher than 1,000,000,000."}, None
    return None, sku


def handle_shopify_push(state: ChannelState, headers: Mapping[str, str], body: bytes, elapsed: float) -> StoreReply:
    try:
        document = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return _json(400, {"errors": {"query": "Required parameter missing or invalid"}})
    query = document.get("query") if isinstance(document, dict) else None
    if not isinstance(query, str) or "inventorySetQuantities" not in query:
        return _shopify_graphql_error("The invsync simulator implements only the inventorySetQuantities mutation", "NOT_IMPLEMENTED")
    variables = document.get("variables")
    payload = variables.get("input") if isinstance(variables, dict) else None
    quantities = payload.get("quantities") if isinstance(payload, dict) else None
    if not isinstance(quantities, list) or not all(isinstance(q, dict) and _is_int(q.get("quantity")) for q in quantities):
        return _shopify_graphql_error("Variable $input of type InventorySetQuantitiesInput! was provided invalid value", "INVALID_VARIABLE")

    user_errors: list[dict] = []
    if payload.get("name") not in ("available", "on_hand"):
        user_errors.append({"code": "INVALID_NAME", "field": ["input", "name"], "message": "The quantity name must be either 'available' or 'on_hand'."})
    if payload.get("reason") not in SHOPIFY_REASONS:
        user_errors.append({"code": "INVALID_REASON", "field": ["input", "reason"], "message": "The specified reason is invalid."})
    ignore_compare = payload.get("ignoreCompareQuantity") is True
    location_gid = LOCATION_GID_PREFIX + state.spec.location_id
    valid: list[tuple[int, str, int]] = []
    for index, item in enumerate(quantities):
        error, sku = _shopify_item_error(state, index, item, location_gid)
        if error is None and not ignore_compare:
            expected = item.get("compareQuantity")
            current = state.skus[sku].quantity if sku in state.skus else 0
            if not _is_int(expected):
                error = {"code": "COMPARE_QUANTITY_REQUIRED", "field": ["input", "quantities", str(index), "compareQuantity"], "message": "The compareQuantity argument must be given to each quantity or ignored using ignoreCompareQuantity."}
            elif expected != current:
                error = {"code": "COMPARE_QUANTITY_STALE", "field": ["input", "quantities", str(index), "compareQuantity"], "message": "The compareQuantity value does not match persisted value."}
        if error is not None:
            user_errors.append(error)
        else:
            valid.append((index, sku, item["quantity"]))

    state.stats.item_errors += len(user_errors)
    apply_valid = not user_errors or (state.spec.partial_apply and not any(e["field"][1] != "quantities" for e in user_errors))
    changes = []
    if apply_valid and valid:
        versions, source = _versions_for(state, headers, len(quantities))
        for index, sku, quantity in valid:
            previous = state.apply(sku, quantity, versions[index], source, elapsed)
            changes.append({"name": "available", "delta": quantity - previous})
    group = (
        {"createdAt": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"), "reason": payload.get("reason"), "changes": changes}
        if changes
        else None
    )
    return _json(
        200,
        {"data": {"inventorySetQuantities": {"inventoryAdjustmentGroup": group, "userErrors": user_errors}}, "extensions": _shopify_cost(state, SHOPIFY_POINTS_PER_REQUEST)},
    )


def _woo_product(state: ChannelState, product_id: int, sku: str) -> dict:
    shown = state.skus.get(sku)
    quantity = shown.quantity if shown is not None else None
    return {
        "id": product_id,
        "name": f"Product {sku}",
        "sku": sku,
        "type": "simple",
        "status": "publish",
        "manage_stock": True,
        "stock_quantity": quantity,
        "stock_status": "instock" if (quantity or 0) > 0 else "outofstock",
    }


def _woo_item_error(product_id: Any, code: str, message: str, status: int) -> dict:
    return {"id": product_id, "error": {"code": code, "message": message, "data": {"status": status}}}


def handle_woocommerce_push(state: ChannelState, headers: Mapping[str, str], body: bytes, elapsed: float) -> StoreReply:
    try:
        document = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return _json(400, {"code": "rest_invalid_json", "message": "Invalid JSON body passed.", "data": {"status": 400}})
    if not isinstance(document, dict):
        return _json(400, {"code": "rest_invalid_param", "message": "Invalid parameter(s): update", "data": {"status": 400}})
    total = sum(len(document.get(key) or []) for key in ("create", "update", "delete") if isinstance(document.get(key) or [], list))
    if total > WOO_MAX_BATCH:
        return _json(
            413,
            {"code": "woocommerce_rest_request_entity_too_large", "message": f"Unable to accept more than {WOO_MAX_BATCH} items for this request.", "data": {"status": 413}},
        )
    items = document.get("update") or []
    if not isinstance(items, list):
        return _json(400, {"code": "rest_invalid_param", "message": "Invalid parameter(s): update", "data": {"status": 400}})
    versions, source = _versions_for(state, headers, len(items)) if items else ([], "arrival")
    results = []
    for index, item in enumerate(items):
        raw_id = item.get("id") if isinstance(item, dict) else None
        try:
            product_id = int(raw_id)
        except (TypeError, ValueError):
            product_id = 0
        sku = state.sku_by_external_id.get(str(product_id))
        if sku is None:
            state.stats.item_errors += 1
            results.append(_woo_item_error(raw_id if raw_id is not None else 0, "woocommerce_rest_product_invalid_id", "Invalid ID.", 400))
            continue
        if "stock_quantity" in item:
            quantity = item["stock_quantity"]
            try:
                quantity = int(quantity)  # WooCommerce's wc_stock_amount accepts numeric strings
            except (TypeError, ValueError):
                state.stats.item_errors += 1
                results.append(_woo_item_error(product_id, "rest_invalid_param", "Invalid parameter(s): stock_quantity", 400))
                continue
            state.apply(sku, quantity, versions[index], source, elapsed)
        results.append(_woo_product(state, product_id, sku))
    return _json(200, {"update": results})
