"""Who may call what: the API token for /v1, the admin token or loopback for /internal."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable

from aiohttp import web

from api.errors import error_response

# Channel webhooks prove themselves by their signature, not by our token.
_UNAUTHENTICATED_PREFIXES = ("/v1/webhooks/",)


def api_refusal(token: str) -> Callable[[web.Request], web.Response | None]:
    """/v1/* needs the API token (channel webhooks are signed instead)."""
    expected = f"Bearer {token}".encode()

    def refuse(request: web.Request) -> web.Response | None:
        path = request.path
        if path.startswith("/v1/") and not path.startswith(_UNAUTHENTICATED_PREFIXES):
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return error_response(401, "unauthorized", "send Authorization: Bearer <token>", "Authorization")
        return None

    return refuse


# Probes must work without credentials; the rest of /internal shows the inside.
_OPEN_INTERNAL = ("/internal/health", "/internal/ready")


def _is_loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def internal_refusal(admin_token: str | None) -> Callable[[web.Request], web.Response | None]:
    """/internal/*: the admin token when one is set, else only from loopback."""
    expected = f"Bearer {admin_token}".encode() if admin_token else None

    def refuse(request: web.Request) -> web.Response | None:
        path = request.path
        if path.startswith("/internal/") and path not in _OPEN_INTERNAL:
            if expected is not None:
                given = request.headers.get("Authorization", "").encode()
                if not hmac.compare_digest(given, expected):
                    return error_response(401, "unauthorized", "send Authorization: Bearer <admin token>", "Authorization")
            elif not _is_loopback(request.remote):
                return error_response(403, "forbidden", "set INVSYNC_ADMIN_TOKEN to reach /internal from elsewhere")
        return None

    return refuse
