"""Reading and validating what a client sent: body, path parameters, headers."""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec
from aiohttp import web

from api.errors import ApiError, decode_error
from api.schemas import MAX_INT, SKU_PATTERN

T = TypeVar("T")
_SKU = re.compile(SKU_PATTERN)
_decoders: dict[type, msgspec.json.Decoder] = {}


async def read_json(request: web.Request, type_: type[T]) -> tuple[T, bytes]:
    """The decoded body and its raw bytes; 413 past the app's size limit."""
    raw = await request.read()
    decoder = _decoders.get(type_)
    if decoder is None:
        decoder = _decoders[type_] = msgspec.json.Decoder(type_)
    try:
        return decoder.decode(raw), raw
    except msgspec.MsgspecError as exc:
        raise decode_error(exc) from None


def path_sku(request: web.Request) -> str:
    sku = request.match_info["sku"]
    if not 1 <= len(sku) <= 128 or not _SKU.match(sku):
        raise ApiError(400, "invalid_value", "a SKU is 1 to 128 characters, without control characters or '/'", "sku")
    return sku


def if_match(request: web.Request) -> int | None:
    """The version in `If-Match: "<version>"`, or None when absent or `*`."""
    raw = request.headers.get("If-Match")
    if raw is None or raw.strip() == "*":
        return None
    value = raw.strip()
    if value.startswith("W/"):
        value = value[2:]
    value = value.strip('"')
    if not value.isdigit() or int(value) > 2**63 - 1:
        raise ApiError(400, "invalid_header", 'If-Match must be a version in quotes, like "12"', "If-Match")
    return int(value)


def query_int(request: web.Request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_value", f"{name} must be an integer", name) from None
    if not low <= value <= high:
        raise ApiError(400, "invalid_value", f"{name} must be between {low} and {high}", name)
    return value


__all__ = ["MAX_INT", "if_match", "path_sku", "query_int", "read_json"]
