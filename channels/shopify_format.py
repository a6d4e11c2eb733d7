"""Shopify Admin GraphQL `inventorySetQuantities`: request builder and response interpreter.

Request (one location per channel):

    POST {shop_url}/admin/api/{api_version}/graphql.json
    X-Shopify-Access-Token: <token>
    {"query": "mutation ...inventorySetQuantities(input: $input)...",
     "variables": {"input": {"name": "available", "reason": "correction", "ignoreCompareQuantity": true,
                             "quantities": [{"inventoryItemId": "gid://shopify/InventoryItem/<id>",
                                             "locationId": "gid://shopify/Location/<id>", "quantity": 7}]}}}

We also send `X-Invsync-Version: <v0>,<v1>,...` (index-aligned with `quantities`); Shopify ignores
unknown headers, the simulator records it to check that versions never go backwards.

Response shapes handled:
- 200 + data.inventorySetQuantities.userErrors[{field, message, code}]: `field` is a path such as
  ["input", "quantities", "3", "inventoryItemId"]; index 3 fails permanently. Errors without a
  quantities index (["input", "reason"]) fail the whole batch. When userErrors come back with a null
  inventoryAdjustmentGroup nothing was applied, so the other SKUs are retried at once (retry_after 0)
  instead of being assumed confirmed; with a non-null group the other SKUs are confirmed.
- 200 + top-level errors[].extensions.code == "THROTTLED" (cost limit): throttled for the whole
  batch; the wait is (requestedQueryCost - currentlyAvailable) / restoreRate from the top-level
  extensions.cost.throttleStatus, else 1 s.
- 200 + other top-level errors: INTERNAL_SERVER_ERROR is retried, anything else (bad query,
  ACCESS_DENIED) fails permanently.
- 429 -> throttled (Retry-After), 5xx -> retry, 401/403/other 4xx -> failed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from channels.http_outcomes import DEFAULT_THROTTLE_SECONDS, check_batch, whole_batch_outcome_for_status
from channels.wire_types import HttpRequest, PushOutcome, Update, outcomes_for_all

MAX_BATCH = 250
DEFAULT_API_VERSION = "2025-10"
ACCESS_TOKEN_HEADER = "X-Shopify-Access-Token"
VERSION_HEADER = "X-Invsync-Version"

INVENTORY_ITEM_GID_PREFIX = "gid://shopify/InventoryItem/"
LOCATION_GID_PREFIX = "gid://shopify/Location/"

SET_QUANTITIES_MUTATION = """\
mutation InvsyncSetQuantities($input: InventorySetQuantitiesInput!) {
  inventorySetQuantities(input: $input) {
    inventoryAdjustmentGroup { createdAt reason changes { name delta } }
    userErrors { code field message }
  }
}"""


class ShopifyChannelConfig(msgspec.Struct, frozen=True):
    channel_id: str
    shop_url: str  # "https://example.myshopify.com", or a simulator base URL
    access_token: str
    location_id: str  # numeric id or full gid
    api_version: str = DEFAULT_API_VERSION


def graphql_url(config: ShopifyChannelConfig) -> str:
    return f"{config.shop_url.rstrip('/')}/admin/api/{config.api_version}/graphql.json"


def _gid(prefix: str, external_id: str) -> str:
    return external_id if external_id.startswith("gid://") else prefix + external_id


def gid_tail(gid: str) -> str:
    """'gid://shopify/InventoryItem/123' -> '123' (what the simulator keys its listings by)."""
    return gid.rsplit("/", 1)[-1]


_encoder = msgspec.json.Encoder()


def build_set_quantities_request(
    config: ShopifyChannelConfig,
    updates: Sequence[Update],
    inventory_item_ids: Mapping[str, str],
) -> HttpRequest:
    """`inventory_item_ids` maps SKU -> Shopify inventory item id (numeric or gid)."""
    check_batch(updates, inventory_item_ids, MAX_BATCH, "Shopify", "inventory item id")
    location = _gid(LOCATION_GID_PREFIX, config.location_id)
    quantities = [
        {
            "inventoryItemId": _gid(INVENTORY_ITEM_GID_PREFIX, inventory_item_ids[u.sku]),
            "locationId": location,
            "quantity": u.quantity,
        }
        for u in updates
    ]
    payload = {
        "query": SET_QUANTITIES_MUTATION,
        "variables": {
            "input": {
                "name": "available",
                "reason": "correction",
                "ignoreCompareQuantity": True,
                "quantities": quantities,
            }
        },
    }
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        ACCESS_TOKEN_HEADER: config.access_token,
        VERSION_HEADER: ",".join(str(u.version) for u in updates),
    }
    return HttpRequest(method="POST", url=graphql_url(config), headers=headers, body=_encoder.encode(payload))


def _throttle_delay(extensions: Any) -> float:
    """Seconds until the cost bucket holds what the query asked for, from extensions.cost."""
    try:
        cost = extensions["cost"]
        requested = float(cost["requestedQueryCost"])
        throttle = cost["throttleStatus"]
        available = float(throttle["currentlyAvailable"])
        restore_rate = float(throttle["restoreRate"])
    except (KeyError, TypeError, ValueError):
        return DEFAULT_THROTTLE_SECONDS
    if restore_rate <= 0 or math.isnan(restore_rate):
        return DEFAULT_THROTTLE_SECONDS
    return max(0.0, (requested - available) / restore_rate)


def _top_level_errors_outcome(updates: Sequence[Update], document: dict[str, Any]) -> list[PushOutcome] | None:
    errors = document.get("errors")
    if not errors:
        return None
    if isinstance(errors, str):  # REST-style auth failures: {"errors": "[API] Invalid API key ..."}
        return outcomes_for_all(updates, "failed", error=f"shopify: {errors}")
    codes = []
    messages = []
    for error in errors if isinstance(errors, list) else [errors]:
        if isinstance(error, dict):
            extensions = error.get("extensions") or {}
            codes.append(extensions.get("code") if isinstance(extensions, dict) else None)
            messages.append(str(error.get("message", "")))
        else:
            codes.append(None)
            messages.append(str(error))
    summary = "; ".join(m for m in messages if m) or "GraphQL error"
    if "THROTTLED" in codes:
        delay = _throttle_delay(document.get("extensions"))
        return outcomes_for_all(updates, "throttled", retry_after=delay, error=f"shopify THROTTLED: {summary}")
    if "INTERNAL_SERVER_ERROR" in codes:
        return outcomes_for_all(updates, "retry", error=f"shopify: {summary}")
    return outcomes_for_all(updates, "failed", error=f"shopify: {summary}")


def _quantity_index(field: Any, batch_size: int) -> int | None:
    """['input', 'quantities', '3', 'locationId'] -> 3; None when the error is not about one item."""
    if not isinstance(field, list) or len(field) < 3 or field[1] != "quantities":
        return None
    try:
        index = int(field[2])
    except (TypeError, ValueError):
        return None
    return index if 0 <= index < batch_size else None


def interpret_set_quantities_response(
    updates: Sequence[Update],
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
        # A 2xx we cannot read leaves the channel's state unknown: resend rather than assume.
        return outcomes_for_all(updates, "retry", error="shopify: undecodable 2xx body")
    if not isinstance(document, dict):
        return outcomes_for_all(updates, "retry", error="shopify: unexpected 2xx body")
    top_level = _top_level_errors_outcome(updates, document)
    if top_level is not None:
        return top_level
    payload = (document.get("data") or {}).get("inventorySetQuantities")
    if not isinstance(payload, dict):
        return outcomes_for_all(updates, "retry", error="shopify: no inventorySetQuantities payload")
    user_errors = payload.get("userErrors") or []
    if not user_errors:
        return outcomes_for_all(updates, "confirmed")

    per_item: dict[int, str] = {}
    batch_wide: list[str] = []
    for user_error in user_errors:
        message = f"{user_error.get('code') or 'USER_ERROR'}: {user_error.get('message', '')}"
        index = _quantity_index(user_error.get("field"), len(updates))
        if index is None:
            batch_wide.append(message)
        else:
            per_item.setdefault(index, message)
    if batch_wide:
        return outcomes_for_all(updates, "failed", error="shopify: " + "; ".join(batch_wide))

    applied = payload.get("inventoryAdjustmentGroup") is not None
    outcomes = []
    for index, update in enumerate(updates):
        if index in per_item:
            outcomes.append(
                PushOutcome(sku=update.sku, version=update.version, status="failed", error=f"shopify {per_item[index]}")
            )
        elif applied:
            outcomes.append(PushOutcome(sku=update.sku, version=update.version, status="confirmed"))
        else:
            outcomes.append(
                PushOutcome(
                    sku=update.sku,
                    version=update.version,
                    status="retry",
                    retry_after=0.0,
                    error="shopify: not applied because other items of the batch had userErrors",
                )
            )
    return outcomes
