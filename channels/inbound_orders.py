"""Parse inbound order webhooks from Shopify and WooCommerce into one neutral shape.

Topics understood:
- Shopify (`X-Shopify-Topic`): `orders/create` -> order, `orders/cancelled` -> cancel; any other
  topic -> ignore.
- WooCommerce (`X-WC-Webhook-Topic`): `order.created` -> order (unless the order is still a draft
  or already cancelled/failed), `order.updated` with status `cancelled` -> cancel, any other
  update -> ignore. The ping WooCommerce sends when a webhook is saved (form body
  `webhook_id=<n>`, unsigned) -> ignore.

Line items without a SKU (custom items, tips) or with quantity 0 are skipped and reported in
`skipped`; two lines of one SKU are merged, so `lines` holds each SKU once. An order whose lines
all lack a SKU comes back as `ignore` (with the skipped lines) since it touches no stock.

Signature checks are separate (`verify_inbound_signature`) because they need the raw body and the
channel's secret, which the caller has before it knows the topic.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Literal, TypeVar

import msgspec

from channels.signatures import SHOPIFY_HMAC_HEADER, WOOCOMMERCE_SIGNATURE_HEADER, verify_base64
from channels.wire_types import header_value

InboundSource = Literal["shopify", "woocommerce"]
InboundKind = Literal["order", "cancel", "ignore"]

SHOPIFY_TOPIC_HEADER = "X-Shopify-Topic"
WOOCOMMERCE_TOPIC_HEADER = "X-WC-Webhook-Topic"

# WooCommerce creates an order row before checkout finishes; these never reduced stock.
_WOO_STATUSES_NOT_SOLD = frozenset({"checkout-draft", "draft", "auto-draft", "cancelled", "failed", "trash"})


class OrderLine(msgspec.Struct, frozen=True):
    sku: str
    quantity: int


class SkippedLine(msgspec.Struct, frozen=True):
    line_id: str
    reason: str


class InboundOrder(msgspec.Struct, frozen=True):
    kind: InboundKind
    order_id: str
    lines: tuple[OrderLine, ...] = ()
    skipped: tuple[SkippedLine, ...] = ()
    topic: str = ""
    reason: str | None = None  # why an event is ignored


class InboundPayloadError(ValueError):
    """A webhook body or header that cannot be an order; `field` names what is wrong ($.path or header)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(f"{message} (field {field})")
        self.field = field


NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]


# Unknown fields are ignored (msgspec's default), so the full documented payloads decode.
class _ShopifyLineItem(msgspec.Struct, kw_only=True):
    id: int | None = None
    sku: str | None = None
    quantity: NonNegativeInt


class _ShopifyOrder(msgspec.Struct, kw_only=True):
    id: int
    line_items: list[_ShopifyLineItem]
    cancelled_at: str | None = None


class _WooLineItem(msgspec.Struct, kw_only=True):
    id: int | None = None
    sku: str | None = None
    quantity: NonNegativeInt


class _WooOrder(msgspec.Struct, kw_only=True):
    id: int
    status: str
    line_items: list[_WooLineItem] = []


_PATH_IN_MESSAGE = re.compile(r" - at `(?P<path>[^`]*)`$")
_MISSING_FIELD = re.compile(r"missing required field `(?P<name>[^`]*)`")


_T = TypeVar("_T")


def _decode(body: bytes, type_: type[_T]) -> _T:
    try:
        return msgspec.json.decode(body, type=type_)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _PATH_IN_MESSAGE.search(message)
        path = match.group("path") if match else "$"
        missing = _MISSING_FIELD.search(message)
        if missing:
            path = f"{path}.{missing.group('name')}"
        raise InboundPayloadError(f"invalid order payload: {message}", path) from exc
    except msgspec.DecodeError as exc:
        raise InboundPayloadError(f"body is not JSON: {exc}", "$") from exc


def _collect_lines(items: list[_ShopifyLineItem] | list[_WooLineItem]) -> tuple[tuple[OrderLine, ...], tuple[SkippedLine, ...]]:
    totals: dict[str, int] = {}
    skipped: list[SkippedLine] = []
    for position, item in enumerate(items):
        line_id = str(item.id) if item.id is not None else f"#{position}"
        sku = (item.sku or "").strip()
        if not sku:
            skipped.append(SkippedLine(line_id=line_id, reason="no SKU"))
        elif item.quantity == 0:
            skipped.append(SkippedLine(line_id=line_id, reason="quantity 0"))
        else:
            totals[sku] = totals.get(sku, 0) + item.quantity
    return tuple(OrderLine(sku=s, quantity=q) for s, q in totals.items()), tuple(skipped)


def _order_or_ignore(kind: InboundKind, order_id: str, topic: str, items: list) -> InboundOrder:
    lines, skipped = _collect_lines(items)
    if not lines:
        return InboundOrder(kind="ignore", order_id=order_id, skipped=skipped, topic=topic, reason="no line with a SKU")
    return InboundOrder(kind=kind, order_id=order_id, lines=lines, skipped=skipped, topic=topic)


def parse_shopify_order_webhook(topic: str, body: bytes) -> InboundOrder:
    if topic not in ("orders/create", "orders/cancelled"):
        return InboundOrder(kind="ignore", order_id="", topic=topic, reason=f"topic {topic!r} does not move stock")
    order = _decode(body, _ShopifyOrder)
    kind: InboundKind = "order" if topic == "orders/create" else "cancel"
    return _order_or_ignore(kind, str(order.id), topic, order.line_items)


def parse_woocommerce_order_webhook(topic: str, body: bytes) -> InboundOrder:
    if body.lstrip().startswith(b"webhook_id="):
        return InboundOrder(kind="ignore", order_id="", topic=topic, reason="webhook ping")
    if topic not in ("order.created", "order.updated"):
        return InboundOrder(kind="ignore", order_id="", topic=topic, reason=f"topic {topic!r} does not move stock")
    order = _decode(body, _WooOrder)
    order_id = str(order.id)
    if topic == "order.created":
        if order.status in _WOO_STATUSES_NOT_SOLD:
            return InboundOrder(kind="ignore", order_id=order_id, topic=topic, reason=f"created with status {order.status!r}")
        return _order_or_ignore("order", order_id, topic, order.line_items)
    if order.status == "cancelled":
        return _order_or_ignore("cancel", order_id, topic, order.line_items)
    return InboundOrder(kind="ignore", order_id=order_id, topic=topic, reason=f"update to status {order.status!r}")


def parse_order_webhook(source: InboundSource, headers: Mapping[str, str], body: bytes) -> InboundOrder:
    """Dispatch on the source's topic header; raises InboundPayloadError naming the bad field."""
    topic_header = SHOPIFY_TOPIC_HEADER if source == "shopify" else WOOCOMMERCE_TOPIC_HEADER
    topic = header_value(headers, topic_header)
    if source == "woocommerce" and body.lstrip().startswith(b"webhook_id="):
        return parse_woocommerce_order_webhook(topic or "", body)
    if not topic:
        raise InboundPayloadError("missing webhook topic header", topic_header)
    if source == "shopify":
        return parse_shopify_order_webhook(topic.strip(), body)
    return parse_woocommerce_order_webhook(topic.strip(), body)


def verify_inbound_signature(source: InboundSource, headers: Mapping[str, str], body: bytes, secret: str) -> bool:
    """Both stores sign the raw body with base64 HMAC-SHA256; only the header name differs."""
    name = SHOPIFY_HMAC_HEADER if source == "shopify" else WOOCOMMERCE_SIGNATURE_HEADER
    return verify_base64(secret, body, header_value(headers, name))
