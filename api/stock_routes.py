"""/v1/stock: set, adjust and read the available quantity of a SKU."""

from __future__ import annotations

import msgspec
from aiohttp import web

from api.app_keys import GATEWAY, POOL
from api.errors import ApiError, answer_response
from api.request_parsing import if_match, path_sku, query_int, read_json
from api.schemas import AdjustStockIn, SetStockIn
from api.views import HistoryEvent, HistoryPage, StockDetail, StockPage
from persistence import stock_store
from persistence.committer import DATABASE_ERRORS

_encode = msgspec.json.Encoder().encode


def _json(body: msgspec.Struct, etag: str | None = None) -> web.Response:
    headers = {"ETag": etag} if etag else None
    return web.Response(body=_encode(body), content_type="application/json", headers=headers)


def _unavailable() -> ApiError:
    return ApiError(503, "unavailable", "the database is unavailable")


async def put_stock(request: web.Request) -> web.Response:
    sku = path_sku(request)
    expected = if_match(request)
    body, _ = await read_json(request, SetStockIn)
    answer = await request.app[GATEWAY].set_stock(sku, body.available, body.reason, expected)
    return answer_response(answer)


async def adjust_stock(request: web.Request) -> web.Response:
    sku = path_sku(request)
    expected = if_match(request)
    body, _ = await read_json(request, AdjustStockIn)
    answer = await request.app[GATEWAY].adjust_stock(sku, body.delta, body.reason, expected)
    return answer_response(answer)


async def get_stock(request: web.Request) -> web.Response:
    sku = path_sku(request)
    try:
        row = await stock_store.fetch_stock(request.app[POOL], sku)
    except DATABASE_ERRORS:
        raise _unavailable() from None
    if row is None:
        raise ApiError(404, "unknown_sku", f"no stock is recorded for {sku!r}", "sku")
    return _json(StockDetail(**dict(row)), etag=f'"{row["version"]}"')


async def list_stock(request: web.Request) -> web.Response:
    limit = query_int(request, "limit", 100, 1, 1000)
    after = request.query.get("after") or None
    try:
        rows = await stock_store.list_stock(request.app[POOL], after, limit)
    except DATABASE_ERRORS:
        raise _unavailable() from None
    items = [StockDetail(**dict(r)) for r in rows]
    next_after = items[-1].sku if len(items) == limit else None
    return _json(StockPage(items, next_after))


async def stock_history(request: web.Request) -> web.Response:
    sku = path_sku(request)
    limit = query_int(request, "limit", 100, 1, 1000)
    before = query_int(request, "before_version", None, 1, 2**63 - 1)
    try:
        rows = await stock_store.stock_history(request.app[POOL], sku, before, limit)
        if not rows and before is None and await stock_store.fetch_stock(request.app[POOL], sku) is None:
            raise ApiError(404, "unknown_sku", f"no stock is recorded for {sku!r}", "sku")
    except DATABASE_ERRORS:
        raise _unavailable() from None
    events = [HistoryEvent(**dict(r)) for r in rows]
    next_before = events[-1].version if len(events) == limit and events[-1].version > 1 else None
    return _json(HistoryPage(sku, events, next_before))


def add_routes(app: web.Application) -> None:
    app.router.add_put("/v1/stock/{sku}", put_stock)
    app.router.add_post("/v1/stock/{sku}/adjust", adjust_stock)
    app.router.add_get("/v1/stock/{sku}/history", stock_history)
    app.router.add_get("/v1/stock/{sku}", get_stock)
    app.router.add_get("/v1/stock", list_stock)
