"""Error answers: JSON `{"error", "detail", "field"}`, and the middleware that makes them."""

from __future__ import annotations

import re
from collections.abc import Callable

import msgspec
import structlog
from aiohttp import web

from actors.answers import Answer, ErrorBody

log = structlog.get_logger("invsync.http")
_encode = msgspec.json.Encoder().encode


class ApiError(Exception):
    def __init__(self, status: int, code: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.field = field


def error_response(status: int, code: str, detail: str, field: str | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=_encode(ErrorBody(code, detail, field)),
        content_type="application/json",
    )


def answer_response(answer: Answer) -> web.Response:
    headers = {}
    if answer.replayed:
        headers["Idempotent-Replayed"] = "true"
    if answer.etag is not None:
        headers["ETag"] = answer.etag
    return web.Response(status=answer.status, body=answer.body, content_type="application/json", headers=headers)


_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_NAMED = re.compile(r"field `(?P<name>[^`]+)`")


def decode_error(exc: msgspec.MsgspecError) -> ApiError:
    """Name the offending field of a msgspec error, the way a client can use it."""
    message = str(exc)
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return ApiError(400, "malformed_json", message)
    match = _PATH.search(message)
    path = match.group("path").lstrip(".") if match else ""
    detail = message[: match.start()] if match else message
    named = _NAMED.search(detail)
    if named:
        path = f"{path}.{named.group('name')}" if path else named.group("name")
    if "unknown field" in detail:
        code = "unknown_field"
    elif "missing required field" in detail:
        code = "missing_field"
    else:
        code = "invalid_value"
    return ApiError(400, code, detail, path or None)


_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
}


def edge_middleware(*refusals: Callable[[web.Request], web.Response | None]):
    """The one middleware: access checks first, then errors turned into JSON answers."""

    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        for refuse in refusals:
            refusal = refuse(request)
            if refusal is not None:
                return refusal
        try:
            return await handler(request)
        except ApiError as exc:
            return error_response(exc.status, exc.code, exc.detail, exc.field)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = _HTTP_CODES.get(exc.status, "http_error")
            return error_response(exc.status, code, exc.reason or code)

    return middleware
