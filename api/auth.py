"""Bearer-token authentication of the /v1 API."""

from __future__ import annotations

import hmac

from aiohttp import web

from api.errors import error_response

# Channel webhooks prove themselves by their signature, not by our token.
_UNAUTHENTICATED_PREFIXES = ("/v1/webhooks/",)


def bearer_auth(token: str):
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        path = request.path
        if path.startswith("/v1/") and not path.startswith(_UNAUTHENTICATED_PREFIXES):
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return error_response(401, "unauthorized", "send Authorization: Bearer <token>", "Authorization")
        return await handler(request)

    return middleware
