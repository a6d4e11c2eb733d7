"""Request and response bodies of /v1/channels, /v1/dead-letters and the inbound webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from api.schemas import MAX_INT, Channel, Sku

ExternalId = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]


class RateLimit(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    per_second: Annotated[float, msgspec.Meta(gt=0, le=100_000)]
    burst: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1


class ChannelIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """`config` depends on `kind`: see the README (webhook: url, secret; shopify: shop_url,
    access_token, location_id, webhook_secret; woocommerce: site_url, consumer_key,
    consumer_secret, webhook_secret; all: max_attempts, timeout_s, backoff_base_s, backoff_cap_s)."""

    id: Channel
    kind: Literal["webhook", "shopify", "woocommerce"]
    config: dict[str, Any]
    rate_limit: RateLimit | None = None
    buffer: Annotated[int, msgspec.Meta(ge=0, le=MAX_INT)] = 0
    enabled: bool = True


class ChannelPatch(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Only the fields given change; `config` is merged key by key (secrets may be left out)."""

    config: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    rate_limit: RateLimit | None | msgspec.UnsetType = msgspec.UNSET
    buffer: Annotated[int, msgspec.Meta(ge=0, le=MAX_INT)] | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET


class ListingIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    sku: Sku
    external_id: ExternalId


ListingsIn = Annotated[list[ListingIn], msgspec.Meta(max_length=100_000)]


class ListingsOut(msgspec.Struct, frozen=True):
    channel: str
    listings: int


class ChannelView(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    kind: str
    config: dict[str, Any]  # without credentials
    secrets_set: list[str]  # which credentials are stored (their values are never returned)
    rate_limit: RateLimit | None
    buffer: int
    enabled: bool
    created_at: datetime
    updated_at: datetime
    status: dict[str, Any] | None = None  # live delivery state (pending, unlisted SKUs, counters)
    dead_letters: dict[str, int] | None = None
    inbound: dict[str, int] | None = None


class ChannelList(msgspec.Struct, frozen=True):
    items: list[ChannelView]


class DeadLetterView(msgspec.Struct, frozen=True):
    id: int
    channel: str
    sku: str
    version: int
    quantity: int
    error: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    updated_at: datetime


class DeadLetterPage(msgspec.Struct, frozen=True):
    items: list[DeadLetterView]
    next_after: int | None
    counts: dict[str, dict[str, int]]  # per channel: open, dead_lettered, retried, drained, discarded


class DeadLetterAction(msgspec.Struct, frozen=True):
    id: int
    channel: str
    sku: str
    status: Literal["retry_scheduled", "discarded"]


class WebhookAnswer(msgspec.Struct, frozen=True, omit_defaults=True):
    status: Literal["ignored"]
    reason: str
