"""Inbound order webhooks: Shopify and WooCommerce tell us what they sold.

The signature is checked on the raw body before anything else (401, nothing changed); the order
then goes through the same gateway as our own API, keyed by (channel id, the store's order id) so
redeliveries are idempotent, with `take_available`: a sale the store already made cannot be
refused, so a short line takes what there is and the order is recorded as `oversold`. The answer
is 200 only once the order is durable, and never waits for pushes to other channels.
"""

from __future__ import annotations

import hashlib
import re

import msgspec
import structlog
from aiohttp import web

from actors.messages import OrderLine
from api.app_keys import GATEWAY
from api.channel_keys import CHANNELS
from api.channel_schemas import WebhookAnswer
from api.errors import ApiError, answer_response
from api.schemas import MAX_INT, SKU_PATTERN
from channels.channel_config import inbound_secret
from channels.inbound_orders import InboundPayloadError, parse_order_webhook, verify_inbound_signature

log = structlog.get_logger("invsync.webhooks")
_encode = msgspec.json.Encoder().encode
_SKU = re.compile(SKU_PATTERN)


class _Status(msgspec.Struct):
    status: str = ""


def _lines_hash(lines: tuple[OrderLine, ...]) -> str:
    return hashlib.sha256(_encode(sorted((line.sku, line.qty) for line in lines))).hexdigest()


def _ignored(reason: str) -> web.Response:
    return web.Response(body=_encode(WebhookAnswer("ignored", reason)), content_type="application/json")


async def _inbound(request: web.Request, source: str) -> web.Response:
    hub = request.app[CHANNELS]
    channel_id = request.match_info["channel_id"]
    definition = hub.definitions.get(channel_id)
    if definition is None or definition.kind != source:
        raise ApiError(404, "unknown_channel", f"no {source} channel {channel_id!r}", "channel_id")
    raw = await request.read()
    counts = hub.inbound_counts[channel_id]
    secret = inbound_secret(definition)
    if not secret or not verify_inbound_signature(source, request.headers, raw, secret):  # type: ignore[arg-type]
        counts["bad_signature"] += 1
        log.warning("webhook signature rejected", channel=channel_id, source=source, configured=bool(secret))
        raise ApiError(401, "invalid_signature", "the webhook signature does not match the channel's webhook_secret")
    try:
        inbound = parse_order_webhook(source, request.headers, raw)  # type: ignore[arg-type]
    except InboundPayloadError as exc:
        raise ApiError(400, "invalid_payload", str(exc), exc.field) from None
    if inbound.kind == "ignore":
        counts["ignored"] += 1
        return _ignored(inbound.reason or "nothing to do")
    lines = tuple(OrderLine(line.sku, line.quantity) for line in inbound.lines)
    for line in lines:
        if len(line.sku) > 128 or not _SKU.match(line.sku) or line.qty > MAX_INT:
            raise ApiError(400, "invalid_payload", f"line {line.sku[:40]!r} is not a SKU/quantity invsync can hold", "line_items")
    gateway = request.app[GATEWAY]
    if inbound.kind == "cancel":
        answer = await gateway.cancel_order(channel_id, inbound.order_id)
        if answer.status in (404, 409):
            counts["ignored"] += 1
            return _ignored(f"cancel of an order invsync cannot cancel (HTTP {answer.status})")
        if answer.status == 200:
            counts["cancels"] += 1
        return answer_response(answer)
    answer = await gateway.place_order(channel_id, inbound.order_id, lines, _lines_hash(lines), take_available=True)
    if answer.status == 201:
        counts["orders"] += 1
        if not answer.replayed and msgspec.json.decode(answer.body, type=_Status).status == "oversold":
            counts["oversold"] += 1
            log.warning("channel order oversold", channel=channel_id, order_id=inbound.order_id)
        answer = msgspec.structs.replace(answer, status=200)
    return answer_response(answer)


async def shopify_webhook(request: web.Request) -> web.Response:
    return await _inbound(request, "shopify")


async def woocommerce_webhook(request: web.Request) -> web.Response:
    return await _inbound(request, "woocommerce")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/webhooks/shopify/{channel_id}", shopify_webhook)
    app.router.add_post("/v1/webhooks/woocommerce/{channel_id}", woocommerce_webhook)
