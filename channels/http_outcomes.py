"""HTTP status semantics common to every channel: Retry-After parsing and whole-batch outcomes.

Kept apart from the format modules so that all three agree on what a 429, a 503 or a 401 means.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping, Sequence

from channels.wire_types import PushOutcome, Update, header_value, outcomes_for_all

# When a channel throttles without saying for how long, wait this long rather than hammering it.
DEFAULT_THROTTLE_SECONDS = 1.0


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds from now: either delay-seconds or an HTTP-date (RFC 9110 10.2.3).

    Returns None when absent or unparseable; a date in the past gives 0.0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if math.isnan(seconds) or math.isinf(seconds):
            return None
        return max(0.0, seconds)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def whole_batch_outcome_for_status(
    updates: Sequence[Update],
    status: int,
    headers: Mapping[str, str],
    *,
    now: float | None = None,
    detail: str | None = None,
    body: bytes | None = None,
) -> list[PushOutcome] | None:
    """Outcome for statuses whose meaning does not depend on the body; None for 2xx (format decides).

    429 -> throttled (Retry-After or 1 s); 408, 425 and 5xx -> retry (with Retry-After as a hint);
    any other 4xx, and 3xx (a store should never redirect an API call) -> failed.
    """
    if 200 <= status < 300:
        return None
    if detail is None and body:
        detail = body[:200].decode("utf-8", "replace")
    suffix = f": {detail}" if detail else ""
    retry_after = parse_retry_after(header_value(headers, "Retry-After"), now=now)
    if status == 429:
        delay = DEFAULT_THROTTLE_SECONDS if retry_after is None else retry_after
        return outcomes_for_all(updates, "throttled", retry_after=delay, error=f"HTTP 429{suffix}")
    if status >= 500 or status in (408, 425):
        return outcomes_for_all(updates, "retry", retry_after=retry_after, error=f"HTTP {status}{suffix}")
    return outcomes_for_all(updates, "failed", error=f"HTTP {status}{suffix}")


def check_batch(updates: Sequence[Update], ids: Mapping[str, str], limit: int, store: str, id_name: str) -> None:
    """A batch a store's API can take: not empty, within its limit, every SKU listed."""
    if not updates:
        raise ValueError(f"a {store} push needs at least one update")
    if len(updates) > limit:
        raise ValueError(f"{len(updates)} updates exceed {store}'s batch limit of {limit}")
    unmapped = [u.sku for u in updates if u.sku not in ids]
    if unmapped:
        raise ValueError(f"no {store} {id_name} for SKUs: {', '.join(unmapped)}")
