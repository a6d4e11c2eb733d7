"""Build signed inbound order webhooks as Shopify and WooCommerce send them.

Used by the simulator and the load harness to play a store that reports its own sales to invsync.
Payloads follow the shape of the public examples (Shopify's `orders/create` REST order resource,
WooCommerce's v3 order resource delivered by WC_Webhook::deliver) with the fields invsync reads
plus the usual neighbours, so a parser that ignores unknown fields is exercised honestly. Everything
is derived from the arguments, so the same call gives the same bytes and signature.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

import msgspec

from channels.inbound_orders import OrderLine
from channels.signatures import SHOPIFY_HMAC_HEADER, WOOCOMMERCE_SIGNATURE_HEADER, sign_base64
from channels.wire_types import HttpRequest

OrderEvent = Literal["created", "cancelled"]
LineSpec = tuple[str | None, int] | OrderLine

SHOPIFY_API_VERSION = "2025-10"
_NAMESPACE = uuid.UUID("6f1c1d8e-5a47-4a0e-9a8e-7d0c2b1f9e21")
_UNIT_PRICE = "10.00"
_encoder = msgspec.json.Encoder()


def _line_tuples(lines: Sequence[LineSpec]) -> list[tuple[str | None, int]]:
    return [(line.sku, line.quantity) if isinstance(line, OrderLine) else (line[0], int(line[1])) for line in lines]


def _numeric_id(order_id: str | int) -> int:
    try:
        return int(order_id)
    except (TypeError, ValueError):
        raise ValueError(f"store order ids are numeric, got {order_id!r}") from None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def shopify_order_payload(order_id: int, lines: list[tuple[str | None, int]], event: OrderEvent, now: datetime) -> dict:
    stamp = _iso(now)
    line_items = []
    for position, (sku, quantity) in enumerate(lines):
        line_id = order_id * 1000 + position + 1
        line_items.append(
            {
                "id": line_id,
                "admin_graphql_api_id": f"gid://shopify/LineItem/{line_id}",
                "variant_id": 40000000 + position,
                "product_id": 70000000 + position,
                "title": f"Item {sku or 'custom'}",
                "name": f"Item {sku or 'custom'}",
                "sku": sku,
                "quantity": quantity,
                "fulfillable_quantity": 0 if event == "cancelled" else quantity,
                "price": _UNIT_PRICE,
                "requires_shipping": True,
                "gift_card": False,
                "grams": 100,
                "vendor": "invsync-sim",
                "properties": [],
            }
        )
    total = f"{sum(q for _, q in lines) * 10:.2f}"
    return {
        "id": order_id,
        "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "name": f"#{order_id % 100000}",
        "order_number": order_id % 100000,
        "email": "buyer@example.com",
        "created_at": stamp,
        "updated_at": stamp,
        "cancelled_at": stamp if event == "cancelled" else None,
        "cancel_reason": "customer" if event == "cancelled" else None,
        "currency": "USD",
        "financial_status": "voided" if event == "cancelled" else "paid",
        "fulfillment_status": None,
        "total_price": total,
        "subtotal_price": total,
        "test": False,
        "line_items": line_items,
    }


def woocommerce_order_payload(order_id: int, lines: list[tuple[str | None, int]], event: OrderEvent, now: datetime) -> dict:
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    line_items = []
    for position, (sku, quantity) in enumerate(lines):
        total = f"{quantity * 10:.2f}"
        line_items.append(
            {
                "id": order_id * 100 + position + 1,
                "name": f"Item {sku or 'custom'}",
                "product_id": 500 + position,
                "variation_id": 0,
                "quantity": quantity,
                "tax_class": "",
                "subtotal": total,
                "subtotal_tax": "0.00",
                "total": total,
                "total_tax": "0.00",
                "taxes": [],
                "meta_data": [],
                "sku": sku or "",  # WooCommerce sends "" for a product without SKU
                "price": 10,
            }
        )
    return {
        "id": order_id,
        "parent_id": 0,
        "number": str(order_id),
        "order_key": f"wc_order_{uuid.uuid5(_NAMESPACE, str(order_id)).hex[:13]}",
        "created_via": "checkout",
        "version": "9.3.0",
        "status": "cancelled" if event == "cancelled" else "processing",
        "currency": "USD",
        "date_created": stamp,
        "date_created_gmt": stamp,
        "date_modified": stamp,
        "date_modified_gmt": stamp,
        "total": f"{sum(q for _, q in lines) * 10:.2f}",
        "customer_id": 0,
        "billing": {"first_name": "Sim", "last_name": "Buyer", "email": "buyer@example.com"},
        "payment_method": "cod",
        "line_items": line_items,
        "meta_data": [],
    }


def build_order_webhook(
    kind: Literal["shopify", "woocommerce"],
    order_id: str | int,
    lines: Sequence[LineSpec],
    secret: str,
    url: str,
    *,
    event: OrderEvent = "created",
    now: datetime | None = None,
    shop_domain: str = "invsync-sim.myshopify.com",
    source_url: str = "http://woocommerce.invsync-sim.test/",
) -> HttpRequest:
    """A signed order webhook POST to `url`.

    `lines` are (sku, quantity) pairs or OrderLines; a None/empty SKU makes a custom line item.
    Shopify: topic orders/create or orders/cancelled. WooCommerce: order.created, or order.updated
    carrying status 'cancelled' (WooCommerce has no cancel topic).
    """
    numeric_id = _numeric_id(order_id)
    moment = now or datetime.now(UTC)
    line_tuples = _line_tuples(lines)
    if kind == "shopify":
        topic = "orders/create" if event == "created" else "orders/cancelled"
        body = _encoder.encode(shopify_order_payload(numeric_id, line_tuples, event, moment))
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": topic,
            SHOPIFY_HMAC_HEADER: sign_base64(secret, body),
            "X-Shopify-Shop-Domain": shop_domain,
            "X-Shopify-API-Version": SHOPIFY_API_VERSION,
            "X-Shopify-Webhook-Id": str(uuid.uuid5(_NAMESPACE, f"shopify/{topic}/{numeric_id}")),
            "X-Shopify-Event-Id": str(uuid.uuid5(_NAMESPACE, f"shopify-event/{topic}/{numeric_id}")),
            "X-Shopify-Triggered-At": _iso(moment),
        }
        return HttpRequest(method="POST", url=url, headers=headers, body=body)
    if kind == "woocommerce":
        topic = "order.created" if event == "created" else "order.updated"
        body = _encoder.encode(woocommerce_order_payload(numeric_id, line_tuples, event, moment))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "WooCommerce/9.3.0 Hookshot (WordPress/6.6.2)",
            "X-WC-Webhook-Source": source_url,
            "X-WC-Webhook-Topic": topic,
            "X-WC-Webhook-Resource": "order",
            "X-WC-Webhook-Event": topic.split(".", 1)[1],
            WOOCOMMERCE_SIGNATURE_HEADER: sign_base64(secret, body),
            "X-WC-Webhook-ID": "1",
            "X-WC-Webhook-Delivery-ID": uuid.uuid5(_NAMESPACE, f"wc/{topic}/{numeric_id}").hex,
        }
        return HttpRequest(method="POST", url=url, headers=headers, body=body)
    raise ValueError(f"unknown order webhook kind {kind!r}")
