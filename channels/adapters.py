"""One interface over the three wire formats: batch limit, build a request, read its answer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from channels import shopify_format, webhook_format, woocommerce_format
from channels.channel_config import ChannelDefinition, ShopifyConfig, WebhookConfig, WooCommerceConfig
from channels.wire_types import HttpRequest, PushOutcome, Update, outcomes_for_transport_error


class Adapter:
    def __init__(self, definition: ChannelDefinition, listings: Mapping[str, str]) -> None:
        self.definition = definition
        self.listings = dict(listings)
        config = definition.config
        if isinstance(config, WebhookConfig):
            self._webhook = webhook_format.WebhookChannelConfig(definition.id, config.url, config.secret, config.max_batch)
            self.max_batch = config.max_batch
            self.needs_listing = False
        elif isinstance(config, ShopifyConfig):
            self._shopify = shopify_format.ShopifyChannelConfig(
                definition.id, config.shop_url, config.access_token, config.location_id, config.api_version
            )
            self.max_batch = shopify_format.MAX_BATCH
            self.needs_listing = True
        elif isinstance(config, WooCommerceConfig):
            self._woo = woocommerce_format.WooCommerceChannelConfig(
                definition.id, config.site_url, config.consumer_key, config.consumer_secret
            )
            self.max_batch = woocommerce_format.MAX_BATCH
            self.needs_listing = True
        else:  # pragma: no cover - the config types are closed
            raise TypeError(type(config))

    def listed(self, sku: str) -> bool:
        return not self.needs_listing or sku in self.listings

    def split_for_request(self, updates: Sequence[Update]) -> tuple[list[Update], list[Update]]:
        """WooCommerce matches answers by product id: two SKUs sharing one id go in separate requests."""
        if self.definition.kind != "woocommerce":
            return list(updates), []
        seen: set[str] = set()
        now, later = [], []
        for u in updates:
            ext = self.listings[u.sku]
            (later if ext in seen else now).append(u)
            seen.add(ext)
        return now, later

    def build(self, updates: Sequence[Update]) -> HttpRequest:
        kind = self.definition.kind
        if kind == "webhook":
            return webhook_format.build_webhook_request(self._webhook, updates)
        if kind == "shopify":
            return shopify_format.build_set_quantities_request(self._shopify, updates, self.listings)
        return woocommerce_format.build_batch_update_request(self._woo, updates, self.listings)

    def interpret(
        self, updates: Sequence[Update], status: int, headers: Mapping[str, str], body: bytes, error: str | None
    ) -> list[PushOutcome]:
        if error is not None:
            return outcomes_for_transport_error(updates, error)
        kind = self.definition.kind
        if kind == "webhook":
            return webhook_format.interpret_webhook_response(updates, status, headers, body)
        if kind == "shopify":
            return shopify_format.interpret_set_quantities_response(updates, status, headers, body)
        return woocommerce_format.interpret_batch_update_response(updates, self.listings, status, headers, body)
