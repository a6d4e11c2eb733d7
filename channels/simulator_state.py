"""What one simulated channel remembers: its spec, listings, quantities with versions, log and stats.

Versions: the webhook format carries a version per SKU; for Shopify and WooCommerce the simulator
uses the index-aligned `X-Invsync-Version` header when the client sends it, otherwise the arrival
sequence number of the request (recorded as version_source "arrival", never checked for
regressions). A write whose version is lower than one this channel already applied for that SKU is
applied anyway, as a real store would, but counted and kept in `stale_writes`, so tests can assert
"no channel ever received a version lower than one it already had".
"""

from __future__ import annotations

import random
from collections import deque
from typing import Literal

import msgspec

from channels.simulator_faults import FaultConfig, TokenBucket, bucket_for

ChannelKind = Literal["webhook", "shopify", "woocommerce"]
VersionSource = Literal["body", "header", "arrival"]

DEFAULT_LOG_SIZE = 10_000
_STALE_KEEP = 1_000


class ChannelSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One simulated channel.

    secret: the credential the channel checks: webhook HMAC secret, Shopify access token, or
    WooCommerce consumer secret. consumer_key: WooCommerce only. location_id: Shopify only.
    webhook_secret: key for the order webhooks this channel sends to invsync (default: secret).
    listings: SKU -> external id (Shopify inventory item id / WooCommerce product id); ids not
    listed are unknown to the store and answered with per-item errors.
    port: a dedicated listener for this channel (lets "refuse" faults close a real port).
    partial_apply: Shopify only; apply the valid items of a batch that has userErrors.
    """

    id: str
    kind: ChannelKind
    secret: str = "sim-secret"
    consumer_key: str = "ck_sim"
    location_id: str = "1"
    webhook_secret: str | None = None
    listings: dict[str, str] = {}
    port: int | None = None
    faults: FaultConfig = FaultConfig()
    log_size: int = DEFAULT_LOG_SIZE
    partial_apply: bool = False


def default_listings(kind: ChannelKind, skus: list[str]) -> dict[str, str]:
    """Deterministic external ids for generated catalogues (CLI and load harness)."""
    if kind == "webhook":
        return {}
    base = 1_000_000 if kind == "shopify" else 1_000
    return {sku: str(base + index) for index, sku in enumerate(skus, start=1)}


class SkuState(msgspec.Struct):
    quantity: int
    version: int
    updated_at: float  # seconds since the simulator started
    version_source: VersionSource


class Received(msgspec.Struct, frozen=True, array_like=True):
    sku: str
    quantity: int
    version: int
    at: float


class StaleWrite(msgspec.Struct, frozen=True):
    sku: str
    version: int
    newest_version: int
    at: float


class ChannelStats(msgspec.Struct):
    requests: int = 0
    ok_2xx: int = 0
    throttled_429: int = 0  # includes Shopify's 200 + THROTTLED
    errors_5xx: int = 0
    unauthorized_401: int = 0
    client_errors_4xx: int = 0  # other 4xx: bad body, batch too large
    resets: int = 0
    items_applied: int = 0
    item_errors: int = 0
    stale_writes: int = 0
    max_requests_1s: int = 0


class ChannelState:
    """Mutable; touched only from the simulator's event loop, so it needs no lock."""

    def __init__(self, spec: ChannelSpec, seed: int, now: float) -> None:
        self.spec = spec
        self._seed = seed
        self.reset(now)

    def reset(self, now: float) -> None:
        self.faults: FaultConfig = self.spec.faults
        self.bucket: TokenBucket | None = bucket_for(self.faults, now)
        # str seeds are hashed with SHA-512 by Random, so this is stable across processes.
        self.rng = random.Random(f"{self._seed}:{self.spec.id}")
        self.listings: dict[str, str] = dict(self.spec.listings)
        self.sku_by_external_id: dict[str, str] = {ext: sku for sku, ext in self.listings.items()}
        self.skus: dict[str, SkuState] = {}
        self.newest_version: dict[str, int] = {}  # highest version ever applied, for stale detection
        self.log: deque[Received] = deque(maxlen=self.spec.log_size)
        self.stale: deque[StaleWrite] = deque(maxlen=_STALE_KEEP)
        self.stats = ChannelStats()
        self._window: deque[float] = deque()
        self.arrivals = 0

    def set_faults(self, faults: FaultConfig, now: float) -> None:
        old = self.faults
        self.faults = faults
        if (old.rate_limit_per_second, old.burst) != (faults.rate_limit_per_second, faults.burst):
            self.bucket = bucket_for(faults, now)

    def add_listings(self, listings: dict[str, str]) -> None:
        for sku, external_id in listings.items():
            previous = self.listings.get(sku)
            if previous is not None:
                self.sku_by_external_id.pop(previous, None)
            self.listings[sku] = external_id
            self.sku_by_external_id[external_id] = sku

    def note_request(self, now: float) -> None:
        """Count a request and keep the busiest 1 s window seen (for rate-limit assertions)."""
        self.stats.requests += 1
        self._window.append(now)
        while self._window and self._window[0] <= now - 1.0:
            self._window.popleft()
        self.stats.max_requests_1s = max(self.stats.max_requests_1s, len(self._window))

    def note_status(self, status: int) -> None:
        if 200 <= status < 300:
            self.stats.ok_2xx += 1
        elif status == 429:
            self.stats.throttled_429 += 1
        elif status == 401:
            self.stats.unauthorized_401 += 1
        elif status >= 500:
            self.stats.errors_5xx += 1
        elif status >= 400:
            self.stats.client_errors_4xx += 1

    def next_arrival(self) -> int:
        self.arrivals += 1
        return self.arrivals

    def apply(self, sku: str, quantity: int, version: int, source: VersionSource, elapsed: float) -> int:
        """Set a SKU's quantity as the store would (last write wins); returns the previous quantity."""
        if source != "arrival":
            newest = self.newest_version.get(sku)
            if newest is not None and version < newest:
                self.stats.stale_writes += 1
                self.stale.append(StaleWrite(sku=sku, version=version, newest_version=newest, at=elapsed))
            else:
                self.newest_version[sku] = version
        current = self.skus.get(sku)
        previous = current.quantity if current is not None else 0
        self.skus[sku] = SkuState(quantity=quantity, version=version, updated_at=elapsed, version_source=source)
        self.log.append(Received(sku=sku, quantity=quantity, version=version, at=elapsed))
        self.stats.items_applied += 1
        return previous

    def snapshot(self) -> dict:
        return {
            "kind": self.spec.kind,
            "skus": {sku: msgspec.to_builtins(state) for sku, state in sorted(self.skus.items())},
        }
