"""GET /openapi.json: the API described from the very types that validate it."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from actors.answers import ErrorBody, OrderView, StockView
from api.channel_openapi import CHANNEL_TYPES, channel_paths
from api.schemas import AdjustStockIn, OrderIn, SetStockIn
from api.views import HistoryPage, OrderDetail, StockDetail, StockPage

_TYPES = (OrderIn, SetStockIn, AdjustStockIn, StockView, StockDetail, StockPage, HistoryPage, OrderView, OrderDetail, ErrorBody)
_TYPES += CHANNEL_TYPES


def _ref(t: type) -> dict:
    return {"$ref": f"#/components/schemas/{t.__name__}"}


def _json_body(t: type) -> dict:
    return {"required": True, "content": {"application/json": {"schema": _ref(t)}}}


def _answer(description: str, t: type, headers: dict | None = None) -> dict:
    out: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": _ref(t)}}}
    if headers:
        out["headers"] = headers
    return out


_ERR = {
    "400": _answer("Invalid input (`error`: malformed_json, unknown_field, missing_field, invalid_value, invalid_header); nothing changed", ErrorBody),
    "401": _answer("Missing or wrong bearer token", ErrorBody),
    "413": _answer("Body over 1 MiB", ErrorBody),
    "503": _answer("Database or owner unavailable; nothing was acknowledged, retry", ErrorBody),
}
_ETAG = {"ETag": {"description": 'The version, quoted: "12"', "schema": {"type": "string"}}}
_REPLAYED = {"Idempotent-Replayed": {"description": "true when this is the stored first answer", "schema": {"type": "string"}}}
_IF_MATCH = {"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"}, "description": 'Only apply if the current version is this one ("0": the SKU must not exist yet)'}
_SKU = {"name": "sku", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1, "maxLength": 128}}
_ORDER_KEY = [
    {"name": "channel", "in": "path", "required": True, "schema": {"type": "string"}},
    {"name": "order_id", "in": "path", "required": True, "schema": {"type": "string"}},
]


def _paths() -> dict:
    return {
        "/v1/stock/{sku}": {
            "put": {
                "summary": "Set the available quantity (creates the SKU)",
                "parameters": [_SKU, _IF_MATCH],
                "requestBody": _json_body(SetStockIn),
                "responses": {"200": _answer("The new state", StockView, _ETAG), "412": _answer("version_mismatch", ErrorBody), **_ERR},
            },
            "get": {
                "summary": "The committed state of a SKU",
                "parameters": [_SKU],
                "responses": {"200": _answer("State", StockDetail, _ETAG), "404": _answer("unknown_sku", ErrorBody), **_ERR},
            },
        },
        "/v1/stock/{sku}/adjust": {
            "post": {
                "summary": "Add or remove units (receiving, damage, count)",
                "parameters": [_SKU, _IF_MATCH],
                "requestBody": _json_body(AdjustStockIn),
                "responses": {
                    "200": _answer("The new state", StockView, _ETAG),
                    "409": _answer("insufficient_stock: it would go below zero", ErrorBody),
                    "412": _answer("version_mismatch", ErrorBody),
                    **_ERR,
                },
            }
        },
        "/v1/stock": {
            "get": {
                "summary": "Page through all SKUs in SKU order",
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
                    {"name": "after", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {"200": _answer("A page", StockPage), **_ERR},
            }
        },
        "/v1/stock/{sku}/history": {
            "get": {
                "summary": "The audit events of a SKU, newest first",
                "parameters": [
                    _SKU,
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
                    {"name": "before_version", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                ],
                "responses": {"200": _answer("A page of events", HistoryPage), "404": _answer("unknown_sku", ErrorBody), **_ERR},
            }
        },
        "/v1/orders": {
            "post": {
                "summary": "Place an order: every line or none; idempotent by (channel, order_id)",
                "requestBody": _json_body(OrderIn),
                "responses": {
                    "201": _answer("Accepted and durable", OrderView, _REPLAYED),
                    "409": _answer("insufficient_stock, with the short lines; nothing changed", ErrorBody, _REPLAYED),
                    "422": _answer("idempotency_conflict: same order id, different body", ErrorBody),
                    **_ERR,
                },
            }
        },
        "/v1/orders/{channel}/{order_id}/cancel": {
            "post": {
                "summary": "Cancel an order: its units go back to stock (idempotent)",
                "parameters": _ORDER_KEY,
                "responses": {
                    "200": _answer("Cancelled", OrderView, _REPLAYED),
                    "404": _answer("unknown_order", ErrorBody),
                    "409": _answer("order_not_cancellable (it was refused)", ErrorBody),
                    **_ERR,
                },
            }
        },
        "/v1/orders/{channel}/{order_id}": {
            "get": {
                "summary": "An order, its status and its stored answers",
                "parameters": _ORDER_KEY,
                "responses": {"200": _answer("The order", OrderDetail), "404": _answer("unknown_order", ErrorBody), **_ERR},
            }
        },
        **channel_paths(_answer, _json_body, _ERR),
        "/internal/health": {"get": {"summary": "The process is alive", "security": [], "responses": {"200": {"description": "alive"}}}},
        "/internal/ready": {
            "get": {
                "summary": "Recovery finished and the database answers",
                "security": [],
                "responses": {"200": {"description": "ready"}, "503": _answer("not ready", ErrorBody)},
            }
        },
    }


def build_openapi(version: str) -> dict:
    _, components = msgspec.json.schema_components(_TYPES, ref_template="#/components/schemas/{name}")
    return {
        "openapi": "3.1.0",
        "info": {"title": "invsync", "version": version, "description": "Inventory sync: no oversell, no lost update."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def add_routes(app: web.Application, version: str) -> None:
    document = msgspec.json.encode(build_openapi(version))

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(body=document, content_type="application/json")

    app.router.add_get("/openapi.json", openapi)
