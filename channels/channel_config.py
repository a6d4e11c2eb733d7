"""A channel as data: its kind, credentials and delivery settings, validated by msgspec.

`config` differs per kind; the shared delivery settings (attempts, timeout, backoff) have defaults
so a test or a slow store can tune them. Credentials are listed in SECRET_FIELDS: they are stored,
used to sign and authenticate, and never returned by the API or written to a log.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

ChannelKind = Literal["webhook", "shopify", "woocommerce"]
SECRET_FIELDS = frozenset({"secret", "access_token", "consumer_key", "consumer_secret", "webhook_secret"})

Url = Annotated[str, msgspec.Meta(min_length=8, max_length=2000, pattern=r"^https?://")]
Secret = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
Seconds = Annotated[float, msgspec.Meta(gt=0, le=3600)]


class _Delivery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=100)] = 8
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=120)] = 10.0
    backoff_base_s: Seconds = 1.0
    backoff_cap_s: Seconds = 30.0


class WebhookConfig(_Delivery, kw_only=True, forbid_unknown_fields=True, frozen=True):
    url: Url
    secret: Secret
    max_batch: Annotated[int, msgspec.Meta(ge=1, le=500)] = 100


class ShopifyConfig(_Delivery, kw_only=True, forbid_unknown_fields=True, frozen=True):
    shop_url: Url
    access_token: Secret
    location_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    api_version: Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d{2}$")] = "2025-10"
    webhook_secret: Secret | None = None


class WooCommerceConfig(_Delivery, kw_only=True, forbid_unknown_fields=True, frozen=True):
    site_url: Url
    consumer_key: Secret
    consumer_secret: Secret
    webhook_secret: Secret | None = None


AnyConfig = WebhookConfig | ShopifyConfig | WooCommerceConfig
CONFIG_TYPES: dict[str, type] = {"webhook": WebhookConfig, "shopify": ShopifyConfig, "woocommerce": WooCommerceConfig}
NEEDS_LISTING = frozenset({"shopify", "woocommerce"})


class ChannelDefinition(msgspec.Struct, frozen=True):
    """One channel as stored and as the actors see it."""

    id: str
    kind: ChannelKind
    config: AnyConfig
    rate_per_second: float | None = None
    rate_burst: int | None = None
    buffer: int = 0
    enabled: bool = True


def parse_config(kind: str, raw: dict[str, Any]) -> AnyConfig:
    """Raises msgspec.ValidationError naming the field (path relative to `config`)."""
    return msgspec.convert(raw, CONFIG_TYPES[kind])


def public_config(config: AnyConfig) -> tuple[dict[str, Any], list[str]]:
    """The config without credentials, and the names of the credentials that are set."""
    raw = msgspec.to_builtins(config)
    secrets = sorted(k for k in raw if k in SECRET_FIELDS and raw[k] is not None)
    return {k: v for k, v in raw.items() if k not in SECRET_FIELDS}, secrets


def inbound_secret(definition: ChannelDefinition) -> str | None:
    """The key that order webhooks from this channel are signed with."""
    config = definition.config
    if isinstance(config, (ShopifyConfig, WooCommerceConfig)):
        return config.webhook_secret
    return None
