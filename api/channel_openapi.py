"""The channel, dead-letter and inbound webhook paths of /openapi.json (built from their Structs)."""

from __future__ import annotations

from api.channel_schemas import (
    ChannelIn,
    ChannelList,
    ChannelPatch,
    ChannelView,
    DeadLetterAction,
    DeadLetterPage,
    ListingIn,
    ListingsOut,
    WebhookAnswer,
)
from channels.channel_config import ShopifyConfig, WebhookConfig, WooCommerceConfig

CHANNEL_TYPES = (
    ChannelIn, ChannelPatch, ChannelView, ChannelList, ListingIn, ListingsOut, DeadLetterPage, DeadLetterAction,
    WebhookAnswer, WebhookConfig, ShopifyConfig, WooCommerceConfig,
)

_ID = {"name": "channel_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}
_LETTER = {"name": "letter_id", "in": "path", "required": True, "schema": {"type": "integer"}}


def channel_paths(answer, json_body, errors: dict) -> dict:
    from actors.answers import ErrorBody, OrderView

    listings_body = {
        "required": True,
        "content": {"application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/ListingIn"}}}},
    }
    not_found = answer("unknown_channel", ErrorBody)
    webhook = {
        "post": {
            "summary": "An order webhook from the store (orders/create, orders/cancelled; order.created, order.updated)",
            "description": "Signed with the channel's config.webhook_secret (base64 HMAC-SHA256 of the raw body); "
            "no bearer token. Answered 200 only once the order is durable; a sale the stock cannot cover is "
            "recorded as `oversold` with its shortfall.",
            "security": [],
            "parameters": [_ID],
            "responses": {
                "200": answer("The order as recorded (accepted, oversold, cancelled) or `ignored`", OrderView),
                "400": answer("invalid_payload", ErrorBody),
                "401": answer("invalid_signature: nothing changed", ErrorBody),
                "404": answer("unknown_channel (or a channel of another kind)", ErrorBody),
                "422": answer("idempotency_conflict: the same order id with other lines", ErrorBody),
                "503": answer("Not durable: nothing acknowledged, the store should redeliver", ErrorBody),
            },
        }
    }
    return {
        "/v1/channels": {
            "post": {
                "summary": "Connect a channel (webhook, shopify, woocommerce)",
                "description": "config is WebhookConfig, ShopifyConfig or WooCommerceConfig by kind.",
                "requestBody": json_body(ChannelIn),
                "responses": {"201": answer("Created", ChannelView), "409": answer("channel_exists", ErrorBody), **errors},
            },
            "get": {"summary": "All channels (credentials are never returned)", "responses": {"200": answer("Channels", ChannelList), **errors}},
        },
        "/v1/channels/{channel_id}": {
            "get": {
                "summary": "A channel with its live delivery status and dead-letter counts",
                "parameters": [_ID],
                "responses": {"200": answer("The channel", ChannelView), "404": not_found, **errors},
            },
            "patch": {
                "summary": "Change a channel; config is merged key by key",
                "parameters": [_ID],
                "requestBody": json_body(ChannelPatch),
                "responses": {"200": answer("The channel", ChannelView), "404": not_found, **errors},
            },
            "delete": {
                "summary": "Disconnect a channel (its listing state and dead letters go with it)",
                "parameters": [_ID],
                "responses": {"204": {"description": "Deleted"}, "404": not_found, **errors},
            },
        },
        "/v1/channels/{channel_id}/listings": {
            "put": {
                "summary": "Replace the SKU -> external id map (Shopify inventory item id, WooCommerce product id)",
                "parameters": [_ID],
                "requestBody": listings_body,
                "responses": {"200": answer("Stored", ListingsOut), "404": not_found, **errors},
            }
        },
        "/v1/dead-letters": {
            "get": {
                "summary": "Deliveries that kept failing, oldest first, with per-channel counts",
                "parameters": [
                    {"name": "channel", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
                    {"name": "after", "in": "query", "schema": {"type": "integer"}},
                ],
                "responses": {"200": answer("A page", DeadLetterPage), **errors},
            }
        },
        "/v1/dead-letters/{letter_id}/retry": {
            "post": {
                "summary": "Retry now, with the current quantity",
                "parameters": [_LETTER],
                "responses": {"202": answer("Scheduled", DeadLetterAction), "404": answer("unknown_dead_letter", ErrorBody), **errors},
            }
        },
        "/v1/dead-letters/{letter_id}/discard": {
            "post": {
                "summary": "Stop retrying it",
                "parameters": [_LETTER],
                "responses": {"200": answer("Discarded", DeadLetterAction), "404": answer("unknown_dead_letter", ErrorBody), **errors},
            }
        },
        "/v1/webhooks/shopify/{channel_id}": webhook,
        "/v1/webhooks/woocommerce/{channel_id}": webhook,
    }
