"""invsync's own outbound stock webhook.

    POST {config.url}
    Content-Type: application/json
    X-Invsync-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed with config.secret>

    {"channel": "<channel id>", "updates": [{"sku": "A-1", "quantity": 7, "version": 42}, ...]}

Any 2xx confirms the whole batch (the receiver cannot accept half a body). 429 throttles
(Retry-After in seconds or as an HTTP-date), 5xx is retried, any other status is permanent.
The version lets the receiver drop an update older than one it already holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from channels.http_outcomes import whole_batch_outcome_for_status
from channels.signatures import INVSYNC_SIGNATURE_HEADER, sign_hex
from channels.wire_types import HttpRequest, PushOutcome, Update, outcomes_for_all

DEFAULT_MAX_BATCH = 500


class WebhookChannelConfig(msgspec.Struct, frozen=True):
    channel_id: str
    url: str
    secret: str
    max_batch: int = DEFAULT_MAX_BATCH


class WebhookBody(msgspec.Struct, frozen=True):
    """The wire body; also what the simulator decodes, so both sides share one definition."""

    channel: str
    updates: list[Update]


_encoder = msgspec.json.Encoder()


def build_webhook_request(config: WebhookChannelConfig, updates: Sequence[Update]) -> HttpRequest:
    if not updates:
        raise ValueError("a webhook push needs at least one update")
    if len(updates) > config.max_batch:
        raise ValueError(f"{len(updates)} updates exceed the batch limit of {config.max_batch}")
    body = _encoder.encode(WebhookBody(channel=config.channel_id, updates=list(updates)))
    headers = {
        "Content-Type": "application/json",
        INVSYNC_SIGNATURE_HEADER: sign_hex(config.secret, body),
    }
    return HttpRequest(method="POST", url=config.url, headers=headers, body=body)


def interpret_webhook_response(
    updates: Sequence[Update],
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
) -> list[PushOutcome]:
    whole = whole_batch_outcome_for_status(updates, status, headers, now=now, body=body)
    if whole is not None:
        return whole
    return outcomes_for_all(updates, "confirmed")
