"""/v1/channels and /v1/dead-letters: channels as data, their listings, failed deliveries."""

from __future__ import annotations

import re

import asyncpg
import msgspec
from aiohttp import web

from api.app_keys import POOL
from api.channel_keys import CHANNELS
from api.channel_schemas import (
    ChannelIn,
    ChannelList,
    ChannelPatch,
    ChannelView,
    DeadLetterAction,
    DeadLetterPage,
    DeadLetterView,
    ListingsIn,
    ListingsOut,
    RateLimit,
)
from api.errors import ApiError, decode_error
from api.request_parsing import query_int, read_json
from api.schemas import CHANNEL_PATTERN
from channels.channel_config import ChannelDefinition, parse_config, public_config
from persistence import channel_store
from persistence.committer import DATABASE_ERRORS

_encode = msgspec.json.Encoder().encode


def _json(body: msgspec.Struct, status: int = 200) -> web.Response:
    return web.Response(status=status, body=_encode(body), content_type="application/json")


def _unavailable() -> ApiError:
    return ApiError(503, "unavailable", "the database is unavailable; nothing was changed")


def _config(kind: str, raw: dict) -> object:
    try:
        return parse_config(kind, raw)
    except msgspec.ValidationError as exc:
        error = decode_error(exc)
        field = f"config.{error.field}" if error.field else "config"
        raise ApiError(400, error.code, error.detail, field) from None


def _channel_id(request: web.Request) -> str:
    channel_id = request.match_info["channel_id"]
    if len(channel_id) > 64 or not re.match(CHANNEL_PATTERN, channel_id):
        raise ApiError(400, "invalid_value", "not a valid channel id", "channel_id")
    return channel_id


def _view(row: asyncpg.Record, **extra) -> ChannelView:
    definition = channel_store.definition_of(row)
    config, secrets = public_config(definition.config)
    rate = (
        RateLimit(definition.rate_per_second, definition.rate_burst or 1)
        if definition.rate_per_second is not None
        else None
    )
    return ChannelView(
        definition.id, definition.kind, config, secrets, rate, definition.buffer, definition.enabled,
        row["created_at"], row["updated_at"], **extra,
    )


async def _fetch(request: web.Request, channel_id: str) -> asyncpg.Record:
    try:
        row = await channel_store.fetch_channel(request.app[POOL], channel_id)
    except DATABASE_ERRORS:
        raise _unavailable() from None
    if row is None:
        raise ApiError(404, "unknown_channel", f"no channel {channel_id!r}", "channel_id")
    return row


async def create_channel(request: web.Request) -> web.Response:
    body, _ = await read_json(request, ChannelIn)
    config = _config(body.kind, body.config)
    rate = body.rate_limit
    definition = ChannelDefinition(
        body.id, body.kind, config, rate.per_second if rate else None, rate.burst if rate else None,
        body.buffer, body.enabled,
    )
    try:
        row = await request.app[CHANNELS].create(definition)
    except DATABASE_ERRORS:
        raise _unavailable() from None
    if row is None:
        raise ApiError(409, "channel_exists", f"a channel {body.id!r} already exists", "id")
    return _json(_view(row), 201)


async def list_channels(request: web.Request) -> web.Response:
    try:
        rows = await channel_store.list_channels(request.app[POOL])
    except DATABASE_ERRORS:
        raise _unavailable() from None
    return _json(ChannelList([_view(row) for row in rows]))


async def get_channel(request: web.Request) -> web.Response:
    channel_id = _channel_id(request)
    row = await _fetch(request, channel_id)
    hub = request.app[CHANNELS]
    status = await hub.channel_status(channel_id)
    counts = (await hub.dead_letter_counts()).get(channel_id, {})
    inbound = dict(hub.inbound_counts.get(channel_id, {})) or None
    return _json(_view(row, status=status, dead_letters=counts or None, inbound=inbound))


async def patch_channel(request: web.Request) -> web.Response:
    channel_id = _channel_id(request)
    patch, _ = await read_json(request, ChannelPatch)
    row = await _fetch(request, channel_id)
    current = channel_store.definition_of(row)
    changes: dict = {}
    if patch.config is not msgspec.UNSET:
        merged = {**msgspec.to_builtins(current.config), **patch.config}
        changes["config"] = _config(current.kind, {k: v for k, v in merged.items() if v is not None})
    if patch.rate_limit is not msgspec.UNSET:
        rate = patch.rate_limit
        changes["rate_per_second"] = rate.per_second if rate else None
        changes["rate_burst"] = rate.burst if rate else None
    if patch.buffer is not msgspec.UNSET:
        changes["buffer"] = patch.buffer
    if patch.enabled is not msgspec.UNSET:
        changes["enabled"] = patch.enabled
    try:
        row = await request.app[CHANNELS].update(msgspec.structs.replace(current, **changes))
    except DATABASE_ERRORS:
        raise _unavailable() from None
    if row is None:
        raise ApiError(404, "unknown_channel", f"no channel {channel_id!r}", "channel_id")
    return _json(_view(row))


async def delete_channel(request: web.Request) -> web.Response:
    channel_id = _channel_id(request)
    try:
        deleted = await request.app[CHANNELS].delete(channel_id)
    except DATABASE_ERRORS:
        raise _unavailable() from None
    if not deleted:
        raise ApiError(404, "unknown_channel", f"no channel {channel_id!r}", "channel_id")
    return web.Response(status=204)


async def put_listings(request: web.Request) -> web.Response:
    channel_id = _channel_id(request)
    body, _ = await read_json(request, ListingsIn)
    row = await _fetch(request, channel_id)
    listings: dict[str, str] = {}
    for index, item in enumerate(body):
        if item.sku in listings:
            raise ApiError(400, "invalid_value", f"SKU {item.sku!r} is listed twice", f"[{index}].sku")
        if row["kind"] == "woocommerce" and not item.external_id.isdigit():
            raise ApiError(400, "invalid_value", "a WooCommerce product id is a number", f"[{index}].external_id")
        listings[item.sku] = item.external_id
    try:
        await request.app[CHANNELS].set_listings(channel_id, listings)
    except DATABASE_ERRORS:
        raise _unavailable() from None
    return _json(ListingsOut(channel_id, len(listings)))


# --- dead letters -------------------------------------------------------------------------------


def _letter(row: asyncpg.Record) -> DeadLetterView:
    return DeadLetterView(
        row["id"], row["channel_id"], row["sku"], row["version"], row["quantity"], row["error"], row["attempts"],
        row["next_attempt_at"], row["created_at"], row["updated_at"],
    )


async def list_dead_letters(request: web.Request) -> web.Response:
    hub = request.app[CHANNELS]
    channel = request.query.get("channel") or None
    limit = query_int(request, "limit", 100, 1, 1000)
    after = query_int(request, "after", None, 0, 2**63 - 1)
    try:
        rows = await channel_store.list_dead_letters(request.app[POOL], channel, after, limit)
    except DATABASE_ERRORS:
        raise _unavailable() from None
    counts = await hub.dead_letter_counts()
    if channel is not None:
        counts = {channel: counts[channel]} if channel in counts else {}
    next_after = rows[-1]["id"] if len(rows) == limit else None
    return _json(DeadLetterPage([_letter(r) for r in rows], next_after, counts))


async def _dead_letter(request: web.Request) -> asyncpg.Record:
    raw = request.match_info["letter_id"]
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(400, "invalid_value", "a dead letter id is a number", "id")
    try:
        row = await channel_store.fetch_dead_letter(request.app[POOL], int(raw))
    except DATABASE_ERRORS:
        raise _unavailable() from None
    if row is None:
        raise ApiError(404, "unknown_dead_letter", f"no dead letter {raw}", "id")
    return row


async def retry_dead_letter(request: web.Request) -> web.Response:
    row = await _dead_letter(request)
    if not await request.app[CHANNELS].retry_dead_letter(row["channel_id"], row["sku"]):
        raise ApiError(404, "unknown_dead_letter", "the dead letter was drained or discarded meanwhile", "id")
    return _json(DeadLetterAction(row["id"], row["channel_id"], row["sku"], "retry_scheduled"), 202)


async def discard_dead_letter(request: web.Request) -> web.Response:
    row = await _dead_letter(request)
    if not await request.app[CHANNELS].discard_dead_letter(row["channel_id"], row["sku"]):
        raise _unavailable()
    return _json(DeadLetterAction(row["id"], row["channel_id"], row["sku"], "discarded"))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/channels", create_channel)
    app.router.add_get("/v1/channels", list_channels)
    app.router.add_get("/v1/channels/{channel_id}", get_channel)
    app.router.add_patch("/v1/channels/{channel_id}", patch_channel)
    app.router.add_delete("/v1/channels/{channel_id}", delete_channel)
    app.router.add_put("/v1/channels/{channel_id}/listings", put_listings)
    app.router.add_get("/v1/dead-letters", list_dead_letters)
    app.router.add_post("/v1/dead-letters/{letter_id}/retry", retry_dead_letter)
    app.router.add_post("/v1/dead-letters/{letter_id}/discard", discard_dead_letter)
