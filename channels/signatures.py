"""HMAC-SHA256 signing and verification of raw webhook bodies.

Three dialects share one primitive:
- invsync's own outbound webhooks: `X-Invsync-Signature: sha256=<hex>`;
- Shopify webhooks: `X-Shopify-Hmac-Sha256: <base64>` keyed with the app's client secret;
- WooCommerce webhooks: `X-WC-Webhook-Signature: <base64>` keyed with the webhook secret.
The signature always covers the raw body bytes, never a re-serialised JSON.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

INVSYNC_SIGNATURE_HEADER = "X-Invsync-Signature"
SHOPIFY_HMAC_HEADER = "X-Shopify-Hmac-Sha256"
WOOCOMMERCE_SIGNATURE_HEADER = "X-WC-Webhook-Signature"

_HEX_PREFIX = "sha256="


def _digest(secret: str | bytes, body: bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, body, hashlib.sha256).digest()


def sign_hex(secret: str | bytes, body: bytes) -> str:
    """invsync's format: 'sha256=' followed by the lowercase hex digest."""
    return _HEX_PREFIX + _digest(secret, body).hex()


def sign_base64(secret: str | bytes, body: bytes) -> str:
    """Shopify's and WooCommerce's format: standard base64 of the raw digest."""
    return base64.b64encode(_digest(secret, body)).decode("ascii")


def verify_hex(secret: str | bytes, body: bytes, header_value: str | None) -> bool:
    if not header_value:
        return False
    # Bytes, not str: compare_digest raises on non-ASCII str, and a forged header may contain any.
    return hmac.compare_digest(sign_hex(secret, body).encode(), header_value.strip().lower().encode())


def verify_base64(secret: str | bytes, body: bytes, header_value: str | None) -> bool:
    if not header_value:
        return False
    return hmac.compare_digest(sign_base64(secret, body).encode(), header_value.strip().encode())
