"""/v1/orders: place, cancel and look up orders."""

from __future__ import annotations

import hashlib
import re
import time

import msgspec
from aiohttp import web

from actors.messages import OrderLine
from api.app_keys import GATEWAY, METRICS, POOL
from api.errors import ApiError, answer_response
from api.request_parsing import read_json
from api.schemas import CHANNEL_PATTERN, SKU_PATTERN, OrderIn
from api.views import OrderDetail, OrderLineOut
from persistence import stock_store
from persistence.committer import DATABASE_ERRORS

_encode = msgspec.json.Encoder().encode



def body_hash(order: OrderIn) -> str:
    """Hash of the order as decoded, so whitespace and key order do not matter."""
    return hashlib.sha256(_encode(order)).hexdigest()


async def place_order(request: web.Request) -> web.Response:
    started = time.perf_counter()
    order, _ = await read_json(request, OrderIn)
    lines = tuple(OrderLine(line.sku, line.qty) for line in order.lines)
    answer = await request.app[GATEWAY].place_order(order.channel, order.order_id, lines, body_hash(order))
    metrics = request.app[METRICS]
    metrics.order_latency.observe(time.perf_counter() - started)
    if answer.replayed:
        metrics.orders.labels(order.channel, "replayed").inc()
    return answer_response(answer)


def _order_key(request: web.Request) -> tuple[str, str]:
    channel, order_id = request.match_info["channel"], request.match_info["order_id"]
    if not re.match(CHANNEL_PATTERN, channel) or len(channel) > 64:
        raise ApiError(400, "invalid_value", "not a valid channel name", "channel")
    if not re.match(SKU_PATTERN, order_id) or len(order_id) > 128:
        raise ApiError(400, "invalid_value", "not a valid order id", "order_id")
    return channel, order_id


async def cancel_order(request: web.Request) -> web.Response:
    channel, order_id = _order_key(request)
    answer = await request.app[GATEWAY].cancel_order(channel, order_id)
    return answer_response(answer)


async def get_order(request: web.Request) -> web.Response:
    channel, order_id = _order_key(request)
    try:
        row = await stock_store.fetch_order(request.app[POOL], channel, order_id)
    except DATABASE_ERRORS:
        raise ApiError(503, "unavailable", "the database is unavailable") from None
    if row is None:
        raise ApiError(404, "unknown_order", f"no order {order_id!r} on channel {channel!r}", "order_id")
    detail = OrderDetail(
        order_id=row["order_id"],
        channel=row["channel"],
        status=row["status"],
        lines=msgspec.json.decode(row["lines"], type=list[OrderLineOut]),
        first_answer=msgspec.json.decode(row["response"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        cancel_answer=msgspec.json.decode(row["cancel_response"]) if row["cancel_response"] else None,
    )
    return web.Response(body=_encode(detail), content_type="application/json")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/orders", place_order)
    app.router.add_post("/v1/orders/{channel}/{order_id}/cancel", cancel_order)
    app.router.add_get("/v1/orders/{channel}/{order_id}", get_order)
