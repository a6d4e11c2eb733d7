"""WooCommerce REST v3 product batch update: request builder and response interpreter.

Request:

    POST {site_url}/wp-json/wc/v3/products/batch
    Authorization: Basic base64(consumer_key:consumer_secret)
    {"update": [{"id": 123, "stock_quantity": 7, "manage_stock": true}, ...]}

plus `X-Invsync-Version: <v0>,<v1>,...` (index-aligned with `update`, ignored by WordPress).

Response (WC_REST_Controller::batch_items): {"update": [<product object> | {"id": 123, "error":
{"code": "woocommerce_rest_product_invalid_id", "message": "Invalid ID.", "data": {"status": 400}}}]}
Each item is matched back to its SKU by product id. An item error whose data.status is 5xx is
retried, any other item error fails that SKU only. More than 100 items is answered 413
(woocommerce_rest_request_entity_too_large) for the whole request, so we never build one.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from channels.http_outcomes import check_batch, whole_batch_outcome_for_status
from channels.wire_types import HttpRequest, PushOutcome, Update, outcomes_for_all

MAX_BATCH = 100
BATCH_PATH = "/wp-json/wc/v3/products/batch"
VERSION_HEADER = "X-Invsync-Version"


class WooCommerceChannelConfig(msgspec.Struct, frozen=True):
    channel_id: str
    site_url: str  # "https://shop.example.com", or a simulator base URL
    consumer_key: str
    consumer_secret: str


def batch_url(config: WooCommerceChannelConfig) -> str:
    return config.site_url.rstrip("/") + BATCH_PATH


def basic_auth_header(consumer_key: str, consumer_secret: str) -> str:
    token = base64.b64encode(f"{consumer_key}:{consumer_secret}".encode()).decode("ascii")
    return f"Basic {token}"


_encoder = msgspec.json.Encoder()


def build_batch_update_request(
    config: WooCommerceChannelConfig,
    updates: Sequence[Update],
    product_ids: Mapping[str, str],
) -> HttpRequest:
    """`product_ids` maps SKU -> WooCommerce product (or variation) id."""
    check_batch(updates, product_ids, MAX_BATCH, "WooCommerce", "product id")
    ids = [int(product_ids[u.sku]) for u in updates]
    if len(set(ids)) != len(ids):
        # Responses are matched back by id, so one id twice in a batch would be ambiguous.
        raise ValueError("two SKUs of one batch map to the same WooCommerce product id")
    payload = {
        "update": [
            {"id": product_id, "stock_quantity": u.quantity, "manage_stock": True}
            for product_id, u in zip(ids, updates, strict=True)
        ]
    }
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "Authorization": basic_auth_header(config.consumer_key, config.consumer_secret),
        VERSION_HEADER: ",".join(str(u.version) for u in updates),
    }
    return HttpRequest(method="POST", url=batch_url(config), headers=headers, body=_encoder.encode(payload))


def _item_outcome(update: Update, item: Any) -> PushOutcome:
    if not isinstance(item, dict):
        return PushOutcome(sku=update.sku, version=update.version, status="retry", error="woocommerce: no result for item")
    error = item.get("error")
    if not error:
        return PushOutcome(sku=update.sku, version=update.version, status="confirmed")
    code = error.get("code", "error") if isinstance(error, dict) else "error"
    message = error.get("message", "") if isinstance(error, dict) else str(error)
    data = error.get("data") if isinstance(error, dict) else None
    item_status = data.get("status") if isinstance(data, dict) else None
    text = f"woocommerce {code}: {message}"
    if isinstance(item_status, int) and item_status >= 500:
        return PushOutcome(sku=update.sku, version=update.version, status="retry", error=text)
    return PushOutcome(sku=update.sku, version=update.version, status="failed", error=text)


def interpret_batch_update_response(
    updates: Sequence[Update],
    product_ids: Mapping[str, str],
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
) -> list[PushOutcome]:
    whole = whole_batch_outcome_for_status(updates, status, headers, now=now, body=body)
    if whole is not None:
        return whole
    try:
        document = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return outcomes_for_all(updates, "retry", error="woocommerce: undecodable 2xx body")
    items = document.get("update") if isinstance(document, dict) else None
    if not isinstance(items, list):
        return outcomes_for_all(updates, "retry", error="woocommerce: no 'update' list in 2xx body")
    by_id: dict[int, Any] = {}
    for item in items:
        if isinstance(item, dict):
            try:
                by_id.setdefault(int(item.get("id")), item)
            except (TypeError, ValueError):
                continue
    return [_item_outcome(u, by_id.get(int(product_ids[u.sku]))) for u in updates]
