"""The client side of a channel's rate limit: a token bucket plus "stop until" for 429s.

Pure: time is passed in, nothing sleeps. The channel actor asks `wait(now)` before each request
and `take(now)` when it sends one; a throttled answer calls `pause_until`.
"""

from __future__ import annotations


# `now + wait(now)` can land a rounding error short of a whole token.
_EPSILON = 1e-9


class TokenBucket:
    """`rate` tokens per second, at most `burst` stored; one token per request.

    In any window of length T at most `burst + rate * T` requests are taken.
    """

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.rate = float(rate)
        self.capacity = float(burst)
        self.tokens = float(burst)
        self._last = now
        self.paused_until = 0.0

    def _refill(self, now: float) -> None:
        if now > self._last:
            self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate)
            self._last = now

    def wait(self, now: float) -> float:
        """Seconds until a request may be sent (0.0: now)."""
        self._refill(now)
        pause = max(0.0, self.paused_until - now)
        if self.tokens >= 1.0 - _EPSILON:
            return pause
        return max(pause, (1.0 - self.tokens) / self.rate)

    def take(self, now: float) -> None:
        self._refill(now)
        if self.tokens < 1.0 - _EPSILON or now < self.paused_until:
            raise RuntimeError("no token: call wait() first")
        self.tokens = max(0.0, self.tokens - 1.0)

    def pause_until(self, until: float) -> None:
        """The channel said "not before `until`" (429 Retry-After, Shopify THROTTLED)."""
        self.paused_until = max(self.paused_until, until)
        # The channel's own bucket is empty: do not send a burst the moment the pause ends.
        self.tokens = min(self.tokens, 1.0)


class Unlimited:
    """A channel without a configured limit still honours Retry-After."""

    def __init__(self) -> None:
        self.paused_until = 0.0

    def wait(self, now: float) -> float:
        return max(0.0, self.paused_until - now)

    def take(self, now: float) -> None:
        pass

    def pause_until(self, until: float) -> None:
        self.paused_until = max(self.paused_until, until)


def limiter(rate: float | None, burst: int | None, now: float) -> TokenBucket | Unlimited:
    if rate is None:
        return Unlimited()
    return TokenBucket(rate, burst if burst is not None else max(1, int(rate)), now)
