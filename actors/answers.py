"""The answers a request gets, ready to send: HTTP status and JSON body.

An order's first answer is stored with the order and replayed verbatim, so it
is fixed as bytes at the moment it is decided.
"""

from __future__ import annotations

import msgspec

_encode = msgspec.json.Encoder().encode


class Answer(msgspec.Struct, frozen=True, gc=False):
    status: int
    body: bytes
    replayed: bool = False
    etag: str | None = None


class AcceptedLine(msgspec.Struct, frozen=True, gc=False):
    sku: str
    qty: int
    available_after: int
    version: int


class Shortfall(msgspec.Struct, frozen=True, gc=False):
    sku: str
    requested: int
    available: int


class OrderView(msgspec.Struct, frozen=True, omit_defaults=True):
    order_id: str
    channel: str
    status: str  # accepted | oversold | cancelled
    lines: list[AcceptedLine]
    shortfall: list[Shortfall] | None = None


class StockView(msgspec.Struct, frozen=True, gc=False):
    sku: str
    available: int
    version: int


class ErrorBody(msgspec.Struct, frozen=True, omit_defaults=True):
    error: str
    detail: str
    field: str | None = None
    lines: list[Shortfall] | None = None
    current_version: int | None = None


def error_answer(status: int, code: str, detail: str, field: str | None = None, **extra) -> Answer:
    return Answer(status, _encode(ErrorBody(code, detail, field, **extra)))


def json_answer(status: int, body: msgspec.Struct, etag: str | None = None) -> Answer:
    return Answer(status, _encode(body), etag=etag)


def stock_answer(sku: str, available: int, version: int, status: int = 200) -> Answer:
    return json_answer(status, StockView(sku, available, version), etag=f'"{version}"')


def unavailable_answer(detail: str) -> Answer:
    return error_answer(503, "unavailable", detail)
