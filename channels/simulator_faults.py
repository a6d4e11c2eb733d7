"""Fault configuration and per-request fault decisions for the channel simulator.

A channel's faults are one frozen `FaultConfig`; changing them at runtime replaces the whole value
(merged from a partial JSON object), so a request always sees one consistent configuration.
Decisions draw from the channel's own seeded RNG, so a run with the same seed and the same request
sequence makes the same decisions.
"""

from __future__ import annotations

import math
import random
from typing import Any, Literal

import msgspec

OutageMode = Literal["503", "reset", "refuse"]
DecisionKind = Literal["ok", "unavailable", "reset", "refuse", "throttle", "error", "slow"]


class Outage(msgspec.Struct, frozen=True, kw_only=True):
    """A window [start_s, end_s) in seconds since the simulator started.

    mode: "503" answers 503 with Retry-After; "reset" closes the connection without an answer;
    "refuse" closes the channel's own listening port (only for a channel with `port`; on the shared
    port it behaves as "reset", since one port cannot refuse for one path only).
    """

    start_s: float
    end_s: float
    mode: OutageMode = "503"


class FaultConfig(msgspec.Struct, frozen=True, kw_only=True):
    latency_ms: float = 0.0  # added to every answered request
    jitter_ms: float = 0.0  # uniform extra in [0, jitter_ms]
    error_rate: float = 0.0  # fraction answered `error_status` before anything is applied
    error_status: int = 500
    reset_rate: float = 0.0  # fraction whose connection is closed unanswered, nothing applied
    slow_rate: float = 0.0  # fraction applied, then answered only after slow_ms (client timeouts)
    slow_ms: float = 0.0
    rate_limit_per_second: float | None = None  # token bucket; None = unlimited
    burst: int | None = None  # bucket size; defaults to max(1, ceil(rate))
    outages: tuple[Outage, ...] = ()
    down: OutageMode | None = None  # runtime switch: like an outage window that never ends
    # Shopify's GraphQL cost limit answers 200 + errors[THROTTLED]; "http" answers 429 instead.
    shopify_throttle_style: Literal["graphql", "http"] = "graphql"

    def __post_init__(self) -> None:
        for name in ("error_rate", "reset_rate", "slow_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        if self.rate_limit_per_second is not None and self.rate_limit_per_second <= 0:
            raise ValueError("rate_limit_per_second must be positive (or null for unlimited)")
        if self.burst is not None and self.burst < 1:
            raise ValueError("burst must be at least 1")
        if not 500 <= self.error_status <= 599:
            raise ValueError("error_status must be a 5xx status")


def merge_faults(current: FaultConfig, changes: dict[str, Any]) -> FaultConfig:
    """Apply a partial JSON object to the current faults; raises ValueError on unknown or bad fields."""
    merged = msgspec.to_builtins(current)
    unknown = set(changes) - set(merged)
    if unknown:
        raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
    merged.update(changes)
    try:
        return msgspec.convert(merged, FaultConfig)
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc)) from exc


class TokenBucket:
    """Classic token bucket; `take` answers 0.0 when a token was taken, else the wait for one."""

    def __init__(self, rate_per_second: float, burst: int, now: float) -> None:
        self.rate = rate_per_second
        self.capacity = float(burst)
        self.tokens = float(burst)
        self._last = now

    def _refill(self, now: float) -> None:
        if now > self._last:
            self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate)
            self._last = now

    def take(self, now: float) -> float:
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


def bucket_for(faults: FaultConfig, now: float) -> TokenBucket | None:
    if faults.rate_limit_per_second is None:
        return None
    burst = faults.burst if faults.burst is not None else max(1, math.ceil(faults.rate_limit_per_second))
    return TokenBucket(faults.rate_limit_per_second, burst, now)


class Decision(msgspec.Struct, frozen=True):
    kind: DecisionKind
    delay_s: float = 0.0  # latency before the store acts
    hold_s: float = 0.0  # slow: extra wait after applying, before answering
    retry_after_s: float | None = None  # throttle: wait until a token; unavailable: until window end


def outage_mode_at(faults: FaultConfig, elapsed_s: float) -> tuple[OutageMode, float | None] | None:
    """The outage in force at `elapsed_s` and, for windows, the seconds until it ends."""
    if faults.down is not None:
        return faults.down, None
    for outage in faults.outages:
        if outage.start_s <= elapsed_s < outage.end_s:
            return outage.mode, outage.end_s - elapsed_s
    return None


def decide_outage(faults: FaultConfig, elapsed_s: float) -> Decision:
    """What to do with one request arriving now.

    Outages come first (a store that is down answers nobody); the caller checks authentication
    between an outage and the rest, so unauthenticated calls never spend rate-limit tokens.
    """
    outage = outage_mode_at(faults, elapsed_s)
    if outage is not None:
        mode, remaining = outage
        if mode == "503":
            return Decision("unavailable", retry_after_s=remaining)
        return Decision("refuse" if mode == "refuse" else "reset")
    return Decision("ok")


def decide_after_auth(faults: FaultConfig, bucket: TokenBucket | None, rng: random.Random, now: float) -> Decision:
    """Latency, rate limit and random faults for an authenticated request."""
    delay = (faults.latency_ms + rng.uniform(0.0, faults.jitter_ms)) / 1000.0 if faults.jitter_ms else faults.latency_ms / 1000.0
    # One draw per fault kind, in a fixed order and before any branch, so the RNG sequence
    # depends only on the number of requests, not on their outcomes.
    error_draw, reset_draw, slow_draw = rng.random(), rng.random(), rng.random()
    if bucket is not None:
        wait = bucket.take(now)
        if wait > 0.0:
            return Decision("throttle", delay_s=delay, retry_after_s=wait)
    if error_draw < faults.error_rate:
        return Decision("error", delay_s=delay)
    if reset_draw < faults.reset_rate:
        return Decision("reset", delay_s=delay)
    if slow_draw < faults.slow_rate:
        return Decision("slow", delay_s=delay, hold_s=faults.slow_ms / 1000.0)
    return Decision("ok", delay_s=delay)
